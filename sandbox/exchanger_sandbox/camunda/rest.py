"""The ``/engine-rest`` routes: request parsing, Camunda's resource-level error mapping, DTOs.

Not part of Camunda (for tests that run the engine as a subprocess):
``POST /engine-rest/_admin/clock`` with ``{"advance_ms": N}`` moves the engine clock forward (expiring
locks and retry timeouts, firing timers) and answers ``{"now": <date>}``; ``POST /_admin/reset``
empties the engine.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from typing import Any

from exchanger.bpmn.errors import (
    BadUserRequestException,
    CamundaError,
    InvalidRequestException,
    NotFoundException,
    NullValueException,
    RestException,
)
from exchanger_sandbox.camunda import dto, events, fetch, multipart, queries
from exchanger_sandbox.camunda.engine import Engine
from exchanger_sandbox.camunda.queries import Params
from exchanger_sandbox.camunda.variables import format_date, from_dto, from_dto_map, to_dto
from exchanger_sandbox.http import App, Request, Response, empty_response, json_response

ROOT = "/engine-rest"
VERSION = "7.24.0"


def _body(request: Request) -> dict[str, Any]:
    """The JSON object body (``{}`` when empty); bad JSON is Jackson's 400."""
    try:
        body = request.json()
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidRequestException(400, f"Unable to parse the request body as JSON: {exc}") from None
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise InvalidRequestException(400, "The request body must be a JSON object")
    return body


def _int_field(body: dict[str, Any], name: str, default: int | None = None) -> int | None:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or (isinstance(value, float)
                                                                         and not value.is_integer()):
        raise InvalidRequestException(400, f"Cannot deserialize value '{value}' of field '{name}' as a number")
    return int(value)


def _plain(to_dto_: Callable[[Any], dict[str, Any]]) -> Callable[[Any, Request], dict[str, Any]]:
    """A DTO builder that needs no request (no links)."""
    return lambda row, request: to_dto_(row)


def _ok(payload: Any) -> Response:
    return json_response(200, payload)


class CamundaApp(App):
    """Routes of the sandbox engine, with optional basic auth in front of them."""

    charset = None  # Camunda answers ``Content-Type: application/json``, no parameters

    def __init__(self, engine: Engine, users: dict[str, str] | None = None) -> None:
        super().__init__("camunda", on_reset=engine.reset)
        self.engine = engine
        self.users = users or {}
        self._register()

    # ------------------------------------------------------------------------------ plumbing

    def dispatch(self, request: Request) -> Response:
        if self.users and request.path.startswith(ROOT) and not request.path.startswith(f"{ROOT}/_admin/"):
            if not self._authenticated(request.headers.get("authorization", "")):
                return Response(status=401, body=b"", content_type="",
                                headers={"WWW-Authenticate": 'Basic realm="default"'})
        try:
            return super().dispatch(request)
        except CamundaError as exc:
            return json_response(exc.status, exc.body())

    def _authenticated(self, header: str) -> bool:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            name, _, password = base64.b64decode(token, validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return name in self.users and self.users[name] == password

    def not_found(self, request: Request) -> Response:
        return json_response(404, {"type": "NotFoundException", "message": f"HTTP 404 Not Found: {request.path}",
                                   "code": None})

    def _get(self, pattern: str, function: Callable[[Request], Response]) -> None:
        self.add_route("GET", ROOT + pattern, function)

    def _post(self, pattern: str, function: Callable[[Request], Response]) -> None:
        self.add_route("POST", ROOT + pattern, function)

    def _base(self, request: Request) -> str:
        return f"http://{request.headers.get('host', '127.0.0.1')}{ROOT}"

    def _register(self) -> None:
        self._get("/engine", lambda r: _ok([{"name": "default"}]))
        self._get("/version", lambda r: _ok({"version": VERSION}))
        self._post("/_admin/clock", self.advance_clock)
        # deployments
        self._post("/deployment/create", self.create_deployment)
        self._get("/deployment", self.list_query(self.deployment_rows, self.deployment_dto))
        self._get("/deployment/count", self.count_query(self.deployment_rows))
        self._get("/deployment/{id}", self.get_deployment)
        self._get("/deployment/{id}/resources", self.deployment_resources)
        self.add_route("DELETE", f"{ROOT}/deployment/{{id}}", self.delete_deployment)
        # process definitions
        self._get("/process-definition", self.list_query(self.definition_rows, _plain(dto.definition)))
        self._get("/process-definition/count", self.count_query(self.definition_rows))
        for suffix in ("", "/tenant-id/{tenant}"):
            self._get(f"/process-definition/key/{{key}}{suffix}", self.definition_by_key(self.definition_dto))
            self._get(f"/process-definition/key/{{key}}{suffix}/xml", self.definition_by_key(self.definition_xml))
            self._post(f"/process-definition/key/{{key}}{suffix}/start", self.definition_by_key(self.start))
        self._get("/process-definition/{id}", self.definition_by_id(self.definition_dto))
        self._get("/process-definition/{id}/xml", self.definition_by_id(self.definition_xml))
        self._post("/process-definition/{id}/start", self.start_by_id)
        # process instances
        for method in ("GET", "POST"):
            self.add_route(method, f"{ROOT}/process-instance", self.list_query(self.instance_rows, self.instance_dto))
            self.add_route(method, f"{ROOT}/process-instance/count", self.count_query(self.instance_rows))
        self._get("/process-instance/{id}", self.get_instance)
        self.add_route("DELETE", f"{ROOT}/process-instance/{{id}}", self.delete_instance)
        self._get("/process-instance/{id}/variables", self.get_instance_variables)
        self._post("/process-instance/{id}/variables", self.modify_instance_variables)
        self._get("/process-instance/{id}/variables/{name}", self.get_instance_variable)
        self.add_route("PUT", f"{ROOT}/process-instance/{{id}}/variables/{{name}}", self.put_instance_variable)
        self.add_route("DELETE", f"{ROOT}/process-instance/{{id}}/variables/{{name}}", self.delete_instance_variable)
        # external tasks
        self._post("/external-task/fetchAndLock", self.fetch_and_lock)
        for method in ("GET", "POST"):
            self.add_route(method, f"{ROOT}/external-task", self.list_query(self.task_rows, _plain(dto.external_task)))
            self.add_route(method, f"{ROOT}/external-task/count", self.count_query(self.task_rows))
        self._get("/external-task/topic-names", self.topic_names)
        self._get("/external-task/{id}", self.get_task)
        self._get("/external-task/{id}/errorDetails", self.error_details)
        self._post("/external-task/{id}/complete", self.complete)
        self._post("/external-task/{id}/failure", self.failure)
        self._post("/external-task/{id}/bpmnError", self.bpmn_error)
        self._post("/external-task/{id}/extendLock", self.extend_lock)
        self._post("/external-task/{id}/lock", self.lock)
        self._post("/external-task/{id}/unlock", self.unlock)
        self.add_route("PUT", f"{ROOT}/external-task/{{id}}/retries", self.set_retries)
        self.add_route("PUT", f"{ROOT}/external-task/{{id}}/priority", self.set_priority)
        # incidents and history
        self._get("/incident", self.list_query(self.incident_rows, _plain(dto.incident)))
        self._get("/incident/count", self.count_query(self.incident_rows))
        self._get("/incident/{id}", self.get_incident)
        for method in ("GET", "POST"):
            self.add_route(method, f"{ROOT}/history/process-instance",
                           self.list_query(self.history_instance_rows, _plain(dto.historic_process_instance)))
            self.add_route(method, f"{ROOT}/history/process-instance/count",
                           self.count_query(self.history_instance_rows))
            self.add_route(method, f"{ROOT}/history/activity-instance",
                           self.list_query(self.activity_instance_rows, _plain(dto.historic_activity_instance)))
            self.add_route(method, f"{ROOT}/history/activity-instance/count",
                           self.count_query(self.activity_instance_rows))
            for path, rows, to_dto_ in (
                    ("variable-instance", self.historic_variable_rows, self.deserialized(dto.historic_variable)),
                    ("detail", self.historic_detail_rows, self.deserialized(dto.historic_detail)),
                    ("incident", self.historic_incident_rows, _plain(dto.historic_incident))):
                self.add_route(method, f"{ROOT}/history/{path}", self.list_query(rows, to_dto_))
                self.add_route(method, f"{ROOT}/history/{path}/count", self.count_query(rows))
        self._get("/history/variable-instance/{id}", self.get_historic_variable)
        self._post("/message", self.correlate_message)
        self._post("/signal", self.throw_signal)
        self._get("/history/process-instance/{id}", self.get_history_instance)
        self._get("/history/activity-instance/{id}", self.get_activity_instance)

    # -------------------------------------------------------------------------------- queries

    def _params(self, request: Request) -> Params:
        return Params(_body(request)) if request.method == "POST" else Params.from_query(request.query)

    def list_query(self, rows: Callable[..., list[Any]], to_dto_: Callable[[Any, Request], dict[str, Any]],
                   ) -> Callable[[Request], Response]:
        def handle(request: Request) -> Response:
            return _ok([to_dto_(row, request) for row in rows(self._params(request), paged=True)])
        return handle

    def count_query(self, rows: Callable[..., list[Any]]) -> Callable[[Request], Response]:
        def handle(request: Request) -> Response:
            return _ok({"count": len(rows(self._params(request), paged=False))})
        return handle

    def _select(self, sql: str, where: queries.Where, params: Params, paged: bool, sort: dict[str, str],
                default_order: str) -> list[Any]:
        tail, tail_params = queries.page_and_sort(params, sort, default_order) if paged else ("", [])
        with self.engine.reading() as store:
            return store.all(sql + where.sql() + tail, [*where.params, *tail_params])

    def deployment_rows(self, params: Params, paged: bool) -> list[Any]:
        return self._select("SELECT * FROM deployment", queries.deployments(params), params, paged,
                            queries.DEPLOYMENT_SORT, "rowid")

    def definition_rows(self, params: Params, paged: bool) -> list[Any]:
        return self._select("SELECT d.* FROM definition d", queries.definitions(params), params, paged,
                            queries.DEFINITION_SORT, "d.rowid")

    def instance_rows(self, params: Params, paged: bool) -> list[Any]:
        return self._select("SELECT p.* FROM process_instance p", queries.instances(params), params, paged,
                            queries.INSTANCE_SORT, "p.rowid")

    def task_rows(self, params: Params, paged: bool) -> list[Any]:
        return self._select("SELECT t.* FROM external_task t", queries.external_tasks(params,
                                                                                      self.engine.clock.now_ms()),
                            params, paged, queries.EXTERNAL_TASK_SORT, "t.rowid")

    def incident_rows(self, params: Params, paged: bool) -> list[Any]:
        return self._select("SELECT * FROM incident", queries.incidents(params), params, paged,
                            queries.INCIDENT_SORT, "rowid")

    _HISTORY_INSTANCE_SQL = ("SELECT p.*, d.name AS definition_name, d.version AS definition_version "
                             "FROM process_instance p LEFT JOIN definition d ON d.id = p.definition_id")

    def history_instance_rows(self, params: Params, paged: bool) -> list[Any]:
        return self._select(self._HISTORY_INSTANCE_SQL, queries.historic_instances(params), params, paged,
                            queries.HISTORY_INSTANCE_SORT, "p.rowid")

    def activity_instance_rows(self, params: Params, paged: bool) -> list[Any]:
        return self._select("SELECT * FROM activity_instance", queries.historic_activity_instances(params), params,
                            paged, queries.ACTIVITY_INSTANCE_SORT, "rowid")

    def historic_variable_rows(self, params: Params, paged: bool) -> list[Any]:
        return self._select("SELECT * FROM variable_history", queries.historic_variables(params), params, paged,
                            queries.HISTORIC_VARIABLE_SORT, "rowid")

    def historic_detail_rows(self, params: Params, paged: bool) -> list[Any]:
        return self._select("SELECT * FROM variable_detail", queries.historic_details(params), params, paged,
                            queries.HISTORIC_DETAIL_SORT, "rowid")

    def historic_incident_rows(self, params: Params, paged: bool) -> list[Any]:
        return self._select("SELECT * FROM incident_history", queries.historic_incidents(params), params, paged,
                            queries.HISTORIC_INCIDENT_SORT, "rowid")

    def deserialized(self, to_dto_: Callable[[Any, bool], dict[str, Any]]) -> Callable[[Any, Request], dict[str, Any]]:
        """A history DTO honouring ``deserializeValues`` (default true)."""
        def build(row: Any, request: Request) -> dict[str, Any]:
            return to_dto_(row, Params.from_query(request.query).values.get("deserializeValues", "true") != "false")
        return build

    def get_historic_variable(self, request: Request) -> Response:
        row = self._one("SELECT * FROM variable_history WHERE id = ?", request.params["id"])
        if row is None:
            raise InvalidRequestException(
                404, f"Historic variable instance with Id '{request.params['id']}' does not exist.")
        return _ok(self.deserialized(dto.historic_variable)(row, request))

    def correlate_message(self, request: Request) -> Response:
        body = _body(request)
        name = body.get("messageName")
        if not name:
            raise InvalidRequestException(400, "No message name supplied")
        try:
            correlation = events.Correlation(
                name=str(name), business_key=body.get("businessKey"),
                process_instance_id=body.get("processInstanceId"), tenant_id=body.get("tenantId"),
                without_tenant=bool(body.get("withoutTenantId")),
                correlation_keys=from_dto_map(body.get("correlationKeys")),
                local_correlation_keys=from_dto_map(body.get("localCorrelationKeys")),
                variables=from_dto_map(body.get("processVariables")),
                local_variables=from_dto_map(body.get("processVariablesLocal")), all=bool(body.get("all")))
        except RestException as exc:
            raise InvalidRequestException(exc.status, f"Cannot deliver message: {exc.message}", exc) from None
        try:
            results = self.engine.correlate(correlation)
        except CamundaError as exc:
            raise RestException(400, f"Cannot correlate message '{name}': {exc.message}"
                                if not exc.message.startswith("Cannot correlate") else exc.message, exc) from None
        if not body.get("resultEnabled"):
            return empty_response(204)
        with_variables = bool(body.get("variablesInResultEnabled"))
        answer = []
        for kind, execution, instance in results:
            item: dict[str, Any] = {
                "resultType": kind,
                "execution": None if execution is None else {
                    "id": execution["id"], "processInstanceId": execution["proc_inst_id"],
                    "ended": self._one("SELECT id FROM execution WHERE id = ?", execution["id"]) is None,
                    "tenantId": instance["tenant_id"]},
                "processInstance": None if kind == "Execution" else self.instance_dto(instance, request)}
            if with_variables:
                item["variables"] = dto.variables_dto(self._instance_variables(instance["id"]))
            answer.append(item)
        return _ok(answer)

    def throw_signal(self, request: Request) -> Response:
        body = _body(request)
        if not body.get("name"):
            raise InvalidRequestException(400, "No signal name given")
        try:
            variables = from_dto_map(body.get("variables"))
        except RestException as exc:
            raise InvalidRequestException(exc.status, f"Cannot deliver signal: {exc.message}", exc) from None
        try:
            self.engine.signal(str(body["name"]), variables, body.get("executionId"))
        except NotFoundException as exc:
            raise InvalidRequestException(404, exc.message, exc) from None
        return empty_response(204)

    def _instance_variables(self, instance_id: str) -> dict[str, Any]:
        try:
            return self.engine.instance_variables(instance_id)
        except CamundaError:
            return {}  # the instance already ended

    def _one(self, sql: str, key: str) -> Any:
        with self.engine.reading() as store:
            return store.one(sql, (key,))

    # ------------------------------------------------------------------------------- admin

    def advance_clock(self, request: Request) -> Response:
        advance = _int_field(_body(request), "advance_ms", 0) or 0
        self.engine.clock.advance(advance)
        return _ok({"now": format_date(self.engine.clock.now_ms())})

    # --------------------------------------------------------------------------- deployments

    def deployment_dto(self, row: Any, request: Request) -> dict[str, Any]:
        return dto.deployment(row, self._base(request))

    def create_deployment(self, request: Request) -> Response:
        parts = multipart.parse(request.headers.get("content-type", ""), request.body)
        fields = {part.name: part.text for part in parts if part.filename is None and part.name}
        resources = [(part.filename, part.data) for part in parts if part.filename]
        if not resources:
            raise InvalidRequestException(400, "No deployment resources contained in the form upload.")
        tenant_id = fields.get("tenant-id") or None
        deployment, definitions = self.engine.deploy(
            name=fields.get("deployment-name"),
            source=fields.get("deployment-source"),
            tenant_id=tenant_id,
            resources=resources,
            duplicate_filtering=fields.get("enable-duplicate-filtering", "").lower() == "true",
            changed_only=fields.get("deploy-changed-only", "").lower() == "true",
        )
        body = self.deployment_dto(deployment, request)
        body["deployedProcessDefinitions"] = (
            {row["id"]: dto.definition(row) for row in definitions} if definitions is not None else None)
        body["deployedCaseDefinitions"] = None
        body["deployedDecisionDefinitions"] = None
        body["deployedDecisionRequirementsDefinitions"] = None
        return _ok(body)

    def get_deployment(self, request: Request) -> Response:
        row = self._one("SELECT * FROM deployment WHERE id = ?", request.params["id"])
        if row is None:
            raise InvalidRequestException(404, f"Deployment with id '{request.params['id']}' does not exist")
        return _ok(self.deployment_dto(row, request))

    def deployment_resources(self, request: Request) -> Response:
        deployment_id = request.params["id"]
        if self._one("SELECT id FROM deployment WHERE id = ?", deployment_id) is None:
            raise InvalidRequestException(404, f"Deployment resources for deployment id '{deployment_id}' do not "
                                               "exist.")
        with self.engine.reading() as store:
            rows = store.all("SELECT id, name FROM resource WHERE deployment_id = ?", (deployment_id,))
        return _ok([{"id": row["id"], "name": row["name"], "deploymentId": deployment_id} for row in rows])

    def delete_deployment(self, request: Request) -> Response:
        deployment_id = request.params["id"]
        if self._one("SELECT id FROM deployment WHERE id = ?", deployment_id) is None:
            raise InvalidRequestException(404, f"Deployment with id '{deployment_id}' do not exist")
        self.engine.delete_deployment(deployment_id, Params.from_query(request.query).bool("cascade"))
        return empty_response(204)

    # ---------------------------------------------------------------------- process definitions

    def definition_by_key(self, action: Callable[[Request, Any], Response]) -> Callable[[Request], Response]:
        """``/key/{key}`` resolves the latest version without tenant; ``/tenant-id/{t}`` selects the tenant."""
        def handle(request: Request) -> Response:
            key, tenant = request.params["key"], request.params.get("tenant")
            with self.engine.reading() as store:
                row = store.one("SELECT * FROM definition WHERE key = ? AND tenant_id IS ? ORDER BY version DESC "
                                "LIMIT 1", (key, tenant))
            if row is None:
                which = f"tenant-id: {tenant}" if tenant is not None else "no tenant-id"
                raise RestException(404, f"No matching process definition with key: {key} and {which}")
            return action(request, row)
        return handle

    def definition_by_id(self, action: Callable[[Request, Any], Response]) -> Callable[[Request], Response]:
        def handle(request: Request) -> Response:
            row = self._one("SELECT * FROM definition WHERE id = ?", request.params["id"])
            if row is None:
                cause = NotFoundException(f"no deployed process definition found with id '{request.params['id']}'")
                raise InvalidRequestException(404, f"No matching definition with id {request.params['id']}", cause)
            return action(request, row)
        return handle

    def definition_dto(self, request: Request, row: Any) -> Response:
        return _ok(dto.definition(row))

    def definition_xml(self, request: Request, row: Any) -> Response:
        resource = self._one("SELECT bytes FROM resource WHERE id = ?", row["resource_id"])
        return _ok({"id": row["id"], "bpmn20Xml": bytes(resource["bytes"]).decode("utf-8")})

    def start_by_id(self, request: Request) -> Response:
        definition_id = request.params["id"]
        row = self._one("SELECT * FROM definition WHERE id = ?", definition_id)
        if row is None:
            raise RestException(500, f"Cannot instantiate process definition {definition_id}: no deployed process "
                                     f"definition found with id '{definition_id}': processDefinition is null",
                                NullValueException("processDefinition is null"))
        return self.start(request, row)

    def start(self, request: Request, definition: Any) -> Response:
        body = _body(request)
        prefix = f"Cannot instantiate process definition {definition['id']}: "
        try:
            variables = from_dto_map(body.get("variables"))
        except RestException as exc:
            raise InvalidRequestException(exc.status, prefix + exc.message, exc) from None
        try:
            row, instance_variables = self.engine.start_instance(definition["id"], variables, body.get("businessKey"))
        except RestException:
            raise
        except CamundaError as exc:
            raise RestException(500, prefix + exc.message, exc) from None
        result = self.instance_dto(row, request)
        if body.get("withVariablesInReturn"):
            result["variables"] = dto.variables_dto(instance_variables)
        return _ok(result)

    # ------------------------------------------------------------------------ process instances

    def instance_dto(self, row: Any, request: Request) -> dict[str, Any]:
        return dto.process_instance(row, self._base(request))

    def get_instance(self, request: Request) -> Response:
        row = self._one("SELECT * FROM process_instance WHERE id = ? AND state = 'ACTIVE'", request.params["id"])
        if row is None:
            raise InvalidRequestException(404, f"Process instance with id {request.params['id']} does not exist")
        return _ok(self.instance_dto(row, request))

    def delete_instance(self, request: Request) -> Response:
        try:
            self.engine.delete_instance(request.params["id"])
        except BadUserRequestException as exc:
            raise InvalidRequestException(404, exc.message, exc) from None
        return empty_response(204)

    def get_instance_variables(self, request: Request) -> Response:
        deserialize = Params.from_query(request.query).values.get("deserializeValues", "true") != "false"
        return _ok(dto.variables_dto(self.engine.instance_variables(request.params["id"]), deserialize))

    def modify_instance_variables(self, request: Request) -> Response:
        instance_id = request.params["id"]
        body = _body(request)
        try:
            modifications = from_dto_map(body.get("modifications"))
        except RestException as exc:
            raise InvalidRequestException(exc.status, f"Cannot modify variables for process instance: {exc.message}",
                                          exc) from None
        try:
            self.engine.modify_instance_variables(instance_id, modifications, list(body.get("deletions") or []))
        except CamundaError as exc:
            raise RestException(500, f"Cannot modify variables for process instance {instance_id}: {exc.message}",
                                exc) from None
        return empty_response(204)

    def get_instance_variable(self, request: Request) -> Response:
        name = request.params["name"]
        try:
            variables = self.engine.instance_variables(request.params["id"])
        except CamundaError as exc:
            raise InvalidRequestException(500, f"Cannot get process instance variable {name}: {exc.message}",
                                          exc) from None
        if name not in variables:
            raise InvalidRequestException(404, f"process instance variable with name {name} does not exist")
        deserialize = Params.from_query(request.query).values.get("deserializeValue", "true") != "false"
        return _ok(to_dto(variables[name], deserialize))

    def put_instance_variable(self, request: Request) -> Response:
        name = request.params["name"]
        try:
            typed = from_dto(name, _body(request))
        except RestException as exc:
            raise InvalidRequestException(exc.status, f"Cannot put process instance variable {name}: {exc.message}",
                                          exc) from None
        try:
            self.engine.modify_instance_variables(request.params["id"], {name: typed}, [])
        except CamundaError as exc:
            raise RestException(500, f"Cannot put process instance variable {name}: {exc.message}", exc) from None
        return empty_response(204)

    def delete_instance_variable(self, request: Request) -> Response:
        name = request.params["name"]
        try:
            self.engine.modify_instance_variables(request.params["id"], {}, [name])
        except CamundaError as exc:
            raise RestException(500, f"Cannot delete process instance variable {name}: {exc.message}",
                                exc) from None
        return empty_response(204)

    # --------------------------------------------------------------------------- external tasks

    def fetch_and_lock(self, request: Request) -> Response:
        return _ok(fetch.fetch_and_lock(self.engine, fetch.parse_request(_body(request))))

    def topic_names(self, request: Request) -> Response:
        params = Params.from_query(request.query)
        where = queries.Where()
        now = self.engine.clock.now_ms()
        where.when(params.bool("withLockedTasks"), "lock_expiration > ?", now)
        where.when(params.bool("withUnlockedTasks"), "(lock_expiration IS NULL OR lock_expiration <= ?)", now)
        where.when(params.bool("withRetriesLeft"), "(retries IS NULL OR retries > 0)")
        with self.engine.reading() as store:
            rows = store.all("SELECT DISTINCT topic FROM external_task" + where.sql() + " ORDER BY topic",
                             where.params)
        return _ok([row[0] for row in rows])

    def get_task(self, request: Request) -> Response:
        row = self._one("SELECT * FROM external_task WHERE id = ?", request.params["id"])
        if row is None:
            raise RestException(404, f"External task with id {request.params['id']} does not exist")
        return _ok(dto.external_task(row))

    def _task_command(self, request: Request, action: Callable[[], None], worker_checked: bool = True) -> Response:
        """Camunda's mapping in ``ExternalTaskResourceImpl``: not found → 404, bad request → 400."""
        try:
            action()
        except NotFoundException as exc:
            raise RestException(404, f"External task with id {request.params['id']} does not exist", exc) from None
        except BadUserRequestException as exc:
            if not worker_checked:
                raise
            raise RestException(400, exc.message, exc) from None
        return empty_response(204)

    def error_details(self, request: Request) -> Response:
        try:
            details = self.engine.error_details(request.params["id"])
        except NotFoundException as exc:
            raise RestException(404, f"External task with id {request.params['id']} does not exist", exc) from None
        return Response(status=200, body=(details or "").encode("utf-8"), content_type="text/plain")

    def complete(self, request: Request) -> Response:
        body = _body(request)
        variables, local_variables = from_dto_map(body.get("variables")), from_dto_map(body.get("localVariables"))
        return self._task_command(request, lambda: self.engine.complete(
            request.params["id"], body.get("workerId"), variables, local_variables))

    def failure(self, request: Request) -> Response:
        body = _body(request)
        variables, local_variables = from_dto_map(body.get("variables")), from_dto_map(body.get("localVariables"))
        retries, timeout = _int_field(body, "retries", 0), _int_field(body, "retryTimeout", 0)
        return self._task_command(request, lambda: self.engine.handle_failure(
            request.params["id"], body.get("workerId"), body.get("errorMessage"), body.get("errorDetails"),
            retries or 0, timeout or 0, variables, local_variables))

    def bpmn_error(self, request: Request) -> Response:
        body = _body(request)
        variables = from_dto_map(body.get("variables"))
        return self._task_command(request, lambda: self.engine.bpmn_error(
            request.params["id"], body.get("workerId"), body.get("errorCode"), body.get("errorMessage"), variables))

    def extend_lock(self, request: Request) -> Response:
        body = _body(request)
        duration = _int_field(body, "newDuration", 0) or 0
        return self._task_command(request, lambda: self.engine.extend_lock(
            request.params["id"], body.get("workerId"), duration))

    def lock(self, request: Request) -> Response:
        body = _body(request)
        duration = _int_field(body, "lockDuration", 0) or 0
        return self._task_command(request, lambda: self.engine.lock_task(request.params["id"], body.get("workerId"),
                                                                    duration))

    def unlock(self, request: Request) -> Response:
        return self._task_command(request, lambda: self.engine.unlock(request.params["id"]), worker_checked=False)

    def set_retries(self, request: Request) -> Response:
        retries = _int_field(_body(request), "retries")
        if retries is None:
            raise InvalidRequestException(400, "The number of retries cannot be null.")
        return self._task_command(request, lambda: self.engine.set_retries(request.params["id"], retries),
                                  worker_checked=False)

    def set_priority(self, request: Request) -> Response:
        priority = _int_field(_body(request), "priority", 0) or 0
        return self._task_command(request, lambda: self.engine.set_priority(request.params["id"], priority),
                                  worker_checked=False)

    # ----------------------------------------------------------------------- incidents, history

    def get_incident(self, request: Request) -> Response:
        row = self._one("SELECT * FROM incident WHERE id = ?", request.params["id"])
        if row is None:
            raise InvalidRequestException(404, f"No matching incident with id {request.params['id']}")
        return _ok(dto.incident(row))

    def get_history_instance(self, request: Request) -> Response:
        row = self._one(self._HISTORY_INSTANCE_SQL + " WHERE p.id = ?", request.params["id"])
        if row is None:
            raise InvalidRequestException(
                404, f"Historic process instance with id {request.params['id']} does not exist")
        return _ok(dto.historic_process_instance(row))

    def get_activity_instance(self, request: Request) -> Response:
        row = self._one("SELECT * FROM activity_instance WHERE id = ?", request.params["id"])
        if row is None:
            raise InvalidRequestException(
                404, f"Historic activity instance with id {request.params['id']} does not exist")
        return _ok(dto.historic_activity_instance(row))

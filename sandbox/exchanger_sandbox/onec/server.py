"""The fake 1C OData server: routes, Basic auth, the ``Post``/``Unpost`` actions, ``start`` and ``cli``.

People act on it as on a real infobase: ``POST …/Document_X(guid'…')/Post`` posts a document, a
``PATCH`` of ``DeletionMark`` marks it deleted (which unposts it). The admin API (``/_admin/...``)
injects faults, resets, reports duplicates, and makes the next posts fail with a business error:
``POST /_admin/posting_failure {"message": "...", "count": 1, "entity": ""}``.
"""

from __future__ import annotations

import argparse
import base64
import hmac
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, unquote

from exchanger_sandbox.http import App, Request, Response, SandboxServer, empty_response, json_response
from exchanger_sandbox.http import serve_until_signal as _serve_until_signal
from exchanger_sandbox.onec import odata
from exchanger_sandbox.onec.odata import ODataError
from exchanger_sandbox.onec.state import (
    BOOLEAN,
    DATETIME,
    DEFAULT_POSTING_FAILURE,
    ENTITY_TYPES,
    EXTERNAL_ID_ATTRIBUTE,
    GUID,
    PASSWORD,
    ROWS,
    STRING,
    USERNAME,
    EntityType,
    Infobase,
    PostingFailure,
    empty_value,
)

DEFAULT_PORT = 8083  # a fixed port to run it by hand (tests and the demo ask for a free one)
ROOT = "/trade/odata/standard.odata"  # publication "trade" of the infobase on the web server
READ_ONLY = {"DataVersion", "Posted", "Predefined", "PredefinedDataName"}

Handler = Callable[[Request], Response]


class OneCApp(App):
    """Routes of the fake; every OData route checks Basic auth and the JSON format first."""

    def __init__(self, infobase: Infobase, username: str = USERNAME, password: str = PASSWORD) -> None:
        super().__init__("onec", on_reset=infobase.reset)
        self.infobase = infobase
        self.username = username
        self.password = password
        self.add_route("GET", "/_admin/stats", lambda request: json_response(200, infobase.stats()))
        self.add_route("POST", "/_admin/posting_failure", self.add_posting_failure)
        self.add_route("DELETE", "/_admin/posting_failure", self.clear_posting_failures)
        self._odata("GET", ROOT, self.service_document)
        self._odata("GET", ROOT + "/", self.service_document)
        self._odata("GET", ROOT + "/{resource}", self.read)
        self._odata("POST", ROOT + "/{resource}", self.create)
        self._odata("PATCH", ROOT + "/{resource}", self.patch)
        self._odata("DELETE", ROOT + "/{resource}", self.delete)
        self._odata("POST", ROOT + "/{resource}/{action}", self.action)

    # --- plumbing ---------------------------------------------------------------------------------

    def not_found(self, request: Request) -> Response:
        return odata.error(404, "6", f"Неверный URL: {request.path}")

    def _odata(self, method: str, pattern: str, function: Handler) -> None:
        self.add_route(method, pattern, lambda request: self._guarded(request, function))

    def _guarded(self, request: Request, function: Handler) -> Response:
        if not self._authenticated(request.headers.get("authorization", "")):
            response = odata.error(401, "20", "Недостаточно прав для выполнения операции: не пройдена аутентификация")
            response.headers["WWW-Authenticate"] = 'Basic realm="1C:Enterprise"'
            return response
        metadata = unquote(request.params.get("resource", "")) == "$metadata"
        if not metadata and not odata.wants_json(request.query, request.headers):
            message = "Представление не поддерживается: песочница отвечает только в JSON ($format=json)"
            return odata.error(400, "3", message)
        try:
            with self.infobase.lock:
                return function(request)
        except ODataError as exc:
            return exc.response()

    def _authenticated(self, header: str) -> bool:
        scheme, _, credentials = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(credentials.strip()).decode("utf-8").partition(":")
        except ValueError:
            return False
        return user == self.username and hmac.compare_digest(password.encode(), self.password.encode())

    def _metadata_url(self, request: Request) -> str:
        return f"http://{request.headers.get('host', 'localhost')}{ROOT}/$metadata"

    def _entity_type(self, entity: str) -> EntityType:
        kind = ENTITY_TYPES.get(entity)
        if kind is None:
            raise ODataError(400, "8", f"Тип сущности не найден: {entity}")
        return kind

    def _record(self, entity: str, key: str | None) -> dict[str, Any]:
        if key is None:
            raise ODataError(400, "7", "Не указана часть ключа: Ref_Key")
        record = self.infobase.records[entity].get(key)
        if record is None:
            raise ODataError(404, "9", "Экземпляр сущности не найден")
        return record

    def _json_object(self, request: Request) -> dict[str, Any]:
        try:
            body = request.json()
        except ValueError:
            raise ODataError(400, "1", "Ошибка разбора тела запроса") from None
        if not isinstance(body, dict):
            raise ODataError(400, "2", "Неверный формат запроса: ожидается объект JSON")
        return body

    def _values(self, kind: EntityType, body: dict[str, Any]) -> dict[str, Any]:
        """Writable properties of ``body`` checked against the metadata; unknown ones are ignored."""
        writable = {**kind.attributes, "DeletionMark": BOOLEAN}
        if kind.is_document:
            writable.update(Number=STRING, Date=DATETIME)
        else:
            writable.update(Code=STRING, Description=STRING)
        values: dict[str, Any] = {}
        for name, value in body.items():
            if name in READ_ONLY or name == "Ref_Key":
                raise ODataError(400, "16", f"Невозможно присвоить значение свойству '{name}'")
            edm = writable.get(name)
            if edm is None:
                continue
            values[name] = odata.check_value(name, edm, value)
            if edm == ROWS:
                values[name] = [self._row(kind, number, row) for number, row in enumerate(value, start=1)]
        return values

    def _row(self, kind: EntityType, number: int, row: dict[str, Any]) -> dict[str, Any]:
        checked = {"LineNumber": str(number)}
        for name, edm in kind.row_attributes.items():
            checked[name] = odata.check_value(name, edm, row[name]) if name in row else empty_value(edm)
        return checked

    # --- OData ------------------------------------------------------------------------------------

    def service_document(self, request: Request) -> Response:
        return json_response(200, {
            "odata.metadata": self._metadata_url(request),
            "value": [{"name": name, "url": name} for name in ENTITY_TYPES],
        })

    def read(self, request: Request) -> Response:
        segment = unquote(request.params["resource"])
        if segment == "$metadata":
            return Response(200, metadata_xml().encode("utf-8"), "application/xml")
        resource = odata.parse_resource(segment)
        kind = self._entity_type(resource.entity)
        fields = request.arg("$select")
        if resource.key is not None:
            record = self._record(resource.entity, resource.key)
            body = odata.entity_body(self._metadata_url(request), resource.entity, odata.select(record, fields))
            return json_response(200, body)
        table = self.infobase.records[resource.entity]
        records = list(table.values())
        text = request.arg("$filter")
        if text:
            clauses = odata.parse_filter(text, {**kind.system_properties, **kind.attributes})
            keys = odata.keys_only(clauses)
            if keys is not None:  # Ref_Key eq … or …: a primary-key lookup, as the infobase's index does it
                records = [record for record in records if record["Ref_Key"] in keys]
            else:
                records = [r for r in records if odata.matches(r, clauses)]
        count = len(records) if request.arg("$inlinecount") == "allpages" else None
        try:
            skip = int(request.arg("$skip") or 0)
            top_arg = request.arg("$top")
            top = int(top_arg) if top_arg else None
        except ValueError:
            raise ODataError(400, "14", "Ошибка разбора параметров запроса: $top/$skip") from None
        records = records[skip: None if top is None else skip + top]
        shown = [odata.select(r, fields) for r in records]
        return json_response(200, odata.collection_body(self._metadata_url(request), resource.entity, shown, count))

    def create(self, request: Request) -> Response:
        """POST a new object: 201, the object with its ``Ref_Key``, and ``Location``."""
        resource = odata.parse_resource(request.params["resource"])
        kind = self._entity_type(resource.entity)
        if resource.key is not None:
            raise ODataError(405, "19", "HTTP-метод POST не допускается для экземпляра сущности")
        body = self._json_object(request)
        ref_key = body.pop("Ref_Key", None)
        values = self._values(kind, body)
        if ref_key is not None:  # a client-chosen key, as the standard interface allows
            values["Ref_Key"] = odata.check_value("Ref_Key", GUID, ref_key)
            if values["Ref_Key"] in self.infobase.records[resource.entity]:
                raise ODataError(400, "15", "Экземпляр сущности с таким ключом уже существует")
        record = self.infobase.new(resource.entity, values)
        response = json_response(201, odata.entity_body(self._metadata_url(request), resource.entity, record))
        response.headers["Location"] = f"{ROOT}/{quote(resource.entity)}(guid'{record['Ref_Key']}')"
        return response

    def patch(self, request: Request) -> Response:
        """Partial update; setting ``DeletionMark`` on a posted document unposts it, as 1C does."""
        resource = odata.parse_resource(request.params["resource"])
        kind = self._entity_type(resource.entity)
        record = self._record(resource.entity, resource.key)
        values = self._values(kind, self._json_object(request))
        if values.get("DeletionMark") and kind.is_document:
            values["Posted"] = False
        record.update(values)
        record["DataVersion"] = self.infobase.next_data_version()
        return json_response(200, odata.entity_body(self._metadata_url(request), resource.entity, record))

    def delete(self, request: Request) -> Response:
        """Physical deletion (OData sets no deletion mark on DELETE)."""
        resource = odata.parse_resource(request.params["resource"])
        self._entity_type(resource.entity)
        record = self._record(resource.entity, resource.key)
        del self.infobase.records[resource.entity][record["Ref_Key"]]
        return empty_response(204)

    def action(self, request: Request) -> Response:
        """``Post`` and ``Unpost``; a refused posting is HTTP 500 with code -1 and 1C's message."""
        resource = odata.parse_resource(request.params["resource"])
        kind = self._entity_type(resource.entity)
        name = request.params["action"]
        if name not in ("Post", "Unpost") or not kind.is_document:
            raise ODataError(400, "11", f"Метод не найден: {name}")
        record = self._record(resource.entity, resource.key)
        if name == "Unpost":
            record["Posted"] = False
            record["DataVersion"] = self.infobase.next_data_version()
            return empty_response(200)
        problem = self.infobase.post(resource.entity, record)
        if problem:
            raise ODataError(500, "-1", problem)
        return empty_response(200)

    # --- admin ------------------------------------------------------------------------------------

    def add_posting_failure(self, request: Request) -> Response:
        spec = request.json() or {}
        failure = PostingFailure(
            message=str(spec.get("message") or DEFAULT_POSTING_FAILURE),
            count=int(spec.get("count", 1)),
            entity=str(spec.get("entity", "")),
        )
        with self.infobase.lock:
            self.infobase.posting_failures.append(failure)
        return empty_response(204)

    def clear_posting_failures(self, request: Request) -> Response:
        with self.infobase.lock:
            self.infobase.posting_failures.clear()
        return empty_response(204)


def metadata_xml() -> str:
    """A small CSDL document listing the published entity sets and their properties."""
    types = []
    for kind in ENTITY_TYPES.values():
        props = {**kind.system_properties, **kind.attributes}
        row_type = f"Collection(StandardODATA.{kind.name}_RowType)"
        lines = "".join(
            f'<Property Name="{name}" Type="{row_type if edm == ROWS else edm}"/>' for name, edm in props.items()
        )
        types.append(f'<EntityType Name="{kind.name}"><Key><PropertyRef Name="Ref_Key"/></Key>{lines}</EntityType>')
    sets = "".join(f'<EntitySet Name="{n}" EntityType="StandardODATA.{n}"/>' for n in ENTITY_TYPES)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<edmx:Edmx xmlns:edmx="http://schemas.microsoft.com/ado/2007/06/edmx" Version="1.0">'
        '<edmx:DataServices><Schema xmlns="http://schemas.microsoft.com/ado/2009/11/edm" Namespace="StandardODATA">'
        f'{"".join(types)}<EntityContainer Name="EnterpriseV8" IsDefaultEntityContainer="true">{sets}'
        "</EntityContainer></Schema></edmx:DataServices></edmx:Edmx>"
    )


class OneCServer(SandboxServer):
    """The running fake; ``infobase`` for tests, ``settings_env`` for a daemon's environment."""

    app: OneCApp

    @property
    def infobase(self) -> Infobase:
        return self.app.infobase

    @property
    def base_url(self) -> str:
        return self.url + ROOT

    @property
    def settings_env(self) -> dict[str, str]:
        return {
            "ONEC_BASE_URL": self.base_url,
            "ONEC_USERNAME": self.app.username,
            "ONEC_PASSWORD": self.app.password,
            "ONEC_EXTERNAL_ID_ATTRIBUTE": EXTERNAL_ID_ATTRIBUTE,
        }


def start(
    port: int = 0, *, host: str = "127.0.0.1", username: str = USERNAME, password: str = PASSWORD
) -> OneCServer:
    """Serve a fresh fake infobase in a background thread (port 0 = a free port)."""
    server = OneCServer(OneCApp(Infobase(), username, password), host, port)
    server.start()
    return server


def cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m exchanger_sandbox onec", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--username", default=USERNAME)
    parser.add_argument("--password", default=PASSWORD)
    args = parser.parse_args(argv)
    server = start(args.port, host=args.host, username=args.username, password=args.password)
    return _serve_until_signal(server, json.dumps(server.settings_env))

"""Deployments, process definitions, start, process instances, variables, incidents, history, /engine."""

from __future__ import annotations

from .conftest import Api, bpmn, error, one_task

MISSING = "00000000-0000-0000-0000-000000000000"


def test_engine_and_version(api: Api) -> None:
    assert api.get("/engine").json() == [{"name": "default"}]
    assert api.get("/version").json() == {"version": "7.24.0"}


# --------------------------------------------------------------------------- deployment


def test_deployment_shape_and_versioning(api: Api) -> None:
    first = api.deploy_model(one_task(), deployment_name="orders", deployment_source="tests")
    assert set(first) == {"links", "id", "name", "source", "deploymentTime", "tenantId", "deployedProcessDefinitions",
                          "deployedCaseDefinitions", "deployedDecisionDefinitions",
                          "deployedDecisionRequirementsDefinitions"}
    assert first["links"] == [{"method": "GET", "href": f"{api.url}/deployment/{first['id']}", "rel": "self"}]
    assert (first["name"], first["source"], first["tenantId"]) == ("orders", "tests", None)
    assert first["deployedCaseDefinitions"] is None
    (definition,) = first["deployedProcessDefinitions"].values()
    assert definition["version"] == 1 and definition["id"].startswith("p:1:")
    assert definition["resource"] == "model.bpmn" and definition["deploymentId"] == first["id"]
    second = api.deploy_model(one_task(), deployment_name="orders")
    assert next(iter(second["deployedProcessDefinitions"].values()))["version"] == 2
    latest = api.get("/process-definition", latestVersion="true").json()
    assert [d["version"] for d in latest] == [2]
    assert api.get("/process-definition/key/p").json()["version"] == 2
    assert api.get("/process-definition/count").json() == {"count": 2}
    assert api.get("/deployment/count").json() == {"count": 2}
    assert api.get(f"/deployment/{first['id']}").json()["name"] == "orders"


def test_versions_are_per_tenant(api: Api) -> None:
    api.deploy_model(one_task())
    tenant = api.deploy_model(one_task(), tenant_id="acme")
    definition = next(iter(tenant["deployedProcessDefinitions"].values()))
    assert (definition["version"], definition["tenantId"]) == (1, "acme")


def test_duplicate_filtering_returns_the_previous_deployment(api: Api) -> None:
    first = api.deploy_model(one_task(), deployment_name="d", enable_duplicate_filtering="true")
    again = api.deploy_model(one_task(), deployment_name="d", enable_duplicate_filtering="true")
    assert again["id"] == first["id"] and again["deployedProcessDefinitions"] is None
    changed = api.deploy_model(one_task(topic="other"), deployment_name="d", enable_duplicate_filtering="true")
    assert changed["id"] != first["id"]
    assert next(iter(changed["deployedProcessDefinitions"].values()))["version"] == 2


def test_deploy_changed_only_deploys_only_changed_resources(api: Api) -> None:
    api.deploy(("a.bpmn", one_task("a")), ("b.bpmn", one_task("b")), deployment_name="d", deploy_changed_only="true")
    result = api.deploy(("a.bpmn", one_task("a")), ("b.bpmn", one_task("b", topic="new")), deployment_name="d",
                        deploy_changed_only="true")
    assert [d["key"] for d in result["deployedProcessDefinitions"].values()] == ["b"]
    resources = api.get(f"/deployment/{result['id']}/resources").json()
    assert [r["name"] for r in resources] == ["b.bpmn"]


def test_no_resources_is_400(api: Api) -> None:
    response = api.http.post(api.url + "/deployment/create", files={"deployment-name": (None, "x")})
    assert error(response, 400) == {"type": "InvalidRequestException", "code": None,
                                    "message": "No deployment resources contained in the form upload."}


def test_unsupported_element_is_a_parse_exception_naming_it(api: Api) -> None:
    model = bpmn("""
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="script"/>
    <bpmn:scriptTask id="script" scriptFormat="groovy"><bpmn:script>x</bpmn:script></bpmn:scriptTask>""")
    response = api.http.post(api.url + "/deployment/create", files={"bad.bpmn": ("bad.bpmn", model)})
    body = error(response, 400)
    assert body["type"] == "ParseException" and body["code"] == 0
    assert body["message"].startswith("ENGINE-09005 Could not parse BPMN process. Errors: \n* Unsupported element "
                                      "'scriptTask': scripts run inside a Java engine; model the work as an external "
                                      "task | resource bad.bpmn | line ")
    (item,) = body["details"]["bad.bpmn"]["errors"]
    assert item["mainElementId"] == "script" and item["elementIds"] == ["script"] and item["line"] > 0
    assert body["details"]["bad.bpmn"]["warnings"] == []
    assert api.get("/deployment/count").json() == {"count": 0}


def test_parse_errors_for_unsupported_definitions(api: Api) -> None:
    cases = {
        "escalationEventDefinition": """<bpmn:startEvent id="s"><bpmn:escalationEventDefinition/></bpmn:startEvent>""",
        "serviceTask": """<bpmn:startEvent id="s"/><bpmn:serviceTask id="t" camunda:class="com.Foo"/>""",
        "topic": """<bpmn:startEvent id="s"/><bpmn:serviceTask id="t" camunda:type="external"/>""",
        "userTask": """<bpmn:startEvent id="s"/><bpmn:userTask id="u"/>""",
    }
    for name, body in cases.items():
        response = api.http.post(api.url + "/deployment/create", files={"x.bpmn": ("x.bpmn", bpmn(body))})
        message = error(response, 400)["message"]
        assert name in message, message


def test_not_well_formed_xml_is_a_parse_exception(api: Api) -> None:
    response = api.http.post(api.url + "/deployment/create", files={"x.bpmn": ("x.bpmn", b"<bpmn:definitions")})
    assert error(response, 400)["type"] == "ParseException"


def test_delete_deployment(api: Api) -> None:
    deployment = api.deploy_model(one_task())
    api.start()
    response = api.delete(f"/deployment/{deployment['id']}")
    assert response.status_code == 500
    assert api.delete(f"/deployment/{deployment['id']}", cascade="true").status_code == 204
    assert api.get("/process-definition/count").json() == {"count": 0}
    assert api.get("/external-task/count").json() == {"count": 0}
    body = error(api.get(f"/deployment/{deployment['id']}"), 404)
    assert body["message"] == f"Deployment with id '{deployment['id']}' does not exist"
    error(api.delete(f"/deployment/{deployment['id']}"), 404)


# ---------------------------------------------------------------------- process definitions


def test_definition_by_key_ignores_tenant_definitions(api: Api) -> None:
    api.deploy_model(one_task(), tenant_id="acme")
    body = error(api.get("/process-definition/key/p"), 404)
    assert body == {"type": "RestException", "code": None,
                    "message": "No matching process definition with key: p and no tenant-id"}
    assert api.get("/process-definition/key/p/tenant-id/acme").json()["tenantId"] == "acme"
    body = error(api.get("/process-definition/key/p/tenant-id/other/xml"), 404)
    assert body["message"] == "No matching process definition with key: p and tenant-id: other"
    error(api.post("/process-definition/key/p/start", {}), 404)
    instance = api.start("p", tenant="acme")
    assert instance["tenantId"] == "acme"
    assert api.fetch_one()["tenantId"] == "acme"


def test_definition_xml_get_and_filters(api: Api) -> None:
    deployed = api.deploy_model(one_task())
    definition_id = next(iter(deployed["deployedProcessDefinitions"]))
    xml = api.get(f"/process-definition/{definition_id}/xml").json()
    assert xml["id"] == definition_id and xml["bpmn20Xml"] == one_task().decode()
    assert api.get("/process-definition/key/p/xml").json() == xml
    assert api.get(f"/process-definition/{definition_id}").json()["key"] == "p"
    body = error(api.get(f"/process-definition/{MISSING}"), 404)
    assert body == {"type": "InvalidRequestException", "message": f"No matching definition with id {MISSING}",
                    "code": 0}
    error(api.get(f"/process-definition/{MISSING}/xml"), 404)
    assert len(api.get("/process-definition", keyLike="p%").json()) == 1
    assert api.get("/process-definition", key="zzz").json() == []
    assert api.get("/process-definition", withoutTenantId="true", sortBy="version", sortOrder="desc").status_code \
        == 200


def test_start_by_id_with_variables_in_return(api: Api) -> None:
    deployed = api.deploy_model(one_task())
    definition_id = next(iter(deployed["deployedProcessDefinitions"]))
    response = api.post(f"/process-definition/{definition_id}/start", {
        "businessKey": "k1", "variables": {"a": {"value": "x"}}, "withVariablesInReturn": True})
    instance = response.json()
    assert set(instance) == {"links", "id", "definitionId", "definitionKey", "businessKey", "caseInstanceId", "ended",
                             "suspended", "tenantId", "variables"}
    assert instance["variables"] == {"a": {"type": "String", "value": "x", "valueInfo": {}}}
    assert instance["ended"] is False and instance["businessKey"] == "k1"


def test_start_with_a_bad_variable_is_400_with_prefix(api: Api) -> None:
    deployed = api.deploy_model(one_task())
    definition_id = next(iter(deployed["deployedProcessDefinitions"]))
    body = error(api.post("/process-definition/key/p/start", {"variables": {"n": {"value": "x", "type": "Long"}}}),
                 400)
    assert body["message"] == (f"Cannot instantiate process definition {definition_id}: Cannot convert value 'x' of "
                               "type 'Long' to java type java.lang.Long")


# ---------------------------------------------------------------------- process instances


def test_process_instance_queries_and_delete(api: Api) -> None:
    api.deploy_model(one_task())
    first = api.start(businessKey="a")
    api.start(businessKey="b")
    assert api.get("/process-instance/count").json() == {"count": 2}
    assert [i["businessKey"] for i in api.get("/process-instance", businessKey="a").json()] == ["a"]
    assert api.post("/process-instance/count", {"businessKeyLike": "%"}).json() == {"count": 2}
    assert api.get(f"/process-instance/{first['id']}").json()["id"] == first["id"]
    task = next(t for t in api.fetch() if t["processInstanceId"] == first["id"])
    assert api.delete(f"/process-instance/{first['id']}").status_code == 204
    body = error(api.get(f"/process-instance/{first['id']}"), 404)
    assert body == {"type": "InvalidRequestException", "code": None,
                    "message": f"Process instance with id {first['id']} does not exist"}
    error(api.complete(task["id"]), 404)  # its external task is gone
    assert api.history(first["id"])["state"] == "EXTERNALLY_TERMINATED"
    assert api.get("/process-instance/count").json() == {"count": 1}
    error(api.delete(f"/process-instance/{first['id']}"), 404)


def test_process_instance_variables(api: Api) -> None:
    api.deploy_model(one_task())
    instance = api.start(variables={"a": {"value": 1}, "obj": {"value": {"k": [1, 2]}}})
    path = f"/process-instance/{instance['id']}/variables"
    variables = api.get(path).json()
    assert variables["a"] == {"type": "Integer", "value": 1, "valueInfo": {}}
    assert variables["obj"]["value"] == {"k": [1, 2]}
    assert api.get(path, deserializeValues="false").json()["obj"]["value"] == '{"k": [1, 2]}'
    assert api.put(f"{path}/b", {"value": "2024-01-01T00:00:00.000+0000", "type": "Date"}).status_code == 204
    assert api.get(f"{path}/b").json()["type"] == "Date"
    assert api.post(path, {"modifications": {"c": {"value": True}}, "deletions": ["a"]}).status_code == 204
    assert set(api.get(path).json()) == {"obj", "b", "c"}
    assert api.delete(f"{path}/c").status_code == 204
    body = error(api.get(f"{path}/c"), 404)
    assert body["message"] == "process instance variable with name c does not exist"
    body = error(api.get(f"/process-instance/{MISSING}/variables"), 500)
    assert body == {"type": "NullValueException", "code": 0,
                    "message": f"execution {MISSING} doesn't exist: execution is null"}
    assert api.get("/process-instance", variables="c_eq_true").json() == []
    assert len(api.get("/process-instance", variables="b_like_2024%").json()) == 1


# ------------------------------------------------------------------- incidents and history


def test_incident_filters_and_404(api: Api) -> None:
    api.deploy_model(one_task())
    instance = api.start()
    task = api.fetch_one()
    api.post(f"/external-task/{task['id']}/failure", {"workerId": "w1", "errorMessage": "down", "retries": 0})
    assert len(api.get("/incident", processInstanceId=instance["id"]).json()) == 1
    assert len(api.get("/incident", configuration=task["id"]).json()) == 1
    assert api.get("/incident", incidentType="failedJob").json() == []
    assert len(api.get("/process-instance", withIncident="true").json()) == 1
    body = error(api.get(f"/incident/{MISSING}"), 404)
    assert body["message"] == f"No matching incident with id {MISSING}"
    api.delete(f"/process-instance/{instance['id']}")
    assert api.get("/incident").json() == []


def test_history(api: Api) -> None:
    api.deploy_model(one_task())
    instance = api.start(businessKey="bk")
    running = api.get("/history/process-instance", unfinished="true").json()
    assert [h["id"] for h in running] == [instance["id"]]
    assert running[0]["state"] == "ACTIVE" and running[0]["endTime"] is None
    assert running[0]["processDefinitionVersion"] == 1 and running[0]["startActivityId"] == "start"
    api.advance(1500)
    api.complete(api.fetch_one()["id"])
    finished = api.history(instance["id"])
    assert finished["state"] == "COMPLETED" and finished["durationInMillis"] == 1500
    assert api.get("/history/process-instance/count", finished="true").json() == {"count": 1}
    assert api.post("/history/process-instance/count", {"processInstanceBusinessKey": "bk"}).json() == {"count": 1}
    activities = api.get("/history/activity-instance", processInstanceId=instance["id"], sortBy="startTime",
                         sortOrder="asc").json()
    assert [(a["activityId"], a["activityType"]) for a in activities] == [
        ("start", "startEvent"), ("task", "serviceTask"), ("end", "noneEndEvent")]
    assert api.get(f"/history/activity-instance/{activities[1]['id']}").json()["durationInMillis"] == 1500
    error(api.get(f"/history/process-instance/{MISSING}"), 404)
    error(api.get(f"/history/activity-instance/{MISSING}"), 404)

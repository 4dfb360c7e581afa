"""OpenProject (API v3): the system ``openproject`` of the routing table."""

from exchanger.systems import SystemSpec

SYSTEM = SystemSpec(
    name="openproject",
    topics=("op_create_task", "op_update_task"),
    handler="exchanger.systems.openproject.handler:OpenProjectTaskHandler",
    tracker="exchanger.systems.openproject.tracker:OpenProjectTracker",
    settings="exchanger.systems.openproject.settings:OpenProjectSettings",
    fake_server="exchanger_sandbox.openproject.server",
    probe="exchanger.systems.openproject.probe:reach",
)

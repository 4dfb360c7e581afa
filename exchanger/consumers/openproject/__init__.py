"""OpenProject (API v3): the system ``openproject`` of the routing table."""

from exchanger.systems import SystemSpec

SYSTEM = SystemSpec(
    name="openproject",
    topics=("op_create_task", "op_update_task"),
    handler="exchanger.consumers.openproject.handler:OpenProjectTaskHandler",
    tracker="exchanger.consumers.openproject.tracker:OpenProjectTracker",
    settings="exchanger.consumers.openproject.settings:OpenProjectSettings",
    fake_server="exchanger.sandbox.openproject.server",
    probe="exchanger.consumers.openproject.probe:reach",
)

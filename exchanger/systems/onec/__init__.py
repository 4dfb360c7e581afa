"""1C:Enterprise over the standard OData interface: the system ``1c`` of the routing table."""

from exchanger.systems import SystemSpec

SYSTEM = SystemSpec(
    name="1c",
    topics=("1c_create_document",),
    handler="exchanger.systems.onec.handler:OneCTaskHandler",
    tracker="exchanger.systems.onec.tracker:OneCTracker",
    settings="exchanger.systems.onec.settings:OneCSettings",
    fake_server="exchanger_sandbox.onec.server",
    probe="exchanger.systems.onec.probe:reach",
    fake_name="onec",  # a Python-identifier name on the sandbox command line
)

"""1C:Enterprise over the standard OData interface: the system ``1c`` of the routing table."""

from exchanger.systems import SystemSpec

SYSTEM = SystemSpec(
    name="1c",
    topics=("1c_create_document",),
    handler="exchanger.consumers.onec.handler:OneCTaskHandler",
    tracker="exchanger.consumers.onec.tracker:OneCTracker",
    settings="exchanger.consumers.onec.settings:OneCSettings",
    fake_server="exchanger.sandbox.onec.server",
    probe="exchanger.consumers.onec.probe:reach",
    fake_name="onec",  # a Python-identifier name on the sandbox command line
)

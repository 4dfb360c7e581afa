"""The default system: tasks whose topic no system claims (they reach ``default.queue``)."""

from exchanger.systems import SystemSpec

SYSTEM = SystemSpec(name="default", handler="exchanger.systems.default.handler:DefaultTaskHandler")

"""Bitrix24: tasks for people on a portal, through its standard REST methods and an inbound webhook."""

from exchanger.systems import SystemSpec

SYSTEM = SystemSpec(
    name="bitrix24",
    topics=("bitrix_create_task", "bitrix_update_task"),
    handler="exchanger.systems.bitrix24.handler:Bitrix24TaskHandler",
    tracker="exchanger.systems.bitrix24.tracker:Bitrix24Tracker",
    settings="exchanger.systems.bitrix24.settings:Bitrix24Settings",
    fake_server="exchanger_sandbox.bitrix24.server",
    probe="exchanger.systems.bitrix24.probe:reach",
)

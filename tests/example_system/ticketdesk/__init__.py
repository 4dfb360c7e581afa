"""TicketDesk: the smallest whole system, to show that one folder plus one registration line is enough.

The folder holds the declaration (below), a handler, a tracker, a settings class and a fake server.
The registration line is an entry point of the group ``exchanger.systems`` (``ticketdesk =
ticketdesk:SYSTEM``); tests/foundation/test_one_folder_system.py installs it and shows that routing,
queues, the task-creator's maps, the sandbox and the settings page know the system without any other
edit.
"""

from exchanger.systems import SystemSpec

SYSTEM = SystemSpec(
    name="ticketdesk",
    topics=("desk_open_ticket",),
    handler="ticketdesk.handler:TicketHandler",
    tracker="ticketdesk.tracker:TicketTracker",
    settings="ticketdesk.settings:TicketDeskSettings",
    fake_server="ticketdesk.fake",
    probe="ticketdesk.client:probe",
)

"""Bitrix24: tasks for people on a portal, through its standard REST methods and an inbound webhook."""

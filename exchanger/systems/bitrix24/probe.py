"""``exchanger config check``'s read of Bitrix24: who the webhook's user is."""

from __future__ import annotations

from exchanger.systems.bitrix24.client import Bitrix24Client
from exchanger.systems.bitrix24.settings import Bitrix24Settings


def reach(settings: Bitrix24Settings) -> str:
    client = Bitrix24Client(settings)
    try:
        user = client.call("user.current")
        return f"webhook user {user.get('ID')} ({user.get('NAME', '')} {user.get('LAST_NAME', '')})".strip()
    finally:
        client.close()

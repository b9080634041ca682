"""ActiveCampaign's list membership statuses, one enum for the hook, the engine and the tests.

Plain Python, no Airflow imports.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any

__all__ = ["ListStatus"]


class ListStatus(IntEnum):
    """``contactList.status``: what a contact's membership of one list is.

    ActiveCampaign sends the status as a string (``"1"``); ``IntEnum`` compares equal to the int.
    """

    UNCONFIRMED = 0
    ACTIVE = 1
    UNSUBSCRIBED = 2
    BOUNCED = 3

    @classmethod
    def parse(cls, value: Any) -> ListStatus | None:
        """``"1"``, ``1`` or ``ListStatus.ACTIVE`` -> ``ListStatus.ACTIVE``; anything else (``"91"``,
        ``None``, ``"x"``, ``True``) -> None, so an unknown status is never mistaken for a known one."""
        if isinstance(value, bool):
            return None
        if isinstance(value, str):
            value = value.strip()
            if not (value.isascii() and value.isdigit()):
                return None
            value = int(value)
        if not isinstance(value, int):
            return None
        try:
            return cls(value)
        except ValueError:
            return None

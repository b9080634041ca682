"""Why the importer refused a contact: ``import/info`` names refused emails without a reason.

The account's exclusion list (``GET lists/exclusions``: a phrase matched exactly, at the beginning
or at the end of the email) explains the commonest refusal; it is read once per run, only when
something was refused. Other refusals keep the generic reason (over the contact limit, bounced).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

__all__ = ["EXCLUDED_REASON", "GENERIC_REASON", "RefusalReasons", "exclusion_matcher"]

# The matched phrase is left out: for an exact match it is the email itself, and reasons reach XCom.
EXCLUDED_REASON = "refused by the importer: on the account's exclusion list ({kind} match)"
GENERIC_REASON = ("refused by the importer (over the contact limit or bounced; ActiveCampaign gives no "
                  "reason); offered again on later runs")


def exclusion_matcher(entries: Iterable[Mapping[str, Any]]) -> Callable[[str], str | None]:
    """A function: email -> the reason it is excluded, or None."""
    rules = []
    for entry in entries:
        phrase = str(entry.get("matchPhrase") or "").strip().lower()
        kind = str(entry.get("matchType") or "exact").strip().lower()
        if phrase:
            rules.append((kind, phrase))

    def match(email: str) -> str | None:
        for kind, phrase in rules:
            if ((kind.startswith("begin") and email.startswith(phrase))
                    or (kind.startswith("end") and email.endswith(phrase))
                    or (kind == "exact" and email == phrase)):
                return EXCLUDED_REASON.format(kind=kind)
        return None

    return match


class RefusalReasons:
    """The reason of each refused email, the exclusion list read lazily (once per run)."""

    def __init__(self, client: Any, log: logging.Logger) -> None:
        self.client = client
        self.log = log
        self._match: Callable[[str], str | None] | None = None

    def reason(self, email: str) -> str:
        if self._match is None:
            entries: list[Mapping[str, Any]] = []
            reader = getattr(self.client, "iter_exclusions", None)
            if reader is not None:
                try:
                    entries = list(reader())
                except Exception as error:  # the reason is a courtesy: never fail the run over it
                    self.log.warning("Could not read the account's exclusion list: %s", error)
            self._match = exclusion_matcher(entries)
        return self._match(email) or GENERIC_REASON

"""Checks of operator and sensor arguments, made when the DAG is parsed and again once templates render.

A wrong value (``action_on_empty="skp"``, ``max_removal_ratio=1.5``) fails the DAG file's import with a
message naming the parameter, instead of acting as a default on the first run. A templated field still
holding a Jinja expression is checked only after rendering, when its value is known.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = ["check_choice", "check_positive_int", "check_ratio", "is_template"]


def is_template(value: Any) -> bool:
    """A string Airflow will render with Jinja before the task runs."""
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def check_choice(name: str, value: Any, choices: Iterable[str], *, templated: bool = False) -> Any:
    """``value`` if it is one of ``choices`` (or a template of a templated field); else ValueError."""
    allowed = tuple(choices)
    if templated and is_template(value):
        return value
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(repr(c) for c in allowed)}, not {value!r}.")
    return value


def check_ratio(name: str, value: Any, *, templated: bool = False) -> Any:
    """A share from 0 to 1 (0.2 = 20%) as a float; a rendered template may arrive as the string "0.2"."""
    if templated and is_template(value):
        return value
    try:
        if isinstance(value, bool):
            raise TypeError  # True would pass as 1.0
        ratio = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number from 0 to 1 (a share: 0.2 = 20%), not {value!r}.") from None
    if not 0.0 <= ratio <= 1.0:
        raise ValueError(f"{name} must be from 0 to 1 (a share: 0.2 = 20%), not {value!r}.")
    return ratio


def check_positive_int(name: str, value: Any, *, templated: bool = False, optional: bool = False) -> Any:
    """A whole number of at least 1 (``None`` or "" when optional); rendered templates arrive as strings."""
    if templated and is_template(value):
        return value
    if optional and value in (None, ""):
        return None
    try:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise TypeError
        number = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a whole number of at least 1, not {value!r}.") from None
    if number < 1:
        raise ValueError(f"{name} must be a whole number of at least 1, not {value!r}.")
    return number

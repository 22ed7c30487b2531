"""Argument checks shared by the package's entry points: bad input gets one clear ``ValueError``
naming the argument, what is accepted and what was given (the project's error convention)."""

from __future__ import annotations

import operator


def check_int(name: str, value, *, minimum: int, optional: bool = False):
    """``value`` must be an integer (Python or NumPy, not bool or float) of at least ``minimum``
    (or None when ``optional``); returns it as a Python ``int`` (None stays None)."""
    if optional and value is None:
        return None
    ok = not isinstance(value, bool) and hasattr(value, "__index__")
    if not ok or operator.index(value) < minimum:
        extra = " or None" if optional else ""
        raise ValueError(f"{name} must be an integer >= {minimum}{extra}, got {value!r}")
    return operator.index(value)


def check_number(name: str, value, *, low: float, high: float | None = None, low_open: bool = False,
                 optional: bool = False):
    """``value`` must be a real number (not bool, not NaN) ``>= low`` (``> low`` when
    ``low_open``) and ``< high`` if given (or None when ``optional``); returns it."""
    if optional and value is None:
        return None
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    ok = ok and value == value and (value > low if low_open else value >= low)
    ok = ok and (high is None or value < high)
    if not ok:
        bound = f"> {low}" if low_open else f">= {low}"
        if high is not None:
            bound += f" and < {high}"
        extra = " or None" if optional else ""
        raise ValueError(f"{name} must be a number {bound}{extra}, got {value!r}")
    return value


def require_columns(frame, columns, what: str) -> None:
    """One clear ``ValueError`` if ``frame`` (``what``, e.g. "the Table 2 frame") lacks any of
    ``columns``: the check every describe/plot function makes on the frame it is given."""
    if missing := [c for c in columns if c not in frame.columns]:
        raise ValueError(f"{what} lacks columns {missing}; expected {list(columns)}, it has {list(frame.columns)}")

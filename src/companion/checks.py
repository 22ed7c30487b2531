"""Argument checks shared by the package's entry points: bad input gets one clear ``ValueError``
naming the argument, what is accepted and what was given (the project's error convention)."""

from __future__ import annotations

import numpy as np


def check_int(name: str, value, *, minimum: int) -> None:
    """``value`` must be an integer (Python or NumPy, not bool) of at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")

"""How the book shows a table: :class:`BookTable`, a table with a numbered caption (a MyST
``{table}`` in the book, plain HTML with its caption in Jupyter), and the cell formats every
chapter's tables share (:func:`format_count`, the :data:`DIFFERS` mark)."""

from __future__ import annotations

import html
import math

import pandas as pd

#: Marks a paper entry that differs from our exact weight count (explained in the caption).
DIFFERS = "†"


def format_count(value) -> str:
    """Exact count with thousands separators; NaN (no paper entry) as an em dash."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{round(value):,}"


class BookTable:
    """A table with a caption: a numbered MyST ``{table}`` in the book, HTML in Jupyter.

    The book prefers the ``text/markdown`` representation (``_config.yml`` raises its MIME
    priority and parses it as MyST); Jupyter shows ``text/html``; ``repr`` is plain text, so
    notebook regression tests compare the values, not memory addresses.
    """

    def __init__(self, frame: pd.DataFrame, caption: str, name: str):
        if not name.replace("-", "").replace("_", "").isalnum():
            raise ValueError(f"table name {name!r} must be letters, digits, '-' or '_' (a label)")
        self.frame, self.caption, self.name = frame, caption, name

    def _cells(self) -> list[list[str]]:
        return [[str(v) for v in row] for row in self.frame.itertuples(index=False)]

    def _repr_markdown_(self) -> str:
        def row(cells):
            return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

        header = [str(c) for c in self.frame.columns]
        align = ["---" if self.frame[c].map(_is_text).any() else "--:" for c in self.frame.columns]
        # a colon fence: a backtick fence's info string may not hold the backticks of a role
        lines = [f":::{{table}} {self.caption}", f":name: {self.name}", "",
                 row(header), "| " + " | ".join(align) + " |"]
        lines += [row(cells) for cells in self._cells()]
        lines.append(":::")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        caption = f"<p><strong>Table ({html.escape(self.name)}).</strong> {html.escape(self.caption)}</p>"
        return caption + self.frame.to_html(index=False, escape=True)

    def __repr__(self) -> str:
        return f"{self.name}: {self.caption}\n{self.frame.to_string(index=False)}"


def _is_text(value) -> bool:
    """True for a cell that is not a number (left-aligned in the table)."""
    text = str(value).replace(",", "").replace(DIFFERS, "").strip()
    try:
        float(text)
    except ValueError:
        return text not in ("—", "")
    return False

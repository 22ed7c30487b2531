"""Figures and captioned tables of the book, drawn from the package's outputs.

- :func:`figure1`: Figure 1 (right panel), parameters vs base channels α and vs image size s.
- :func:`layer_comparison`: Tables 3 / 4, exact per-layer counts beside the paper's formulas.
- :func:`table1_comparison`: Table 1's "#param (M)" columns, ours beside the paper's.
- :class:`BookTable`: a table with a numbered caption in the book (a MyST ``{table}``), shown
  as plain HTML with its caption in Jupyter.

Nothing here computes a result; the numbers come from :mod:`companion.params`.
"""

from __future__ import annotations

import html
import math

import pandas as pd
from matplotlib.figure import Figure

#: Figure 1's six networks: colour by connectivity, line style by depth (D solid, S dashed).
_COLOURS = {"conv": "tab:blue", "local": "tab:orange", "fc": "tab:red"}
_STYLES = {"d": ("-", "o"), "s": ("--", "s")}
#: Marks a paper entry that differs from our exact weight count (explained in the caption).
DIFFERS = "†"


def model_label(name: str) -> str:
    """``d-conv`` → ``D-CONV`` (the paper's spelling)."""
    return name.upper()


def figure1(scaling: pd.DataFrame) -> Figure:
    """Figure 1, right panel: parameters vs α (left axes) and vs image size s (right axes).

    ``scaling`` is :func:`companion.params.scaling`'s long frame (``model, alpha, image_size,
    params, sweep``). Log–log axes, so the s² (CONV, LOCAL) and s⁴ (FC) laws of Section 2.1
    appear as straight lines of slope 2 and 4.
    """
    required = {"model", "alpha", "image_size", "params", "sweep"}
    if missing := required - set(scaling.columns):
        raise ValueError(f"scaling frame lacks columns {sorted(missing)}; expected {sorted(required)}")
    fig = Figure(figsize=(8, 3.6), layout="constrained")
    ax_alpha, ax_size = fig.subplots(1, 2, sharey=True)
    panels = ((ax_alpha, "alpha", "alpha", "image_size", "s"),
              (ax_size, "image_size", "image_size", "alpha", "α"))
    for ax, sweep, x, fixed, fixed_symbol in panels:
        part = scaling[scaling["sweep"] == sweep]
        if part.empty:
            raise ValueError(f"scaling frame has no rows with sweep == {sweep!r}")
        for name, rows in part.groupby("model", sort=False):
            depth, _, variant = name.partition("-")
            line, marker = _STYLES.get(depth, (":", "^"))
            rows = rows.sort_values(x)
            ax.plot(rows[x], rows["params"], linestyle=line, marker=marker, markersize=4,
                    color=_COLOURS.get(variant, "black"), label=model_label(name))
        fixed_values = sorted(part[fixed].unique())
        ax.set_title(f"{fixed_symbol} = {', '.join(str(v) for v in fixed_values)}")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.grid(True, which="major", alpha=0.3)
    ax_alpha.set_xlabel("base channels α")
    ax_size.set_xlabel("image size s (s × s pixels)")
    ax_alpha.set_ylabel("number of parameters")
    ax_alpha.legend(ncols=2, fontsize="small", frameon=False)
    return fig


def format_count(value) -> str:
    """Exact count with thousands separators; NaN (no paper entry) as an em dash."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{round(value):,}"


def layer_comparison(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Tables 3 / 4 side by side: per network, our exact weights and the paper's formula.

    ``tables`` maps network name → :func:`companion.params.layer_table` (same layers, e.g.
    D-CONV, D-LOCAL, D-FC). Rows: each layer's weights (ours, exact; the paper counts weights
    only), then the biases and batch-norm parameters the paper leaves out, then the totals
    (ours: every trainable parameter; paper: its "Total" formula). A paper entry that differs
    from our exact weight count is marked with :data:`DIFFERS`.
    """
    if not tables:
        raise ValueError("layer_comparison needs at least one layer table")
    names = list(tables)
    first = tables[names[0]]
    layers = first.loc[first["layer"] != "Total", ["layer", "description"]]
    out = pd.DataFrame({"layer": list(layers["layer"]) + ["bias + batch-norm", "Total"],
                        "description": list(layers["description"]) + ["(not in the paper)", ""]})
    for name in names:
        table = tables[name].set_index("layer")
        if list(table.index[:-1]) != list(layers["layer"]):
            raise ValueError(f"{name}'s layers {list(table.index)} differ from {names[0]}'s")
        body, total = table.drop(index="Total"), table.loc["Total"]
        ours = [format_count(w) for w in body["weight"]]
        ours += [format_count(total["bias"] + total["bn"]), format_count(total["total"])]
        paper = [_paper_cell(p, w) for p, w in zip(body["paper"], body["weight"])]
        paper += ["—", format_count(total["paper"])]
        out[f"{model_label(name)} ours"] = ours
        out[f"{model_label(name)} paper"] = paper
    return out


def _paper_cell(paper: float, exact: int) -> str:
    text = format_count(paper)
    if not math.isnan(paper) and round(paper) != exact:
        text += f" {DIFFERS}"
    return text


def table1_comparison(table1: pd.DataFrame) -> pd.DataFrame:
    """Table 1's "#param (M)" columns: ours (exact) beside the paper's printed values.

    ``table1`` is :func:`companion.params.table1_params`'s frame.
    """
    columns = {"model": "model", "alpha": "α", "orig_M": "orig. (ours)",
               "fc_emb_M": "FC-emb. (ours)", "formula_orig_M": "orig. (paper formula at α)",
               "paper_orig_M": "orig. (paper)", "paper_fc_emb_M": "FC-emb. (paper)"}
    present = [c for c in columns if c in table1.columns]
    out = table1[present].rename(columns=columns)
    out["model"] = out["model"].map(model_label)
    for col in out.columns[2:]:
        out[col] = out[col].map(lambda v: f"{v:,.2f}")
    return out


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
        lines = [f"```{{table}} {self.caption}", f":name: {self.name}", "",
                 row(header), "| " + " | ".join(align) + " |"]
        lines += [row(cells) for cells in self._cells()]
        lines.append("```")
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

"""Figures and table frames of chapters 06–10: what the weights look like after training.

- :func:`figure3`: non-zero weights per layer over training (the paper's Figure 3).
- :func:`filter_rgb`, :func:`filter_grid`, :func:`figure4`: first-layer filters as colour
  images on the input grid (Figures 4, 7–9, and chapter 10's permuted filters).
- :func:`mdl_figure`: description length against test accuracy, Theorem 2's bound (chapter 8).
- :func:`locality_figure`, :func:`locality_histogram`: the first layer's locality (chapter 9).
- ``*_frame``: the chapters' tables, formatted for :class:`companion.book.booktable.BookTable`.

Nothing here computes a result: the numbers come from :mod:`companion.book.tables` and
:mod:`companion.nn.analysis`.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib import ticker
from matplotlib.figure import Figure

from companion.book.claims import NOISE_SE
from companion.book.booktable import format_count
from companion.checks import require_columns

#: reference networks' colours (the book's: CONV blue, LOCAL orange, FC red)
REFERENCE_COLOURS = {"S-CONV": "tab:blue", "S-LOCAL": "tab:orange", "S-FC": "tab:red"}
#: colours of the runs compared in a figure, in order
RUN_COLOURS = ("black", "tab:green", "tab:purple", "tab:brown", "tab:cyan", "tab:olive", "tab:pink")
#: filters per run in Figure 4
FIGURE4_PER = 16
#: how filters are drawn (the captions quote it)
FILTER_SCHEME = ("each filter is scaled by its own largest absolute weight, and each of its three "
                 "input channels (red, green, blue) is drawn as that colour's intensity: zero is "
                 "mid-grey, positive weights brighter and negative weights darker in that colour, "
                 "so an all-zero pixel is grey")


# ------------------------------------------------------------------------------ Figure 3
def figure3(curves: pd.DataFrame, references: pd.DataFrame) -> Figure:
    """The paper's Figure 3: non-zero weights of each layer of S-FC against the epoch, one line per
    β-LASSO run (:func:`companion.book.tables.nonzeros_curves`; the run chosen on validation is
    thick), with dashed lines at the weights of the same layer of S-CONV and S-LOCAL and a dotted
    one at S-FC's (:func:`companion.book.tables.layer_references`). Networks whose layer has the
    same number of weights share one line. A panel whose values span more than a factor of 20 has
    a logarithmic y axis."""
    require_columns(curves, ["row", "method", "best", "epoch", "layer", "nonzeros"], "the non-zeros curves")
    require_columns(references, ["layer", *REFERENCE_COLOURS], "the layer references")
    if curves.empty:
        raise ValueError("the non-zeros curves are empty (no β-LASSO run)")
    layers = list(references["layer"])
    fig = Figure(figsize=(10, 3.4), layout="constrained")
    axes = fig.subplots(1, len(layers))
    runs = list(dict.fromkeys(curves["row"]))
    for ax, layer in zip(np.atleast_1d(axes), layers):
        for i, row in enumerate(runs):
            part = curves[(curves["row"] == row) & (curves["layer"] == layer)].sort_values("epoch")
            best = bool(part["best"].any())
            ax.plot(part["epoch"], part["nonzeros"], color=RUN_COLOURS[i % len(RUN_COLOURS)],
                    linewidth=2.4 if best else 1.3, marker="o", markersize=3, label=part["method"].iloc[0])
        ref = references.set_index("layer").loc[layer]
        for value, nets in _group_equal({net: int(ref[net]) for net in REFERENCE_COLOURS}).items():
            style = ":" if nets == ["S-FC"] else "--"
            ax.axhline(value, color=REFERENCE_COLOURS[nets[0]], linestyle=style, linewidth=1.2,
                       label=" = ".join(nets) + " weights")
        values = [*curves.loc[curves["layer"] == layer, "nonzeros"], *(int(ref[n]) for n in REFERENCE_COLOURS)]
        if min(values) > 0 and max(values) / min(values) > 20:
            ax.set_yscale("log")
        else:
            ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:,.0f}"))
        ax.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
        ax.set_title(f"{layer}")
        ax.set_xlabel("epoch")
        ax.grid(True, which="both", alpha=0.25)
        ax.legend(fontsize="x-small", frameon=False)
    np.atleast_1d(axes)[0].set_ylabel("non-zero weights")
    return fig


def _group_equal(values: dict[str, int]) -> dict[int, list[str]]:
    groups: dict[int, list[str]] = {}
    for name, value in values.items():
        groups.setdefault(value, []).append(name)
    return groups


def sparsity_frame(table: pd.DataFrame) -> pd.DataFrame:
    """:func:`companion.book.tables.sparsity_table` with counts written out (thousands separators)
    and each β-LASSO count followed by its share of S-FC's weights."""
    require_columns(table, ["layer", "S-FC weights"], "the sparsity table")
    out = pd.DataFrame({"layer": table["layer"]})
    for col in table.columns[1:]:
        if col.endswith(" weights"):
            out[col] = table[col].map(format_count)
        else:
            out[f"{col} non-zeros"] = [f"{format_count(v)} ({100 * v / w:.1f} %)"
                                       for v, w in zip(table[col], table["S-FC weights"])]
    return out


# ------------------------------------------------------------------------------ filters
def filter_rgb(filters) -> np.ndarray:
    """Filters ``(units, 3, H, W)`` as images ``(units, H, W, 3)`` in [0, 1] (:data:`FILTER_SCHEME`):
    ``0.5 + 0.5 · w / max|w|`` per filter, channel by channel; an all-zero filter is all grey."""
    f = np.asarray(filters, dtype=np.float64)
    if f.ndim != 4 or f.shape[1] != 3:
        raise ValueError(f"filters must be units × 3 × H × W, got shape {f.shape}")
    scale = np.abs(f).reshape(len(f), -1).max(axis=1) if len(f) else np.zeros(0)
    scale = np.where(scale > 0, scale, 1.0).reshape(-1, 1, 1, 1)
    return np.clip(0.5 + 0.5 * f / scale, 0.0, 1.0).transpose(0, 2, 3, 1)


def _draw_filters(container, filters, ncols: int, title: str | None = None) -> None:
    images = filter_rgb(filters)
    n = len(images)
    nrows = max(1, math.ceil(n / ncols))
    axes = np.atleast_2d(container.subplots(nrows, ncols, squeeze=False))
    for i, ax in enumerate(axes.flat):
        ax.set_xticks([])
        ax.set_yticks([])
        if i < n:
            ax.imshow(images[i], interpolation="nearest")
        else:
            ax.axis("off")
    if title:
        container.suptitle(title, fontsize="medium")


def filter_grid(filters, *, ncols: int = 8, title: str | None = None, max_filters: int = 32) -> Figure:
    """Up to ``max_filters`` filters in a grid of ``ncols`` columns (Figures 7–9)."""
    filters = np.asarray(filters)[:max_filters]
    if len(filters) == 0:
        raise ValueError("no filters to draw")
    ncols = min(ncols, len(filters))
    nrows = math.ceil(len(filters) / ncols)
    fig = Figure(figsize=(1.1 * ncols, 1.1 * nrows + (0.4 if title else 0)), layout="constrained")
    _draw_filters(fig, filters, ncols, title)
    return fig


def figure4(sets: dict, *, per: int = FIGURE4_PER, ncols: int = 4) -> Figure:
    """The paper's Figure 4: the first ``per`` stored filters of each run side by side, one panel
    per entry of ``sets`` (label → filters, or label → a dict with ``filters``)."""
    if not sets:
        raise ValueError("no filter sets to draw")
    fig = Figure(figsize=(3.3 * len(sets), 3.3 * math.ceil(per / ncols) / ncols + 0.5), layout="constrained")
    panels = np.atleast_1d(fig.subfigures(1, len(sets), wspace=0.04))
    for panel, (label, s) in zip(panels, sets.items()):
        filters = np.asarray(s["filters"] if isinstance(s, dict) else s)[:per]
        _draw_filters(panel, filters, min(ncols, max(1, len(filters))), label)
    return fig


def filters_rows(sets: dict, *, per: int = 8) -> Figure:
    """One row of ``per`` filters per entry of ``sets`` (label → filters), labelled on the left
    (chapter 10: the same filters before and after mapping back through the permutation)."""
    if not sets:
        raise ValueError("no filter sets to draw")
    fig = Figure(figsize=(1.1 * per + 0.4, 1.35 * len(sets)), layout="constrained")
    rows = np.atleast_1d(fig.subfigures(len(sets), 1, hspace=0.02))
    for row, (label, filters) in zip(rows, sets.items()):
        _draw_filters(row, np.asarray(filters)[:per], per, label)
    return fig


def locality_frame(loc: pd.DataFrame) -> pd.DataFrame:
    """:func:`companion.book.tables.filters_locality` with rounded scores."""
    require_columns(loc, ["filters", "count", "radius", "window_mass"], "the filters' locality")
    return pd.DataFrame({
        "filters": loc["filters"], "filters scored": loc["count"].map(format_count),
        "median radius (px)": loc["radius"].map(lambda v: f"{v:.2f}"),
        "median window mass": loc["window_mass"].map(lambda v: f"{v:.3f}"),
    })


# ------------------------------------------------------------------------------ Theorem 2
def mdl_frame(table: pd.DataFrame) -> pd.DataFrame:
    """:func:`companion.book.tables.mdl_table` as chapter 8 prints it (n and log(2n/δ), the same
    for every row, go to the caption: :func:`companion.book.tables.describe_mdl_terms`); a
    vacuous bound (≥ 1) is marked ``(vacuous)``."""
    require_columns(table, ["row", "n", "k", "nonzeros", "kb", "d_g", "log_term", "description_bits", "gap",
                  "bound", "train_acc", "test_acc"], "the Theorem 2 table")
    return pd.DataFrame({
        "network, training": table["row"],
        "k": table["k"].map(format_count), "‖w‖₀": table["nonzeros"].map(format_count),
        "k·b": table["kb"].map(format_count), "|d(g)|": table["d_g"].map(format_count),
        "descr. (Mbit)": (table["description_bits"] / 1e6).map(lambda v: f"{v:,.2f}"),
        "gap": table["gap"].map(lambda v: f"{v:.2f}"),
        "bound": [f"{b:.2f}" + (" (vacuous)" if b >= 1 else "") for b in table["bound"]],
        "train acc. (%)": table["train_acc"].map(lambda v: f"{v:.2f}"),
        "test acc. (%)": table["test_acc"].map(lambda v: f"{v:.2f}"),
    })


def mdl_figure(table: pd.DataFrame, corr: dict) -> Figure:
    """Chapter 8: left, test accuracy against description length (bits, log axis), one point per
    run, with Spearman's ρ (``corr``, :func:`companion.nn.analysis.rank_correlation`) in the title;
    right, Theorem 2's bound on the test error beside the measured test error (log axis; above the
    dashed line at 1 the bound is vacuous)."""
    require_columns(table, ["row", "description_bits", "test_acc", "bound"], "the Theorem 2 table")
    fig = Figure(figsize=(10, 3.8), layout="constrained")
    left, right = fig.subplots(1, 2, width_ratios=(1.2, 1))
    for i, (row, bits, acc) in enumerate(zip(table["row"], table["description_bits"], table["test_acc"])):
        left.scatter(bits, acc, color=RUN_COLOURS[i % len(RUN_COLOURS)], zorder=3, label=f"{i + 1}: {row}")
        left.annotate(str(i + 1), (bits, acc), textcoords="offset points", xytext=(4, 4), fontsize="small")
    left.set_xscale("log")
    left.set_xlabel("description length kb + |d(g)| + 2 log n (bits)")
    left.set_ylabel("test accuracy (%)")
    rho = corr.get("rho", float("nan"))
    left.set_title(f"Spearman ρ = {rho:+.2f} (n = {corr.get('n', len(table))}, p = {corr.get('p_value', float('nan')):.2f})"
                   if rho == rho else "Spearman ρ undefined", fontsize="medium")
    left.grid(True, which="both", alpha=0.25)
    left.legend(fontsize="x-small", frameon=False, loc="best")
    x = np.arange(len(table))
    right.bar(x - 0.2, table["bound"], width=0.4, color="tab:gray", label="bound (Theorem 2)")
    right.bar(x + 0.2, 1 - table["test_acc"] / 100, width=0.4, color="tab:green", label="measured test error")
    right.axhline(1.0, color="black", linestyle="--", linewidth=1, label="1 (above: vacuous)")
    right.set_yscale("log")
    right.set_xticks(x, [str(i + 1) for i in x])
    right.set_xlabel("run (numbered as in the left panel)")
    right.set_ylabel("test error (fraction)")
    right.legend(fontsize="x-small", frameon=False)
    right.grid(True, axis="y", which="both", alpha=0.25)
    return fig


# ------------------------------------------------------------------------------ locality
_SCORES = {"radius": "locality radius (px)", "window_mass": "mass in the 9×9 window"}
_REF_STYLE = {"uniform": ("tab:red", "uniform random weights"), "s-local": ("tab:orange", "S-LOCAL field")}


def _references(ax, references: dict, score: str, *, vertical: bool = False) -> None:
    for name, (colour, label) in _REF_STYLE.items():
        value = references[name][score]
        (ax.axvline if vertical else ax.axhline)(value, color=colour, linestyle="--", linewidth=1.1,
                                                  label=f"{label} (median {value:.2f})")


def locality_figure(curves: pd.DataFrame, references: dict) -> Figure:
    """Chapter 9: the first layer's locality over training, per run (:func:`companion.book.tables.
    locality_curves`): median line, 25–75 % and 10–90 % bands over its filters, for the radius
    (left) and the window mass (right); dashed reference lines (:func:`companion.nn.analysis.
    reference_locality`)."""
    require_columns(curves, ["row", "epoch", "score", "q10", "q25", "q50", "q75", "q90"], "the locality curves")
    fig = Figure(figsize=(10, 3.6), layout="constrained")
    axes = fig.subplots(1, 2)
    for ax, (score, ylabel) in zip(axes, _SCORES.items()):
        part = curves[curves["score"] == score]
        for i, (row, runs) in enumerate(part.groupby("row", sort=False)):
            runs = runs.sort_values("epoch")
            colour = RUN_COLOURS[(i + 1) % len(RUN_COLOURS)]
            ax.fill_between(runs["epoch"], runs["q10"], runs["q90"], color=colour, alpha=0.15, linewidth=0)
            ax.fill_between(runs["epoch"], runs["q25"], runs["q75"], color=colour, alpha=0.35, linewidth=0)
            ax.plot(runs["epoch"], runs["q50"], color=colour, marker="o", markersize=3, label=f"{row}: median")
        _references(ax, references, score)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.25)
    axes[0].legend(fontsize="x-small", frameon=False)
    return fig


def locality_histogram(final: pd.DataFrame, references: dict, *, bins: int = 40) -> Figure:
    """Chapter 9: histograms of every first-layer unit's locality after training, per run
    (:func:`companion.book.tables.final_locality`; units with no non-zero weight are left out),
    with the references as dashed lines."""
    require_columns(final, ["row", "radius", "window_mass"], "the final locality frame")
    fig = Figure(figsize=(10, 3.4), layout="constrained")
    axes = fig.subplots(1, 2)
    for ax, (score, xlabel) in zip(axes, _SCORES.items()):
        values = final[score].dropna()
        lo, hi = (0.0, 1.0) if score == "window_mass" else (0.0, max(float(values.max()) if len(values) else 1.0,
                                                                       references["uniform"][score]) * 1.05)
        edges = np.linspace(lo, hi, bins + 1)
        for i, (row, part) in enumerate(final.groupby("row", sort=False)):
            v = part[score].dropna()
            ax.hist(v, bins=edges, histtype="step", linewidth=1.5, color=RUN_COLOURS[(i + 1) % len(RUN_COLOURS)],
                    label=f"{row} ({len(v):,} units)")
        _references(ax, references, score, vertical=True)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("units")
        ax.grid(True, alpha=0.25)
    axes[0].legend(fontsize="x-small", frameon=False)
    return fig


# ------------------------------------------------------------------------------ permutation
def permutation_frame(summary: pd.DataFrame) -> pd.DataFrame:
    """:func:`companion.book.tables.permutation_summary` as chapter 10 prints it."""

    require_columns(summary, ["row", "original", "permuted", "difference", "se", "changes", "paper_claim"],
          "the permutation summary")
    return pd.DataFrame({
        "network, training": summary["row"],
        "test acc., original pixels (%)": summary["original"].map(lambda v: f"{v:.2f}"),
        "test acc., permuted pixels (%)": summary["permuted"].map(lambda v: f"{v:.2f}"),
        "difference (pp)": summary["difference"].map(lambda v: f"{v:+.2f}"),
        f"{NOISE_SE:g} s.e. (pp)": (NOISE_SE * summary["se"]).map(lambda v: f"{v:.2f}"),
        "beyond noise": summary["changes"].map({True: "yes", False: "no"}),
        "paper (Section 4.1)": summary["paper_claim"],
    })

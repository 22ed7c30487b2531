"""Tables and the figure of the Table 2 chapter's protocol sections (issue 9): the regime of the
λ/β grid, the SGD baseline's search, when β-LASSO's first layer settles, and Table 2's chosen
rows over seeds. Formatting only; the numbers come from :mod:`companion.book.protocol` and
:mod:`companion.experiments.search`."""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

from companion.book.labels import number, sci
from companion.checks import require_columns


def regime_table(regime: pd.DataFrame) -> pd.DataFrame:
    """:func:`companion.book.protocol.search_regime` formatted, one row per (λ, λ_first) and β."""
    require_columns(regime, ["beta", "lam", "lam_first", "steps", "shrink_x", "threshold_frac"], "the regime frame")
    return pd.DataFrame({
        "β": regime["beta"].map(lambda v: f"{v:g}"), "λ": regime["lam"].map(sci),
        "λ_first": regime["lam_first"].map(sci), "steps T": regime["steps"].map(lambda v: f"{v:,}"),
        "shrink ½·η·λ_first·T / mean initial |w|": regime["shrink_x"].map(lambda v: f"{v:.1f}×"),
        "threshold β·λ_first / max initial |w|": regime["threshold_frac"].map(lambda v: f"{100 * v:.1f} %"),
    })


def sgd_search_table(search: pd.DataFrame, chosen: dict | None) -> pd.DataFrame:
    """:attr:`companion.experiments.study.Study.sgd_search` formatted, the row chosen on validation marked."""
    require_columns(search, ["momentum", "weight_decay", "train_acc", "val_acc", "test_acc"], "the SGD search frame")
    mark = [chosen is not None and m == chosen["momentum"] and wd == chosen["weight_decay"]
            for m, wd in zip(search["momentum"], search["weight_decay"])]
    return pd.DataFrame({
        "momentum": search["momentum"].map(lambda v: f"{v:g}"), "weight decay": search["weight_decay"].map(sci),
        "validation acc. (%)": (search["val_acc"] * 100).map(number),
        "test acc. (%, not used)": (search["test_acc"] * 100).map(number),
        "train acc. (%)": (search["train_acc"] * 100).map(number),
        "gap train − test (pp)": ((search["train_acc"] - search["test_acc"]) * 100).map(number),
        "chosen on validation": ["yes" if m else "" for m in mark],
    })


def _mean_sd(mean: pd.Series, sd: pd.Series, digits: int = 2, scale: float = 1.0) -> list[str]:
    return [number(m * scale, digits) + ("" if s != s else f" ± {number(s * scale, digits)}")
            for m, s in zip(mean, sd)]


def seeds_table(seeds: pd.DataFrame, paper: dict[str, float | None] | None = None) -> pd.DataFrame:
    """:func:`companion.book.protocol.table2_seeds` formatted: mean ± sample sd over seeds of train,
    validation and test accuracy, the gap, the first layer's density and locality; the paper's
    test accuracy (row → %) as a labelled column when given."""
    cols = ["row", "n_seeds"] + [f"{c}_{s}" for c in ("train_acc", "val_acc", "test_acc", "gap", "first_density",
                                                     "radius", "window_mass") for s in ("mean", "sd")]
    require_columns(seeds, cols, "the seeds frame")
    out = pd.DataFrame({
        "row": seeds["row"], "seeds": seeds["n_seeds"].map(str),
        "train acc. (%)": _mean_sd(seeds["train_acc_mean"], seeds["train_acc_sd"]),
        "validation acc. (%)": _mean_sd(seeds["val_acc_mean"], seeds["val_acc_sd"]),
        "test acc. (%)": _mean_sd(seeds["test_acc_mean"], seeds["test_acc_sd"]),
        "gap train − test (pp)": _mean_sd(seeds["gap_mean"], seeds["gap_sd"]),
        "1st layer non-zeros (%)": _mean_sd(seeds["first_density_mean"], seeds["first_density_sd"], 2, 100),
        "median radius (px)": _mean_sd(seeds["radius_mean"], seeds["radius_sd"], 1),
        "median window mass": _mean_sd(seeds["window_mass_mean"], seeds["window_mass_sd"], 2),
    })
    if paper is not None:
        out["paper's test acc. (%)"] = [number(paper.get(r)) for r in seeds["row"]]
    return out


def settling_figure(curves: pd.DataFrame, settled: dict, label: str) -> Figure:
    """The chosen β-LASSO run over training (:func:`companion.book.protocol.settling_curves`): left,
    the first layer's share of non-zeros (log) and the learning rate left; right, its median
    locality radius and the training accuracy. Dotted lines: the epochs from which density and
    radius stay put (:func:`companion.book.protocol.settled`)."""
    require_columns(curves, ["epoch", "lr", "density", "radius", "train_acc"], "the settling curves")
    fig = Figure(figsize=(10, 3.4), layout="constrained")
    ax_d, ax_r = fig.subplots(1, 2)
    ax_d.plot(curves["epoch"], 100 * curves["density"], color="tab:red", label="1st-layer non-zeros (%)")
    ax_d.set_yscale("log")
    ax_d.set_ylabel("non-zero weights of the 1st layer (%)")
    lr = ax_d.twinx()
    lr.plot(curves["epoch"], 100 * curves["lr"], color="grey", linestyle="--", label="learning rate left (%)")
    lr.set_ylabel("learning rate left (% of initial)")
    lr.set_ylim(0, 105)
    tracked = curves.dropna(subset=["radius"])
    ax_r.plot(tracked["epoch"], tracked["radius"], color="tab:blue", marker=".", label="median radius (px)")
    ax_r.set_ylabel("median locality radius (px)")
    acc = ax_r.twinx()
    acc.plot(curves["epoch"], curves["train_acc"], color="tab:green", linestyle="--", label="train acc. (%)")
    acc.set_ylabel("training accuracy (%)")
    for ax, key in ((ax_d, "density_epoch"), (ax_r, "radius_epoch")):
        if settled.get(key) == settled.get(key):
            ax.axvline(settled[key], color="black", linestyle=":", linewidth=1)
        ax.set_xlabel("epoch")
        ax.grid(True, alpha=0.3)
    for ax, twin in ((ax_d, lr), (ax_r, acc)):
        lines = [line for line in ax.get_lines() + twin.get_lines() if not line.get_label().startswith("_")]
        ax.legend(lines, [line.get_label() for line in lines], fontsize=8, loc="center right")
    fig.suptitle(label, fontsize=10)
    return fig


def null_figure(frame: pd.DataFrame, min_nonzeros: int, references: dict, label: str) -> Figure:
    """Claim (c)'s null (:func:`companion.book.protocol.null_frame`): left, the radius of the trained
    filters with at least ``min_nonzeros`` non-zeros beside that of the same counts placed at
    random (histograms); right, the median radius of both against the number of non-zeros per
    filter (log-spaced bins). Dashed: the dense and S-LOCAL references (radius)."""
    import numpy as np

    require_columns(frame, ["nonzeros", "radius", "null_radius"], "the null frame")
    fig = Figure(figsize=(10, 3.4), layout="constrained")
    ax_h, ax_n = fig.subplots(1, 2)
    used = frame[frame["nonzeros"] >= min_nonzeros]
    bins = np.linspace(0, max(14.0, float(np.nanmax(frame[["radius", "null_radius"]].to_numpy())) + 0.5), 40)
    ax_h.hist(used["radius"], bins=bins, alpha=0.6, color="tab:red", label=f"{label} ({len(used):,} filters)")
    ax_h.hist(used["null_radius"], bins=bins, alpha=0.6, color="grey", label="same counts placed at random")
    ax_h.set_xlabel("locality radius (px)")
    ax_h.set_ylabel("filters")
    edges = np.unique(np.round(np.geomspace(1, max(2, frame["nonzeros"].max() + 1), 12)).astype(int))
    which = np.digitize(frame["nonzeros"], edges)
    g = frame.assign(bin=which).groupby("bin")
    centres = g["nonzeros"].median()
    ax_n.plot(centres, g["radius"].median(), color="tab:red", marker="o", label=label)
    ax_n.plot(centres, g["null_radius"].median(), color="grey", marker="s", label="same counts at random")
    ax_n.axvline(min_nonzeros, color="black", linestyle=":", linewidth=1)
    ax_n.set_xscale("log")
    ax_n.set_xlabel("non-zero weights of the filter")
    ax_n.set_ylabel("median locality radius (px)")
    for ax in (ax_h, ax_n):
        for name, style in (("uniform", "--"), ("s-local", "-.")):
            r = references[name]["radius"]
            if ax is ax_h:
                ax.axvline(r, color="black", linestyle=style, linewidth=1)
            else:
                ax.axhline(r, color="black", linestyle=style, linewidth=1)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    return fig

"""Chapter 11's table frames and figure (sparse execution of β-LASSO's S-FC, Section 5):
formatting and drawing only; the numbers come from :mod:`companion.book.weight_tables`."""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

from companion.book.booktable import format_count
from companion.book.labels import number
from companion.book.weight_captions import stand_in_note
from companion.book.weight_tables import STAND_IN
from companion.checks import require_columns


def sparse_speed_figure(summary: pd.DataFrame, speeds: pd.DataFrame, goal: float) -> Figure:
    """Chapter 11, one row per network (labelled with its share of non-zero weights): left, the
    sparse export's images/s divided by the dense network's, one bar per CPU thread count, with
    the goal and equal speed marked; right, memory of both. ``summary``/``speeds``:
    :func:`companion.book.weight_tables.sparse_execution`'s first and third tables; a run timed on an
    untrained network of its shape says so in its label."""

    require_columns(summary, ["row", "method", "density", "dense_bytes", "sparse_bytes"], "the sparse-execution summary")
    require_columns(speeds, ["row", "threads", "speedup"], "the sparse-execution speeds")
    fig = Figure(figsize=(11, 1.2 + 0.55 * len(summary)), layout="constrained")
    ax_speed, ax_mem = fig.subplots(1, 2, sharey=True)
    y = list(range(len(summary)))
    stand_in = summary["weights"] == STAND_IN if "weights" in summary else [False] * len(summary)
    labels = [f"{m}\n{d * 100:.1f} % non-zero" + ("\n(untrained stand-in)" if u else "")
              for m, d, u in zip(summary["method"], summary["density"], stand_in)]
    counts = list(dict.fromkeys(speeds["threads"]))
    height = 0.8 / len(counts)
    for i, threads in enumerate(counts):
        rows = speeds[speeds["threads"] == threads].set_index("row")
        offset = -0.4 + height * (i + 0.5)
        ax_speed.barh([v + offset for v in y], [rows.loc[r, "speedup"] for r in summary["row"]], height=height,
                      color=("tab:blue", "tab:orange", "tab:cyan")[i % 3],
                      label=f"{threads} thread{'s' if threads > 1 else ''}")
    ax_speed.axvline(goal, color="tab:green", linestyle="--", linewidth=1, label=f"goal {goal:g}×")
    ax_speed.axvline(1, color="black", linewidth=0.8, label="dense speed")
    ax_speed.set_yticks(y, labels, fontsize="small")
    ax_speed.invert_yaxis()
    ax_speed.set_xlabel("sparse ÷ dense images/s")
    ax_speed.set_title("inference speed on the CPU", fontsize="medium")
    ax_speed.grid(True, axis="x", alpha=0.3)
    ax_mem.barh([v - 0.2 for v in y], summary["dense_bytes"] / 2**20, height=0.4, color="tab:gray", label="dense")
    ax_mem.barh([v + 0.2 for v in y], summary["sparse_bytes"] / 2**20, height=0.4, color="tab:purple",
                label="sparse export")
    ax_mem.set_xlabel("weights and buffers (MiB)")
    ax_mem.set_title("memory", fontsize="medium")
    ax_mem.grid(True, axis="x", alpha=0.3)
    handles = [*ax_speed.get_legend_handles_labels()[0], *ax_mem.get_legend_handles_labels()[0]]
    fig.legend(handles=handles, fontsize="small", frameon=False, ncols=len(handles), loc="outside lower center")
    return fig


def sparse_summary_frame(summary: pd.DataFrame) -> pd.DataFrame:
    """Chapter 11's per-run table, formatted; a run timed on an untrained network of its shape
    (no agreement numbers: "—") says so in its "weights from" cell."""

    require_columns(summary, ["row", "weights", "test_acc", "density", "images", "same_prediction", "max_logit_diff",
                       "dense_bytes", "sparse_bytes", "memory_ratio"], "the sparse-execution summary")
    return pd.DataFrame({
        "network": summary["row"],
        "weights from": [stand_in_note(b) if w == STAND_IN else w
                         for w, b in zip(summary["weights"], summary["dense_bytes"])],
        "test acc. (%)": summary["test_acc"].map(number),
        "non-zero (%)": (summary["density"] * 100).map(lambda v: number(v, 2)),
        "same prediction": [f"{int(s):,} / {int(n):,}" if s == s else "—"
                            for s, n in zip(summary["same_prediction"], summary["images"])],
        "max |Δ logit|": summary["max_logit_diff"].map(lambda v: f"{v:.1e}" if v == v else "—"),
        "dense (MiB)": (summary["dense_bytes"] / 2**20).map(number),
        "sparse (MiB)": (summary["sparse_bytes"] / 2**20).map(number),
        "memory ratio": summary["memory_ratio"].map(lambda v: f"{v:.1f}×"),
    })


def sparse_layers_frame(layers: pd.DataFrame) -> pd.DataFrame:
    """Chapter 11's density per layer: one row per network, per layer its density and layout."""
    require_columns(layers, ["row", "layer", "weights", "nonzeros", "density", "layout"], "the sparse layers table")
    out = {"network": list(dict.fromkeys(layers["row"]))}
    for layer, rows in layers.groupby("layer", sort=False):
        cells = {r.row: f"{r.density * 100:.2f} % ({r.layout})" for r in rows.itertuples(index=False)}
        out[f"{layer} ({format_count(int(rows['weights'].iloc[0]))} weights)"] = [cells.get(n, "—") for n in out["network"]]
    return pd.DataFrame(out)


def sparse_speed_frame(speeds: pd.DataFrame) -> pd.DataFrame:
    """Chapter 11's timings: images/s of the dense network and of its export, and their ratio."""
    require_columns(speeds, ["row", "threads", "batch", "dense_images_per_s", "sparse_images_per_s", "speedup"],
             "the sparse-execution speeds")
    return pd.DataFrame({
        "network": speeds["row"], "threads": speeds["threads"], "batch": speeds["batch"],
        "dense (images/s)": speeds["dense_images_per_s"].map(lambda v: f"{v:,.0f}"),
        "sparse (images/s)": speeds["sparse_images_per_s"].map(lambda v: f"{v:,.0f}"),
        "speed-up": speeds["speedup"].map(lambda v: f"{v:.1f}×"),
    })

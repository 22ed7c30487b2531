"""The training-length chapter (issue 16): frames and figures of the central comparison (S-FC,
β-LASSO against SGD) at every length it was trained (:mod:`companion.experiments.lengths`), and the first
layer learning, frame by frame (:mod:`companion.nn.snapshots`).

- :func:`length_curves`, :func:`curves_figure`: test / train accuracy, first-layer density and
  median locality radius over training, per length, seeds as bands;
- :func:`length_summary`: the table per length and row (mean ± sd over seeds);
- :func:`snapshot_runs`, :func:`snapshots_figure`, :func:`snapshots_animation`: the recorded
  first-layer units of the two methods, as small multiples (print) and as an animation that
  plays offline (matplotlib's ``to_jshtml``: the frames are embedded as images, no ffmpeg).

Nothing here computes a result that is not read from the runs.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from companion.book.claims import null_comparison
from companion.book.labels import run_label
from companion.book.length_tables import setting
from companion.book.protocol import null_frame, settling_curves
from companion.book.weight_figures import filter_rgb
from companion.checks import require_columns
from companion.experiments.lengths import METHODS, REFERENCES, complete_lengths
from companion.nn.snapshots import decode
from companion.train.progress import describe_run

#: colours of the two methods (the book's S-FC red for SGD; β-LASSO black)
METHOD_COLOURS = {"sgd": "tab:red", "lasso": "black"}
#: line styles of the lengths, shortest first
LENGTH_STYLES = ("-", "--", ":", "-.")
#: units shown per method in the printed small multiples, and frames (epochs) across
PRINT_UNITS = 4
PRINT_FRAMES = 5


def _method(key) -> str:
    return next(m for m, k in METHODS.items() if k == key)


def length_curves(runs: dict) -> pd.DataFrame:
    """Per tracked epoch of every S-FC run of :func:`companion.book.length_tables.length_runs`:
    ``length`` (epochs of the run), ``method``, ``seed`` and :func:`companion.book.protocol.settling_curves`'s columns."""
    frames = []
    for (epochs, key, seed), run in runs.items():
        if key not in METHODS.values():
            continue
        c = settling_curves(run)
        frames.append(c.assign(length=epochs, method=_method(key), seed=seed))
    return pd.concat(frames, ignore_index=True)


def curves_figure(curves: pd.DataFrame) -> Figure:
    """Four panels against epochs: test and train accuracy, first-layer density, median radius;
    one line per (method, length): the mean over seeds, the band their range."""
    require_columns(curves, ["length", "method", "seed", "epoch", "test_acc", "train_acc", "density", "radius"],
                    "the length curves")
    panels = (("test_acc", "test accuracy (%)"), ("train_acc", "training accuracy (%)"),
              ("density", "first layer: share non-zero"), ("radius", "first layer: median radius (px)"))
    fig = Figure(figsize=(10, 6.5), layout="constrained")
    axes = fig.subplots(2, 2, sharex=True).flat
    lengths = sorted(curves["length"].unique())
    for ax, (column, label) in zip(axes, panels):
        for (method, length), g in curves.groupby(["method", "length"], sort=True):
            g = g.dropna(subset=[column])
            stats = g.groupby("epoch")[column].agg(["mean", "min", "max", "count"])
            k = int(g["seed"].nunique())
            colour, style = METHOD_COLOURS[method], LENGTH_STYLES[lengths.index(length) % len(LENGTH_STYLES)]
            name = "β-LASSO" if method == "lasso" else "SGD"
            ax.plot(stats.index, stats["mean"], style, color=colour, lw=1.3,
                    label=f"{name}, {length} ep. ({k} seed{'s' if k > 1 else ''})")
            if k > 1:
                ax.fill_between(stats.index, stats["min"], stats["max"], color=colour, alpha=0.15, lw=0)
        ax.set_ylabel(label)
        if column == "density":
            ax.set_yscale("log")
    for ax in list(fig.axes)[2:]:
        ax.set_xlabel("epoch")
    fig.axes[0].legend(fontsize="small")
    return fig


def with_null_ratio(per_run: pd.DataFrame, runs: dict, seed: int) -> pd.DataFrame:
    """:func:`companion.book.length_tables.length_frame` with ``null_ratio`` for every S-FC run: the median
    locality radius of its first-layer units with ≥ :data:`companion.book.claims.NULL_MIN_NONZEROS`
    non-zeros over that of the same counts placed at random (claim (c)'s null; 1 = no locality
    beyond sparsity). NaN for the other rows."""
    ratios = {}
    for (epochs, key, s), run in runs.items():
        if key in METHODS.values():
            n = null_comparison(null_frame(run.arrays(), seed=seed))
            ratios[(epochs, run_label(key), s)] = n["median_radius"] / n["null_median_radius"]
    return per_run.assign(null_ratio=[ratios.get(k, float("nan"))
                                      for k in zip(per_run["epochs"], per_run["row"], per_run["seed"])])


def length_summary(table: pd.DataFrame) -> pd.DataFrame:
    """:func:`companion.book.length_tables.length_table` formatted: per length and row, test accuracy
    (mean ± sd, seeds), train accuracy, gap, first-layer density and median radius."""
    require_columns(table, ["epochs", "row", "n_seeds", "test_acc_mean", "test_acc_sd", "train_acc_mean", "gap_mean",
                            "first_density_mean", "radius_mean"], "the length table")

    def pm(mean, sd):
        return f"{mean:.2f}" + (f" ± {sd:.2f}" if sd == sd else "")

    order = [run_label(k) for k in (METHODS["sgd"], METHODS["lasso"], *REFERENCES)]
    table = table.assign(_order=table["row"].map(order.index)).sort_values(["epochs", "_order"])

    return pd.DataFrame({
        "epochs": table["epochs"], "row": table["row"], "seeds": table["n_seeds"],
        "test (%)": [pm(m, s) for m, s in zip(table["test_acc_mean"], table["test_acc_sd"])],
        "train (%)": table["train_acc_mean"].map("{:.1f}".format), "gap (pp)": table["gap_mean"].map("{:.1f}".format),
        "first-layer density": table["first_density_mean"].map(lambda v: f"{100 * v:.2f} %"),
        "median radius (px)": table["radius_mean"].map("{:.2f}".format),
        **({"radius ÷ null (≥ 5 non-zeros)": table["null_ratio_mean"].map(lambda v: "–" if v != v else f"{v:.2f}")}
           if "null_ratio_mean" in table else {}),
    })


def candidates_table(candidates: pd.DataFrame) -> pd.DataFrame:
    """:func:`companion.book.length_tables.candidate_frame` formatted (accuracies in %, "…" while training)."""
    require_columns(candidates, ["method", "setting", "val_acc", "test_acc", "train_acc", "chosen"], "the candidates")

    def pct(v):
        return "training" if v != v else f"{v:.2f}"

    return pd.DataFrame({
        "method": candidates["method"].map({"lasso": "β-LASSO", "sgd": "SGD"}), "setting": candidates["setting"],
        "validation (%)": candidates["val_acc"].map(pct), "test (%)": candidates["test_acc"].map(pct),
        "train (%)": candidates["train_acc"].map(pct), "chosen": candidates["chosen"],
    })


# ------------------------------------------------------------------------------ watching it learn
def snapshot_runs(runs: dict, seed: int) -> dict[str, object]:
    """Method → the run of ``seed`` at the longest length whose runs of both methods recorded
    snapshots (``snapshot_codes`` in their arrays); ``{}`` if none did."""
    for length in sorted({e for e, _, _ in runs}, reverse=True):
        pair = {_method(key): run for (e, key, s), run in runs.items()
                if e == length and s == seed and key in METHODS.values()}
        if len(pair) == 2 and all("snapshot_codes" in r.arrays() for r in pair.values()):
            return dict(sorted(pair.items(), key=lambda kv: kv[0] != "sgd"))  # SGD first
    return {}


def snapshot_stack(run) -> tuple[np.ndarray, np.ndarray]:
    """(epochs, weights frames × units × C × H × W) of a run's recorded snapshots, decoded."""
    a = run.arrays()
    return np.asarray(a["snapshot_epochs"]), decode(a["snapshot_codes"], a["snapshot_scale"])


def _mosaic(frames: np.ndarray, ncols: int = 4) -> np.ndarray:
    """Units × C × H × W → one RGB image of the units in a grid (1-pixel white gaps)."""
    images = filter_rgb(frames)
    n, h, w, _ = images.shape
    nrows = -(-n // ncols)
    out = np.ones((nrows * (h + 1) - 1, ncols * (w + 1) - 1, 3))
    for i, im in enumerate(images):
        r, c = divmod(i, ncols)
        out[r * (h + 1):r * (h + 1) + h, c * (w + 1):c * (w + 1) + w] = im
    return out


def _title(method: str, run) -> str:
    return run_label(METHODS[method], with_model=False)


def snapshots_figure(pair: dict) -> Figure:
    """Small multiples for print: for each method, :data:`PRINT_UNITS` recorded units (rows) at
    :data:`PRINT_FRAMES` of the recorded epochs evenly spread from the first to the last (columns)."""
    if not pair:
        raise ValueError("no runs with recorded snapshots")
    stacks = {m: snapshot_stack(r) for m, r in pair.items()}
    epochs = next(iter(stacks.values()))[0]
    cols = np.unique(np.round(np.linspace(0, len(epochs) - 1, min(PRINT_FRAMES, len(epochs)))).astype(int))
    fig = Figure(figsize=(1.05 * len(cols) * len(pair) + 0.4, 1.05 * PRINT_UNITS + 0.7), layout="constrained")
    subfigs = np.atleast_1d(fig.subfigures(1, len(pair)))
    for sub, (method, (ep, frames)) in zip(subfigs, stacks.items()):
        axes = sub.subplots(PRINT_UNITS, len(cols), squeeze=False)
        for j, f in enumerate(cols):
            images = filter_rgb(frames[f][:PRINT_UNITS])
            for i in range(PRINT_UNITS):
                ax = axes[i, j]
                ax.set_xticks([])
                ax.set_yticks([])
                if i < len(images):
                    ax.imshow(images[i], interpolation="nearest")
                if i == 0:
                    ax.set_title(f"ep. {ep[f]}", fontsize="small")
        sub.suptitle(_title(method, pair[method]), fontsize="medium")
    return fig


def snapshots_animation(pair: dict, *, interval_ms: int = 600):
    """The recorded units of both methods side by side, one frame per recorded epoch, as a
    :class:`matplotlib.animation.FuncAnimation` (``.to_jshtml()`` for the book)."""
    from matplotlib.animation import FuncAnimation

    if not pair:
        raise ValueError("no runs with recorded snapshots")
    stacks = {m: snapshot_stack(r) for m, r in pair.items()}
    epochs = next(iter(stacks.values()))[0]
    if any(not np.array_equal(ep, epochs) for ep, _ in stacks.values()):
        raise ValueError("the runs recorded different epochs; they cannot be shown frame by frame")
    fig = Figure(figsize=(2.3 * len(pair), 2.7), dpi=80, layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(pair)))
    shown = []
    for ax, (method, (_, frames)) in zip(axes, stacks.items()):
        shown.append(ax.imshow(_mosaic(frames[0]), interpolation="nearest"))
        ax.set_title(_title(method, pair[method]), fontsize="medium")
        ax.set_xticks([])
        ax.set_yticks([])
    total = int(pair[next(iter(pair))].config.epochs)
    heading = fig.suptitle("")

    def draw(i):
        for im, (_, frames) in zip(shown, stacks.values()):
            im.set_data(_mosaic(frames[i]))
        heading.set_text(f"after epoch {epochs[i]} of {total}" if epochs[i] else "at initialisation")
        return [*shown, heading]

    draw(0)
    return FuncAnimation(fig, draw, frames=len(epochs), interval=interval_ms, blit=False)


def describe_snapshots(pair: dict) -> str:
    """Which runs the snapshots come from and which epochs they recorded."""
    if not pair:
        raise ValueError("no runs with recorded snapshots")
    first = next(iter(pair.values()))
    epochs = snapshot_stack(first)[0]
    runs = ", ".join(f"{'β-LASSO' if m == 'lasso' else 'SGD'} ({setting(r.config)}; run {r.run_id})"
                     for m, r in pair.items())
    return (f"The runs shown: {runs}, {first.config.epochs} epochs, seed {first.config.seed}; "
            f"{len(epochs)} recorded epochs: {', '.join(map(str, epochs))}.")


def describe_pending(p, pending: list, runs: dict) -> str:
    """What of the comparison is still training: the lengths with a verdict, and the runs missing
    (each with its run id) with the command that trains them; or that every run is finished."""
    done = complete_lengths(p, runs)
    verdict = ("Verdicts at " + ", ".join(f"{e} epochs" for e in done) + " are in the summary chapter."
               if done else "No longer length has its verdict yet.")
    if not pending:
        return f"Every run of this comparison is finished. {verdict}"
    stand_in = " ".join(f"Until the candidates at {e} epochs are finished, its S-FC rows show the first candidates "
                        "(the best settings at the long length), seed " + str(p.seed) + "." for e in p.longer_epochs
                        if any(c.epochs == e and c.model == "s-fc" and c.seed == p.seed for c in pending))
    waiting = [e for e in p.longer_epochs if e not in done]
    lines = "; ".join(f"{describe_run(c)}, seed {c.seed}" for c in pending)
    listed = (" listed so far; the choice at a length, its seeds and the trend runs are listed once the "
              "candidates there are finished" if stand_in else "")
    return (f"{verdict} Still training ({len(pending)} run{'s' if len(pending) > 1 else ''}{listed}): {lines}. "
            + (f"The verdict at {', '.join(f'{e}' for e in waiting)} epochs waits for them; " if waiting else "")
            + f"`companion experiments --profile {p.name}` trains them." + (f" {stand_in}" if stand_in else ""))

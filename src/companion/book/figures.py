"""Figures and formatted tables of chapters 00–05, drawn from the package's outputs.

- :func:`figure1`: Figure 1 (right panel), parameters vs base channels α and vs image size s.
- :func:`layer_comparison`: Tables 3 / 4, exact per-layer counts beside the paper's formulas.
- :func:`table1_comparison`: Table 1's "#param (M)" columns, ours beside the paper's.

Nothing here computes a result; the numbers come from :mod:`companion.nn.params`.
"""

from __future__ import annotations

import math

import pandas as pd
from matplotlib.figure import Figure

from companion.book.booktable import DIFFERS, format_count
from companion.book.labels import model_label, number
from companion.checks import require_columns

#: Figure 1's six networks: colour by connectivity, line style by depth (D solid, S dashed).
_COLOURS = {"conv": "tab:blue", "local": "tab:orange", "fc": "tab:red"}
_STYLES = {"d": ("-", "o"), "s": ("--", "s")}


def figure1(scaling: pd.DataFrame) -> Figure:
    """Figure 1, right panel: parameters vs α (left axes) and vs image size s (right axes).

    ``scaling`` is :func:`companion.nn.params.scaling`'s long frame (``model, alpha, image_size,
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


def layer_comparison(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Tables 3 / 4 side by side: per network, our exact weights and the paper's formula.

    ``tables`` maps network name → :func:`companion.nn.params.layer_table` (same layers, e.g.
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

    ``table1`` is :func:`companion.nn.params.table1_params`'s frame.
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


# ------------------------------------------------------------------ chapters 00, 02–05
# Figures and formatted tables of Table 1, Figures 2/5/6, the β-LASSO search, Table 2 and the
# claims summary, from the frames of companion.book.tables / companion.book.claims (nothing here computes a result).
_FAMILY_COLOURS = {"d-conv": "tab:blue", "s-conv": "tab:cyan", "3-fc": "tab:red", "resnet18": "tab:green"}
_OPTIMIZER_STYLE = {"sgd": ("SGD", "tab:gray", "o"), "beta-lasso": ("β-LASSO", "tab:purple", "s")}


def _yes(value) -> str:
    return "yes" if bool(value) else "no"


def table1_figure(table1: pd.DataFrame, *, short_label: str, long_label: str,
                  paper_short_label: str, paper_long_label: str) -> Figure:
    """Table 1 as grouped bars: our test accuracy after short and long training per network,
    the paper's (``paper_400``/``paper_4000``) as markers. ``table1``: :func:`companion.book.tables.table1`."""
    require_columns(table1, ["model", "short_test", "long_test", "paper_400", "paper_4000"], "the Table 1 frame")
    fig = Figure(figsize=(8, 3.6), layout="constrained")
    ax = fig.subplots()
    x = list(range(len(table1)))
    width = 0.38
    ax.bar([i - width / 2 for i in x], table1["short_test"], width, color="tab:blue", alpha=0.6, label=short_label)
    ax.bar([i + width / 2 for i in x], table1["long_test"], width, color="tab:blue", label=long_label)
    for column, offset, marker, label in (("paper_400", -width / 2, "_", paper_short_label),
                                          ("paper_4000", width / 2, "x", paper_long_label)):
        values = pd.to_numeric(table1[column], errors="coerce")
        if values.notna().any():
            ax.plot([i + offset for i in x], values, linestyle="none", marker=marker, markersize=12,
                    markeredgewidth=2, color="black", label=label)
    ax.set_xticks(x, [model_label(m) for m in table1["model"]])
    ax.set_ylabel("test accuracy (%)")
    ax.set_ylim(0, 100)
    ax.grid(True, axis="y", alpha=0.3)
    fig.legend(handles=[*ax.containers, *ax.lines], fontsize="small", ncols=4, loc="outside upper center",
               frameon=False)
    return fig


def table1_accuracy_table(table1: pd.DataFrame, *, short_label: str, long_label: str,
                          paper_short_label: str, paper_long_label: str) -> pd.DataFrame:
    """Table 1 formatted: α, parameters (orig. / FC-emb., M), our train / test accuracy after short
    and long training, the paper's test accuracy in labelled columns."""
    require_columns(table1, ["model", "alpha", "params_M", "fc_emb_M", "short_test", "long_test",
                      "short_train", "long_train", "paper_400", "paper_4000"], "the Table 1 frame")
    return pd.DataFrame({
        "model": [model_label(m) for m in table1["model"]], "α": table1["alpha"],
        "#param orig. (M)": table1["params_M"].map(lambda v: number(v, 3)),
        "#param FC-emb. (M)": table1["fc_emb_M"].map(lambda v: number(v, 3)),
        f"test, {short_label}": table1["short_test"].map(number),
        f"test, {long_label}": table1["long_test"].map(number),
        f"train, {short_label}": table1["short_train"].map(number),
        f"train, {long_label}": table1["long_train"].map(number),
        paper_short_label: table1["paper_400"].map(number), paper_long_label: table1["paper_4000"].map(number),
    })


def _pair(observation: str, a, b) -> str:
    if observation.startswith("(1)"):
        return f"{number(a)} vs {number(abs(b))}"
    if observation.startswith("(2)"):
        return f"S {number(a, sign=True)} vs D {number(b, sign=True)}"
    return number(a, sign=True)


def observations_table(observations: pd.DataFrame, *, paper_label: str) -> pd.DataFrame:
    """:func:`companion.book.tables.table1_observations` formatted: the numbers compared (pp) and whether
    each observation holds, ours and the paper's."""
    require_columns(observations, ["observation", "training", "ours_a", "ours_b", "holds_here", "paper_a",
                            "paper_b", "holds_in_paper"], "the observations frame")
    rows = observations.itertuples(index=False)
    out = [{"observation (Section 2.2)": r.observation, "training": r.training,
            "ours (pp)": _pair(r.observation, r.ours_a, r.ours_b), "holds here": _yes(r.holds_here),
            f"{paper_label} (pp)": _pair(r.observation, r.paper_a, r.paper_b),
            "holds in the paper": _yes(r.holds_in_paper)} for r in rows]
    return pd.DataFrame(out)


def scaling_figure(scaling: pd.DataFrame, fit: pd.DataFrame, target: float) -> Figure:
    """Figures 2 and 6 at this scale: test accuracy (left) and training accuracy (middle, with the
    target of the right panel dashed) against parameters, per family; right: the fewest
    parameters reaching ``target`` % training accuracy against the family's best test accuracy.
    ``scaling``: :func:`companion.book.tables.scaling`; ``fit``: :func:`companion.book.tables.fewest_params_to_fit`."""
    require_columns(scaling, ["model", "params", "train_acc", "test_acc"], "the scaling frame")
    require_columns(fit, ["model", "min_params", "best_test_acc"], "the fewest-params frame")
    fig = Figure(figsize=(11, 4), layout="constrained")
    ax_test, ax_train, ax_fit = fig.subplots(1, 3)
    for model, rows in scaling.groupby("model", sort=False):
        rows = rows.sort_values("params")
        colour = _FAMILY_COLOURS.get(model, "black")
        for ax, column in ((ax_test, "test_acc"), (ax_train, "train_acc")):
            ax.plot(rows["params"], rows[column], marker="o", markersize=4, color=colour, label=model_label(model))
    ax_train.axhline(target, color="black", linestyle="--", linewidth=1, label=f"target {target:.1f} %")
    for row in fit.itertuples(index=False):
        ax_fit.plot([row.min_params], [row.best_test_acc], linestyle="none", marker="o", markersize=7,
                    color=_FAMILY_COLOURS.get(row.model, "black"), label=model_label(row.model))
        if not pd.isna(row.min_params):
            ax_fit.annotate(model_label(row.model), (row.min_params, row.best_test_acc), xytext=(5, 4),
                            textcoords="offset points", fontsize="small")
    for ax, ylabel, title in ((ax_test, "test accuracy (%)", "test (Figure 2)"),
                              (ax_train, "training accuracy (%)", "training (Figure 6, top)"),
                              (ax_fit, "best test accuracy (%)", "Figure 2, right")):
        ax.set_xscale("log")
        ax.set_ylabel(ylabel)
        ax.set_title(title, fontsize="medium")
        ax.grid(True, alpha=0.3)
    ax_test.set_xlabel("number of parameters")
    ax_train.set_xlabel("number of parameters")
    ax_fit.set_xlabel(f"fewest parameters reaching {target:.1f} % training accuracy")
    fig.legend(handles=ax_test.lines, fontsize="small", ncols=len(ax_test.lines), loc="outside upper center",
               frameon=False)
    ax_train.legend(handles=ax_train.lines[-1:], fontsize="small", frameon=False, loc="lower right")
    return fig


def lasso_search_table(search: pd.DataFrame) -> pd.DataFrame:
    """The β-LASSO search (:func:`companion.book.tables.lasso_choices`) formatted: validation accuracy (the
    selection criterion), the test accuracy reported but not used, non-zeros, the choices."""
    require_columns(search, ["beta", "lam", "lam_first", "train_acc", "val_acc", "test_acc", "nonzeros", "weights",
                      "chosen_for_beta", "chosen"], "the search frame")
    choice = [("best overall" if c else "best for its β") if cb else "" for cb, c in
              zip(search["chosen_for_beta"], search["chosen"])]
    return pd.DataFrame({
        "β": search["beta"].map(lambda v: f"{v:g}"), "λ": search["lam"].map(lambda v: f"{v:.0e}"),
        "λ_first": search["lam_first"].map(lambda v: f"{v:.0e}"),
        "validation acc. (%)": (search["val_acc"] * 100).map(number),
        "test acc. (%, not used)": (search["test_acc"] * 100).map(number),
        "train acc. (%)": (search["train_acc"] * 100).map(number),
        "non-zeros (%)": (100 * search["nonzeros"] / search["weights"]).map(lambda v: number(v, 1)),
        "chosen on validation": choice,
    })


def lasso_heatmaps(search: pd.DataFrame) -> Figure:
    """Validation accuracy of the search, one panel per β, over λ (x) and λ_first / λ (y); the
    (λ, λ_first) chosen for each β is boxed. One shared colour bar (its own axes)."""
    require_columns(search, ["beta", "lam", "lam_first", "val_acc"], "the search frame")
    if search.empty:
        raise ValueError("the search frame has no rows")
    import numpy as np

    search = search.assign(factor=(search["lam_first"] / search["lam"]).round(6), val=search["val_acc"] * 100)
    betas = sorted(search["beta"].unique())
    lams, factors = sorted(search["lam"].unique()), sorted(search["factor"].unique())
    fig = Figure(figsize=(2.2 + 2.4 * len(betas), 2.0 + 0.35 * len(factors)), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(betas), sharey=True))
    low, high = search["val"].min(), search["val"].max()
    image = None
    for ax, beta in zip(axes, betas):
        part = search[search["beta"] == beta]
        grid = part.pivot_table(index="factor", columns="lam", values="val").reindex(index=factors, columns=lams)
        image = ax.imshow(grid.to_numpy(), origin="lower", cmap="viridis", vmin=low, vmax=high + 1e-9,
                          aspect="auto")
        for (i, f), (j, lam) in ((a, b) for a in enumerate(factors) for b in enumerate(lams)):
            value = grid.loc[f, lam]
            if not pd.isna(value):
                bright = high > low and (value - low) / (high - low) > 0.6  # viridis is light at the top
                ax.text(j, i, f"{value:.1f}", ha="center", va="center", fontsize="small",
                        color="black" if bright else "white")
        if "chosen_for_beta" in part.columns:
            for row in part[part["chosen_for_beta"]].itertuples(index=False):
                j, i = lams.index(row.lam), factors.index(row.factor)
                ax.add_patch(_box(j, i))
        ax.set_xticks(range(len(lams)), [f"{v:.0e}" for v in lams], fontsize="small")
        ax.set_yticks(range(len(factors)), [f"{v:g}" for v in factors])
        ax.set_title(f"β = {beta:g}", fontsize="medium")
        ax.set_xlabel("λ")
    axes[0].set_ylabel("λ_first / λ")
    fig.colorbar(image, ax=list(axes), label="validation accuracy (%)")
    return fig


def _box(x: float, y: float):
    from matplotlib.patches import Rectangle

    return Rectangle((x - 0.5, y - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=2.5)


def table2_accuracy_table(table2: pd.DataFrame, layers: pd.DataFrame, *, paper_label: str) -> pd.DataFrame:
    """Table 2 formatted: per row the β-LASSO settings, our validation / test accuracy, first-layer
    and total non-zeros of weights, and the paper's test accuracy in a labelled column.
    ``table2``: :func:`companion.book.tables.table2`'s frame; ``layers``: :func:`companion.book.tables.table2_layers`."""
    require_columns(table2, ["row", "beta", "lam", "lam_first", "val_acc", "test_acc", "paper"], "the Table 2 frame")
    require_columns(layers, ["row", "first_weights", "first_nonzeros", "total_weights", "total_nonzeros"],
             "the Table 2 layers frame")
    merged = table2.merge(layers, on="row", how="left", suffixes=("", "_layers"))

    def setting(v, fmt):
        return "—" if pd.isna(v) else fmt(v)

    return pd.DataFrame({
        "model, training": merged["row"],
        "β": merged["beta"].map(lambda v: setting(v, lambda x: f"{x:g}")),
        "λ / λ_first": [setting(a, lambda x: f"{x:.0e}") + (" / " + f"{b:.0e}" if not pd.isna(b) else "")
                        for a, b in zip(merged["lam"], merged["lam_first"])],
        "val. acc. (%)": merged["val_acc"].map(number),
        "test acc. (%)": merged["test_acc"].map(number),
        "1st layer non-zeros / weights": [f"{int(n):,} / {int(w):,}" for n, w in
                                          zip(merged["first_nonzeros"], merged["first_weights"])],
        "all non-zeros / weights": [f"{int(n):,} / {int(w):,}" for n, w in
                                    zip(merged["total_nonzeros"], merged["total_weights"])],
        paper_label: merged["paper"].map(number),
    })


def literature_table(rows) -> pd.DataFrame:
    """The paper's Table 2 rows that report other works (``paper.TABLE2`` entries whose model is
    an "MLP (author, year)"), test accuracy (%) as printed in the paper."""
    out = []
    for model, method, accs in rows:
        if model.startswith("MLP (") and not model.startswith(("MLP (S-FC", "MLP (3-FC")):
            out.append({"model (as cited in the paper)": model, "training method": method,
                        **{name: number(accs.get(key)) for key, name in
                           (("cifar10", "CIFAR-10"), ("cifar100", "CIFAR-100"), ("svhn", "SVHN"))}})
    if not out:
        raise ValueError("no literature rows (model 'MLP (author, year)') in the given Table 2 rows")
    return pd.DataFrame(out)


def figure5_figure(figure5: pd.DataFrame) -> Figure:
    """Figure 5 at this scale: ResNet18's test accuracy against kernel size, SGD and β-LASSO
    (left); the fraction of non-zero convolution weights (right).
    ``figure5``: :func:`companion.book.tables.figure5_table`."""
    require_columns(figure5, ["kernel_size", "optimizer", "test_acc", "conv_nonzero_frac"], "the Figure 5 frame")
    fig = Figure(figsize=(8, 3.4), layout="constrained")
    ax_acc, ax_nnz = fig.subplots(1, 2)
    for optimizer, rows in figure5.groupby("optimizer", sort=False):
        label, colour, marker = _OPTIMIZER_STYLE.get(optimizer, (optimizer, "black", "^"))
        rows = rows.sort_values("kernel_size")
        ax_acc.plot(rows["kernel_size"], rows["test_acc"], marker=marker, color=colour, label=label)
        ax_nnz.plot(rows["kernel_size"], 100 * rows["conv_nonzero_frac"], marker=marker, color=colour, label=label)
    kernels = sorted(figure5["kernel_size"].unique())
    for ax, ylabel in ((ax_acc, "test accuracy (%)"), (ax_nnz, "non-zero conv weights (%)")):
        ax.set_xticks(kernels, [f"{k}×{k}" for k in kernels])
        ax.set_xlabel("kernel size")
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small", frameon=False)
    ax_nnz.set_ylim(0, 105)
    return fig


def claims_table(claims: pd.DataFrame) -> pd.DataFrame:
    """:func:`companion.book.tables.claims` formatted: claim, the paper's evidence, ours, holds here, scale."""
    require_columns(claims, ["id", "claim", "paper", "ours", "holds", "scale", "train_min", "train_max", "underfit"],
                    "the claims frame")
    fit = [f"{lo:.0f}–{hi:.0f} %" + (" (underfit)" if u else "")
           for lo, hi, u in zip(claims["train_min"], claims["train_max"], claims["underfit"])]
    return pd.DataFrame({
        "": [f"({i})" for i in claims["id"]], "claim (paper section)": claims["claim"],
        "paper's evidence": claims["paper"], "this book's evidence": claims["ours"],
        "holds here?": claims["holds"].map(_yes), "training accuracy of its runs": fit,
        "profile / scale": claims["scale"],
    })

"""The frames behind each table and figure (Tables 1, 2, Figures 2/3/5/6, the permutation
test, Theorem 2), built from a :class:`~companion.experiments.study.Study`'s FINISHED runs only
(:meth:`~companion.experiments.study.Study.finished` raises one error listing what is missing and
how to train it). Runs are keyed by
:class:`~companion.experiments.runs.RunKey`; a frame's ``row`` is the key's label
(:func:`companion.book.labels.run_label`)."""

from __future__ import annotations

import pandas as pd

from companion import paper
from companion.book.labels import reference_dataset, run_label
from companion.experiments.profiles import Profile
from companion.experiments.runs import (BEST_LASSO, RunKey, S_CONV_SGD, S_FC_SGD, S_LOCAL_SGD, TABLE1_MODELS,
                                        figure5_configs, permutation_configs, scaling_configs, table1_alphas,
                                        table1_configs)
from companion.experiments.search import summary_row
from companion.experiments.study import Study
from companion.nn.analysis import theorem2
from companion.nn.models import build_model
from companion.nn.params import count_params, fc_counterpart

#: Figure 3's reference networks (same α as S-FC): the weights of their layers are the dashed lines
REFERENCE_ROWS = {"S-CONV": S_CONV_SGD, "S-LOCAL": S_LOCAL_SGD, "S-FC": S_FC_SGD}
#: paper.TABLE2's network name of each model of our Table 2
PAPER_NETWORKS = {"s-conv": "S-CONV", "s-local": "S-LOCAL", "3-fc": "MLP (3-FC)", "s-fc": "MLP (S-FC)"}


def paper_table2(key: RunKey, dataset: str) -> float | None:
    """The paper's Table 2 test accuracy of the row ``key`` on ``dataset`` (None where it has none)."""
    if key.chosen == "best":
        return None
    method = "SGD" if key.optimizer == "sgd" else f"beta-LASSO (beta={key.beta:g})"
    rows = {(net, meth): accs for net, meth, accs in paper.TABLE2}
    return rows.get((PAPER_NETWORKS.get(key.model), method), {}).get(dataset)


def table2_runs(study: Study) -> dict[RunKey, object]:
    """Table 2's finished runs, row key → Run (its β-LASSO rows chosen on the finished search)."""
    configs = study.table2_configs
    return dict(zip(configs, study.finished(configs.values())))


def table1(study: Study) -> pd.DataFrame:
    """Table 1 at this scale: parameters, short/long test accuracy, the paper's beside."""
    p = study.profile
    configs = table1_configs(p)
    runs = study.finished(configs)
    by = {(c.model, c.epochs): r for c, r in zip(configs, runs)}
    alphas = table1_alphas(p)
    ref = reference_dataset(p)
    rows = []
    for name in TABLE1_MODELS:
        short, long = by[(name, p.epochs_short)], by[(name, p.epochs_long)]
        paper_acc = paper.TABLE1_ACCURACY[name]
        rows.append({
            "model": name, "alpha": alphas[name],
            "params_M": count_params(name, alphas[name]) / 1e6,
            "fc_emb_M": count_params(fc_counterpart(name), alphas[name]) / 1e6,
            "short_test": short.summary["final_test_acc"] * 100,
            "long_test": long.summary["final_test_acc"] * 100,
            "short_train": short.summary["final_train_acc"] * 100,
            "long_train": long.summary["final_train_acc"] * 100,
            "paper_400": paper_acc.get((ref, 400)), "paper_4000": paper_acc.get((ref, 4000)),
        })
    return pd.DataFrame(rows)


def table2(study: Study) -> tuple[pd.DataFrame, dict]:
    """Table 2 at this scale, and the runs behind it, row key → Run (for Figures 3, 4, 7–9 and
    Theorem 2)."""
    runs = table2_runs(study)
    ref = reference_dataset(study.profile)
    rows = []
    for key, run in runs.items():
        c, lasso = run.config, run.config.optimizer == "beta-lasso"
        rows.append({"row": run_label(key), "beta": c.beta if lasso else None, "lam": c.lam if lasso else None,
                     "lam_first": c.lam_first if lasso else None, **summary_row(run),
                     "paper": paper_table2(key, ref)})
    df = pd.DataFrame(rows)
    for col in ("train_acc", "val_acc", "test_acc"):
        df[col] = df[col] * 100
    return df, runs


def scaling(study: Study) -> pd.DataFrame:
    """Figures 2 and 6: train / test accuracy against parameters as α grows."""
    configs = scaling_configs(study.profile)
    runs = study.finished(configs)
    rows = [{"model": c.model, "alpha": c.alpha, "params": count_params(c.model, c.alpha),
             "train_acc": r.summary["final_train_acc"] * 100, "test_acc": r.summary["final_test_acc"] * 100}
            for c, r in zip(configs, runs)]
    return pd.DataFrame(rows)


def fewest_params_to_fit(scaling_df: pd.DataFrame, train_acc: float) -> pd.DataFrame:
    """Figure 2, right: per family, the fewest parameters reaching ``train_acc`` (%) on the
    training set, and the family's best test accuracy (NaN parameters if none reaches it)."""
    rows = []
    for model, part in scaling_df.groupby("model", sort=False):
        fit = part[part["train_acc"] >= train_acc]
        rows.append({"model": model, "train_acc_target": train_acc,
                     "min_params": fit["params"].min() if len(fit) else float("nan"),
                     "best_test_acc": part["test_acc"].max()})
    return pd.DataFrame(rows)


def figure5(study: Study) -> pd.DataFrame:
    """Figure 5: ResNet18 per kernel size and optimizer (β-LASSO at S-FC's best setting)."""
    configs = figure5_configs(study.profile, study.lasso_selection["best"])
    runs = study.finished(configs)
    rows = [{"kernel_size": c.kernel_size, "optimizer": c.optimizer, **summary_row(r)}
            for c, r in zip(configs, runs)]
    df = pd.DataFrame(rows)
    for col in ("train_acc", "val_acc", "test_acc"):
        df[col] = df[col] * 100
    return df


def permutation(study: Study) -> tuple[pd.DataFrame, dict]:
    """The permutation test (Section 4.1): test accuracy of Table 2's S-* rows on original and on
    pixel-permuted images, and the runs, (row key, permuted) → Run."""
    configs = permutation_configs(study.table2_configs)
    runs = dict(zip(configs, study.finished(configs.values())))
    df = pd.DataFrame([{"row": run_label(key), "permuted": permuted, **summary_row(run)}
                       for (key, permuted), run in runs.items()])
    df["test_acc"] *= 100
    table = df.pivot(index="row", columns="permuted", values="test_acc").rename(
        columns={False: "original", True: "permuted"})
    table["difference"] = table["permuted"] - table["original"]
    return table.reindex([run_label(k) for k, perm in configs if not perm]), runs


def theorem2_table(p: Profile, runs: dict, *, bits: int | None = None, delta: float = 0.05) -> pd.DataFrame:
    """Theorem 2's terms for each trained network of Table 2, all embedded in S-FC (n = S-FC's
    weights). k: distinct non-zero parameters (weights shared by a convolution count once);
    ‖w‖₀: non-zeros of the network written as an S-FC (the trainer's
    ``first_layer.embedded_nonzeros``, :func:`companion.nn.analysis.embedded_nonzeros`, plus the
    other layers' non-zeros); m: training images."""

    bits = bits or (16 if p.name == "paper" else 32)
    n = count_params("s-fc", p.s_alpha)
    rows = []
    for key, run in runs.items():
        s = run.summary
        first = s["first_layer"]["layer"]
        other_nnz = sum(v for k, v in s["nonzeros"].items() if k != first)
        embedded = s["first_layer"]["embedded_nonzeros"] + other_nnz
        k = s["total_nonzeros"]
        m = s["dataset"]["n_train"]
        t = theorem2(n=n, k=k, nonzeros=embedded, m=m, train_error=1 - s["final_train_acc"], b=bits, delta=delta)
        rows.append({"row": run_label(key), **t, "train_acc": s["final_train_acc"] * 100,
                     "test_acc": s["final_test_acc"] * 100})
    return pd.DataFrame(rows)


def table2_layers(runs: dict) -> pd.DataFrame:
    """Per Table 2 row: first layer (at the convolution's position) weights and non-zeros, and
    all weight layers' (Figure 3's quantities), from the runs' summaries."""
    rows = []
    for key, run in runs.items():
        s = run.summary
        first = s["first_layer"]["layer"]
        rows.append({"row": run_label(key), "first_layer": first, "first_weights": s["params"][first],
                     "first_nonzeros": s["nonzeros"][first], "first_units": s["first_layer"]["units"],
                     "total_weights": s["total_weights"], "total_nonzeros": s["total_nonzeros"]})
    return pd.DataFrame(rows)


def figure5_table(study: Study) -> pd.DataFrame:
    """:func:`figure5` with the non-zero weights of the convolutions (all ResNet18 conv layers,
    ``model.conv_positions``): ``conv_weights``, ``conv_nonzeros``, ``conv_nonzero_frac``."""

    df = figure5(study)
    configs = figure5_configs(study.profile, study.lasso_selection["best"])
    runs = {run.run_id: run for run in study.finished(configs)}
    weights, nonzeros = [], []
    for run_id in df["run_id"]:
        s = runs[run_id].summary
        c = s["config"]
        convs = build_model(c["model"], c["alpha"], kernel_size=c["kernel_size"], device="meta").conv_positions
        weights.append(sum(s["params"][name] for name in convs))
        nonzeros.append(sum(s["nonzeros"][name] for name in convs))
    df["conv_weights"], df["conv_nonzeros"] = weights, nonzeros
    df["conv_nonzero_frac"] = df["conv_nonzeros"] / df["conv_weights"]
    return df


def layer_name(layer: str) -> str:
    """``conv1.layer`` → ``conv1`` (the tables' name of a weight layer)."""
    return layer.removesuffix(".layer")


def distinct_runs(runs: dict) -> dict:
    """``runs`` (row key → Run) with each run once, in order: Table 2's best-β row repeats one of
    the β rows, whose key becomes ``chosen="beta+best"`` (labelled e.g. ``S-FC, β-LASSO (β=50;
    best on validation)``)."""
    out: dict = {}
    key_of: dict[str, RunKey] = {}
    for key, run in runs.items():
        first = key_of.get(run.run_id)
        if first is None:
            out[key] = run
            key_of[run.run_id] = key
            continue
        if key.chosen != "best" or first.chosen != "beta":
            raise ValueError(f"rows {run_label(first)!r} and {run_label(key)!r} are the same run {run.run_id}")
        merged = first._replace(chosen="beta+best")
        out = {merged if k == first else k: v for k, v in out.items()}
        key_of[run.run_id] = merged
    return out


def lasso_runs(runs: dict) -> dict:
    """The distinct β-LASSO runs among ``runs`` (:func:`distinct_runs`), row key → Run."""
    return {k: r for k, r in distinct_runs(runs).items() if r.config.optimizer == "beta-lasso"}


def _best_id(runs: dict) -> str | None:
    return runs[BEST_LASSO].run_id if BEST_LASSO in runs else None


def nonzeros_curves(runs: dict) -> pd.DataFrame:
    """Figure 3: non-zero weights of each weight layer at every epoch, for each distinct β-LASSO
    run of Table 2 (``runs`` as :func:`table2` returns them). Columns ``row, method`` (the label
    without the network: every row is S-FC), ``run_id, beta, best``
    (the run chosen on validation), ``epoch, layer`` (e.g. ``conv1``), ``nonzeros, weights``."""
    best = _best_id(runs)
    rows = []
    for key, run in lasso_runs(runs).items():
        metrics = run.metrics
        for layer, weights in run.summary["params"].items():
            column = f"nonzeros.{layer}"
            if column not in metrics.columns:
                raise ValueError(f"run {run.run_id} has no per-epoch {column!r}")
            part = metrics[["epoch", column]].dropna()
            rows += [{"row": run_label(key), "method": run_label(key, with_model=False), "run_id": run.run_id,
                      "beta": run.config.beta, "best": run.run_id == best,
                      "epoch": int(epoch), "layer": layer_name(layer), "nonzeros": int(nnz), "weights": int(weights)}
                     for epoch, nnz in part.itertuples(index=False)]
    return pd.DataFrame(rows, columns=["row", "method", "run_id", "beta", "best", "epoch", "layer", "nonzeros",
                                       "weights"])


def layer_references(runs: dict) -> pd.DataFrame:
    """Figure 3's reference lines: the weights of each layer of S-CONV, S-LOCAL and S-FC (same α),
    read from the trained SGD runs of Table 2. One row per layer; columns ``layer`` and the three
    networks (:data:`REFERENCE_ROWS`)."""
    missing = [row for row in REFERENCE_ROWS.values() if row not in runs]
    if missing:
        raise ValueError(f"runs lack Table 2 rows {[run_label(k) for k in missing]}")
    weights = {net: {layer_name(k): v for k, v in runs[row].summary["params"].items()}
               for net, row in REFERENCE_ROWS.items()}
    layers = list(weights["S-FC"])
    for net, per_layer in weights.items():
        if list(per_layer) != layers:
            raise ValueError(f"{net}'s layers {list(per_layer)} differ from S-FC's {layers}")
    return pd.DataFrame([{"layer": layer, **{net: weights[net][layer] for net in weights}} for layer in layers])


def sparsity_table(runs: dict) -> pd.DataFrame:
    """Figure 3's final values: per layer, the weights of S-CONV, S-LOCAL and S-FC and the non-zero
    weights after training of each distinct β-LASSO run (one column per run, its label)."""
    table = layer_references(runs).rename(columns={net: f"{net} weights" for net in REFERENCE_ROWS})
    for key, run in lasso_runs(runs).items():
        table[run_label(key)] = [run.summary["nonzeros"][layer] for layer in run.summary["params"]]
    return table


def figure3_runs(runs: dict) -> dict:
    """The runs Figure 3 draws on: the reference SGD runs and the distinct β-LASSO runs."""
    refs = {key: runs[key] for key in REFERENCE_ROWS.values()}
    return {**refs, **lasso_runs(runs)}



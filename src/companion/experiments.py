"""The runs behind each table and figure, at a scale profile (the notebooks' one entry point).

Each ``*_configs(profile)`` lists the :class:`~companion.config.TrainConfig` an artifact needs;
each table function trains what is missing (``train`` returns finished runs from the results
store without retraining) and returns a DataFrame the notebook draws. Model selection uses
validation accuracy only (Appendix A.2); test accuracy is reported, never used to choose.

=====================  ==================================================================
artifact               runs
=====================  ==================================================================
Table 1                the seven networks at a common FC budget, SGD, short and long
λ/β search             S-FC β-LASSO, short, over the profile's β × λ × λ_first grid
Table 2, Figure 3      S-FC SGD and β-LASSO (β = 0, 1, 50, best) long; S-LOCAL, S-CONV SGD
Figures 4, 7–9         first-layer filters of the Table 2 runs
Figures 2, 6           D-CONV, S-CONV, 3-FC, ResNet18 as α grows, SGD, short
Figure 5               ResNet18 with each kernel size, SGD vs β-LASSO, short
permutation            Table 2's S-* runs again on pixel-permuted images, long
=====================  ==================================================================
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from companion import paper
from companion.config import TrainConfig
from companion.params import alpha_for_budget, count_params, fc_counterpart
from companion.profiles import Profile

TABLE1_MODELS = ("d-conv", "d-local", "d-fc", "s-conv", "s-local", "s-fc", "3-fc")
SCALING_FAMILIES = ("d-conv", "s-conv", "3-fc", "resnet18")
#: the fixed pixel permutation of the permutation test (any seed; recorded in the run config)
PERMUTATION_SEED = 1


def results_dir(profile: Profile, root: str | os.PathLike | None = None) -> Path:
    """``root`` if given, else ``$COMPANION_RESULTS/<profile>``, else the book's
    ``results/<profile>`` (the nearest folder, from the working directory up, that holds the
    book's ``_toc.yml``; notebooks run from ``notebooks/`` and the CLI from the top both find
    it), else ``./results/<profile>``."""
    if root is not None:
        return Path(root)
    if "COMPANION_RESULTS" in os.environ:
        return Path(os.environ["COMPANION_RESULTS"]) / profile.name
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / "_toc.yml").is_file():
            return folder / "results" / profile.name
    return Path("results") / profile.name


# ------------------------------------------------------------------------------ configs
def _config(p: Profile, model: str, alpha: int, epochs: int, **changes) -> TrainConfig:
    return TrainConfig(
        model=model, alpha=alpha, epochs=epochs, dataset=p.dataset, data_root=p.data_root,
        batch_size=p.batch_size, augment=p.augment, subset=p.train_size, val_size=p.val_size,
        seed=p.seed, device=p.device, track_every=p.track_every, **changes,
    )


def sgd(p: Profile, model: str, alpha: int, epochs: int, **changes) -> TrainConfig:
    """SGD with the profile's momentum and weight decay (Appendix A.2)."""
    return _config(p, model, alpha, epochs, optimizer="sgd", momentum=p.sgd_momentum,
                   weight_decay=p.sgd_weight_decay, **changes)


def beta_lasso(p: Profile, model: str, alpha: int, epochs: int, *, lam: float, lam_first: float,
               beta: float, **changes) -> TrainConfig:
    """β-LASSO (Algorithm 1), no momentum (Appendix A.2)."""
    return _config(p, model, alpha, epochs, optimizer="beta-lasso", lam=lam, lam_first=lam_first,
                   beta=beta, **changes)


def table1_alphas(p: Profile) -> dict[str, int]:
    """α of each Table 1 network: the smallest whose FC counterpart reaches the budget."""
    budget = p.fc_budget
    return {name: alpha_for_budget(name, budget) for name in TABLE1_MODELS}


def table1_configs(p: Profile) -> list[TrainConfig]:
    alphas = table1_alphas(p)
    return [sgd(p, name, alphas[name], epochs) for epochs in (p.epochs_short, p.epochs_long)
            for name in TABLE1_MODELS]


def search_configs(p: Profile) -> list[TrainConfig]:
    """S-FC β-LASSO over β × λ × λ_first/λ, short training (Appendix A.2's search, rescaled)."""
    return [beta_lasso(p, "s-fc", p.s_alpha, p.epochs_short, lam=lam, lam_first=lam * f, beta=beta)
            for beta in p.betas for lam in p.lambdas for f in p.lam_first_factors]


def ensure(configs, root, *, progress: bool = True) -> list:
    """Train every config that has no finished run in ``root`` (resuming unfinished ones)."""
    from companion.training import train

    runs = []
    for i, config in enumerate(configs, 1):
        if progress:
            print(f"[{i}/{len(configs)}] {config.model} α={config.alpha} {config.optimizer} "
                  f"{config.epochs} ep ({config.run_id()})", flush=True)
        runs.append(train(config, root=root, resume=True, progress=progress))
    return runs


def _summary_row(run) -> dict:
    s = run.summary
    return {"train_acc": s["final_train_acc"], "val_acc": s["final_val_acc"], "test_acc": s["final_test_acc"],
            "nonzeros": s["total_nonzeros"], "weights": s["total_weights"], "wall_s": s["wall_time_s"],
            "run_id": run.run_id}


def lasso_search(p: Profile, root=None, *, progress: bool = True) -> pd.DataFrame:
    """The β-LASSO search: one row per (β, λ, λ_first), with validation and test accuracy."""
    configs = search_configs(p)
    runs = ensure(configs, results_dir(p, root), progress=progress)
    rows = [{"beta": c.beta, "lam": c.lam, "lam_first": c.lam_first, **_summary_row(r)}
            for c, r in zip(configs, runs)]
    return pd.DataFrame(rows)


def best_lasso(p: Profile, root=None, *, beta: float | None = None, progress: bool = True) -> dict:
    """(β, λ, λ_first) with the best validation accuracy in the search (for one β if given)."""
    search = lasso_search(p, root, progress=progress)
    if beta is not None:
        search = search[search["beta"] == beta]
    best = search.sort_values(["val_acc", "lam"], ascending=[False, True]).iloc[0]
    return {"beta": float(best["beta"]), "lam": float(best["lam"]), "lam_first": float(best["lam_first"])}


def table2_configs(p: Profile, root=None, *, progress: bool = True) -> dict[str, TrainConfig]:
    """Table 2's rows at this scale (long training); β-LASSO settings from the search."""
    a = p.s_alpha
    rows = {
        "S-CONV, SGD": sgd(p, "s-conv", a, p.epochs_long),
        "S-LOCAL, SGD": sgd(p, "s-local", a, p.epochs_long),
        "3-FC, SGD": sgd(p, "3-fc", table1_alphas(p)["3-fc"], p.epochs_long),
        "S-FC, SGD": sgd(p, "s-fc", a, p.epochs_long),
    }
    for beta in p.betas:
        hp = best_lasso(p, root, beta=beta, progress=progress)
        rows[f"S-FC, β-LASSO (β={beta:g})"] = beta_lasso(p, "s-fc", a, p.epochs_long, **hp)
    best = best_lasso(p, root, progress=progress)
    rows["S-FC, β-LASSO (best β on validation)"] = beta_lasso(p, "s-fc", a, p.epochs_long, **best)
    return rows


def scaling_configs(p: Profile) -> list[TrainConfig]:
    return [sgd(p, family, alpha, p.epochs_short) for family in SCALING_FAMILIES
            for alpha in p.scaling_alphas[family]]


def figure5_configs(p: Profile, root=None, *, progress: bool = True) -> list[TrainConfig]:
    """ResNet18 per kernel size: SGD, and β-LASSO with S-FC's best (β, λ) (not re-tuned)."""
    hp = best_lasso(p, root, progress=progress)
    out = []
    for k in p.resnet_kernels:
        out.append(sgd(p, "resnet18", p.resnet_alpha, p.epochs_short, kernel_size=k))
        out.append(beta_lasso(p, "resnet18", p.resnet_alpha, p.epochs_short, kernel_size=k, **hp))
    return out


def permutation_configs(p: Profile, root=None, *, progress: bool = True) -> dict[str, TrainConfig]:
    rows = table2_configs(p, root, progress=progress)
    keep = ["S-CONV, SGD", "S-LOCAL, SGD", "S-FC, SGD", "S-FC, β-LASSO (best β on validation)"]
    out = {}
    for name in keep:
        out[(name, False)] = rows[name]
        out[(name, True)] = rows[name].replace(permute_pixels=PERMUTATION_SEED)
    return out


def all_configs(p: Profile, root=None, *, progress: bool = True) -> list[TrainConfig]:
    """Every run of the book, in an order where the λ/β search precedes what depends on it."""
    configs = search_configs(p)
    ensure(configs, results_dir(p, root), progress=progress)
    configs += table1_configs(p) + list(table2_configs(p, root, progress=progress).values())
    configs += scaling_configs(p) + figure5_configs(p, root, progress=progress)
    configs += list(permutation_configs(p, root, progress=progress).values())
    seen, unique = set(), []
    for c in configs:
        if c.run_id() not in seen:
            seen.add(c.run_id())
            unique.append(c)
    return unique


def run_all(p: Profile, root=None, *, progress: bool = True) -> list:
    return ensure(all_configs(p, root, progress=progress), results_dir(p, root), progress=progress)


# ------------------------------------------------------------------------------ tables
def table1(p: Profile, root=None, *, progress: bool = True) -> pd.DataFrame:
    """Table 1 at this scale: parameters, short/long test accuracy, the paper's beside."""
    configs = table1_configs(p)
    runs = ensure(configs, results_dir(p, root), progress=progress)
    by = {(c.model, c.epochs): r for c, r in zip(configs, runs)}
    alphas = table1_alphas(p)
    ref = "cifar10" if p.dataset == "synthetic" else p.dataset
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


def table2(p: Profile, root=None, *, progress: bool = True) -> tuple[pd.DataFrame, dict]:
    """Table 2 at this scale, and the runs behind it (for Figures 3, 4, 7–9 and Theorem 2)."""
    configs = table2_configs(p, root, progress=progress)
    runs = dict(zip(configs, ensure(list(configs.values()), results_dir(p, root), progress=progress)))
    ref = "cifar10" if p.dataset == "synthetic" else p.dataset
    paper_rows = {f"{m.removeprefix('MLP (').removesuffix(')')}, {meth}": accs for m, meth, accs in paper.TABLE2}
    papers = {
        "S-CONV, SGD": paper_rows["S-CONV, SGD"].get(ref), "S-LOCAL, SGD": paper_rows["S-LOCAL, SGD"].get(ref),
        "3-FC, SGD": paper_rows["3-FC, SGD"].get(ref), "S-FC, SGD": paper_rows["S-FC, SGD"].get(ref),
        "S-FC, β-LASSO (β=0)": paper_rows["S-FC, beta-LASSO (beta=0)"].get(ref),
        "S-FC, β-LASSO (β=1)": paper_rows["S-FC, beta-LASSO (beta=1)"].get(ref),
        "S-FC, β-LASSO (β=50)": paper_rows["S-FC, beta-LASSO (beta=50)"].get(ref),
    }
    rows = []
    for label, config in configs.items():
        run = runs[label]
        rows.append({"row": label, "beta": config.beta if config.optimizer == "beta-lasso" else None,
                     "lam": config.lam if config.optimizer == "beta-lasso" else None,
                     "lam_first": config.lam_first if config.optimizer == "beta-lasso" else None,
                     **_summary_row(run), "paper": papers.get(label)})
    df = pd.DataFrame(rows)
    for col in ("train_acc", "val_acc", "test_acc"):
        df[col] = df[col] * 100
    return df, runs


def scaling(p: Profile, root=None, *, progress: bool = True) -> pd.DataFrame:
    """Figures 2 and 6: train / test accuracy against parameters as α grows."""
    configs = scaling_configs(p)
    runs = ensure(configs, results_dir(p, root), progress=progress)
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


def figure5(p: Profile, root=None, *, progress: bool = True) -> pd.DataFrame:
    configs = figure5_configs(p, root, progress=progress)
    runs = ensure(configs, results_dir(p, root), progress=progress)
    rows = [{"kernel_size": c.kernel_size, "optimizer": c.optimizer, **_summary_row(r)}
            for c, r in zip(configs, runs)]
    df = pd.DataFrame(rows)
    for col in ("train_acc", "val_acc", "test_acc"):
        df[col] = df[col] * 100
    return df


def permutation(p: Profile, root=None, *, progress: bool = True) -> tuple[pd.DataFrame, dict]:
    configs = permutation_configs(p, root, progress=progress)
    runs = dict(zip(configs, ensure(list(configs.values()), results_dir(p, root), progress=progress)))
    rows = []
    for (label, permuted), run in runs.items():
        rows.append({"row": label, "permuted": permuted, **_summary_row(run)})
    df = pd.DataFrame(rows)
    df["test_acc"] *= 100
    table = df.pivot(index="row", columns="permuted", values="test_acc").rename(
        columns={False: "original", True: "permuted"})
    table["difference"] = table["permuted"] - table["original"]
    return table.reindex([k for k, perm in configs if not perm]), runs


def theorem2_table(p: Profile, runs: dict, *, bits: int | None = None, delta: float = 0.05) -> pd.DataFrame:
    """Theorem 2's terms for each trained network of Table 2, all embedded in S-FC (n = S-FC's
    weights). k: distinct non-zero parameters (weights shared by a convolution count once);
    ‖w‖₀: non-zeros of the network written as an S-FC; m: training images."""
    from companion.analysis import theorem2

    bits = bits or (16 if p.name == "paper" else 32)
    n = count_params("s-fc", p.s_alpha)
    rows = []
    for label, run in runs.items():
        s = run.summary
        first = s["first_layer"]["layer"]
        other_nnz = sum(v for k, v in s["nonzeros"].items() if k != first)
        embedded = s["first_layer"]["embedded_nonzeros"] + other_nnz
        k = s["total_nonzeros"]
        m = s["dataset"]["n_train"]
        t = theorem2(n=n, k=k, nonzeros=embedded, m=m, train_error=1 - s["final_train_acc"], b=bits, delta=delta)
        rows.append({"row": label, **t, "train_acc": s["final_train_acc"] * 100,
                     "test_acc": s["final_test_acc"] * 100})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------- CLI
def add_cli(subparsers) -> None:
    p = subparsers.add_parser("experiments", help="train every run the book needs, at a profile",
                              description="Train (or find in the results store) every run behind the book's "
                                          "tables and figures, at one scale profile.")
    p.add_argument("--profile", choices=("smoke", "cpu", "paper"), default="smoke")
    p.add_argument("--results-dir", default=None, help="results store (default results/<profile>)")
    p.add_argument("--data-root", default=None, help="dataset folder (default $COMPANION_DATA_ROOT)")
    p.add_argument("--device", default=None, help="auto, cpu, cuda, ... (default auto)")
    p.add_argument("--list", action="store_true", help="only list the runs and whether they are finished")
    p.set_defaults(func=_cli)


def _cli(args) -> int:
    from companion import profiles
    from companion.results import find_run

    prof = profiles.get(args.profile, data_root=args.data_root, device=args.device)
    root = results_dir(prof, args.results_dir)
    if args.list:
        configs = search_configs(prof) + table1_configs(prof) + scaling_configs(prof)
        for c in configs:
            state = "finished" if find_run(c, root) else "missing"
            print(f"{c.run_id()}  {state:8s}  {c.model} α={c.alpha} {c.optimizer} {c.epochs} ep")
        return 0
    runs = run_all(prof, root)
    print(f"{len(runs)} runs finished in {root}")
    return 0

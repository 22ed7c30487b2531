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


def pick_lasso(search: pd.DataFrame, beta: float | None = None) -> dict:
    """(β, λ, λ_first) of the row of :func:`lasso_search`'s frame with the best validation
    accuracy (among β = ``beta`` if given; ties go to the smaller λ)."""
    if beta is not None:
        search = search[search["beta"] == beta]
    best = search.sort_values(["val_acc", "lam"], ascending=[False, True]).iloc[0]
    return {"beta": float(best["beta"]), "lam": float(best["lam"]), "lam_first": float(best["lam_first"])}


def best_lasso(p: Profile, root=None, *, beta: float | None = None, progress: bool = True) -> dict:
    """(β, λ, λ_first) with the best validation accuracy in the search (for one β if given)."""
    return pick_lasso(lasso_search(p, root, progress=progress), beta)


def table2_configs(p: Profile, root=None, *, progress: bool = True) -> dict[str, TrainConfig]:
    """Table 2's rows at this scale (long training); β-LASSO settings from the search."""
    a = p.s_alpha
    rows = {
        "S-CONV, SGD": sgd(p, "s-conv", a, p.epochs_long),
        "S-LOCAL, SGD": sgd(p, "s-local", a, p.epochs_long),
        "3-FC, SGD": sgd(p, "3-fc", table1_alphas(p)["3-fc"], p.epochs_long),
        "S-FC, SGD": sgd(p, "s-fc", a, p.epochs_long),
    }
    search = lasso_search(p, root, progress=progress)
    for beta in p.betas:
        hp = pick_lasso(search, beta)
        rows[f"S-FC, β-LASSO (β={beta:g})"] = beta_lasso(p, "s-fc", a, p.epochs_long, **hp)
    best = pick_lasso(search)
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
    ‖w‖₀: non-zeros of the network written as an S-FC (the trainer's
    ``first_layer.embedded_nonzeros``, :func:`companion.analysis.embedded_nonzeros`, plus the
    other layers' non-zeros); m: training images."""
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


# ------------------------------------------------------------ chapter helpers: chapters 00, 02–05
# What the chapters 00, 02–05 say in words and check against the paper: the settings of a
# profile beside Appendix A.2's, the captions' data-dependent parts, and the paper's claims
# (Sections 2.2, 3, 4.1, 4.2) decided by rules stated in each docstring. Every check is a plain
# function of DataFrames / dicts (unit-tested on constructed inputs); only the functions that
# take a profile gather runs (through the table functions above, which train what is missing).

DATASET_LABELS = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100", "svhn": "SVHN", "synthetic": "synthetic"}
#: Section 2.2, observation (1): "much higher" is read as more than this factor
LOCALITY_FACTOR = 2.0
#: Table 2's row of the β-LASSO run chosen on validation (the one the claims use)
BEST_LASSO_ROW = "S-FC, β-LASSO (best β on validation)"


def model_label(name: str) -> str:
    """``s-conv`` → ``S-CONV``, ``resnet18`` → ``ResNet18`` (the paper's spelling)."""
    return "ResNet18" if name == "resnet18" else name.upper()


def reference_dataset(p: Profile) -> str:
    """The dataset whose paper numbers sit beside ours: the profile's, CIFAR-10 for synthetic data."""
    return "cifar10" if p.dataset == "synthetic" else p.dataset


def paper_label(p: Profile, epochs: int | None = None) -> str:
    """Label of a column of the paper's numbers, e.g. ``paper, 400 ep., CIFAR-10``."""
    ep = f", {epochs} ep." if epochs else ""
    return f"paper{ep}, {DATASET_LABELS[reference_dataset(p)]}"


def _fmt(value, digits: int = 2) -> str:
    if value is None or value != value:
        return "—"
    return f"{value:.{digits}f}"


def _sci(value: float) -> str:
    """1e-05 → 1·10⁻⁵ (the paper's way of writing λ)."""
    if value == 0:
        return "0"
    mantissa, exponent = f"{value:.0e}".split("e")
    sup = str(int(exponent)).translate(str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹"))
    return f"10{sup}" if mantissa == "1" else f"{mantissa}·10{sup}"


def _listing(values) -> str:
    return ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values)


def first_summary(configs, root) -> dict:
    """The summary of the first finished run among ``configs`` (they share the data split)."""
    from companion.results import find_run

    for config in configs:
        run = find_run(config, root)
        if run is not None:
            return run.summary
    raise FileNotFoundError(f"none of the {len(configs)} runs is finished in {root}; "
                            "call the chapter's table function first (it trains missing runs)")


def describe_data(p: Profile, summary: dict) -> str:
    """The data of a run: dataset, images used for training / held out / tested."""
    d = summary["dataset"]
    name = f"{DATASET_LABELS[p.dataset]} data"
    if p.dataset == "synthetic":
        name += " (the label is which local patch is planted: the numbers are a pipeline check, not a result)"
    return (f"{name}: {d['n_train']:,} training images, {d['n_val']:,} held out for validation (used only "
            f"to choose hyper-parameters), {d['n_test']:,} test images")


def describe_alphas(configs) -> str:
    """α of each network among ``configs``, e.g. ``α: S-CONV 2; 3-FC 452``."""
    alphas: dict[str, list[int]] = {}
    for c in configs:
        alphas.setdefault(model_label(c.model), [])
        if c.alpha not in alphas[model_label(c.model)]:
            alphas[model_label(c.model)].append(c.alpha)
    return "α: " + "; ".join(f"{m} {_listing(sorted(a))}" for m, a in alphas.items())


def describe_optimizers(p: Profile, configs) -> str:
    """The optimizers of ``configs``: SGD's fixed settings; β-LASSO's grid or values."""
    parts = []
    lr = configs[0].lr
    if any(c.optimizer == "sgd" for c in configs):
        parts.append(f"SGD (learning rate {lr:g} cosine-annealed to 0, momentum {p.sgd_momentum:g}, "
                     f"weight decay {_sci(p.sgd_weight_decay)})")
    lasso = [c for c in configs if c.optimizer == "beta-lasso"]
    if lasso:
        settings = sorted({(c.beta, c.lam, c.lam_first) for c in lasso})
        if len(settings) == 1:
            beta, lam, lam_first = settings[0]
            what = f"β = {beta:g}, λ = {_sci(lam)}, λ_first = {_sci(lam_first)}"
        else:
            what = "β, λ, λ_first as listed"
        parts.append(f"β-LASSO (Algorithm 1, no momentum, learning rate {lr:g} cosine-annealed; {what})")
    return "; ".join(parts)


def describe_setting(p: Profile, root, configs) -> str:
    """The caption's account of a set of runs: profile, hardware, data sizes, epochs, α, batch,
    augmentation and optimizer settings (all read from the profile and the runs)."""
    configs = list(configs)
    if not configs:
        raise ValueError("describe_setting needs at least one TrainConfig")
    epochs = sorted({c.epochs for c in configs})
    names = {p.epochs_short: "short", p.epochs_long: "long"}
    ep = " / ".join(f"{e} ({names[e]})" if e in names else str(e) for e in epochs)
    return (f"Profile {p.name} ({p.hardware}); {describe_data(p, first_summary(configs, root))}; "
            f"epochs {ep}; batch {configs[0].batch_size}; {configs[0].augment} augmentation; "
            f"{describe_alphas(configs)}; {describe_optimizers(p, configs)}.")


# ------------------------------------------------------------ settings: paper vs profile
#: topic -> (setting, the paper's (Appendix A.2 unless said), this profile's as a function of p)
_SETTINGS = {
    "data": ("data", "CIFAR-10, CIFAR-100, SVHN; a validation split picks every hyper-parameter",
             lambda p: (f"{DATASET_LABELS[p.dataset]}, {p.train_size:,} training images" if p.train_size
                        else f"{DATASET_LABELS[p.dataset]}, all training images")
             + f", {p.val_size:,} held out for validation (hyper-parameters picked on it, never on test)"),
    "epochs": ("epochs", "400 (Table 1's first column, Figures 2, 5, 6) and 4000 (Table 1's second "
               "column, Table 2, Figure 3)",
               lambda p: f"{p.epochs_short} (short, in place of 400) and {p.epochs_long} (long, in place of 4000)"),
    "batch": ("batch size", f"{paper.BATCH_SIZE}", lambda p: f"{p.batch_size}"),
    "augment": ("augmentation", "Fast AutoAugment policies (Lim et al., 2019)", lambda p: p.augment),
    "lr": ("learning rate", f"{paper.LR:g}, cosine annealing",
           lambda p: f"{TrainConfig.__dataclass_fields__['lr'].default:g}, cosine annealing to 0"),
    "sgd": ("SGD", f"momentum ∈ {{{_listing(paper.SGD_MOMENTA)}}} × weight decay ∈ "
                   f"{{{', '.join(_sci(w) for w in paper.SGD_WEIGHT_DECAYS)}}}, picked on validation",
            lambda p: f"momentum {p.sgd_momentum:g}, weight decay {_sci(p.sgd_weight_decay)} (fixed, not searched)"),
    "dropout": ("dropout", "with and without (last two layers), picked on validation",
                lambda p: "none (not searched)"),
    "budget": ("network size",
               lambda: "FC counterpart of about 256 M parameters (Section 2.2); the smallest α reaching it: "
                       f"D-CONV {alpha_for_budget('d-conv', paper.FC_BUDGET)}, "
                       f"S-CONV {alpha_for_budget('s-conv', paper.FC_BUDGET)}",
               lambda p: f"FC counterpart of at least {p.fc_budget:,} parameters (S-FC at α = {p.s_alpha})"),
    "lasso": ("β-LASSO", f"no momentum; β = {paper.BETA:g}; λ ∈ {{{', '.join(_sci(v) for v in paper.LAMBDAS)}}} "
                         "for the conv-position layer and the others separately, picked on validation",
              lambda p: f"no momentum; β ∈ {{{_listing(p.betas)}}}, λ ∈ {{{', '.join(_sci(v) for v in p.lambdas)}}}, "
                        f"λ_first = λ × {{{_listing(p.lam_first_factors)}}}; picked on validation after "
                        f"the short training ({p.epochs_short} epoch{'s' if p.epochs_short != 1 else ''})"),
    "scaling": ("α grid (Figures 2, 6)", "not listed; up to about a billion parameters (Section 3)",
                lambda p: "; ".join(f"{model_label(m)} {_listing(a)}" for m, a in p.scaling_alphas.items())),
    "resnet": ("ResNet18 (Figure 5)", "kernel sizes of Figure 5; β-LASSO and SGD as above",
               lambda p: f"α = {p.resnet_alpha}, kernel sizes {_listing(p.resnet_kernels)}; β-LASSO with "
                         "S-FC's best (β, λ, λ_first), not re-tuned"),
    "hardware": ("hardware", "V100 GPUs, 16-bit (batch-norm 32-bit)", lambda p: p.hardware),
}
SETTING_TOPICS = tuple(_SETTINGS)


def settings_comparison(p: Profile, topics=SETTING_TOPICS) -> pd.DataFrame:
    """The paper's training settings (Appendix A.2) beside this profile's, one row per topic
    of :data:`SETTING_TOPICS`."""
    if unknown := [t for t in topics if t not in _SETTINGS]:
        raise ValueError(f"unknown setting topic(s) {unknown}; known: {', '.join(SETTING_TOPICS)}")
    rows = [{"setting": _SETTINGS[t][0],
             "paper (Appendix A.2)": _SETTINGS[t][1]() if callable(_SETTINGS[t][1]) else _SETTINGS[t][1],
             f"this book (profile {p.name})": _SETTINGS[t][2](p)} for t in topics]
    return pd.DataFrame(rows)


# ------------------------------------------------------------ Table 1: Section 2.2's observations
def require_columns(frame: pd.DataFrame, columns, what: str) -> None:
    """One clear ``ValueError`` if ``frame`` (``what``, e.g. "the Table 2 frame") lacks any of
    ``columns``: the check every describe/plot function makes on the frame it is given."""
    if missing := [c for c in columns if c not in frame.columns]:
        raise ValueError(f"{what} lacks columns {missing}; expected {list(columns)}, it has {list(frame.columns)}")


def _accuracies(t1: pd.DataFrame, column: str) -> dict[str, float]:
    require_columns(t1, ["model", column], "the Table 1 frame")
    acc = dict(zip(t1["model"], t1[column].astype(float)))
    if missing := [m for m in TABLE1_MODELS if m not in acc]:
        raise ValueError(f"the Table 1 frame lacks rows for {missing}")
    return acc


def table1_gaps(acc: dict[str, float], *, factor: float = LOCALITY_FACTOR) -> list[dict]:
    """Section 2.2's observations (1), (3), (4) on one column of Table 1 (model → accuracy %).

    (1) for D and S: LOCAL − FC and CONV − LOCAL; holds when LOCAL − FC > 0 and exceeds
    ``factor`` × |CONV − LOCAL| (the paper's "much higher"). (3) S-FC − D-FC > 0. (4) S-FC − 3-FC > 0.
    """
    rows = []
    for depth in ("d", "s"):
        local_fc = acc[f"{depth}-local"] - acc[f"{depth}-fc"]
        conv_local = acc[f"{depth}-conv"] - acc[f"{depth}-local"]
        rows.append({"observation": f"(1) locality, {depth.upper()}: LOCAL − FC ≫ |CONV − LOCAL|",
                     "group": depth.upper(), "a": local_fc, "b": conv_local,
                     "holds": bool(local_fc > 0 and local_fc > factor * abs(conv_local))})
    for other, number in (("d-fc", 3), ("3-fc", 4)):
        diff = acc["s-fc"] - acc[other]
        rows.append({"observation": f"({number}) S-FC > {other.upper()}", "group": "S", "a": diff, "b": float("nan"),
                     "holds": bool(diff > 0)})
    return rows


def training_gains(short: dict[str, float], long: dict[str, float]) -> dict:
    """Section 2.2, observation (2): mean gain (long − short, pp) of S-CONV/LOCAL/FC and of
    D-CONV/LOCAL/FC; holds when the shallow networks gain more."""
    gains = {depth: sum(long[f"{depth}-{k}"] - short[f"{depth}-{k}"] for k in ("conv", "local", "fc")) / 3
             for depth in ("d", "s")}
    return {"observation": "(2) shallow (S) networks gain more from longer training than deep (D) ones (mean gain)",
            "group": "S vs D", "a": gains["s"], "b": gains["d"], "holds": bool(gains["s"] > gains["d"])}


def table1_observations(t1: pd.DataFrame, *, factor: float = LOCALITY_FACTOR) -> pd.DataFrame:
    """Section 2.2's observations checked on our Table 1 and on the paper's, by the same rules
    (:func:`table1_gaps`, :func:`training_gains`). ``a``/``b``: the two numbers compared (pp)."""
    columns = {"ours": ("short_test", "long_test"), "paper": ("paper_400", "paper_4000")}
    out = {}
    for who, (short_col, long_col) in columns.items():
        short, long = _accuracies(t1, short_col), _accuracies(t1, long_col)
        rows = []
        for training, acc in (("short", short), ("long", long)):
            rows += [{**r, "training": training} for r in table1_gaps(acc, factor=factor)]
        rows.append({**training_gains(short, long), "training": "short → long"})
        out[who] = pd.DataFrame(rows)
    ours, theirs = out["ours"], out["paper"]
    return pd.DataFrame({
        "observation": ours["observation"], "group": ours["group"], "training": ours["training"],
        "ours_a": ours["a"], "ours_b": ours["b"], "holds_here": ours["holds"],
        "paper_a": theirs["a"], "paper_b": theirs["b"], "holds_in_paper": theirs["holds"],
    })


def describe_observations(observations: pd.DataFrame) -> str:
    """A sentence counting the observations of :func:`table1_observations` that hold, ours and the paper's."""
    require_columns(observations, ["observation", "group", "training", "holds_here", "holds_in_paper"],
          "the observations frame")
    failed = [f"{o.split(' ')[0]}{' ' + g if o.startswith('(1)') else ''} {t}" for o, g, t, h in
              zip(observations["observation"], observations["group"], observations["training"],
                  observations["holds_here"]) if not h]
    n = len(observations)
    text = (f"On this book's numbers {n - len(failed)} of {n} checks hold"
            + (f" (not: {', '.join(failed)})" if failed else "")
            + f"; on the paper's numbers, by the same rules, {int(observations['holds_in_paper'].sum())} of {n}.")
    return text


# ------------------------------------------------------------ Figures 2 and 6
FIT_TARGET_RULE = ("the highest training accuracy that every family reaches at some α of the grid, i.e. "
                   "the smallest over the families of each family's best training accuracy")


def fit_target(scaling_df: pd.DataFrame) -> float:
    """Figure 2 (right)'s training accuracy to reach, chosen from the data: :data:`FIT_TARGET_RULE`."""
    require_columns(scaling_df, ["model", "train_acc"], "the scaling frame")
    if scaling_df.empty:
        raise ValueError("the scaling frame has no rows")
    return float(scaling_df.groupby("model")["train_acc"].max().min())


def orders_agree(fit: pd.DataFrame) -> bool:
    """Section 3's reading of Figure 2 (right): a family that fits the training set with fewer
    parameters has higher best test accuracy. True when every pair of families is concordant
    (strictly fewer parameters ⇒ strictly higher test accuracy; ties in parameters are not
    counted, ties in accuracy are discordant); False if a family never reaches the target."""
    require_columns(fit, ["model", "min_params", "best_test_acc"], "the fewest-params frame")
    if fit["min_params"].isna().any():
        return False
    rows = list(zip(fit["min_params"], fit["best_test_acc"]))
    return all(ta > tb for pa, ta in rows for pb, tb in rows if pa < pb)


def describe_fit(fit: pd.DataFrame) -> str:
    """A sentence on Figure 2 (right): the families ordered by parameters needed and by test accuracy."""
    require_columns(fit, ["model", "min_params", "best_test_acc"], "the fewest-params frame")
    by_params = [model_label(m) for m in fit.sort_values("min_params")["model"]]
    by_test = [model_label(m) for m in fit.sort_values("best_test_acc", ascending=False)["model"]]
    verdict = ("the two orders agree, as in the paper" if orders_agree(fit)
               else "the two orders do not agree here (the paper finds they do)")
    return (f"Fewest parameters to reach the target first: {', '.join(by_params)}; highest best test "
            f"accuracy first: {', '.join(by_test)}; {verdict}.")


# ------------------------------------------------------------ Table 2, β-LASSO
def table2_layers(runs: dict) -> pd.DataFrame:
    """Per Table 2 row: first layer (at the convolution's position) weights and non-zeros, and
    all weight layers' (Figure 3's quantities), from the runs' summaries."""
    rows = []
    for label, run in runs.items():
        s = run.summary
        first = s["first_layer"]["layer"]
        rows.append({"row": label, "first_layer": first, "first_weights": s["params"][first],
                     "first_nonzeros": s["nonzeros"][first], "first_units": s["first_layer"]["units"],
                     "total_weights": s["total_weights"], "total_nonzeros": s["total_nonzeros"]})
    return pd.DataFrame(rows)


def lasso_choices(p: Profile, root=None, *, progress: bool = True) -> pd.DataFrame:
    """:func:`lasso_search` with the selections of :func:`best_lasso` marked: ``chosen_for_beta``
    (the best (λ, λ_first) of each β, Table 2's β rows) and ``chosen`` (the best overall)."""
    search = lasso_search(p, root, progress=progress)

    def where(hp):
        return (search["beta"] == hp["beta"]) & (search["lam"] == hp["lam"]) & (search["lam_first"] == hp["lam_first"])

    chosen = {float(beta): pick_lasso(search, float(beta)) for beta in search["beta"].unique()}
    best = pick_lasso(search)
    search["chosen_for_beta"] = False
    for hp in chosen.values():
        search.loc[where(hp), "chosen_for_beta"] = True
    search["chosen"] = where(best)
    return search


def describe_lasso_choice(t2: pd.DataFrame) -> str:
    """The (β, λ, λ_first) Table 2's best-β row uses, and how it was chosen."""
    require_columns(t2, ["row", "beta", "lam", "lam_first", "val_acc"], "the Table 2 frame")
    best = t2[t2["row"] == BEST_LASSO_ROW]
    if best.empty:
        raise ValueError(f"the Table 2 frame has no row {BEST_LASSO_ROW!r}")
    b = best.iloc[0]
    return (f"β = {b['beta']:g}, λ = {_sci(b['lam'])} and λ_first = {_sci(b['lam_first'])}, the setting "
            "with the highest validation accuracy in the search (ties to the smaller λ); test accuracy "
            "was not used to choose")


# ------------------------------------------------------------ Figure 5
def figure5_table(p: Profile, root=None, *, progress: bool = True) -> pd.DataFrame:
    """:func:`figure5` with the non-zero weights of the convolutions (all ResNet18 conv layers,
    ``model.conv_positions``): ``conv_weights``, ``conv_nonzeros``, ``conv_nonzero_frac``."""
    from companion.models import build_model
    from companion.results import load_run

    df = figure5(p, root, progress=progress)
    folder = results_dir(p, root)
    weights, nonzeros = [], []
    for run_id in df["run_id"]:
        s = load_run(folder / run_id).summary
        c = s["config"]
        convs = build_model(c["model"], c["alpha"], kernel_size=c["kernel_size"], device="meta").conv_positions
        weights.append(sum(s["params"][name] for name in convs))
        nonzeros.append(sum(s["nonzeros"][name] for name in convs))
    df["conv_weights"], df["conv_nonzeros"] = weights, nonzeros
    df["conv_nonzero_frac"] = df["conv_nonzeros"] / df["conv_weights"]
    return df


def lasso_gains(f5: pd.DataFrame) -> pd.DataFrame:
    """Per kernel size: β-LASSO's test accuracy minus SGD's (pp)."""
    require_columns(f5, ["kernel_size", "optimizer", "test_acc"], "the Figure 5 frame")
    wide = f5.pivot_table(index="kernel_size", columns="optimizer", values="test_acc")
    if not {"sgd", "beta-lasso"} <= set(wide.columns):
        raise ValueError("the Figure 5 frame needs both optimizers 'sgd' and 'beta-lasso'")
    return pd.DataFrame({"kernel_size": wide.index, "gain": (wide["beta-lasso"] - wide["sgd"]).to_numpy()})


def describe_figure5(f5: pd.DataFrame) -> str:
    """A sentence on Figure 5: at how many kernel sizes β-LASSO beats SGD, and by how much."""
    gains = lasso_gains(f5)
    wins = int((gains["gain"] > 0).sum())
    each = ", ".join(f"{k}×{k}: {g:+.2f} pp" for k, g in zip(gains["kernel_size"], gains["gain"]))
    return (f"β-LASSO's test accuracy is above SGD's at {wins} of {len(gains)} kernel sizes "
            f"(β-LASSO − SGD: {each}).")


# ------------------------------------------------------------ claims (the summary chapter)
def accuracy_se(acc_pct: float, n: int) -> float:
    """Standard error (pp) of a test accuracy ``acc_pct`` (%) measured on ``n`` images."""
    p_ = acc_pct / 100
    return 100 * (p_ * (1 - p_) / n) ** 0.5


def claim_locality(t1: pd.DataFrame, *, factor: float = LOCALITY_FACTOR) -> dict:
    """(a) Section 2.2 (1): for D and S, after short and long training, LOCAL − FC > factor ×
    |CONV − LOCAL| (:func:`table1_gaps`)."""
    obs = table1_observations(t1, factor=factor)
    obs = obs[obs["observation"].str.startswith("(1)")]

    def text(a, b, trainings):
        return "; ".join(f"{g} {trainings[t]}: {x:.2f} vs {abs(y):.2f}"
                         for g, t, x, y in zip(obs["group"], obs["training"], a, b))

    return {"claim": "Local connectivity matters most: LOCAL beats FC by much more than CONV beats "
                     f"LOCAL, deep and shallow (Section 2.2 (1); 'much' read as > {factor:g}×)",
            "paper": "LOCAL − FC vs |CONV − LOCAL| (pp): "
                     + text(obs["paper_a"], obs["paper_b"], {"short": "400 ep.", "long": "4000 ep."}),
            "ours": "LOCAL − FC vs |CONV − LOCAL| (pp): "
                    + text(obs["ours_a"], obs["ours_b"], {"short": "short", "long": "long"}),
            "holds": bool(obs["holds_here"].all())}


def claim_longer_training(t1: pd.DataFrame) -> dict:
    """(d) Section 2.2 (2): shallow networks gain more from longer training than deep ones."""
    ours = training_gains(_accuracies(t1, "short_test"), _accuracies(t1, "long_test"))
    theirs = training_gains(_accuracies(t1, "paper_400"), _accuracies(t1, "paper_4000"))
    return {"claim": "Shallow networks gain more from longer training than deep ones (Section 2.2 (2))",
            "paper": f"mean gain 400 → 4000 ep.: S {theirs['a']:+.2f} pp, D {theirs['b']:+.2f} pp",
            "ours": f"mean gain short → long: S {ours['a']:+.2f} pp, D {ours['b']:+.2f} pp",
            "holds": ours["holds"]}


def claim_lasso_beats_sgd(t2: pd.DataFrame, *, n_test: int | None = None) -> dict:
    """(b) Section 4.1, Table 2: S-FC trained with β-LASSO (the run chosen on validation) has
    higher test accuracy than S-FC trained with SGD."""
    require_columns(t2, ["row", "test_acc", "paper"], "the Table 2 frame")
    by = t2.set_index("row")
    for row in ("S-FC, SGD", BEST_LASSO_ROW):
        if row not in by.index:
            raise ValueError(f"the Table 2 frame has no row {row!r}")
    sgd_acc, lasso_acc = float(by.loc["S-FC, SGD", "test_acc"]), float(by.loc[BEST_LASSO_ROW, "test_acc"])
    noise = ""
    if n_test:
        se = (accuracy_se(sgd_acc, n_test) ** 2 + accuracy_se(lasso_acc, n_test) ** 2) ** 0.5
        noise = f"; 1 s.e. of the difference ≈ {se:.2f} pp on {n_test:,} test images"
    paper_lasso = by.loc["S-FC, β-LASSO (β=50)", "paper"] if "S-FC, β-LASSO (β=50)" in by.index else None
    return {"claim": "β-LASSO trains S-FC to a higher test accuracy than SGD (Section 4.1, Table 2)",
            "paper": f"S-FC SGD {_fmt(by.loc['S-FC, SGD', 'paper'])} %, β-LASSO (β=50) {_fmt(paper_lasso)} %",
            "ours": f"S-FC SGD {sgd_acc:.2f} %, β-LASSO (chosen on validation) {lasso_acc:.2f} % "
                    f"({lasso_acc - sgd_acc:+.2f} pp{noise})",
            "holds": bool(lasso_acc > sgd_acc)}


def locality_stats(arrays: dict, unit_weights: int) -> dict:
    """Medians over the first layer's units with at least one non-zero weight: the locality
    radius (:func:`companion.analysis.locality`) and the fraction of the unit's ``unit_weights``
    weights that are non-zero; and how many units are all zero."""
    import numpy as np

    for key in ("unit_nonzeros", "locality_radius"):
        if key not in arrays:
            raise ValueError(f"run arrays lack {key!r}; they have {sorted(arrays)}")
    nnz = np.asarray(arrays["unit_nonzeros"], dtype=float)
    alive = nnz > 0
    radius = np.asarray(arrays["locality_radius"], dtype=float)[alive]
    return {"median_radius": float(np.median(radius)) if alive.any() else float("nan"),
            "median_nonzero_frac": float(np.median(nnz[alive] / unit_weights)) if alive.any() else float("nan"),
            "empty_units": int((~alive).sum()), "units": int(nnz.size)}


def locality_references(image_size: int = 32, in_channels: int = 3) -> dict:
    """Reference values of :func:`locality_stats`: ``uniform`` (a dense FC filter) and ``s-local``
    (an S-LOCAL filter away from the border), radius from
    :func:`companion.analysis.reference_locality`, fraction of non-zeros 1 and window²/s²."""
    from companion.analysis import LOCAL_WINDOW, reference_locality

    ref = reference_locality(image_size=image_size, in_channels=in_channels)
    return {"uniform": {"median_radius": ref["uniform"]["radius"], "median_nonzero_frac": 1.0},
            "s-local": {"median_radius": ref["s-local"]["radius"],
                        "median_nonzero_frac": LOCAL_WINDOW ** 2 / image_size ** 2}}


def claim_local_filters(lasso: dict, sgd: dict, references: dict) -> dict:
    """(c) Section 4.1, Figure 4: β-LASSO's first-layer filters become local and sparse, SGD's
    stay dense. Holds when β-LASSO's median radius and median fraction of non-zeros are both
    below SGD's and closer to the S-LOCAL reference than to the dense one (below the midpoint)."""
    checks = []
    for key in ("median_radius", "median_nonzero_frac"):
        mid = (references["s-local"][key] + references["uniform"][key]) / 2
        checks.append(lasso[key] < sgd[key] and lasso[key] < mid)

    def text(s):
        return (f"radius {s['median_radius']:.1f} px, non-zeros {100 * s['median_nonzero_frac']:.1f} %"
                + (f" ({s['empty_units']} of {s['units']} units all zero)" if s.get("empty_units") else ""))

    u, loc = references["uniform"], references["s-local"]
    return {"claim": "β-LASSO's first-layer filters become local and sparse, SGD's stay dense "
                     "(Section 4.1, Figures 4, 7, 8)",
            "paper": "shown as filter images (no numbers)",
            "ours": f"median per filter: β-LASSO {text(lasso)}; SGD {text(sgd)}; references: dense "
                    f"radius {u['median_radius']:.1f} px, {100 * u['median_nonzero_frac']:.0f} %; S-LOCAL "
                    f"radius {loc['median_radius']:.1f} px, {100 * loc['median_nonzero_frac']:.1f} %",
            "holds": bool(all(checks))}


def claim_first_layer_nonzeros(layers: pd.DataFrame) -> dict:
    """(e) Section 4.1, Figure 3: β-LASSO S-FC's first layer has fewer non-zeros than S-LOCAL's
    first layer has weights (the paper: between S-CONV's and S-LOCAL's counts)."""
    require_columns(layers, ["row", "first_weights", "first_nonzeros"], "the Table 2 layers frame")
    by = layers.set_index("row")
    for row in ("S-CONV, SGD", "S-LOCAL, SGD", BEST_LASSO_ROW):
        if row not in by.index:
            raise ValueError(f"the Table 2 layers frame has no row {row!r}")
    nnz = int(by.loc[BEST_LASSO_ROW, "first_nonzeros"])
    conv, local = int(by.loc["S-CONV, SGD", "first_weights"]), int(by.loc["S-LOCAL, SGD", "first_weights"])
    where = "between the two" if conv <= nnz < local else ("below S-CONV's" if nnz < conv else "above S-LOCAL's")
    return {"claim": "β-LASSO S-FC's first layer has fewer non-zeros than S-LOCAL's has weights "
                     "(Section 4.1, Figure 3)",
            "paper": "Figure 3 (plot, no printed numbers): between S-CONV's and S-LOCAL's counts",
            "ours": f"β-LASSO non-zeros {nnz:,}; weights: S-CONV {conv:,}, S-LOCAL {local:,} ({where})",
            "holds": bool(nnz < local)}


def claim_fit_order(fit: pd.DataFrame) -> dict:
    """(f) Section 3, Figure 2 (right): fewer parameters to fit ⇒ higher test accuracy (:func:`orders_agree`)."""
    return {"claim": "Architectures that fit the training set with fewer parameters generalise better "
                     "(Section 3, Figure 2 right)",
            "paper": "order ResNet18, D-CONV, S-CONV, 3-FC on both axes, every dataset (plot)",
            "ours": describe_fit(fit).removesuffix("."), "holds": orders_agree(fit)}


def claim_kernels(f5: pd.DataFrame) -> dict:
    """(g) Section 4.2, Figure 5: β-LASSO beats SGD for ResNet18 at every kernel size."""
    gains = lasso_gains(f5)
    return {"claim": "β-LASSO improves over SGD for ResNet18 at every kernel size (Section 4.2, Figure 5)",
            "paper": "Figure 5 (plot, no printed numbers): better at all kernel sizes, more so for large ones",
            "ours": describe_figure5(f5).removesuffix("."), "holds": bool((gains["gain"] > 0).all())}


def claims_configs(p: Profile, root=None, *, progress: bool = True) -> list[TrainConfig]:
    """The runs behind :func:`claims`: Table 1, Table 2, Figures 2 / 6 and Figure 5."""
    return (table1_configs(p) + list(table2_configs(p, root, progress=progress).values())
            + scaling_configs(p) + figure5_configs(p, root, progress=progress))


def claims(p: Profile, root=None, *, progress: bool = True) -> pd.DataFrame:
    """The summary chapter's table: one row per claim (a)–(g), with the paper's evidence, ours
    (computed from the runs at profile ``p``) and whether it holds here."""
    root = results_dir(p, root)
    t1 = table1(p, root, progress=progress)
    t2, runs = table2(p, root, progress=progress)
    layers = table2_layers(runs)
    n_test = runs["S-FC, SGD"].summary["dataset"]["n_test"]
    stats = {}
    for row in ("S-FC, SGD", BEST_LASSO_ROW):
        run = runs[row]
        unit = run.summary["params"][run.summary["first_layer"]["layer"]] // run.summary["first_layer"]["units"]
        stats[row] = locality_stats(run.arrays(), unit)
    scale = scaling(p, root, progress=progress)
    fit = fewest_params_to_fit(scale, fit_target(scale))
    f5 = figure5(p, root, progress=progress)
    d = runs["S-FC, SGD"].summary["dataset"]
    data = f"{p.name}: {DATASET_LABELS[p.dataset]}, {d['n_train']:,} training images"
    both = f"{data}, {p.epochs_short} / {p.epochs_long} ep."
    short, long = f"{data}, {p.epochs_short} ep.", f"{data}, {p.epochs_long} ep."
    rows = [
        ("a", claim_locality(t1), both),
        ("b", claim_lasso_beats_sgd(t2, n_test=n_test), long),
        ("c", claim_local_filters(stats[BEST_LASSO_ROW], stats["S-FC, SGD"], locality_references()), long),
        ("d", claim_longer_training(t1), both),
        ("e", claim_first_layer_nonzeros(layers), long),
        ("f", claim_fit_order(fit), short),
        ("g", claim_kernels(f5), short),
    ]
    return pd.DataFrame([{"id": key, **row, "scale": scale} for key, row, scale in rows])


def describe_claims(claims_df: pd.DataFrame, p: Profile) -> str:
    """A sentence counting how many claims hold at this profile."""
    require_columns(claims_df, ["id", "holds"], "the claims frame")
    held = claims_df.loc[claims_df["holds"], "id"].tolist()
    text = (f"At profile {p.name}, {len(held)} of {len(claims_df)} checks come out as the paper says"
            + (f" ({', '.join(held)})" if held else "") + ".")
    if p.dataset == "synthetic":
        text += " The data is synthetic: these outcomes test the pipeline, not the paper."
    return text


# ------------------------------------------------------------ chapter helpers: chapters 06–10
# Chapters 06–10: Figure 3 (non-zero weights per layer over training), Figures 4, 7–9 (first-
# layer filters), Theorem 2 across Table 2's runs, the first layer's locality over training and
# the permutation test. Plain functions of the runs / DataFrames that the table functions above
# return (unit-tested on constructed inputs); the sentences the chapters glue are built here from
# the numbers, so that the text stays true at every profile.

#: Figures 4, 7–9: whose first-layer filters are drawn (the paper's Figure 4: S-FC with SGD and
#: with β-LASSO, S-LOCAL with SGD)
FILTER_ROWS = ("S-FC, SGD", BEST_LASSO_ROW, "S-LOCAL, SGD")
#: the trainer stores filters drawn at random among units with at least this many non-zeros
#: (the paper's rule for Figures 7–9; ``companion.training``'s ``_finish``)
FILTER_MIN_NONZEROS = 20
#: Chapter 9: the runs whose first-layer locality is followed over training
LOCALITY_ROWS = ("S-FC, SGD", BEST_LASSO_ROW)
#: Figure 3's reference networks (same α as S-FC): the weights of their layers are the dashed lines
REFERENCE_ROWS = {"S-CONV": "S-CONV, SGD", "S-LOCAL": "S-LOCAL, SGD", "S-FC": "S-FC, SGD"}
#: a difference of test accuracies counts as a change when it exceeds this many standard errors
NOISE_SE = 2.0


def layer_name(layer: str) -> str:
    """``conv1.layer`` → ``conv1`` (the tables' name of a weight layer)."""
    return layer.removesuffix(".layer")


def distinct_runs(runs: dict) -> dict:
    """``runs`` (label → Run) with each run once, in order: a later label of the same run (Table 2's
    best-β row repeats one of the β rows) is merged into the first, e.g. ``S-FC, β-LASSO (β=50;
    best on validation)``."""
    out: dict = {}
    label_of: dict[str, str] = {}
    for label, run in runs.items():
        first = label_of.get(run.run_id)
        if first is None:
            out[label] = run
            label_of[run.run_id] = label
            continue
        if label == BEST_LASSO_ROW and first.endswith(")"):
            merged = first[:-1] + "; best on validation)"
        else:
            merged = f"{first} = {label}"
        out = {merged if k == first else k: v for k, v in out.items()}
        label_of[run.run_id] = merged
    return out


def lasso_runs(runs: dict) -> dict:
    """The distinct β-LASSO runs among ``runs`` (:func:`distinct_runs`), label → Run."""
    return {k: r for k, r in distinct_runs(runs).items() if r.config.optimizer == "beta-lasso"}


def _best_id(runs: dict) -> str | None:
    return runs[BEST_LASSO_ROW].run_id if BEST_LASSO_ROW in runs else None


# ------------------------------------------------------------ Figure 3: non-zeros per layer
def nonzeros_curves(runs: dict) -> pd.DataFrame:
    """Figure 3: non-zero weights of each weight layer at every epoch, for each distinct β-LASSO
    run of Table 2 (``runs`` as :func:`table2` returns them). Columns ``row, run_id, beta, best``
    (the run chosen on validation), ``epoch, layer`` (e.g. ``conv1``), ``nonzeros, weights``."""
    best = _best_id(runs)
    rows = []
    for label, run in lasso_runs(runs).items():
        metrics = run.metrics
        for layer, weights in run.summary["params"].items():
            column = f"nonzeros.{layer}"
            if column not in metrics.columns:
                raise ValueError(f"run {run.run_id} has no per-epoch {column!r}")
            part = metrics[["epoch", column]].dropna()
            rows += [{"row": label, "run_id": run.run_id, "beta": run.config.beta, "best": run.run_id == best,
                      "epoch": int(epoch), "layer": layer_name(layer), "nonzeros": int(nnz), "weights": int(weights)}
                     for epoch, nnz in part.itertuples(index=False)]
    return pd.DataFrame(rows, columns=["row", "run_id", "beta", "best", "epoch", "layer", "nonzeros", "weights"])


def layer_references(runs: dict) -> pd.DataFrame:
    """Figure 3's reference lines: the weights of each layer of S-CONV, S-LOCAL and S-FC (same α),
    read from the trained SGD runs of Table 2. One row per layer; columns ``layer`` and the three
    networks (:data:`REFERENCE_ROWS`)."""
    missing = [row for row in REFERENCE_ROWS.values() if row not in runs]
    if missing:
        raise ValueError(f"runs lack Table 2 rows {missing}")
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
    for label, run in lasso_runs(runs).items():
        table[label] = [run.summary["nonzeros"][layer] for layer in run.summary["params"]]
    return table


def figure3_runs(runs: dict) -> dict:
    """The runs Figure 3 draws on: the reference SGD runs and the distinct β-LASSO runs."""
    refs = {row: runs[row] for row in REFERENCE_ROWS.values()}
    return {**refs, **lasso_runs(runs)}


def permutation_caveat(p: Profile) -> str:
    """How the permuted runs were trained (chapter 10): each batch is augmented, then permuted
    (:func:`companion.training.training_inputs`)."""
    if p.augment == "none":
        return ("This profile trains without augmentation: every image, in training and in "
                "evaluation, has its pixels moved by the same fixed permutation.")
    return (f"Each training batch is first augmented ({p.augment}) on the original images and then "
            "has its pixels moved by the fixed permutation; validation and test images are permuted "
            "the same way. So a permuted run of S-FC sees exactly the training data of the original "
            "run, with its input coordinates relabelled.")


def relative_position(count: int, conv: int, local: int) -> str:
    """Where ``count`` lies with respect to S-CONV's (``conv``) and S-LOCAL's (``local``) weights."""
    if count < conv:
        return "below S-CONV's"
    if count < local:
        return "between S-CONV's and S-LOCAL's"
    return "at or above S-LOCAL's"


def describe_sparsity(runs: dict) -> str:
    """A sentence on Figure 3 for the β-LASSO run chosen on validation: its first layer's non-zeros
    against S-CONV's and S-LOCAL's weights, and the fraction of each other layer kept non-zero."""
    table = sparsity_table(runs)
    label = next(k for k, r in lasso_runs(runs).items() if r.run_id == _best_id(runs))
    first, *others = table.to_dict("records")
    nnz = first[label]
    where = relative_position(nnz, first["S-CONV weights"], first["S-LOCAL weights"])
    kept = ", ".join(f"{r['layer']} {100 * r[label] / r['S-FC weights']:.1f} %" for r in others)
    beta = lasso_runs(runs)[label].config.beta
    return (f"The β-LASSO run chosen on validation (β = {beta:g}) ends with "
            f"{nnz:,} non-zero weights in S-FC's first layer ({first['layer']}, "
            f"{100 * nnz / first['S-FC weights']:.1f} % of its {first['S-FC weights']:,}), {where} "
            f"count: S-CONV's first layer has {first['S-CONV weights']:,} weights and S-LOCAL's "
            f"{first['S-LOCAL weights']:,} (the paper finds β-LASSO's count between the two, close to "
            f"S-CONV's). Its other layers keep {kept} of their weights non-zero (the paper: the second "
            "layer much sparser than dense, the last one nearly dense).")


# ------------------------------------------------------------ Figures 4, 7–9: filters
def filter_sets(runs: dict, rows=FILTER_ROWS) -> dict[str, dict]:
    """The stored first-layer filters of the Table 2 runs ``rows`` (Figures 4, 7–9), label →
    ``filters`` (float32, shown units × C × H × W on the input grid), ``units`` (their indices),
    ``nonzeros`` (of each shown filter), ``grid_weights`` (C·H·W), ``eligible`` (units with at
    least :data:`FILTER_MIN_NONZEROS` non-zeros) and ``units_total``."""
    import numpy as np

    out = {}
    for row in rows:
        if row not in runs:
            raise ValueError(f"runs lack the Table 2 row {row!r}")
        a = runs[row].arrays()
        filters = np.asarray(a["filters"], dtype=np.float32)
        unit_nnz = np.asarray(a["unit_nonzeros"])
        out[row] = {"filters": filters, "units": np.asarray(a["filter_units"]),
                    "nonzeros": np.count_nonzero(filters.reshape(len(filters), -1), axis=1),
                    "grid_weights": int(np.prod(filters.shape[1:])),
                    "eligible": int((unit_nnz >= FILTER_MIN_NONZEROS).sum()), "units_total": int(unit_nnz.size)}
    return out


def describe_filters(sets: dict[str, dict]) -> str:
    """What the filter figures show, per run: how many filters, drawn from how many eligible units,
    and the median number of non-zero weights of the shown filters."""
    import numpy as np

    parts = []
    for label, s in sets.items():
        median = float(np.median(s["nonzeros"])) if len(s["nonzeros"]) else float("nan")
        among = (f"the {s['eligible']:,} of its {s['units_total']:,} units with at least {FILTER_MIN_NONZEROS} "
                 "non-zeros" if s["eligible"] else
                 f"all its {s['units_total']:,} units (none has {FILTER_MIN_NONZEROS} non-zeros)")
        parts.append(f"{label}: {len(s['filters'])} filters drawn from {among} (median {median:,.0f} non-zero "
                     f"weights of the {s['grid_weights']:,} on the grid)")
    return "; ".join(parts) + "."


def describe_filter_rule(runs: dict, rows) -> str:
    """How the stored filters of the runs ``rows`` were chosen (the trainer's rule; a run none of
    whose units has :data:`FILTER_MIN_NONZEROS` non-zeros had its filters drawn among all units).
    Keys may be labels or (label, permuted) pairs, as :func:`permutation` returns them."""
    import numpy as np

    def name(key):
        if isinstance(key, tuple):
            return f"{key[0]}, {'permuted' if key[1] else 'original'} pixels"
        return str(key)

    lacking = [name(k) for k in rows
               if not (np.asarray(runs[k].arrays()["unit_nonzeros"]) >= FILTER_MIN_NONZEROS).any()]
    text = f"chosen at random among the filters with at least {FILTER_MIN_NONZEROS} non-zero weights"
    if lacking:
        text += f" (among all filters for {'; '.join(lacking)}, which has none)"
    return text


# ------------------------------------------------------------ Theorem 2 across runs
#: Theorem 2's confidence parameter in chapter 8 (the bound holds with probability 1 − δ)
MDL_DELTA = 0.05


def mdl_table(p: Profile, runs: dict, *, delta: float = MDL_DELTA) -> pd.DataFrame:
    """Theorem 2's terms (:func:`theorem2_table`) for the distinct runs of Table 2
    (:func:`distinct_runs`), with ``b`` (bits per parameter), ``m`` (training images) and
    ``vacuous``: the bound on the test error is ≥ 1."""
    distinct = distinct_runs(runs)
    table = theorem2_table(p, distinct, delta=delta)
    table["b"] = table["kb"] // table["k"]
    table["m"] = [r.summary["dataset"]["n_train"] for r in distinct.values()]
    table["vacuous"] = table["bound"] >= 1
    return table


def describe_mdl_terms(p: Profile, table: pd.DataFrame, delta: float = MDL_DELTA) -> str:
    """The constants of chapter 8's Theorem 2 table, read from it: n, b, m, δ, log(2n/δ)."""
    require_columns(table, ["n", "b", "m", "log_term"], "the Theorem 2 table")
    one = table.iloc[0]
    return (f"n = {int(one['n']):,} (every trainable parameter of S-FC at α = {p.s_alpha}), b = {int(one['b'])} "
            f"bits per parameter, m = {int(one['m']):,} training images, δ = {delta:g}, "
            f"log(2n/δ) = {one['log_term']:.1f} bits; logarithms in base 2")


def describe_lasso_runs(runs: dict) -> str:
    """β-LASSO's settings of each distinct β-LASSO run among ``runs`` (β, λ, λ_first)."""
    parts = [f"{label.removeprefix('S-FC, ')}: λ = {_sci(r.config.lam)}, λ_first = {_sci(r.config.lam_first)}"
             for label, r in lasso_runs(runs).items()]
    return "β-LASSO settings: " + "; ".join(parts) + "."


def mdl_correlation(table: pd.DataFrame) -> dict[str, float]:
    """Spearman's rank correlation of description length and test accuracy across the rows of
    :func:`mdl_table` (:func:`companion.analysis.rank_correlation`)."""
    from companion.analysis import rank_correlation

    require_columns(table, ["description_bits", "test_acc"], "the Theorem 2 table")
    return rank_correlation(table["description_bits"], table["test_acc"])


def describe_mdl(table: pd.DataFrame, corr: dict) -> str:
    """Sentences on chapter 8's figure: the sign and strength of the rank correlation, the
    shortest and longest descriptions, and for how many runs the bound is vacuous."""
    require_columns(table, ["row", "description_bits", "test_acc", "gap", "bound"], "the Theorem 2 table")
    n, rho, pv = corr["n"], corr["rho"], corr["p_value"]
    if rho != rho:
        trend = f"the rank correlation is undefined here ({n} runs, or a constant column)"
    else:
        direction = ("shorter descriptions go with higher test accuracy" if rho < 0 else
                     "shorter descriptions go with lower test accuracy" if rho > 0 else "there is no monotone trend")
        strength = "" if pv <= 0.05 else ", but with so few runs this is not distinguishable from no relation (p > 0.05)"
        trend = f"Spearman's ρ = {rho:+.2f} over {n} runs (p = {pv:.2f}): {direction}{strength}"
    shortest, longest = table.loc[table["description_bits"].idxmin()], table.loc[table["description_bits"].idxmax()]
    vacuous = int((table["bound"] >= 1).sum())
    bound = (f"The bound is vacuous (a bound on the test error of at least 1) for {vacuous} of the "
             f"{len(table)} runs" + (f"; the smallest gap term is {table['gap'].min():.2f}." if vacuous else "."))
    return (f"{trend[0].upper()}{trend[1:]}. The shortest description is {shortest['row']}'s "
            f"({shortest['description_bits'] / 1e6:,.2f} Mbit, test accuracy {shortest['test_acc']:.2f} %), the "
            f"longest {longest['row']}'s ({longest['description_bits'] / 1e6:,.2f} Mbit, "
            f"{longest['test_acc']:.2f} %). {bound}")


# ------------------------------------------------------------ Chapter 9: locality over training
def locality_curves(runs: dict, rows=LOCALITY_ROWS) -> pd.DataFrame:
    """The first layer's locality over training: per run of ``rows``, tracked epoch and score
    (``radius``, ``window_mass``), the quantiles :data:`companion.analysis.QUANTILES` over its
    non-empty filters, as columns ``q10, q25, q50, q75, q90``."""
    from companion.analysis import QUANTILES

    names = [f"q{round(100 * q)}" for q in QUANTILES]
    out = []
    for row in rows:
        if row not in runs:
            raise ValueError(f"runs lack the Table 2 row {row!r}")
        m = runs[row].metrics
        for score in ("radius", "window_mass"):
            column = f"locality.{score}"
            if column not in m.columns:
                raise ValueError(f"run {runs[row].run_id} has no per-epoch {column!r}")
            for epoch, values in m[["epoch", column]].itertuples(index=False):
                if not isinstance(values, list) or len(values) != len(QUANTILES):
                    continue  # an epoch where locality was not tracked
                out.append({"row": row, "epoch": int(epoch), "score": score, **dict(zip(names, values))})
    return pd.DataFrame(out, columns=["row", "epoch", "score", *names])


def final_locality(runs: dict, rows=LOCALITY_ROWS + ("S-LOCAL, SGD",)) -> pd.DataFrame:
    """Every first-layer unit's locality after training (the runs' arrays): ``row, unit, nonzeros,
    radius, window_mass`` (NaN scores for units with no non-zero weight)."""
    import numpy as np

    frames = []
    for row in rows:
        a = runs[row].arrays()
        n = len(a["unit_nonzeros"])
        frames.append(pd.DataFrame({"row": row, "unit": np.arange(n), "nonzeros": a["unit_nonzeros"],
                                    "radius": a["locality_radius"], "window_mass": a["locality_window_mass"]}))
    return pd.concat(frames, ignore_index=True)


def describe_locality(curves: pd.DataFrame, references: dict) -> str:
    """Per run, the median locality radius at the first and last tracked epoch and how far the last
    lies from uniform random weights towards S-LOCAL (0 % = uniform, 100 % = S-LOCAL)."""
    require_columns(curves, ["row", "epoch", "score", "q50"], "the locality curves")
    u, loc = references["uniform"]["radius"], references["s-local"]["radius"]
    parts = []
    for row, part in curves[curves["score"] == "radius"].groupby("row", sort=False):
        part = part.sort_values("epoch")
        first, last = part.iloc[0], part.iloc[-1]
        parts.append(f"{row}: median radius {first['q50']:.2f} px after epoch {first['epoch']}, "
                     f"{last['q50']:.2f} px after epoch {last['epoch']} ({way_to_local(last['q50'], u, loc)})")
    return (f"References: uniform random weights {u:.2f} px, S-LOCAL {loc:.2f} px. " + "; ".join(parts) + ".")


# ------------------------------------------------------------ Chapter 10: permutation test
def permutation_summary(table: pd.DataFrame, runs: dict) -> pd.DataFrame:
    """:func:`permutation`'s table with the standard error of each difference (two independent
    test accuracies on ``n_test`` images), whether the difference exceeds :data:`NOISE_SE` s.e.,
    and Section 4.1's claim for the row (``invariant`` for S-FC, ``not invariant`` otherwise)."""
    require_columns(table, ["original", "permuted", "difference"], "the permutation table")
    out = table.reset_index()
    n_test = {label: run.summary["dataset"]["n_test"] for (label, _), run in runs.items()}
    out["se"] = [(accuracy_se(o, n_test[r]) ** 2 + accuracy_se(q, n_test[r]) ** 2) ** 0.5
                 for r, o, q in zip(out["row"], out["original"], out["permuted"])]
    out["changes"] = out["difference"].abs() > NOISE_SE * out["se"]
    out["paper_claim"] = ["invariant" if r.startswith("S-FC") else "not invariant" for r in out["row"]]
    return out


def describe_permutation(summary: pd.DataFrame) -> str:
    """A sentence on the permutation table: each row's change and whether it is beyond noise, and
    whether the pattern is the one Section 4.1 states."""
    require_columns(summary, ["row", "difference", "se", "changes", "paper_claim"], "the permutation summary")
    parts = [f"{r} {d:+.2f} pp ({'beyond' if c else 'within'} {NOISE_SE:g} s.e. = {NOISE_SE * s:.2f} pp)"
             for r, d, s, c in zip(summary["row"], summary["difference"], summary["se"], summary["changes"])]
    fc = summary["paper_claim"] == "invariant"
    fc_same = not summary.loc[fc, "changes"].any()
    others_worse = bool((summary.loc[~fc, "changes"] & (summary.loc[~fc, "difference"] < 0)).all())
    fc_text = ("the S-FC rows are unchanged within noise" if fc_same
               else "an S-FC row changes beyond noise")
    other_text = ("the other rows are worse beyond noise" if others_worse
                  else "not every other row is worse beyond noise")
    verdict = ("so the pattern Section 4.1 states (S-FC unchanged, S-CONV and S-LOCAL worse) holds here"
               if fc_same and others_worse else
               "so the pattern Section 4.1 states (S-FC unchanged, S-CONV and S-LOCAL worse) does not hold here")
    return (f"Permuted minus original test accuracy: {'; '.join(parts)}. Here {fc_text} and {other_text}, "
            f"{verdict}.")


#: chapter 10's three sets of filters of the β-LASSO run (keys of :func:`permuted_filters`)
ORIGINAL_FILTERS = "trained on original images"
PERMUTED_FILTERS = "trained on permuted images, on the grid the network saw"
MAPPED_FILTERS = "trained on permuted images, mapped back to the image"
UNIFORM_REFERENCE = "reference: uniform random weights"
LOCAL_REFERENCE = "reference: one S-LOCAL field"


def permuted_filters(runs: dict, row: str = BEST_LASSO_ROW) -> dict[str, "object"]:
    """Chapter 10's stored filters of ``row`` (:func:`permutation`'s runs): trained on the original
    images (:data:`ORIGINAL_FILTERS`), trained on permuted images as the network saw them
    (:data:`PERMUTED_FILTERS`) and the same filters on the original image's grid
    (:data:`MAPPED_FILTERS`; :func:`companion.analysis.unpermute_filters` with the seed recorded in
    the run's config). float32 arrays, units × C × H × W."""
    import numpy as np

    from companion.analysis import unpermute_filters

    plain, permuted = runs[(row, False)], runs[(row, True)]
    seed = permuted.config.permute_pixels
    if seed is None:
        raise ValueError(f"run {permuted.run_id} was not trained on permuted pixels")
    trained = np.asarray(permuted.arrays()["filters"], dtype=np.float32)
    return {ORIGINAL_FILTERS: np.asarray(plain.arrays()["filters"], dtype=np.float32),
            PERMUTED_FILTERS: trained, MAPPED_FILTERS: unpermute_filters(trained, seed).numpy()}


def filters_locality(sets: dict) -> pd.DataFrame:
    """Median :func:`companion.analysis.locality` of each set of filters (label → units × C × H × W),
    with the references of :func:`companion.analysis.reference_locality` as the last two rows."""
    import torch

    from companion.analysis import locality, reference_locality

    rows = []
    for label, f in sets.items():
        scores = locality(torch.as_tensor(f, dtype=torch.float32))
        rows.append({"filters": label, "count": int(len(f)),
                     **{k: float(v.nanmedian()) for k, v in scores.items()}})
    ref = reference_locality()
    rows += [{"filters": UNIFORM_REFERENCE, "count": float("nan"), **ref["uniform"]},
             {"filters": LOCAL_REFERENCE, "count": float("nan"), **ref["s-local"]}]
    return pd.DataFrame(rows, columns=["filters", "count", "radius", "window_mass"])


def way_to_local(radius: float, uniform: float, local: float) -> str:
    """``radius`` as the share of the way from the uniform reference (0 %) to S-LOCAL's (100 %)."""
    if radius != radius:
        return "no non-zero filter"
    return f"{round(100 * (uniform - radius) / (uniform - local)):d} % of the way from uniform random weights to S-LOCAL"


def describe_permuted_filters(loc: pd.DataFrame) -> str:
    """A sentence comparing the median radius of the permuted run's filters mapped back to the image
    with the unpermuted run's, on the permuted grid, and the references."""
    by = loc.set_index("filters")["radius"]
    u, s = by[UNIFORM_REFERENCE], by[LOCAL_REFERENCE]
    orig, back, seen = by[ORIGINAL_FILTERS], by[MAPPED_FILTERS], by[PERMUTED_FILTERS]
    return (f"Median locality radius of the stored filters: trained on the original images {orig:.2f} px "
            f"({way_to_local(orig, u, s)}); trained on permuted images and mapped back to the image "
            f"{back:.2f} px ({way_to_local(back, u, s)}); the same filters on the permuted grid the "
            f"network saw {seen:.2f} px ({way_to_local(seen, u, s)}).")


# ------------------------------------------------------------ Chapter 11: sparse execution
def sparse_threads() -> tuple[int, ...]:
    """CPU thread counts chapter 11 measures: one thread, and every thread torch uses."""
    import torch

    return tuple(dict.fromkeys((1, torch.get_num_threads())))


def sparse_runs(p: Profile, root=None, *, progress: bool = True) -> dict:
    """The distinct S-FC runs of Table 2 (SGD and each β-LASSO setting), label → Run."""
    _, t2_runs = table2(p, root, progress=progress)
    return {label: run for label, run in distinct_runs(t2_runs).items() if run.config.model == "s-fc"}


def sparse_execution(p: Profile, root=None, *, runs: dict | None = None, threads=None, batch: int = 512,
                     repeats: int = 5, progress: bool = True) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Section 5's future work, measured: each distinct S-FC run of Table 2 (SGD and β-LASSO),
    exported by :func:`companion.sparse.to_sparse` (``layout="auto"``) and run on the CPU.

    Returns three tables: per run (weights' source, test accuracy, density, whether the export
    predicts the same class as the dense network on every test image, memory), per run and layer
    (the export's layout and density), and per run and thread count (images/s of both on one
    batch of ``batch`` test images, measured side by side, and their ratio). A run's weights come
    from its checkpoint or, where none is stored, from training it again
    (:func:`companion.training.trained_model`). ``runs``: :func:`sparse_runs`, if already at hand."""
    from companion import sparse
    from companion.augment import normalize
    from companion.checks import check_int
    from companion.data import load_data
    from companion.training import trained_model

    check_int("batch", batch, minimum=1)  # test images per timed forward pass
    threads = tuple(threads or sparse_threads())
    fc_runs = runs if runs is not None else sparse_runs(p, root, progress=progress)
    first = next(iter(fc_runs.values())).config
    data = load_data(first.dataset, p.data_root, val_size=first.val_size, subset=first.subset, seed=first.seed)
    x = normalize(data.test.x, first.dataset)
    rows, layers, speeds = [], [], []
    for label, run in fc_runs.items():
        model, origin = trained_model(run, data_root=p.data_root, progress=progress)
        exported = sparse.to_sparse(model)
        density = sparse.density_report(model)
        same = sparse.agreement(model, exported, x)
        rows.append({"row": label, "weights": origin["source"], "test_acc": origin["test_acc"] * 100,
                     "stored_test_acc": origin["stored_test_acc"] * 100,
                     "density": density["nonzeros"].sum() / density["params"].sum(),
                     **same, "dense_bytes": sparse.memory_bytes(model),
                     "sparse_bytes": sparse.memory_bytes(exported)})
        for (_, d), layer in zip(density.iterrows(), exported.layers()):
            layers.append({"row": label, "layer": layer_name(d["layer"]), "weights": d["params"],
                           "nonzeros": d["nonzeros"], "density": d["density"], "layout": layer.layout})
        for n in threads:
            speeds.append({"row": label, "density": rows[-1]["density"],
                           **sparse.inference_speed(model, exported, x[:batch], threads=n, repeats=repeats)})
    summary = pd.DataFrame(rows)
    summary["memory_ratio"] = summary["dense_bytes"] / summary["sparse_bytes"]
    return summary, pd.DataFrame(layers), pd.DataFrame(speeds)


#: the issue's goal for the sparse export's speed on the CPU, at the paper's densities
SPARSE_SPEED_GOAL = 5.0


def describe_sparse(summary: pd.DataFrame, speeds: pd.DataFrame, goal: float = SPARSE_SPEED_GOAL) -> str:
    """Sentences on chapter 11's tables: agreement of the predictions, and speed and memory of the
    sparsest run against the goal, per thread count."""
    require_columns(summary, ["row", "density", "images", "same_prediction", "max_logit_diff", "memory_ratio"],
          "the sparse-execution summary")
    require_columns(speeds, ["row", "threads", "speedup"], "the sparse-execution speeds")
    agree = bool((summary["same_prediction"] == summary["images"]).all())
    n = int(summary["images"].iloc[0])
    first = (f"On all {n:,} test images the export predicts the same class as the dense network for every run "
             if agree else "The export does not predict the same class as the dense network on every test image "
             "(" + "; ".join(f"{r}: {s:,} of {i:,}" for r, s, i in
                            zip(summary["row"], summary["same_prediction"], summary["images"])) + ") ")
    first += f"(largest logit difference {summary['max_logit_diff'].max():.1e}, float rounding of the folded batch-norm)."
    sparsest = summary.loc[summary["density"].idxmin()]
    own = speeds[speeds["row"] == sparsest["row"]]
    parts = [f"{s:.1f}× ({t} thread{'s' if t > 1 else ''})" for t, s in zip(own["threads"], own["speedup"])]
    met = [t for t, s in zip(own["threads"], own["speedup"]) if s >= goal]
    verdict = (f"which meets the goal of {goal:g}× with {' and '.join(map(str, met))} thread(s)"
               if met else f"which misses the goal of {goal:g}×")
    return (f"{first} The sparsest network, {sparsest['row']} ({sparsest['density'] * 100:.1f} % of its weights "
            f"non-zero), runs at {' and '.join(parts)} the dense network's images/s, {verdict}, and takes "
            f"{sparsest['memory_ratio']:.1f}× less memory.")


def describe_sparse_weights(summary: pd.DataFrame) -> str:
    """Where chapter 11's trained weights came from: stored checkpoints, or training again."""
    require_columns(summary, ["row", "weights", "test_acc", "stored_test_acc"], "the sparse-execution summary")
    again = summary[summary["weights"] == "retrained"]
    if again.empty:
        return "The trained weights were read from the runs' stored checkpoints."
    same = bool((again["test_acc"] == again["stored_test_acc"]).all())
    text = (f"The results store committed with the book keeps no checkpoints (they are large), so "
            f"{len(again)} of the {len(summary)} networks were trained again from their stored configs "
            "before the export")
    if same:
        return text + "; each retrained network reached exactly the stored test accuracy."
    diffs = "; ".join(f"{r}: {a:.2f} % (stored {b:.2f} %)" for r, a, b in
                      zip(again["row"], again["test_acc"], again["stored_test_acc"]) if a != b)
    return (text + f". Retraining on another machine need not repeat the stored run bit for bit; test "
            f"accuracy of the retrained networks that differ: {diffs}. The tables use the retrained weights.")


def describe_machine(speeds: pd.DataFrame) -> str:
    """The machine chapter 11 timed on (this process's CPU, thread counts, batch)."""
    import os
    import platform

    import torch

    require_columns(speeds, ["threads", "batch"], "the sparse-execution speeds")
    threads = " and ".join(str(t) for t in dict.fromkeys(speeds["threads"]))
    cpu = platform.processor() or platform.machine()
    return (f"Timed with torch {torch.__version__} on a {os.cpu_count()}-core {cpu} CPU, with {threads} "
            f"thread(s), batch {int(speeds['batch'].iloc[0])}.")

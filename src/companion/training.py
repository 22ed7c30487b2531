"""Training loop (Appendix A.2): SGD or β-LASSO (Algorithm 1), cosine-annealed learning rate,
mixed precision, per-epoch metrics and checkpoints, exact resume.

- Schedule: ``CosineAnnealingLR`` from ``lr`` to 0 over all training *steps*, stepped once per
  step. Each epoch takes ``N // batch_size`` steps (the last partial batch is dropped, so every
  step sees a full batch and BatchNorm never sees a batch of one; the shuffle differs per epoch,
  so every image is still seen).
- Precision: ``auto`` = fp16 autocast + ``GradScaler`` on CUDA (autocast keeps batch-norm in
  fp32, as in Appendix A), fp32 on CPU; ``bf16`` = bf16 autocast (CPU or CUDA).
- Randomness: the model is initialised from ``seed``; each epoch draws its data order,
  augmentation and dropout from generators seeded by ``(seed, epoch)``, so a run resumed from
  its checkpoint replays the uninterrupted run exactly (bit for bit on CPU with the same number
  of threads: the summation order of a CPU matrix multiply depends on it).
- The hot loop never synchronises with the host: loss and correct-count are summed on the
  device and read once per epoch (GradScaler's own inf check is the one exception on CUDA fp16).
  A non-finite epoch loss stops the run with ``RuntimeError``; the last good checkpoint stays.
- Permutation test (Section 4.1): ``permute_pixels`` moves the pixels of every batch the network
  sees — after augmentation for training batches (:func:`training_inputs`), and of every
  validation/test batch — so that flips and crops act on the image, not on the permuted grid.
- Weight decay (SGD) applies to all parameters, as ``torch.optim.SGD`` does; β-LASSO's λ applies
  to weight tensors only (``lasso_param_groups``).

Test hook: if the environment variable ``COMPANION_TEST_KILL_AFTER_EPOCH=N`` is set, the process
kills itself with SIGKILL right after writing epoch N's checkpoint (before its metrics line is
appended), to test that resuming after a hard crash is exact. Not for other use.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import platform
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from companion import results
from companion.analysis import (embedded_nonzeros, first_layer_filters, layer_sizes, locality, locality_quantiles,
                                nonzeros)
from companion.config import TrainConfig
from companion.results import Run

KILL_ENV = "COMPANION_TEST_KILL_AFTER_EPOCH"
CHECKPOINT_FORMAT = 1
EVAL_BATCH = 1024
#: arrays.npz keeps this many first-layer filters (as float16 on the input grid) for Figures 4, 7-9
FILTER_SAMPLE = 32


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be resumed from (corrupt, truncated, or from another config)."""


# --------------------------------------------------------------------------- small helpers
def resolve_device(name: str) -> torch.device:
    """``auto`` → CUDA when available, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} asked for but CUDA is not available; use --device cpu or auto")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {name!r} asked for but MPS is not available; use --device cpu or auto")
    return device


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto`` → ``fp16-amp`` on CUDA, ``fp32`` elsewhere. fp16 AMP needs CUDA."""
    if precision == "auto":
        return "fp16-amp" if device.type == "cuda" else "fp32"
    if precision == "fp16-amp" and device.type != "cuda":
        raise ValueError(f"precision 'fp16-amp' needs a CUDA device (got {device}); use fp32 or bf16")
    return precision


def autocast(device: torch.device, precision: str):
    if precision == "fp16-amp":
        return torch.autocast(device.type, dtype=torch.float16)
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def optimizer_step(loss: torch.Tensor, optimizer: torch.optim.Optimizer, scaler=None) -> None:
    """Backward pass and one optimizer step, through the fp16 ``GradScaler`` when there is one
    (it skips the step if the scaled gradients overflowed). Gradients are reset first."""
    optimizer.zero_grad(set_to_none=True)
    if scaler is None:
        loss.backward()
        optimizer.step()
    else:
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()


def epoch_seed(seed: int, epoch: int, stream: str) -> int:
    """A 63-bit seed for one random stream (``order``/``augment``/``dropout``) of one epoch."""
    digest = hashlib.sha256(f"{seed}:{epoch}:{stream}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def _generator(device: torch.device, seed: int) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


def make_optimizer(config: TrainConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    """SGD (momentum, weight decay) or β-LASSO (Algorithm 1; ``lam_first`` on conv positions)."""
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            model.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
        )
    from companion.optim import BetaLasso, lasso_param_groups

    groups = lasso_param_groups(model, config.lam, config.lam_first)
    return BetaLasso(groups, lr=config.lr, lam=config.lam, beta=config.beta)


def git_commit() -> str | None:
    """Commit of the source tree this package runs from, if it is a git checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent,
            capture_output=True, text=True, timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return (out.stdout.strip() or None) if out.returncode == 0 else None


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{device.type}: {platform.processor() or platform.machine()}"


@torch.no_grad()
def evaluate(model, split, dataset: str, device: torch.device, precision: str, permutation=None) -> float:
    """Top-1 accuracy on a split (eval mode, no augmentation; ``permutation``: the run's
    :class:`~companion.data.PixelPermutation`, or None); one host sync."""
    from companion.augment import normalize

    model.eval()
    n = len(split.y)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    for start in range(0, n, EVAL_BATCH):
        x = normalize(split.x[start:start + EVAL_BATCH], dataset)
        if permutation is not None:
            x = permutation(x)
        with autocast(device, precision):
            logits = model(x)
        correct += (logits.argmax(1) == split.y[start:start + EVAL_BATCH]).sum()
    return correct.item() / n


def training_inputs(x, augment, generator: torch.Generator, permutation=None) -> torch.Tensor:
    """What the network sees of a uint8 training batch: augmented, then (the permutation test,
    Section 4.1) pixel-permuted, so that flips and crops act on the original image."""
    x = augment(x, generator)
    return x if permutation is None else permutation(x)


def load_checkpoint(path: Path, config: TrainConfig, device: torch.device) -> dict:
    """Read and check a checkpoint: one :class:`CheckpointError` if corrupt or from another config."""
    try:
        state = torch.load(path, map_location=device, weights_only=True)
        if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
            raise ValueError("not a companion checkpoint")
    except Exception as exc:  # unpicklable, truncated, wrong zip, ... : all mean the same here
        raise CheckpointError(
            f"checkpoint {path} is corrupt or truncated ({type(exc).__name__}: {exc}); "
            "delete it to train from scratch"
        ) from None
    try:
        theirs = TrainConfig.from_dict(state["config"]).result_fields()
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"checkpoint {path} holds no readable config ({exc})") from None
    ours = config.result_fields()
    if theirs != ours:
        diff = ", ".join(
            f"{k}: {theirs.get(k)!r} (checkpoint) vs {ours.get(k)!r}"
            for k in sorted(set(theirs) | set(ours)) if theirs.get(k) != ours.get(k)
        )
        raise CheckpointError(f"checkpoint {path} is from a different config ({diff}); not resuming")
    return state


# --------------------------------------------------------------------------- the loop
def train(
    config: TrainConfig, *, root: str | os.PathLike = "runs", resume: bool = False,
    progress: bool = True, force: bool = False,
) -> Run:
    """Train ``config`` into ``root/<run_id>/`` and return the finished :class:`Run`.

    A finished run of the same config is returned as is (no training) unless ``force=True``,
    which retrains in a temporary directory and swaps it in only on success (so neither a
    finished nor an unfinished run is lost to a failed retrain). ``resume=True`` continues an
    unfinished run from its checkpoint (or starts fresh if there is none); with
    ``resume=False`` an unfinished run's checkpoint is a ``FileExistsError`` (never silently
    thrown away).
    """
    if not isinstance(config, TrainConfig):
        raise ValueError(f"config must be a TrainConfig, got {type(config).__name__}")
    config.validate()
    if force and resume:
        raise ValueError("force=True retrains from scratch; it cannot be combined with resume=True")
    if config.subset is not None and config.batch_size > config.subset:  # known before loading data
        raise ValueError(f"batch_size {config.batch_size} is larger than the training set "
                         f"({config.subset} images, subset={config.subset}); use batch_size <= {config.subset}")
    root = Path(root)
    if not force:
        done = results.find_run(config, root)
        if done is not None:
            return done
    device = resolve_device(config.device)
    precision = resolve_precision(config.precision, device)
    final_dir = root / config.run_id()
    root.mkdir(parents=True, exist_ok=True)
    if not force:
        if (final_dir / results.CHECKPOINT).exists() and not resume:
            raise FileExistsError(
                f"an unfinished run of this config exists in {final_dir}; resume it (resume=True, "
                "--resume) or retrain from scratch (force=True, --force)"
            )
        created = not final_dir.exists()
        final_dir.mkdir(exist_ok=True)
        try:
            _run(config, final_dir, device, precision, resume, progress)
        except BaseException:
            if created and not any(final_dir.iterdir()):  # failed before writing anything
                final_dir.rmdir()
            raise
        return results.load_run(final_dir)
    work_dir = Path(tempfile.mkdtemp(prefix=f".{config.run_id()}.", dir=root))
    try:
        _run(config, work_dir, device, precision, False, progress)
    except BaseException:
        shutil.rmtree(work_dir, ignore_errors=True)
        raise
    if final_dir.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{config.run_id()}.old.", dir=root))
        os.replace(final_dir, old / "run")
        os.replace(work_dir, final_dir)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(work_dir, final_dir)
    return results.load_run(final_dir)


def _run(config: TrainConfig, run_dir: Path, device: torch.device, precision: str,
         resume: bool, progress: bool) -> None:
    from tqdm import tqdm

    from companion.augment import make_augment
    from companion.data import PixelPermutation, batches, load_data
    from companion.models import build_model

    checkpoint_path = run_dir / results.CHECKPOINT
    state = None
    if resume and checkpoint_path.exists():
        state = load_checkpoint(checkpoint_path, config, device)  # before any work or write

    data = load_data(
        config.dataset, config.data_root, val_size=config.val_size, subset=config.subset,
        seed=config.seed, device=device,
    )
    permutation = (None if config.permute_pixels is None else
                   PixelPermutation(config.permute_pixels, data.image_size, data.image_size, device))
    n_train = len(data.train.y)
    if config.batch_size > n_train:
        raise ValueError(
            f"batch_size {config.batch_size} is larger than the training set ({n_train} images "
            f"of {config.dataset} after subset/val_size); use batch_size <= {n_train}"
        )
    steps = n_train // config.batch_size

    torch.manual_seed(config.seed)
    model = build_model(
        config.model, config.alpha, image_size=data.image_size, in_channels=data.in_channels,
        num_classes=data.num_classes, dropout=config.dropout, kernel_size=config.kernel_size,
        device=device,
    )
    optimizer = make_optimizer(config, model)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs * steps)
    scaler = torch.amp.GradScaler(device.type) if precision == "fp16-amp" else None
    augment = make_augment(config.augment, config.dataset)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True

    metrics: list[dict] = []
    start_epoch, wall_before, resumed_at = 0, 0.0, []
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        start_epoch, metrics = state["epoch"], list(state["metrics"])
        wall_before, resumed_at = state["wall_time_s"], list(state["resumed_at"]) + [start_epoch]
        del state
    results.write_json(run_dir / results.CONFIG, config.to_dict())
    results.write_jsonl(run_dir / results.METRICS, metrics)  # the metrics the checkpoint vouches for
    sizes = layer_sizes(model)
    session_start = time.perf_counter()

    bar = tqdm(total=config.epochs * steps, initial=start_epoch * steps, disable=not progress,
               desc=f"{config.model} α={config.alpha} {run_dir.name}", unit="step", dynamic_ncols=True)
    try:
        for epoch in range(start_epoch + 1, config.epochs + 1):
            t0 = time.perf_counter()
            torch.manual_seed(epoch_seed(config.seed, epoch, "dropout"))
            order = _generator(device, epoch_seed(config.seed, epoch, "order"))
            aug = _generator(device, epoch_seed(config.seed, epoch, "augment"))
            lr = scheduler.get_last_lr()[0]
            model.train()
            loss_sum = torch.zeros((), device=device)
            correct = torch.zeros((), dtype=torch.int64, device=device)
            for idx in batches(n_train, config.batch_size, generator=order, shuffle=True,
                               drop_last=True, device=device):
                x = training_inputs(data.train.x[idx], augment, aug, permutation)
                y = data.train.y[idx]
                with autocast(device, precision):
                    logits = model(x)
                    loss = F.cross_entropy(logits, y)
                optimizer_step(loss, optimizer, scaler)
                scheduler.step()
                loss_sum += loss.detach().float()
                correct += (logits.detach().argmax(1) == y).sum()
                bar.update()
            train_loss = loss_sum.item() / steps  # the epoch's one sync of the training loop
            if not math.isfinite(train_loss):
                last = f"epoch {epoch - 1}'s checkpoint is kept" if epoch > 1 else "no checkpoint was written"
                raise RuntimeError(
                    f"training diverged: non-finite training loss ({train_loss}) in epoch {epoch} of "
                    f"{run_dir.name} (lr={config.lr}); {last}; the run is not finished"
                )
            train_acc = correct.item() / (steps * config.batch_size)
            train_seconds = time.perf_counter() - t0
            row = {"epoch": epoch, "train_loss": train_loss, "train_acc": train_acc,
                   "val_acc": None, "test_acc": None, "lr": lr}
            if epoch % config.track_every == 0 or epoch == config.epochs:
                if data.val is not None:
                    row["val_acc"] = evaluate(model, data.val, config.dataset, device, precision, permutation)
                row["test_acc"] = evaluate(model, data.test, config.dataset, device, precision, permutation)
            row["nonzeros"] = nonzeros(model)
            row["params"] = sizes
            row["locality"] = locality_quantiles(model)  # first layer, Section 4.1 / Figure 4
            row["images_per_s"] = steps * config.batch_size / train_seconds
            row["seconds"] = time.perf_counter() - t0
            metrics.append(row)
            postfix = {"epoch": epoch, "loss": f"{train_loss:.3f}", "acc": f"{train_acc:.3f}"}
            for key in ("val_acc", "test_acc"):
                if row[key] is not None:
                    postfix[key.removesuffix("_acc")] = f"{row[key]:.3f}"
            bar.set_postfix(postfix)
            ckpt = {
                "format": CHECKPOINT_FORMAT, "run_id": config.run_id(), "config": config.to_dict(),
                "epoch": epoch, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict() if scaler is not None else None,
                "metrics": metrics, "resumed_at": resumed_at,
                "wall_time_s": wall_before + time.perf_counter() - session_start,
            }
            results.write_atomic(checkpoint_path, lambda f: torch.save(ckpt, f))
            if os.environ.get(KILL_ENV) == str(epoch):  # test hook, see module docstring
                os.kill(os.getpid(), signal.SIGKILL)
            results.append_jsonl(run_dir / results.METRICS, row)
    finally:
        bar.close()

    wall = wall_before + time.perf_counter() - session_start
    _finish(config, run_dir, model, metrics, data, device, precision, wall, resumed_at)


def _finish(config, run_dir, model, metrics, data, device, precision, wall, resumed_at) -> None:
    """arrays.npz, then summary.json (last, atomically: the run's 'finished' marker)."""
    import numpy as np

    import companion

    first = (getattr(model, "conv_positions", ()) or model.paper_layers)[0]
    filters = first_layer_filters(model).float()  # units × C × H × W, on the input grid
    unit_nonzeros = filters.flatten(1).count_nonzero(1)
    scores = locality(filters)
    # Figures 4, 7-9 draw filters "chosen randomly among all filters with at least 20 non-zero
    # values": keep FILTER_SAMPLE of them (seeded), all units' non-zeros and locality scores.
    eligible = (unit_nonzeros >= 20).nonzero().flatten().cpu()
    if eligible.numel() == 0:
        eligible = torch.arange(filters.shape[0])
    g = torch.Generator().manual_seed(config.seed)
    units = eligible[torch.randperm(eligible.numel(), generator=g)[:FILTER_SAMPLE]].sort().values
    results.write_atomic(
        run_dir / results.ARRAYS,
        lambda f: np.savez_compressed(
            f, first_layer_name=np.array(first), filter_units=units.numpy(),
            filters=filters[units.to(filters.device)].cpu().to(torch.float16).numpy(),
            unit_nonzeros=unit_nonzeros.to(torch.int32).cpu().numpy(),
            locality_radius=scores["radius"].cpu().numpy(),
            locality_window_mass=scores["window_mass"].cpu().numpy(),
        ),
    )
    last = metrics[-1]
    tracked = [m for m in metrics if m["val_acc"] is not None]
    best = max(tracked, key=lambda m: m["val_acc"]) if tracked else None
    final_nonzeros = last["nonzeros"]
    summary = {
        "run_id": config.run_id(),
        "config": config.to_dict(),
        "epochs": config.epochs,
        "final_train_loss": last["train_loss"],
        "final_train_acc": last["train_acc"],
        "final_val_acc": last["val_acc"],
        "final_test_acc": last["test_acc"],
        "best_val_acc": best["val_acc"] if best else None,
        "best_val_epoch": best["epoch"] if best else None,
        "test_acc_at_best_val": best["test_acc"] if best else None,
        "nonzeros": final_nonzeros,
        "params": last["params"],
        "total_nonzeros": sum(final_nonzeros.values()),
        "total_weights": sum(last["params"].values()),
        "wall_time_s": wall,
        "resumed_at": resumed_at,
        "package_version": companion.__version__,
        "git_commit": git_commit(),
        "torch_version": torch.__version__,
        "device_used": str(device),
        "device_name": device_name(device),
        "precision_used": precision,
        "dataset": data.fingerprint,
        "first_layer": {"layer": first, "units": int(filters.shape[0]),
                        "embedded_nonzeros": embedded_nonzeros(model),
                        "filters_saved": int(units.numel())},
    }
    results.write_json(run_dir / results.SUMMARY, summary)


# --------------------------------------------------------------------------- trained weights
def load_model(run: Run, checkpoint: str | os.PathLike | None = None) -> torch.nn.Module:
    """``run``'s network (eval mode, on the CPU) with the weights of its last checkpoint."""
    from companion.data import IMAGE_SHAPE, NUM_CLASSES
    from companion.models import build_model

    path = Path(checkpoint) if checkpoint is not None else run.path / results.CHECKPOINT
    if not path.is_file():
        raise FileNotFoundError(f"run {run.run_id}: no checkpoint at {path}")
    c = run.config
    h, _, channels = IMAGE_SHAPE
    model = build_model(c.model, c.alpha, image_size=h, in_channels=channels, num_classes=NUM_CLASSES[c.dataset],
                        dropout=c.dropout, kernel_size=c.kernel_size)
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True)["model"])
    return model.eval()


def trained_model(run: Run, *, data_root: str | None = None, device: str = "auto",
                  progress: bool = True) -> tuple[torch.nn.Module, dict]:
    """The trained network of a finished ``run`` and where its weights came from.

    From the run's checkpoint when it is stored; otherwise (the results committed with the book
    keep no checkpoints) the run's config is trained again in a temporary folder, and the
    returned dict says so and gives the retrained run's final test accuracy beside the stored
    one (equal when it ran on the same kind of machine, see the module docstring)."""
    if not run.finished:
        raise ValueError(f"run {run.run_id} is not finished; train it first")
    if (run.path / results.CHECKPOINT).is_file():
        return load_model(run), {"source": "checkpoint", "test_acc": run.summary["final_test_acc"],
                                 "stored_test_acc": run.summary["final_test_acc"]}
    config = run.config.replace(data_root=data_root or run.config.data_root, device=device)
    with tempfile.TemporaryDirectory(prefix=f"retrain-{run.run_id}-") as tmp:
        again = train(config, root=tmp, progress=progress)
        model = load_model(again)
    return model, {"source": "retrained", "test_acc": again.summary["final_test_acc"],
                   "stored_test_acc": run.summary["final_test_acc"]}


# --------------------------------------------------------------------------- CLI
def add_cli(subparsers) -> None:
    """``companion train``: one run into the results store."""
    from companion.config import OPTIMIZERS, PRECISIONS

    p = subparsers.add_parser(
        "train", help="train one model (Appendix A.2 defaults)",
        description="Train one model into the results store (DIR/<run id>/). A finished run of the "
                    "same config is reused unless --force.",
    )
    d = TrainConfig.__dataclass_fields__
    p.add_argument("--model", required=True, help="d-conv, d-local, d-fc, s-conv, s-local, s-fc, 3-fc, resnet18")
    p.add_argument("--alpha", type=int, required=True, help="base channels α (Tables 3/4)")
    p.add_argument("--epochs", type=int, required=True)
    p.add_argument("--dataset", default=d["dataset"].default, help="cifar10, cifar100, svhn, synthetic")
    p.add_argument("--data-root", default=None, help="where datasets live / are downloaded")
    p.add_argument("--optimizer", default=d["optimizer"].default, choices=OPTIMIZERS)
    p.add_argument("--lr", type=float, default=d["lr"].default)
    p.add_argument("--lam", type=float, default=d["lam"].default, help="β-LASSO ℓ1 coefficient λ")
    p.add_argument("--lam-first", type=float, default=None, help="λ for the conv-position layers (default: --lam)")
    p.add_argument("--beta", type=float, default=d["beta"].default, help="β-LASSO threshold factor β")
    p.add_argument("--momentum", type=float, default=d["momentum"].default)
    p.add_argument("--weight-decay", type=float, default=d["weight_decay"].default)
    p.add_argument("--dropout", type=float, default=d["dropout"].default)
    p.add_argument("--kernel-size", type=int, default=None, help="ResNet18 block kernel (Figure 5)")
    p.add_argument("--batch-size", type=int, default=d["batch_size"].default)
    p.add_argument("--augment", default=d["augment"].default,
                   help="none, flip-crop, fast-autoaugment (Appendix A.2: fast-autoaugment)")
    p.add_argument("--permute-pixels", type=int, default=None, metavar="SEED",
                   help="apply a fixed random pixel permutation with this seed (Section 4.1)")
    p.add_argument("--subset", type=int, default=None, metavar="N", help="use only N training images")
    p.add_argument("--val-size", type=int, default=d["val_size"].default, metavar="N",
                   help="hold N training images out for validation")
    p.add_argument("--seed", type=int, default=d["seed"].default)
    p.add_argument("--device", default=d["device"].default, help="auto, cpu, cuda, cuda:N")
    p.add_argument("--precision", default=d["precision"].default, choices=PRECISIONS)
    p.add_argument("--track-every", type=int, default=d["track_every"].default, metavar="N",
                   help="evaluate every N epochs (and on the last)")
    p.add_argument("--out", default="runs", metavar="DIR", help="results root (default: runs)")
    p.add_argument("--resume", action="store_true", help="continue an unfinished run from its checkpoint")
    p.add_argument("--force", action="store_true", help="retrain even if a finished run exists")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cli)


def _cli(args) -> int:
    names = TrainConfig.__dataclass_fields__
    config = TrainConfig(**{k: v for k, v in vars(args).items() if k in names})
    run = train(config, root=args.out, resume=args.resume, progress=not args.quiet, force=args.force)
    s = run.summary
    print(f"run: {run.path}")
    for key in ("final_train_acc", "final_val_acc", "final_test_acc", "best_val_acc", "test_acc_at_best_val"):
        if s.get(key) is not None:
            print(f"{key}: {s[key]:.4f}")
    return 0

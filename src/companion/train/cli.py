"""``companion train``: one run into the results store (:func:`companion.train.loop.train`), on one
process or, under ``torchrun``, data parallel on several."""

from __future__ import annotations

import os

from companion.config import OPTIMIZERS, PRECISIONS, TrainConfig
from companion.train.loop import train
from companion.train.profile import profile_steps


def add_cli(subparsers) -> None:
    """``companion train``: one run into the results store."""

    p = subparsers.add_parser(
        "train", help="train one model (Appendix A.2 defaults)",
        description="Train one model into the results store (DIR/<run id>/). A finished run of the "
                    "same config is reused unless --force. Data parallel on N processes (one run): "
                    "torchrun --nproc-per-node N -m companion train ...",
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
    p.add_argument("--wait", action="store_true",
                   help="if another process is training this run, wait for it instead of stopping")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    p.add_argument("--profile-steps", type=int, default=None, metavar="N",
                   help="train nothing: time N steps (after 5 warm-up steps) of this config and print the share "
                        "of data/augmentation, forward+backward, optimizer step and evaluation, images/s and "
                        "matmul FLOP utilisation")
    p.set_defaults(func=_cli)


def _cli(args) -> int:
    names = TrainConfig.__dataclass_fields__
    config = TrainConfig(**{k: v for k, v in vars(args).items() if k in names})
    if args.profile_steps is not None:
        if args.profile_steps < 1:
            raise ValueError(f"--profile-steps must be >= 1, got {args.profile_steps}")
        print("\n".join(profile_steps(config, args.profile_steps).lines()))
        return 0
    run = train(config, root=args.out, resume=args.resume, progress=not args.quiet, force=args.force,
                wait=args.wait)
    if int(os.environ.get("RANK", "0")) != 0:  # under torchrun, rank 0 reports
        return 0
    s = run.summary
    print(f"run: {run.path}")
    for key in ("final_train_acc", "final_val_acc", "final_test_acc", "best_val_acc", "test_acc_at_best_val"):
        if s.get(key) is not None:
            print(f"{key}: {s[key]:.4f}")
    return 0

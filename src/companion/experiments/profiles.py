"""The three scales every chapter can be computed at — the one place they are defined.

- ``smoke``: synthetic data (labels set by one local patch), tiny networks, one or two epochs:
  every notebook in seconds; what CI's nbval regression runs. Its search, SGD search and seeds
  follow the ``cpu`` protocol's structure, so CI runs that code path.
- ``cpu``: real CIFAR-10 on a 2-core machine: S-FC with α = 8 sets the FC budget (6.7 M
  parameters, Section 2.2's rule), 10,000 training images, 5,000 held out for validation,
  batch 128. Short / long training: 8 / 120 epochs. The λ/β search and the SGD baseline's
  search (momentum, weight decay) run at the full 120 epochs they are reported at, and the
  chosen settings (and S-LOCAL, S-CONV) are trained with 3 seeds (issue 9).
- ``paper``: Appendix A.2 — α for a 256 M FC budget (D: 15, S: 150), all 45,000 training images
  left after a 5,000-image validation split, batch 512, Fast AutoAugment, 400 / 4000 epochs,
  the paper's λ grid with β = 50. Needs a GPU.

Why 120 epochs at cpu (measured, shown in the Table 2 chapter): β-LASSO acts through the number
of steps. A 24-epoch run at batch 128 has about 1,900 steps against the paper's ≈ 350,000 (4000
epochs of 45,000 images at batch 512). The total ℓ1 shrink ½·η·λ·T and the threshold βλ of
the λ chosen at 24 epochs were inside the paper's range relative to the initial weights; they
arrived in doses 15–150× larger per step, and the first layer started to become local only
after 98 % of the learning rate was spent, with no generalisation gap for a regulariser to
close (train ≈ test). At 120 epochs (9,360 steps: 78 full batches of 128 per epoch) S-FC with SGD opens a gap of ≈ 19 points, and
the chosen β-LASSO run's first-layer density and locality radius stop moving with 20–40 % of
the learning rate left (measured: :func:`companion.book.protocol.settling`). The grid is chosen from
that regime (:func:`companion.book.protocol.search_regime`): λ ∈ {1e-5, 3e-5, 1e-4} with
λ_first = 3λ (Section 4.1: the convolution's layer gets a larger λ) puts the first layer's
total shrink ½·η·λ_first·T at 1.6×, 4.7× and 16× its mean initial |w|, and β ∈ {0, 1, 10, 50}
puts the threshold β·λ_first between 0 and 83 % of its largest initial |w|.

Why 480 (and 960) epochs at cpu (issue 16): every 120-epoch run ends where its cosine schedule
reaches zero, far from fitting (S-FC: 68 % training accuracy), so most claims read "underfit,
not refuted". The central comparison (S-FC, β-LASSO against SGD) is therefore run again at
``longer_epochs`` = 480 (37,440 steps; ≈ 40 min a run on one thread of this machine's CPU):
the best two settings of each 120-epoch search, selected again on validation at 480, then the
chosen setting of each with the three seeds, and S-LOCAL and S-CONV as references (one seed)
(:mod:`companion.experiments.lengths`): about 10 runs, ≈ 7 h of one-thread training. ``trend_epochs`` =
960 trains each chosen setting once more (one seed, ≈ 80 min each) to show where the trend goes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

from companion import paper
from companion.nn.params import count_params

PROFILE_NAMES = ("smoke", "cpu", "paper")


@dataclass(frozen=True)
class Profile:
    """Everything that sets the scale of the experiments behind the book's chapters."""

    name: str
    description: str
    dataset: str
    train_size: int | None  # training images after the validation split (None = all)
    val_size: int
    batch_size: int
    augment: str
    epochs_short: int  # Table 1 "400 ep." column, Figures 2, 5, 6 (and the λ search if short)
    epochs_long: int  # Table 1 "4000 ep." column, Table 2, Figure 3
    s_alpha: int  # base channels of S-* (sets the common FC budget, Section 2.2)
    scaling_alphas: dict  # Figure 2: α per family
    resnet_alpha: int  # Figure 5
    resnet_kernels: tuple
    lambdas: tuple  # β-LASSO λ (other layers) searched on validation accuracy
    lam_first_factors: tuple  # λ_first = factor × λ (Section 4.1: larger λ for the conv layer)
    betas: tuple  # β searched; Table 2 shows 0, 1, 50 and the best at this scale
    sgd_momentum: float = 0.9
    sgd_weight_decay: float = 5e-4
    search_length: str = "short"  # "short" / "long": epochs of the λ/β and SGD searches
    sgd_grid: tuple = ()  # (momentum, weight decay) pairs searched for S-FC's SGD; () = fixed
    seeds: tuple = (0,)  # seeds of Table 2's chosen rows (RunKey SEED_ROWS): mean ± spread
    longer_epochs: tuple = ()  # issue 16: the central comparison again at these lengths (companion.experiments.lengths)
    trend_epochs: tuple = ()  # issue 16: the chosen settings of the longest longer length, one seed
    track_every: int = 1
    hardware: str = ""
    data_root: str | None = None
    device: str = "auto"
    seed: int = 0
    extra: dict = field(default_factory=dict)

    @property
    def fc_budget(self) -> int:
        """The common FC-embedded size of Table 1: that of S-FC at ``s_alpha`` (Section 2.2)."""

        return count_params("s-fc", self.s_alpha)

    def to_dict(self) -> dict:
        return asdict(self)


PROFILES = {
    "smoke": Profile(
        name="smoke",
        description="synthetic 32×32 data (label = which local patch is planted), tiny networks, 1–2 epochs",
        dataset="synthetic", train_size=512, val_size=256, batch_size=128, augment="flip-crop",
        epochs_short=1, epochs_long=2, s_alpha=2,
        scaling_alphas={"d-conv": (1, 2), "s-conv": (1, 2), "3-fc": (16, 64), "resnet18": (2,)},
        resnet_alpha=2, resnet_kernels=(3, 5), lambdas=(1e-4,), lam_first_factors=(1,),
        betas=(0.0, 1.0, 50.0), search_length="long", sgd_grid=((0.9, 5e-4), (0.0, 5e-4)), seeds=(0, 1),
        longer_epochs=(4,), trend_epochs=(6,),
        hardware="any CPU, seconds",
    ),
    "cpu": Profile(
        name="cpu",
        description="real CIFAR-10, 10,000 training images, 8 / 120 epochs, FC budget of S-FC α=8",
        dataset="cifar10", train_size=10_000, val_size=5_000, batch_size=128, augment="flip-crop",
        epochs_short=8, epochs_long=120, s_alpha=8,
        scaling_alphas={"d-conv": (1, 2, 4, 8), "s-conv": (2, 4, 8, 16, 32), "3-fc": (128, 512, 2048),
                        "resnet18": (2, 4, 8)},
        resnet_alpha=4, resnet_kernels=(3, 5, 7, 9), lambdas=(1e-5, 3e-5, 1e-4),
        lam_first_factors=(3,), betas=(0.0, 1.0, 10.0, 50.0), track_every=4, search_length="long",
        sgd_grid=((0.9, 5e-4), (0.9, 2e-3), (0.9, 1e-4), (0.0, 2e-3)), seeds=(0, 1, 2),
        longer_epochs=(480,), trend_epochs=(960,),
        hardware="2 CPU cores, fp32",
    ),
    "paper": Profile(
        name="paper",
        description="Appendix A.2: 256 M FC budget, 400 / 4000 epochs, batch 512, Fast AutoAugment",
        dataset="cifar10", train_size=None, val_size=5_000, batch_size=paper.BATCH_SIZE,
        augment="fast-autoaugment", epochs_short=400, epochs_long=4000, s_alpha=150,
        scaling_alphas={"d-conv": (4, 8, 16, 32, 64), "s-conv": (16, 32, 64, 128, 256),
                        "3-fc": (256, 1024, 4096, 16384), "resnet18": (8, 16, 32, 64)},
        resnet_alpha=64, resnet_kernels=(3, 5, 7, 9), lambdas=paper.LAMBDAS,
        lam_first_factors=(1, 2, 5, 10), betas=(0.0, 1.0, paper.BETA), track_every=10,
        hardware="one GPU, fp16 mixed precision (batch-norm in fp32)",
    ),
}


def get(name: str, **overrides) -> Profile:
    """The profile ``name`` (``smoke``, ``cpu`` or ``paper``), with fields overridden (e.g.
    ``dataset``, ``data_root``, ``device``). Unknown names or fields: one clear ``ValueError``."""
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; choose one of {', '.join(PROFILE_NAMES)}")
    known = set(Profile.__dataclass_fields__)
    if unknown := set(overrides) - known:
        raise ValueError(f"unknown profile field(s) {sorted(unknown)}; known: {', '.join(sorted(known))}")
    overrides = {k: v for k, v in overrides.items() if v is not None}
    profile = replace(PROFILES[name], **overrides)
    if profile.search_length not in ("short", "long"):
        raise ValueError(f"search_length must be 'short' or 'long', got {profile.search_length!r}")
    return profile

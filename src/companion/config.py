"""One training run's settings: :class:`TrainConfig` (hashed into a run id).

Defaults follow Appendix A.2: cosine-annealed learning rate 0.1, batch size 512; SGD with
momentum / weight decay, or β-LASSO (Algorithm 1) with β = 50 and an ℓ1 coefficient λ that may
be larger for the layer(s) sitting where the convolutions are (``lam_first``, Section 4.1).

The run id is a short hash of the fields that determine the result (:meth:`TrainConfig.result_fields`):

- excluded because they do not change what is computed: ``data_root`` (where the data lives),
  ``device`` (where it runs; a CPU and a GPU run of the same config share an id — their numbers
  agree up to floating-point reduction order, and ``precision="auto"`` means "the default for the
  device": fp16 AMP on CUDA, fp32 on CPU);
- excluded because the chosen optimizer ignores them: ``lam``/``lam_first``/``beta`` for SGD,
  ``momentum``/``weight_decay`` for β-LASSO (Algorithm 1 has neither);
- ``lam_first=None`` is hashed as ``lam``, and ResNet18's ``kernel_size=None`` as 3 (they mean the same);
- a run with ``permute_pixels`` also hashes ``permute_stage = "after-augment"``: the permutation
  is applied to each augmented batch (see :mod:`companion.train.loop`); earlier versions permuted
  the stored images before augmenting, and their runs, hashed without this key, are never
  mistaken for new ones.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import operator
from dataclasses import dataclass, fields
from typing import Any

from companion.checks import check_int, check_number
from companion.data.augment import AUGMENTATIONS
from companion.data.files import DATASETS
from companion.nn.models import MODEL_NAMES, check_model_args

#: optimizers: SGD (torch.optim.SGD) or β-LASSO (Algorithm 1)
OPTIMIZERS = ("sgd", "beta-lasso")
#: numeric precision; "auto" = fp16 AMP on CUDA (batch-norm kept fp32 by autocast, Appendix A), fp32 on CPU
PRECISIONS = ("auto", "fp32", "bf16", "fp16-amp")

#: fields that never enter the run id (see module docstring)
NOT_HASHED = ("data_root", "device")
#: where a run's pixel permutation acts (hashed with ``permute_pixels``; see module docstring)
PERMUTE_STAGE = "after-augment"
#: fields that only matter for one optimizer
OPTIMIZER_FIELDS = {"sgd": ("momentum", "weight_decay"), "beta-lasso": ("lam", "lam_first", "beta")}


@dataclass(frozen=True)
class TrainConfig:
    """All settings of one training run (Appendix A.2 defaults).

    ``model``/``alpha``: architecture and number of base channels (Tables 3/4);
    ``lam``: β-LASSO ℓ1 coefficient λ for all weight layers, ``lam_first``: λ for the layers at the
    convolutions' positions (None = ``lam``); ``beta``: β-LASSO threshold factor;
    ``permute_pixels``: seed of a fixed pixel permutation (Section 4.1), applied after
    augmentation to every image the network sees; None = none;
    ``subset``: use only the first N training images; ``val_size``: images held out of the
    training set for model selection (Appendix A.2 picks by validation accuracy);
    ``kernel_size``: kernel of ResNet18's residual blocks (Section 4.2, Figure 5); None = 3. The
    other models' kernels are fixed by Tables 3/4, so for them it must stay None;
    ``track_every``: evaluate val/test accuracy every N epochs (and always on the last).
    """

    model: str
    alpha: int
    epochs: int
    dataset: str = "cifar10"
    data_root: str | None = None
    optimizer: str = "sgd"
    lr: float = 0.1
    lam: float = 1e-6
    lam_first: float | None = None
    beta: float = 50.0
    momentum: float = 0.9
    weight_decay: float = 5e-4
    dropout: float = 0.0
    kernel_size: int | None = None
    batch_size: int = 512
    augment: str = "flip-crop"
    permute_pixels: int | None = None
    subset: int | None = None
    val_size: int = 0
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"
    track_every: int = 1

    def __post_init__(self):
        # 1 and 1.0 must hash alike: store ints given for float fields as floats.
        for f in fields(self):
            value = getattr(self, f.name)
            if "float" in str(f.type) and isinstance(value, int) and not isinstance(value, bool):
                object.__setattr__(self, f.name, float(value))
            elif "int" in str(f.type) and not isinstance(value, (bool, int)) and hasattr(value, "__index__"):
                object.__setattr__(self, f.name, operator.index(value))  # a NumPy integer hashes as an int

    # ----------------------------------------------------------------------------- validation
    def validate(self) -> "TrainConfig":
        """Raise one ValueError naming the first bad field and what is accepted; return self."""

        def choice(name, accepted):
            value = getattr(self, name)
            if value not in accepted:
                raise ValueError(f"unknown {name} {value!r}; accepted: {', '.join(accepted)}")

        def integer(name, low, optional=False):
            check_int(name, getattr(self, name), minimum=low, optional=optional)

        def number(name, low, high=None, low_open=False, optional=False):
            check_number(name, getattr(self, name), low=low, high=high, low_open=low_open, optional=optional)

        choice("model", MODEL_NAMES)
        integer("alpha", 1)
        integer("kernel_size", 1, optional=True)
        number("dropout", 0, 1)
        check_model_args(self.model, self.alpha, dropout=self.dropout, kernel_size=self.kernel_size)
        integer("epochs", 1)
        choice("dataset", DATASETS)
        if self.data_root is not None and not isinstance(self.data_root, str):
            raise ValueError(f"data_root must be a path string or None, got {self.data_root!r}")
        choice("optimizer", OPTIMIZERS)
        number("lr", 0, low_open=True)
        number("lam", 0)
        number("lam_first", 0, optional=True)
        number("beta", 0)
        number("momentum", 0, 1)
        number("weight_decay", 0)
        integer("batch_size", 1)
        choice("augment", AUGMENTATIONS)
        integer("permute_pixels", 0, optional=True)
        integer("subset", 1, optional=True)
        integer("val_size", 0)
        integer("seed", 0)
        if not isinstance(self.device, str) or not _is_device(self.device):
            raise ValueError(f"unknown device {self.device!r}; accepted: auto, cpu, cuda, cuda:N, mps")
        choice("precision", PRECISIONS)
        integer("track_every", 1)
        return self

    # ----------------------------------------------------------------------------- identity
    def result_fields(self) -> dict[str, Any]:
        """The fields that determine the result (what :meth:`run_id` hashes; see module docstring)."""
        d = self.to_dict()
        for name in NOT_HASHED:
            d.pop(name)
        for optimizer, names in OPTIMIZER_FIELDS.items():
            if optimizer != self.optimizer:
                for name in names:
                    d.pop(name, None)
        if "lam_first" in d and d["lam_first"] is None:
            d["lam_first"] = d["lam"]
        if self.model == "resnet18" and d["kernel_size"] is None:
            d["kernel_size"] = 3
        if self.permute_pixels is not None:
            d["permute_stage"] = PERMUTE_STAGE
        return d

    def run_id(self) -> str:
        """Short stable hash (12 hex digits) of :meth:`result_fields`."""
        text = json.dumps(self.result_fields(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def replace(self, **changes) -> "TrainConfig":
        return dataclasses.replace(self, **changes)

    # ----------------------------------------------------------------------------- (de)serialise
    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def stored_dict(self) -> dict[str, Any]:
        """:meth:`to_dict` as the results store keeps it: without ``data_root`` (a folder of the
        machine that trained; the data is named by the summary's dataset fingerprint instead)."""
        return {**self.to_dict(), "data_root": None}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        """Build from a mapping (JSON/YAML); unknown or missing fields give one clear ValueError.

        Strings given for float fields (YAML reads ``1e-6`` as a string) are converted.
        """
        if not isinstance(d, dict):
            raise ValueError(f"a config must be a mapping of field: value, got {type(d).__name__}")
        names = [f.name for f in fields(cls)]
        unknown = sorted(set(d) - set(names))
        if unknown:
            raise ValueError(f"unknown config field(s) {', '.join(unknown)}; accepted: {', '.join(names)}")
        required = [f.name for f in fields(cls) if f.default is dataclasses.MISSING]
        missing = [n for n in required if n not in d]
        if missing:
            raise ValueError(f"missing config field(s) {', '.join(missing)} (required: {', '.join(required)})")
        values = dict(d)
        for f in fields(cls):
            v = values.get(f.name)
            if "float" in str(f.type) and isinstance(v, str):
                try:
                    values[f.name] = float(v)
                except ValueError:
                    raise ValueError(f"{f.name} must be a number, got {v!r}") from None
        return cls(**values)


def steps_per_epoch(n_train: int, batch_size: int) -> int:
    """Optimizer steps per epoch: ⌊training images / batch⌋. The trainer drops the last partial
    batch (every step sees a full batch), so this is the one count the trainer's schedule and the
    book's step figures share."""
    return n_train // batch_size


def _is_device(name: str) -> bool:
    if name == "auto":
        return True
    import torch

    try:
        return torch.device(name).type in ("cpu", "cuda", "mps")
    except (RuntimeError, ValueError):
        return False

"""Reproducible companion to "Towards Learning Convolutions from Scratch" (Neyshabur, 2020).

Public API (imported lazily, so ``import companion`` stays cheap):

- architectures: :func:`build_model`, :data:`MODEL_NAMES` (Section 2, Tables 3/4, Appendix A.1)
- parameter accounting: :func:`count_params`, :func:`paper_param_count`, :func:`alpha_for_budget`
- embeddings CONV ⊂ LOCAL ⊂ FC: :func:`embed` (Section 2)
- β-LASSO: :class:`BetaLasso` (Algorithm 1)
- training and results: :func:`train`, :func:`load_runs`
"""

from importlib import import_module

__version__ = "0.1.0"

_EXPORTS = {
    "LocallyConnected2d": "companion.nn.layers",
    "build_model": "companion.nn.models",
    "MODEL_NAMES": "companion.nn.models",
    "count_params": "companion.nn.params",
    "paper_param_count": "companion.nn.params",
    "alpha_for_budget": "companion.nn.params",
    "layer_table": "companion.nn.params",
    "embed": "companion.nn.embedding",
    "BetaLasso": "companion.optim",
    "lasso_param_groups": "companion.optim",
    "load_data": "companion.data.datasets",
    "TrainConfig": "companion.config",
    "train": "companion.train.loop",
    "load_runs": "companion.store.results",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'companion' has no attribute {name!r}")
    return getattr(import_module(module), name)


def __dir__():
    return __all__

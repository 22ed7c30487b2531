"""Committed compact weights: exact round trip, sparse storage, clear errors."""

import numpy as np
import pytest
import torch

from companion import build_model
from companion.store import artifacts
from companion.store.artifacts import pack_state, unpack_state


def test_pack_round_trip_is_exact_and_sparse_where_sparse():
    torch.manual_seed(0)
    model = build_model("s-fc", 1)
    with torch.no_grad():
        w = model.conv1.layer.weight
        w.mul_((torch.rand_like(w) < 0.02).float())  # a β-LASSO-like first layer: 2 % non-zero
    state = model.state_dict()
    packed = pack_state(state)
    assert "index/conv1.layer.weight" in packed and packed["index/conv1.layer.weight"].dtype == np.int32
    assert "dense/fc1.layer.weight" in packed  # a dense tensor stays dense
    back = unpack_state(packed)
    assert back.keys() == state.keys()
    for name, t in state.items():
        assert back[name].dtype == t.dtype and torch.equal(back[name], t), name
    sparse_bytes = sum(a.nbytes for k, a in packed.items() if k.endswith("conv1.layer.weight"))
    assert sparse_bytes < 0.2 * state["conv1.layer.weight"].numel() * 4


def test_unknown_entry_is_one_clear_error():
    with pytest.raises(ValueError, match="unknown entry 'bogus/x'"):
        unpack_state({"bogus/x": np.zeros(1)})


def test_trained_network_prefers_checkpoint_then_weights_then_errors(tmp_path):
    from companion.config import TrainConfig
    from companion.train.loop import train

    config = TrainConfig(model="3-fc", alpha=8, epochs=1, dataset="synthetic", batch_size=64,
                         subset=128, val_size=64, track_every=1)
    run = train(config, root=tmp_path, progress=False)
    from_checkpoint = artifacts.trained_network(run)
    sizes = artifacts.store_weights([run])
    assert sizes[run.run_id] == (run.path / artifacts.WEIGHTS).stat().st_size > 0
    (run.path / "checkpoint.pt").unlink()
    from_weights = artifacts.trained_network(run)
    for (n, a), (_, b) in zip(from_checkpoint.state_dict().items(), from_weights.state_dict().items()):
        assert torch.equal(a, b), n
    (run.path / artifacts.WEIGHTS).unlink()
    with pytest.raises(FileNotFoundError, match="neither a checkpoint nor stored weights"):
        artifacts.trained_network(run)


def test_store_weights_refuses_to_exceed_the_budget(tmp_path):
    from companion.config import TrainConfig
    from companion.train.loop import train

    config = TrainConfig(model="3-fc", alpha=8, epochs=1, dataset="synthetic", batch_size=64, subset=128, val_size=64)
    run = train(config, root=tmp_path, progress=False)
    with pytest.raises(ValueError, match="over the 0 MiB limit"):
        artifacts.store_weights([run], max_bytes=10)
    assert not (run.path / artifacts.WEIGHTS).exists()  # nothing written


def test_weights_source_and_untrained_stand_in(tmp_path):
    from companion.config import TrainConfig
    from companion.train.loop import train

    config = TrainConfig(model="3-fc", alpha=8, epochs=1, dataset="synthetic", batch_size=64, subset=128, val_size=64)
    run = train(config, root=tmp_path, progress=False)
    assert artifacts.weights_source(run) == "checkpoint"
    artifacts.store_weights([run])
    (run.path / "checkpoint.pt").unlink()
    assert artifacts.weights_source(run) == artifacts.WEIGHTS
    (run.path / artifacts.WEIGHTS).unlink()
    assert artifacts.weights_source(run) is None
    torch.manual_seed(5)
    before = torch.rand(1)
    torch.manual_seed(5)
    a, b = artifacts.untrained_network(run, seed=0), artifacts.untrained_network(run, seed=0)
    assert torch.equal(torch.rand(1), before)  # the global generator is left alone
    assert not a.training and all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert a(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


def _cli_runs(tmp_path):
    """Two finished runs keyed like Table 2's rows: β-LASSO with a threshold βλ above every initial
    weight (its export is sparse) and SGD (dense)."""
    from companion.config import TrainConfig
    from companion.experiments.runs import S_FC_SGD, lasso_key
    from companion.train.loop import train

    base = dict(model="3-fc", alpha=8, epochs=1, dataset="synthetic", batch_size=64, subset=128, val_size=64)
    sparse = train(TrainConfig(**base, optimizer="beta-lasso", lam=1e-2, beta=50), root=tmp_path, progress=False)
    dense = train(TrainConfig(**base, optimizer="sgd"), root=tmp_path, progress=False)
    return {lasso_key(50): sparse, S_FC_SGD: dense}


def test_weights_command_stores_the_sparse_runs_only_within_budget(tmp_path, monkeypatch, capsys):
    from companion import cli
    from companion.book import weight_tables as tables_weights

    runs = _cli_runs(tmp_path)
    monkeypatch.setattr(tables_weights, "sparse_runs", lambda study: runs)
    sparse, dense = runs.values()
    assert tables_weights.weights_needed(sparse) and not tables_weights.weights_needed(dense)
    assert cli.main(["weights", "--profile", "smoke", "--results-dir", str(tmp_path), "--max-mib", "0.000001"]) == 2
    assert "over the" in capsys.readouterr().err and not (sparse.path / artifacts.WEIGHTS).exists()
    assert cli.main(["weights", "--profile", "smoke", "--results-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert (sparse.path / artifacts.WEIGHTS).is_file() and not (dense.path / artifacts.WEIGHTS).exists()
    assert f"{sparse.run_id}" in out and "not stored (dense" in out and "1 of 2 runs stored" in out

"""Committed compact weights: exact round trip, sparse storage, clear errors."""

import numpy as np
import pytest
import torch

from companion import artifacts, build_model
from companion.artifacts import pack_state, unpack_state


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
    from companion.training import train

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
    from companion.training import train

    config = TrainConfig(model="3-fc", alpha=8, epochs=1, dataset="synthetic", batch_size=64, subset=128, val_size=64)
    run = train(config, root=tmp_path, progress=False)
    with pytest.raises(ValueError, match="over the 0 MiB limit"):
        artifacts.store_weights([run], max_bytes=10)
    assert not (run.path / artifacts.WEIGHTS).exists()  # nothing written

"""Training cost: MACs per image counted from the layers, GPU-hours at a stated throughput."""

import json

import pytest

from companion import count_params
from companion.config import TrainConfig
from companion.experiments.cost import Throughput, forward_macs, gpu_hours, training_flops


def test_fc_networks_do_one_mac_per_weight():
    for name in ("s-fc", "3-fc", "d-fc"):
        macs = forward_macs(name, 2)
        # every weight layer is a Linear: MACs = weights = parameters minus biases / batch norm
        assert 0.99 * count_params(name, 2) < macs <= count_params(name, 2)


def test_conv_reuses_each_weight_at_every_position_and_local_does_not():
    conv, local = forward_macs("s-conv", 2), forward_macs("s-local", 2)
    # S-CONV α=2 (Table 4): a 9×9×3 kernel with α channels at 16×16 positions (stride 2),
    # then Linear 512→48 and 48→10
    assert conv == 9 * 9 * 3 * 2 * 16 * 16 + 512 * 48 + 48 * 10
    # S-LOCAL does the same arithmetic as S-CONV with unshared weights (Section 2)
    assert local == pytest.approx(conv, rel=0.02)
    assert forward_macs("resnet18", 2, kernel_size=5) > forward_macs("resnet18", 2)


def test_training_flops_and_hours():
    c = TrainConfig(model="s-fc", alpha=2, epochs=10, dataset="cifar10", subset=1000, val_size=0)
    assert training_flops(c) == 6 * forward_macs("s-fc", 2) * 1000 * 10
    full = c.replace(subset=None, val_size=5000)
    assert training_flops(full) == 6 * forward_macs("s-fc", 2) * 45_000 * 10
    t = Throughput(1e12, "test")
    assert gpu_hours([c, c], t) == pytest.approx(2 * training_flops(c) / 1e12 / 3600)
    with pytest.raises(ValueError, match="training set size of 'synthetic' unknown"):
        training_flops(c.replace(dataset="synthetic", subset=None))


def test_throughput_prefers_a_measurement(tmp_path):
    assumed = Throughput.load(tmp_path / "none.json")
    assert "assumed" in assumed.source and assumed.flops_per_s > 1e14
    f = tmp_path / "m.json"
    f.write_text(json.dumps({"achieved_tflops": 100.0, "device": "NVIDIA H100", "date": "2026-12-02"}))
    measured = Throughput.load(f)
    assert measured.flops_per_s == 1e14 and "NVIDIA H100" in measured.source

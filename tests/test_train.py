"""Tests for companion.config (TrainConfig) and companion.train.loop (loop, checkpoints, resume)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from companion.store import locks, results
from companion.config import TrainConfig
from companion.nn.analysis import first_layer_filters
from companion.nn.models import build_model
from companion.store.results import CheckpointError
from companion.train.loop import train

# A tiny run: synthetic task, 256 training images (+64 validation), batch 64 -> 4 steps/epoch.
TINY = dict(model="s-conv", alpha=2, epochs=2, dataset="synthetic", subset=256, val_size=64,
            batch_size=64, device="cpu")


def tiny(**changes) -> TrainConfig:
    return TrainConfig(**{**TINY, **changes})


def weights(run) -> dict:
    return torch.load(run.path / results.CHECKPOINT, weights_only=True)["model"]


def comparable(metrics: list[dict]) -> list[dict]:
    """Metrics without the timing entries (which differ between any two runs)."""
    return [{k: v for k, v in m.items() if k not in ("seconds", "images_per_s")} for m in metrics]


# --------------------------------------------------------------------------- config
@pytest.mark.parametrize("change, message", [
    (dict(model="vgg"), "unknown model 'vgg'; accepted: d-conv"),
    (dict(alpha=0), "alpha must be an integer >= 1"),
    (dict(epochs=0), "epochs must be an integer >= 1"),
    (dict(dataset="imagenet"), "unknown dataset 'imagenet'; accepted: cifar10"),
    (dict(optimizer="adam"), "unknown optimizer 'adam'; accepted: sgd, beta-lasso"),
    (dict(augment="mixup"), "unknown augment 'mixup'; accepted: none, flip-crop"),
    (dict(lam=-1e-6), "lam must be a number >= 0"),
    (dict(lam_first=-1.0), "lam_first must be a number >= 0"),
    (dict(beta=-1.0), "beta must be a number >= 0"),
    (dict(lr=0.0), "lr must be a number > 0"),
    (dict(momentum=1.0), "momentum must be a number >= 0 and < 1"),
    (dict(dropout=1.5), "dropout must be a number >= 0 and < 1"),
    (dict(batch_size=0), "batch_size must be an integer >= 1"),
    (dict(precision="fp8"), "unknown precision 'fp8'; accepted: auto, fp32"),
    (dict(device="tpu"), "unknown device 'tpu'"),
    (dict(kernel_size=5), "kernel_size is an option of resnet18 only"),
    (dict(track_every=0), "track_every must be an integer >= 1"),
])
def test_validate_names_the_bad_field(change, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        tiny(**change).validate()


def test_validate_accepts_the_defaults():
    assert TrainConfig(model="s-fc", alpha=8, epochs=1).validate().optimizer == "sgd"


def test_run_id_hashes_exactly_the_result_fields():
    c = tiny()
    assert c.run_id() == tiny().run_id() and len(c.run_id()) == 12
    assert c.run_id() != tiny(lr=0.05).run_id()
    assert c.run_id() != tiny(seed=1).run_id()
    # where it runs does not change the result
    assert c.run_id() == tiny(device="cuda", data_root="/elsewhere").run_id()
    # 1 and 1.0 are the same number
    assert tiny(lr=1).run_id() == tiny(lr=1.0).run_id()
    # SGD ignores the β-LASSO fields, β-LASSO ignores momentum / weight decay
    assert c.run_id() == tiny(lam=1e-3, beta=3.0).run_id()
    bl = tiny(optimizer="beta-lasso")
    assert bl.run_id() == tiny(optimizer="beta-lasso", momentum=0.0, weight_decay=0.0).run_id()
    assert bl.run_id() != tiny(optimizer="beta-lasso", lam=2e-6).run_id()
    # lam_first=None means "same as lam"
    assert bl.run_id() == tiny(optimizer="beta-lasso", lam_first=1e-6).run_id()
    # a permuted run hashes where its permutation acts (after augmentation since 0.2)
    assert tiny(permute_pixels=3).result_fields()["permute_stage"] == "after-augment"
    assert "permute_stage" not in c.result_fields()


def test_permutation_acts_after_augmentation():
    """Section 4.1's permutation test: flips and crops act on the image, then pixels move."""
    from companion.data.augment import make_augment
    from companion.data.permutation import PixelPermutation
    from companion.train.step import training_inputs

    x = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8)
    augment, permutation = make_augment("flip-crop", "cifar10"), PixelPermutation(3, 32, 32)
    seen = training_inputs(x, augment, torch.Generator().manual_seed(0), permutation)
    assert torch.equal(seen, permutation(augment(x, torch.Generator().manual_seed(0))))
    assert not torch.equal(seen, augment(permutation(x), torch.Generator().manual_seed(0)))
    assert torch.equal(training_inputs(x, augment, torch.Generator().manual_seed(0)),
                       augment(x, torch.Generator().manual_seed(0)))


def test_permuted_run_evaluates_on_permuted_images(tmp_path, monkeypatch):
    from companion.train import loop as training

    seen = []
    real = training.evaluate
    monkeypatch.setattr(training, "evaluate", lambda *a: seen.append(a[-1]) or real(*a))
    train(tiny(epochs=1, permute_pixels=5, model="s-fc"), root=tmp_path, progress=False)
    assert len(seen) == 2 and all(p is not None and p.seed == 5 for p in seen)  # val and test


def test_config_dict_round_trip_and_unknown_field():
    c = tiny(optimizer="beta-lasso", lam_first=5e-6)
    assert TrainConfig.from_dict(json.loads(json.dumps(c.to_dict()))) == c
    assert TrainConfig.from_dict({**c.to_dict(), "lam": "2e-6"}).lam == 2e-6  # YAML reads 2e-6 as text
    with pytest.raises(ValueError, match="unknown config field.*lamda; accepted: model"):
        TrainConfig.from_dict({**c.to_dict(), "lamda": 1})
    with pytest.raises(ValueError, match="missing config field.*epochs"):
        TrainConfig.from_dict({"model": "s-fc", "alpha": 2})


# --------------------------------------------------------------------------- training
def test_train_writes_metrics_summary_and_arrays(tmp_path):
    config = tiny(optimizer="beta-lasso", lam=1e-4, lam_first=2e-4)
    run = train(config, root=tmp_path, progress=False)
    assert run.path == tmp_path / config.run_id() and run.finished
    lines = results.read_jsonl(run.path / results.METRICS)
    assert [m["epoch"] for m in lines] == [1, 2]
    layers = ["conv1.layer", "fc1.layer", "fc2.layer"]
    for m in lines:
        assert 0 <= m["train_acc"] <= 1 and 0 <= m["val_acc"] <= 1 and 0 <= m["test_acc"] <= 1
        assert m["train_loss"] > 0 and m["images_per_s"] > 0 and m["seconds"] > 0
        assert list(m["nonzeros"]) == layers
        assert all(0 <= m["nonzeros"][k] <= m["params"][k] for k in layers)
    assert lines[0]["lr"] == pytest.approx(0.1) and lines[1]["lr"] == pytest.approx(0.05)  # cosine, per step
    s = run.summary
    assert s["final_test_acc"] == lines[-1]["test_acc"] and s["final_val_acc"] == lines[-1]["val_acc"]
    assert s["best_val_acc"] == max(m["val_acc"] for m in lines)
    assert s["nonzeros"] == lines[-1]["nonzeros"]
    assert s["dataset"]["n_train"] == 256 and s["dataset"]["n_val"] == 64
    assert s["config"] == config.to_dict() and s["precision_used"] == "fp32"
    assert s["torch_version"] == torch.__version__ and s["wall_time_s"] > 0
    # β-LASSO's threshold zeroed weights; the recorded count is the model's
    state = weights(run)
    assert s["nonzeros"]["fc1.layer"] == int(state["fc1.layer.weight"].count_nonzero())
    assert s["nonzeros"]["fc1.layer"] < s["params"]["fc1.layer"]
    arrays = run.arrays()
    assert str(arrays["first_layer_name"]) == "conv1.layer"
    model = build_model(config.model, config.alpha)
    model.load_state_dict(state)
    w = first_layer_filters(model).flatten(1)  # one filter per unit, on the 3×32×32 grid
    assert arrays["unit_nonzeros"].tolist() == w.count_nonzero(1).tolist()
    units = arrays["filter_units"]
    assert len(units) == min(32, int((w.count_nonzero(1) >= 20).sum())) and (w[units].count_nonzero(1) >= 20).all()
    assert torch.equal(torch.from_numpy(arrays["filters"]).float(),
                       w[units].reshape(-1, 3, 32, 32).half().float())
    assert arrays["locality_radius"].shape == arrays["locality_window_mass"].shape == (w.shape[0],)
    # Theorem 2's ‖w‖₀: the convolution written as FC (each weight at every position)
    from companion.nn.embedding import embed
    fc = embed(model, "fc")
    assert s["first_layer"]["embedded_nonzeros"] == int(fc.conv1.layer.weight.count_nonzero()) > w.count_nonzero()
    assert all(len(m["locality"]["radius"]) == 5 for m in lines)
    assert TrainConfig.from_dict(json.loads((run.path / results.CONFIG).read_text())) == config


def test_finished_run_is_returned_without_retraining(tmp_path, monkeypatch):
    config = tiny(epochs=1)
    first = train(config, root=tmp_path, progress=False)
    before = (first.path / results.SUMMARY).read_bytes()

    def no_training(*args, **kwargs):
        raise AssertionError("trained again")

    monkeypatch.setattr("companion.train.loop._run", no_training)
    again = train(config, root=tmp_path, progress=False)
    assert again.path == first.path and again.summary == first.summary
    # force=True retrains in a side directory: a failure leaves the finished run untouched
    with pytest.raises(AssertionError, match="trained again"):
        train(config, root=tmp_path, progress=False, force=True)
    assert (first.path / results.SUMMARY).read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [config.run_id(), results.test_labels_path(tmp_path, first.summary["dataset"]).name])


def test_force_retrains_and_replaces(tmp_path):
    config = tiny(epochs=1)
    first = train(config, root=tmp_path, progress=False)
    (first.path / "marker").write_text("old")
    again = train(config, root=tmp_path, progress=False, force=True)
    assert again.path == first.path and not (again.path / "marker").exists()
    assert again.summary["final_test_acc"] == first.summary["final_test_acc"]  # deterministic on CPU


def test_batch_size_larger_than_training_set(tmp_path):
    with pytest.raises(ValueError, match=r"batch_size 512 is larger than the training set \(256 images"):
        train(tiny(batch_size=512), root=tmp_path, progress=False)  # caught before loading data
    # synthetic has 2048 training images, 64 of them held out for validation
    with pytest.raises(ValueError, match=r"batch_size 2000 is larger than the training set \(1984 images"):
        train(tiny(batch_size=2000, subset=None), root=tmp_path, progress=False)
    assert list(tmp_path.iterdir()) == []  # no run directory left behind


def test_fp16_amp_needs_cuda(tmp_path):
    with pytest.raises(ValueError, match="fp16-amp' needs a CUDA device"):
        train(tiny(precision="fp16-amp"), root=tmp_path, progress=False)


def test_non_finite_loss_stops_and_does_not_look_finished(tmp_path):
    config = tiny(lr=1e30, epochs=3)
    with pytest.raises(RuntimeError, match="non-finite training loss .* in epoch 1 "):
        train(config, root=tmp_path, progress=False)
    assert not (tmp_path / config.run_id() / results.SUMMARY).exists()
    assert results.find_run(config, tmp_path) is None
    assert results.load_runs(tmp_path).empty


def cli_args(config: TrainConfig, root) -> list[str]:
    """``companion train`` flags for ``config``."""
    args = ["train", "--quiet", "--out", str(root)]
    for key, value in config.to_dict().items():
        if value is not None:
            args += [f"--{key.replace('_', '-')}", str(value)]
    return args


def kill_after_first_checkpoint(command: list[str], run_dir: Path, timeout: float = 120) -> None:
    """Start ``command`` (in its own process group), SIGKILL the group as soon as ``run_dir``
    holds a checkpoint, and check that it was killed before finishing."""
    # same thread count as this process: CPU GEMM summation order depends on it
    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    deadline = time.monotonic() + timeout
    while not (run_dir / results.CHECKPOINT).exists():
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline, "no checkpoint was written"
        time.sleep(0.005)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    assert not (run_dir / results.SUMMARY).exists()  # killed mid-run
    assert (run_dir / locks.LOCK).exists()  # left behind by the killed process ...
    assert locks.lock_holder(run_dir) is None  # ... and stale


@pytest.mark.slow
def test_resume_after_sigkill_is_exact(tmp_path):
    config = tiny(epochs=4, subset=1024, dropout=0.5, optimizer="beta-lasso", lam=1e-4)  # dropout: RNG replay too
    run_dir = tmp_path / "a" / config.run_id()
    kill_after_first_checkpoint([sys.executable, "-m", "companion", *cli_args(config, tmp_path / "a")], run_dir)
    killed_at = torch.load(run_dir / results.CHECKPOINT, weights_only=True)["epoch"]
    assert 1 <= killed_at < config.epochs
    with pytest.raises(FileExistsError, match="unfinished run"):
        train(config, root=tmp_path / "a", progress=False)  # resume=False never discards progress
    resumed = train(config, root=tmp_path / "a", resume=True, progress=False)
    assert not (run_dir / locks.LOCK).exists()
    straight = train(config, root=tmp_path / "b", progress=False)
    a, b = weights(resumed), weights(straight)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    ma = results.read_jsonl(resumed.path / results.METRICS)
    mb = results.read_jsonl(straight.path / results.METRICS)
    assert len(ma) == 4 and comparable(ma) == comparable(mb)
    assert resumed.summary["resumed_at"] == [killed_at] and straight.summary["resumed_at"] == []


def test_crash_between_checkpoint_and_metrics_line_resumes_exactly(tmp_path, monkeypatch):
    """The narrowest window: epoch 1's checkpoint is written, its metrics line is not."""
    config = tiny(epochs=2)

    def crash(path, row):
        raise KeyboardInterrupt("killed")

    monkeypatch.setattr(results, "append_jsonl", crash)
    with pytest.raises(KeyboardInterrupt):
        train(config, root=tmp_path / "a", progress=False)
    monkeypatch.undo()
    run_dir = tmp_path / "a" / config.run_id()
    assert results.read_jsonl(run_dir / results.METRICS) == [] and not (run_dir / locks.LOCK).exists()
    resumed = train(config, root=tmp_path / "a", resume=True, progress=False)
    straight = train(config, root=tmp_path / "b", progress=False)
    assert all(torch.equal(a, b) for a, b in zip(weights(resumed).values(), weights(straight).values()))
    assert comparable(results.read_jsonl(resumed.path / results.METRICS)) == comparable(
        results.read_jsonl(straight.path / results.METRICS))


def test_corrupt_checkpoint_is_one_clear_error(tmp_path):
    config = tiny(epochs=1)
    run = train(config, root=tmp_path / "a", progress=False)
    good = (run.path / results.CHECKPOINT).read_bytes()
    for name, content in (("truncated", good[: len(good) // 2]), ("garbage", b"not a checkpoint")):
        run_dir = tmp_path / name / config.run_id()
        run_dir.mkdir(parents=True)
        (run_dir / results.CHECKPOINT).write_bytes(content)
        with pytest.raises(CheckpointError, match="is corrupt or truncated"):
            train(config, root=tmp_path / name, resume=True, progress=False)
        assert (run_dir / results.CHECKPOINT).read_bytes() == content  # nothing overwritten
        assert sorted(p.name for p in run_dir.iterdir()) == [results.CHECKPOINT]


def test_checkpoint_from_another_config_is_refused(tmp_path):
    run = train(tiny(epochs=1), root=tmp_path, progress=False)
    other = tiny(epochs=1, lr=0.05)
    other_dir = tmp_path / other.run_id()
    other_dir.mkdir()
    content = (run.path / results.CHECKPOINT).read_bytes()
    (other_dir / results.CHECKPOINT).write_bytes(content)
    with pytest.raises(CheckpointError, match=r"different config \(lr: 0.1 \(checkpoint\) vs 0.05\)"):
        train(other, root=tmp_path, resume=True, progress=False)
    assert (other_dir / results.CHECKPOINT).read_bytes() == content
    assert not (other_dir / results.SUMMARY).exists()


def test_cli_train_prints_run_and_accuracies(tmp_path, capsys):
    from companion.cli import main

    argv = ["train", "--model", "3-fc", "--alpha", "16", "--epochs", "1", "--dataset", "synthetic",
            "--subset", "128", "--batch-size", "64", "--device", "cpu", "--quiet", "--out", str(tmp_path)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    run_id = TrainConfig(model="3-fc", alpha=16, epochs=1, dataset="synthetic", subset=128,
                         batch_size=64, device="cpu").run_id()
    assert f"run: {tmp_path / run_id}" in out and "final_test_acc: " in out
    assert main(argv[:-2] + ["--out", str(tmp_path), "--lam", "-1"]) == 2
    assert "lam must be a number >= 0" in capsys.readouterr().err


def test_filters_sample_is_drawn_among_units_with_20_nonzeros(tmp_path, monkeypatch):
    monkeypatch.setattr("companion.train.loop.FILTER_SAMPLE", 4)
    run = train(TrainConfig(model="s-local", alpha=2, epochs=1, dataset="synthetic", subset=128,
                            batch_size=64, device="cpu"), root=tmp_path, progress=False)
    arrays = run.arrays()
    # S-LOCAL: one unit per (channel, position), its 9×9×3 filter placed on the image grid
    assert arrays["unit_nonzeros"].shape == (2 * 16 * 16,)
    assert arrays["filters"].shape == (4, 3, 32, 32) and len(set(arrays["filter_units"])) == 4
    assert (arrays["unit_nonzeros"][arrays["filter_units"]] >= 20).all()
    assert (arrays["locality_window_mass"] > 0.999).all()  # every S-LOCAL filter fits its 9×9 field


def test_bf16_autocast_trains_on_cpu(tmp_path):
    run = train(tiny(precision="bf16", epochs=1), root=tmp_path, progress=False)
    assert run.summary["precision_used"] == "bf16"
    assert 0 < run.summary["final_train_loss"] < 10 and 0 <= run.summary["final_test_acc"] <= 1
    assert run.config.run_id() != tiny(epochs=1).run_id()  # precision is part of the result


def test_load_model_reads_the_checkpoint(tmp_path):
    from companion.store.artifacts import load_model

    run = train(tiny(epochs=1, model="s-fc", optimizer="beta-lasso", lam=1e-4), root=tmp_path, progress=False)
    model = load_model(run)
    state = torch.load(run.path / results.CHECKPOINT, map_location="cpu", weights_only=True)["model"]
    assert not model.training and all(torch.equal(model.state_dict()[k], v) for k, v in state.items())
    (run.path / results.CHECKPOINT).unlink()  # as in the committed results store
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load_model(run)


# --------------------------------------------------------------------------- β-LASSO step mode
def test_summary_records_the_beta_lasso_step_and_sgd_records_none(tmp_path):
    lasso = train(tiny(epochs=1, optimizer="beta-lasso", lam=1e-4), root=tmp_path, progress=False)
    sgd = train(tiny(epochs=1), root=tmp_path, progress=False)
    # a tiny run makes far fewer than FUSED_MIN_UPDATES updates: the exact step, nothing compiled
    assert lasso.summary["beta_lasso_step"] == {"mode": "exact", "matches_exact": True}
    assert sgd.summary["beta_lasso_step"] is None


@pytest.mark.skipif(torch.backends.cpu.get_cpu_capability() not in ("AVX2", "AVX512"),
                    reason="bit identity is claimed for x86-64 CPUs with FMA")
def test_fused_step_trains_the_same_run_bit_for_bit(tmp_path, monkeypatch):
    config = tiny(epochs=2, optimizer="beta-lasso", lam=1e-4, lam_first=2e-4)
    exact = train(config, root=tmp_path / "exact", progress=False)
    monkeypatch.setenv("COMPANION_BETA_LASSO_STEP", "fused")
    fused = train(config, root=tmp_path / "fused", progress=False)
    assert fused.summary["beta_lasso_step"] == {"mode": "fused", "matches_exact": True}
    assert fused.run_id == exact.run_id  # the mode is not part of the run id
    a, b = weights(exact), weights(fused)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert comparable(results.read_jsonl(exact.path / results.METRICS)) == \
        comparable(results.read_jsonl(fused.path / results.METRICS))


def test_auto_uses_the_fused_step_on_cpu_only_for_long_runs(monkeypatch):
    from companion.train import step
    monkeypatch.setenv("COMPANION_BETA_LASSO_STEP", "auto")
    monkeypatch.setattr(step, "fused_matches_exact", lambda device: True)  # no compile in this test
    cpu = torch.device("cpu")
    assert step.beta_lasso_mode(cpu, step.FUSED_MIN_UPDATES - 1)["mode"] == "exact"
    assert step.beta_lasso_mode(cpu, step.FUSED_MIN_UPDATES)["mode"] == "fused"
    monkeypatch.setattr(step, "fused_matches_exact", lambda device: False)
    assert step.beta_lasso_mode(cpu, 1e15)["mode"] == "exact"  # never a different number on CPU
    monkeypatch.setenv("COMPANION_BETA_LASSO_STEP", "fused")
    assert step.beta_lasso_mode(cpu, 1) == {"mode": "fused", "matches_exact": False}


def test_auto_falls_back_to_exact_when_the_fused_step_cannot_compile(monkeypatch):
    from companion.train import step

    def broken(device):
        raise RuntimeError("no C++ compiler")

    monkeypatch.setattr(step, "fused_matches_exact", broken)
    monkeypatch.setenv("COMPANION_BETA_LASSO_STEP", "auto")
    with pytest.warns(RuntimeWarning, match="no C.. compiler"):
        assert step.beta_lasso_mode(torch.device("cpu"), 1e15)["mode"] == "exact"
    monkeypatch.setenv("COMPANION_BETA_LASSO_STEP", "fused")
    with pytest.raises(RuntimeError, match="no C.. compiler"):
        step.beta_lasso_mode(torch.device("cpu"), 1e15)


def test_bad_step_mode_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("COMPANION_BETA_LASSO_STEP", "fast")
    with pytest.raises(ValueError, match="COMPANION_BETA_LASSO_STEP='fast'.*auto, fused, exact"):
        train(tiny(epochs=1, optimizer="beta-lasso"), root=tmp_path, progress=False)
    assert not any(tmp_path.iterdir())  # nothing written

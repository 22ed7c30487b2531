"""Tests for companion.train.distributed: one run on two CPU processes (torchrun, gloo) is the
single-process run (same run id, same numbers, weights within 1e-5), also after a SIGKILL."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from companion.store import locks, results
from companion.config import TrainConfig
from companion.train.distributed import GlooSyncBatchNorm, Group
from companion.train.loop import train

# batch 63 over 2 ranks: shards of 32 and 31 rows (the uneven case); β-LASSO acts on the
# all-reduced gradient; s-conv has BatchNorm2d and BatchNorm1d (synchronised over ranks)
CONFIG = TrainConfig(model="s-conv", alpha=2, epochs=2, dataset="synthetic", subset=256, val_size=64,
                     batch_size=63, device="cpu", precision="fp32", optimizer="beta-lasso", lam=1e-4)
SAME = ("final_train_acc", "final_val_acc", "final_test_acc", "best_val_acc", "best_val_epoch",
        "test_acc_at_best_val", "nonzeros", "params", "total_nonzeros", "total_weights", "run_id", "config")


def torchrun(config: TrainConfig, root: Path, *extra: str) -> list[str]:
    args = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
            "-m", "companion", "train", "--quiet", "--out", str(root), *extra]
    for key, value in config.to_dict().items():
        if value is not None:
            args += [f"--{key.replace('_', '-')}", str(value)]
    return args


ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def model_state(run) -> dict:
    return torch.load(run.path / results.CHECKPOINT, weights_only=True)["model"]


def assert_same_run(ddp, single):
    assert ddp.run_id == single.run_id == CONFIG.run_id()
    a, b = model_state(ddp), model_state(single)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k].double(), b[k].double(), rtol=0, atol=1e-5), k
    assert {k: ddp.summary[k] for k in SAME} == {k: single.summary[k] for k in SAME}
    assert ddp.summary["final_train_loss"] == pytest.approx(single.summary["final_train_loss"], abs=1e-5)
    assert ddp.summary["world_size"] == 2 and single.summary["world_size"] == 1
    lines = results.read_jsonl(ddp.path / results.METRICS)
    assert [m["epoch"] for m in lines] == [1, 2]  # rank 0 alone wrote them
    assert sorted(p.name for p in ddp.path.iterdir()) == sorted(p.name for p in single.path.iterdir())


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    return train(CONFIG, root=tmp_path_factory.mktemp("single"), progress=False)


@pytest.mark.slow
def test_two_processes_train_the_single_process_run(tmp_path, single):
    proc = subprocess.run(torchrun(CONFIG, tmp_path), env=ENV, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("run: ") == 1  # rank 0 reports
    assert_same_run(results.find_run(CONFIG, tmp_path), single)


def children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (Linux /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def kill_job(proc: subprocess.Popen) -> None:
    """SIGKILL a torchrun job started by this test: torchrun and its workers (which torchrun
    starts in sessions of their own), then wait until they are gone."""
    workers = children(proc.pid)
    assert len(workers) == 2
    for pid in (proc.pid, *workers):
        os.killpg(pid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 30
    while any(locks._pid_alive(pid) for pid in workers):
        assert time.monotonic() < deadline, "workers survived SIGKILL"
        time.sleep(0.05)


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds torchrun's workers in /proc")
def test_two_processes_resume_after_sigkill(tmp_path, single):
    config = CONFIG.replace(epochs=3, subset=512)
    run_dir = tmp_path / config.run_id()
    proc = subprocess.Popen(torchrun(config, tmp_path), env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 300
    while not (run_dir / results.CHECKPOINT).exists():
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.01)
    kill_job(proc)
    assert not (run_dir / results.SUMMARY).exists() and locks.lock_holder(run_dir) is None
    killed_at = torch.load(run_dir / results.CHECKPOINT, weights_only=True)["epoch"]
    again = subprocess.run(torchrun(config, tmp_path, "--resume"), env=ENV, capture_output=True, text=True,
                           timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    resumed = results.find_run(config, tmp_path)
    assert resumed.summary["resumed_at"] == [killed_at]
    straight = train(config, root=tmp_path / "straight", progress=False)
    a, b = model_state(resumed), model_state(straight)
    assert all(torch.allclose(a[k].double(), b[k].double(), rtol=0, atol=1e-5) for k in a)
    assert resumed.summary["final_test_acc"] == straight.summary["final_test_acc"]
    assert [m["epoch"] for m in results.read_jsonl(resumed.path / results.METRICS)] == [1, 2, 3]


# --------------------------------------------------------------------------- pieces, one process
def test_shards_cover_the_global_batch_in_order():
    rows = torch.arange(63)
    parts = [Group(rank=r, world_size=2).shard(rows) for r in range(2)]
    assert [len(p) for p in parts] == [32, 31] and torch.equal(torch.cat(parts), rows)
    assert Group().shard(rows) is rows


def test_rank_losses_average_to_the_mean_gradient():
    """DDP averages the ranks' gradients; the weighting makes that the global batch's mean."""
    torch.manual_seed(0)
    w = torch.randn(5, 3, requires_grad=True)
    x, y = torch.randn(7, 5), torch.randint(0, 3, (7,))
    expected, = torch.autograd.grad(nn.functional.cross_entropy(x @ w, y), w)
    grads = []
    for rank in range(3):
        g = Group(rank=rank, world_size=3)
        grads.append(torch.autograd.grad(g.loss(g.shard(x) @ w, g.shard(y), len(y)), w)[0])
    assert torch.allclose(sum(grads) / 3, expected, atol=1e-6)


@pytest.mark.parametrize("shape", [(16, 6), (8, 4, 5, 5)])
def test_gloo_sync_batchnorm_is_batchnorm_on_one_rank(shape, tmp_path):
    import torch.distributed as tdist

    tdist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        torch.manual_seed(0)
        plain = (nn.BatchNorm1d if len(shape) == 2 else nn.BatchNorm2d)(shape[1])
        nn.init.normal_(plain.weight)
        synced = GlooSyncBatchNorm.convert(nn.Sequential(plain))[0]
        assert isinstance(synced, GlooSyncBatchNorm) and synced.weight is plain.weight
        reference = (nn.BatchNorm1d if len(shape) == 2 else nn.BatchNorm2d)(shape[1])
        reference.load_state_dict(plain.state_dict())
        x = torch.randn(shape) * 3 + 1
        xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
        out, ref = synced(xa), reference(xb)
        assert torch.allclose(out, ref, atol=1e-5)
        (out * torch.arange(out.numel()).reshape(out.shape)).sum().backward()
        (ref * torch.arange(ref.numel()).reshape(ref.shape)).sum().backward()
        assert torch.allclose(xa.grad, xb.grad, atol=1e-3, rtol=1e-5)
        assert torch.allclose(synced.weight.grad, reference.weight.grad, rtol=1e-5, atol=1e-3)
        for name in ("running_mean", "running_var", "num_batches_tracked"):
            assert torch.allclose(getattr(synced, name).double(), getattr(reference, name).double(), atol=1e-6)
        synced.eval(), reference.eval()
        assert torch.allclose(synced(x), reference(x), atol=1e-5)
    finally:
        tdist.destroy_process_group()


def test_without_torchrun_training_is_one_process(tmp_path, monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    run = train(CONFIG.replace(epochs=1), root=tmp_path, progress=False)
    assert run.summary["world_size"] == 1
    assert json.loads((run.path / results.SUMMARY).read_text())["world_size"] == 1

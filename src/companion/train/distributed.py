"""Data-parallel training of one run: ``torchrun --nproc-per-node N -m companion train ...``.

PyTorch ``DistributedDataParallel`` over a process group initialised from torchrun's
environment (NCCL on CUDA, gloo on the CPU); without ``WORLD_SIZE`` (or with 1) training is the
plain single process. The run is the same run as on one process (same run id):

- every rank draws the same global permutation and augments the same global batch with the
  same generator (Appendix A.2's order and augmentation), then keeps its own slice of rows
  (:meth:`Group.shard`, contiguous, sizes differing by at most one);
- each rank's loss is its rows' summed cross-entropy times ``world_size / global_batch``, so the
  gradient DDP averages over ranks is the single-process mean gradient, also when the batch
  does not split evenly; SGD and β-LASSO (Algorithm 1) then step on that all-reduced gradient;
- batch-norm statistics are those of the global batch: ``torch.nn.SyncBatchNorm`` on CUDA,
  :class:`GlooSyncBatchNorm` on the CPU (torch's needs a GPU);
- dropout masks are drawn per rank (a DDP run with dropout is equal in distribution, not bit
  for bit, to the single-process one).

Rank 0 alone reads and writes the results store (lock, checkpoint, metrics, summary) and
evaluates; it passes what the other ranks need (start or stop, the checkpoint to resume from,
the finished run) by :meth:`Group.share`.
"""

from __future__ import annotations

import contextlib
import inspect
import os
from dataclasses import dataclass

import torch
import torch.distributed as tdist
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class Group:
    """This process's place in the job: ``rank`` of ``world_size`` (1: no process group)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def writer(self) -> bool:
        """Rank 0: the one process that touches the results store."""
        return self.rank == 0

    def share(self, obj=None):
        """Rank 0's ``obj`` (picklable), on every rank."""
        if not self.distributed:
            return obj
        box = [obj if self.writer else None]
        tdist.broadcast_object_list(box, src=0)
        return box[0]

    def shard(self, rows: torch.Tensor) -> torch.Tensor:
        """This rank's contiguous slice of the rows of a global batch."""
        return rows if not self.distributed else torch.tensor_split(rows, self.world_size)[self.rank]

    def loss(self, logits: torch.Tensor, y: torch.Tensor, global_batch: int) -> torch.Tensor:
        """Cross-entropy whose DDP-averaged gradient is the mean over the global batch."""
        if not self.distributed:
            return F.cross_entropy(logits, y)
        return F.cross_entropy(logits, y, reduction="sum") * (self.world_size / global_batch)

    def total(self, value: torch.Tensor) -> torch.Tensor:
        """Sum of ``value`` over ranks."""
        if self.distributed:
            value = value.clone()
            tdist.all_reduce(value)
        return value

    def device(self, device: torch.device) -> torch.device:
        """The device of this rank: ``cuda:LOCAL_RANK`` under torchrun on CUDA."""
        if not self.distributed or device.type != "cuda":
            return device
        if device.index not in (None, self.local_rank):
            raise ValueError(f"device {device} names one GPU; under torchrun use --device cuda or auto "
                             "(rank r uses cuda:LOCAL_RANK)")
        return torch.device("cuda", self.local_rank)


@contextlib.contextmanager
def session(device: torch.device):
    """The :class:`Group` of this process, from torchrun's environment (``WORLD_SIZE``, ``RANK``,
    ``LOCAL_RANK``, ``MASTER_ADDR``/``PORT``). Initialises the process group if nobody has
    (NCCL for CUDA, else gloo) and then destroys it on exit."""
    if tdist.is_available() and tdist.is_initialized():
        yield Group(tdist.get_rank(), tdist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))
        return
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        yield Group()
        return
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        torch.cuda.set_device(local_rank)
    tdist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    try:
        yield Group(tdist.get_rank(), tdist.get_world_size(), local_rank)
    finally:
        tdist.destroy_process_group()


def data_parallel(model: nn.Module, group: Group) -> nn.Module:
    """``model`` with synchronised batch-norm, wrapped in DDP (``model`` itself when one process).
    Parameters keep their identity and names, so optimizers and checkpoints see the same model."""
    if not group.distributed:
        return model
    device = next(model.parameters()).device
    if device.type == "cuda":
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    else:
        model = GlooSyncBatchNorm.convert(model)
    # buffers need no broadcast before each forward: synchronised batch-norm keeps them equal
    ddp = nn.parallel.DistributedDataParallel
    no_sync = ("forward_sync_buffers" if "forward_sync_buffers" in inspect.signature(ddp).parameters
               else "broadcast_buffers")
    return ddp(model, device_ids=[device.index] if device.type == "cuda" else None, **{no_sync: False})


class _AllReduce(torch.autograd.Function):
    """Sum over ranks, differentiable: the gradient of every rank's input is the sum of the
    gradients of every rank's output."""

    @staticmethod
    def forward(ctx, x):
        x = x.clone()
        tdist.all_reduce(x)
        return x

    @staticmethod
    def backward(ctx, grad):
        grad = grad.clone()
        tdist.all_reduce(grad)
        return grad


class GlooSyncBatchNorm(nn.modules.batchnorm._BatchNorm):
    """Batch-norm over the global batch for CPU process groups: mean and variance (two passes)
    are summed over ranks with the differentiable ``all_reduce``; eval mode is plain batch-norm."""

    def _check_input_dim(self, x):
        if x.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {x.dim()}D input)")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and tdist.is_initialized()):
            return super().forward(x)
        all_reduce = _AllReduce.apply
        self._check_input_dim(x)
        dims, shape = [0, *range(2, x.dim())], [1, -1] + [1] * (x.dim() - 2)
        h = x.float()
        count = torch.tensor([h.numel() // h.shape[1]], dtype=torch.float64)
        tdist.all_reduce(count)
        n = float(count.item())
        mean = all_reduce(h.sum(dims)) / n
        centred = h - mean.view(shape)
        var = all_reduce(centred.square().sum(dims)) / n
        y = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked += 1
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.mul_(1 - m).add_(mean, alpha=m)
                self.running_var.mul_(1 - m).add_(var * (n / max(n - 1, 1)), alpha=m)
        return y.to(x.dtype)

    @classmethod
    def convert(cls, module: nn.Module) -> nn.Module:
        """Every batch-norm of ``module`` replaced by this one, sharing its parameters and buffers."""
        out = module
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            out = cls(module.num_features, module.eps, module.momentum, module.affine, module.track_running_stats)
            if module.affine:
                out.weight, out.bias = module.weight, module.bias
            if module.track_running_stats:
                out.running_mean, out.running_var = module.running_mean, module.running_var
                out.num_batches_tracked = module.num_batches_tracked
            out.train(module.training)
        for name, child in module.named_children():
            out.add_module(name, cls.convert(child))
        return out


def run(group: Group, lead, follow):
    """One run on every rank: rank 0 calls ``lead(start)`` (it finds, locks and resumes the run,
    and calls ``start(state)`` right before training from ``state``, which makes every other rank
    call ``follow(state)``); ``lead``'s result is returned on every rank. If rank 0 fails before
    ``start``, every rank raises its error; a failure during training ends the job (torchrun
    stops the other ranks)."""
    if not group.distributed:
        return lead(lambda state: None)
    if group.writer:
        started = False

        def start(state):
            nonlocal started
            started = True
            group.share(("train", state))

        try:
            result = lead(start)
        except BaseException as exc:
            if not started:
                group.share(("error", _picklable(exc)))
            raise
        return group.share(("done", result))[1]
    verdict, payload = group.share()
    if verdict == "error":
        raise payload
    if verdict == "train":
        follow(payload)
        verdict, payload = group.share()
    return payload


def _picklable(exc: BaseException) -> BaseException:
    import pickle

    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        return RuntimeError(f"rank 0 stopped: {type(exc).__name__}: {exc}")

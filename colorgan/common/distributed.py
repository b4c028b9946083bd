"""Data-parallel training across processes (``torchrun``): who am I, set-up and tear-down, small collectives.

``torchrun --nproc_per_node=N -m colorgan train ...`` starts N copies of the same command. Each one
builds the same model from the same seed, takes its slice of the same global batch (see
``data.batches``) and trains through ``DistributedDataParallel``, which averages the gradients. So N
processes at ``batch_size`` B train like one process at B. Only rank 0 writes the run folder.

BatchNorm: on CUDA the generator's BatchNorm layers become ``SyncBatchNorm``, so batch statistics are
taken over the global batch, as in one process. torch's SyncBatchNorm runs on GPUs only; on CPU
(gloo, used for tests) each rank normalises with its own slice's statistics and a warning says so.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from typing import Iterator, Mapping

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Context:
    """This process's place among the data-parallel ranks (one process: rank 0 of 1)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0  # index among the ranks of this machine: picks the GPU
    # started by torchrun: even one process then joins a process group and trains through DDP (and on CUDA
    # SyncBatchNorm, NCCL), so `torchrun --nproc_per_node=1` checks the multi-GPU path on a single GPU
    launched: bool = field(default=False, compare=False)

    @property
    def enabled(self) -> bool:
        return self.world_size > 1 or self.launched

    @property
    def is_main(self) -> bool:
        """Rank 0 logs, shows progress and writes the run folder."""
        return self.rank == 0


SINGLE = Context()


def from_environment(env: Mapping[str, str]) -> Context:
    """The Context torchrun describes in RANK, WORLD_SIZE and LOCAL_RANK; one process when they are absent."""
    if "WORLD_SIZE" not in env:
        return SINGLE
    ctx = Context(int(env["RANK"]), int(env["WORLD_SIZE"]), int(env.get("LOCAL_RANK", env["RANK"])), launched=True)
    if not 0 <= ctx.rank < ctx.world_size:
        raise ValueError(f"RANK={ctx.rank} is outside WORLD_SIZE={ctx.world_size}; start with torchrun")
    return ctx


def rank_device(ctx: Context, device: torch.device) -> torch.device:
    """The device of this rank: ``cuda:LOCAL_RANK`` on CUDA, else ``device`` unchanged."""
    if not ctx.enabled or device.type != "cuda":
        return device
    if device.index not in (None, ctx.local_rank):
        raise ValueError(f"device: {device} was given, but under torchrun each rank uses cuda:LOCAL_RANK; "
                         "pass device=auto or cuda")
    torch.cuda.set_device(ctx.local_rank)
    return torch.device("cuda", ctx.local_rank)


@contextlib.contextmanager
def process_group(ctx: Context, device: torch.device) -> Iterator[None]:
    """Join the ranks for the block (NCCL on CUDA, gloo on CPU; torchrun's MASTER_ADDR/PORT); a no-op for one process."""
    if not ctx.enabled:
        yield
        return
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend, rank=ctx.rank, world_size=ctx.world_size)
    log.info("rank %d of %d joined (%s on %s)", ctx.rank, ctx.world_size, backend, device)
    try:
        yield
    finally:
        dist.destroy_process_group()


def barrier(ctx: Context) -> None:
    """Wait until every rank gets here (no-op for one process)."""
    if ctx.enabled:
        dist.barrier()


@contextlib.contextmanager
def main_first(ctx: Context) -> Iterator[None]:
    """Run the block on rank 0 first, then on the others: e.g. rank 0 builds a cache the others then read."""
    if not ctx.is_main:
        barrier(ctx)
    yield
    if ctx.is_main:
        barrier(ctx)


def data_parallel(module: nn.Module, device: torch.device) -> nn.Module:
    """The DDP wrapper that training forwards go through; ``module`` itself stays what is checkpointed.

    On CUDA, BatchNorm layers are first swapped in place for SyncBatchNorm (same parameters, same
    state_dict keys), so statistics cover the global batch.
    """
    has_batch_norm = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules())
    if device.type == "cuda":
        module = nn.SyncBatchNorm.convert_sync_batchnorm(module)
    elif has_batch_norm:
        log.warning("%s: BatchNorm statistics are per rank on CPU (SyncBatchNorm needs CUDA)",
                    type(module).__name__)
    return DistributedDataParallel(module, device_ids=[device.index] if device.type == "cuda" else None)


def mean_over_ranks(values: dict[str, torch.Tensor], ctx: Context) -> dict[str, torch.Tensor]:
    """Average scalar loss terms over the ranks, so the log shows the global batch's values."""
    if not ctx.enabled or not values:
        return values
    names = sorted(values)
    stacked = torch.stack([values[name].detach().float() for name in names])  # (num_terms,)
    dist.all_reduce(stacked)
    return dict(zip(names, stacked / ctx.world_size))


def agree(flag: bool, ctx: Context) -> bool:
    """Rank 0's ``flag`` on every rank (e.g. 'time is up', which each rank's clock would judge differently)."""
    if not ctx.enabled:
        return flag
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else None
    decision = torch.tensor([flag], dtype=torch.uint8, device=device)
    dist.broadcast(decision, src=0)
    return bool(decision.item())

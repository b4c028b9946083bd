"""The bench's timing and counting primitives: synchronised timers, round-robin rounds, warm-up until step times
settle, their spread, the machine's load (and when a CPU measurement counts as taken under load), what torch.compile
did, and the FLOPs of convolutions and matrix products."""

from __future__ import annotations

import logging
import os
import statistics
import time
from typing import Any, Callable

import torch
import torch._dynamo
from torch.utils.flop_counter import FlopCounterMode

from colorgan.performance.bench_config import BenchConfig
from colorgan.performance.devices import synchronize


def timed(fn: Callable[[], Any], device: torch.device) -> float:
    """Seconds that ``fn`` takes, with the device synchronised before and after."""
    synchronize(device)
    started = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - started


def round_robin(fns: dict[str, Callable[[], Any]], rounds: int, device: torch.device,
                loads: list[float] | None = None) -> dict[str, list[float]]:
    """Seconds per call of every function, one call of each per round (drifting load hits all alike).

    ``loads`` (if given) gets the 1-min load average after each round.
    """
    seconds: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            seconds[name].append(timed(fn, device))
        if loads is not None:
            loads.append(os.getloadavg()[0])
    return seconds


def settled(seconds: list[float], window: int, tolerance: float) -> bool:
    """True when the last ``window`` times agree: (max - min) / median <= ``tolerance``."""
    if len(seconds) < window:
        return False
    last = seconds[-window:]
    return (max(last) - min(last)) / statistics.median(last) <= tolerance


def warm_until_settled(fn: Callable[[], Any], cfg: BenchConfig, device: torch.device) -> dict[str, Any]:
    """Call ``fn`` at least ``num_warmup`` times and until its times settle (or ``max_warmup`` calls).

    oneDNN builds kernels on the first use of each shape (bf16 ones take seconds), torch.compile compiles,
    caches fill: the first calls are slower, by an amount that differs by variant.
    """
    seconds: list[float] = []
    limit = max(cfg.max_warmup, cfg.num_warmup)
    while len(seconds) < limit:
        seconds.append(timed(fn, device))
        if len(seconds) >= cfg.num_warmup and settled(seconds, cfg.settle_window, cfg.settle_tolerance):
            break
    return {"seconds": sum(seconds), "steps": len(seconds),
            "settled": settled(seconds, cfg.settle_window, cfg.settle_tolerance)}


def spread(seconds: list[float]) -> float:
    """Interquartile range over the median: how much a step time varies (0.05 = 5%)."""
    if len(seconds) < 2:
        return 0.0
    q1, _, q3 = statistics.quantiles(seconds, n=4, method="inclusive")
    return (q3 - q1) / statistics.median(seconds)


def machine_load(start: float, during: list[float], end: float, threads: int, cfg: BenchConfig,
                 device: torch.device) -> dict[str, Any]:
    """The 1-min load averages of the run and whether other processes loaded the machine.

    Our own process adds about ``threads`` to the load while it times steps, so other processes'
    share is estimated as load - threads during the run (and the whole load before it started).
    A CPU measurement is ``under_load`` when that share exceeds ``cfg.max_other_load``.
    """
    others = [start, *(max(0.0, value - threads) for value in during)]
    under = device.type == "cpu" and max(others) > cfg.max_other_load
    return {"start": start, "end": end, "during_max": max(during, default=start),
            "during_mean": statistics.fmean(during) if during else start, "others_max": max(others),
            "threads": threads, "max_other_load": cfg.max_other_load, "under_load": under}


class DynamoWatch(logging.Handler):
    """What torch.compile did inside a ``with`` block, from dynamo's counters and its warnings.

    ``result`` after the block: frames compiled (first compiles and recompiles alike), graphs, graph
    breaks, and how often a function hit dynamo's recompile limit: past it dynamo runs that function
    eagerly, so a "compile" row would time eager code.
    """

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.limit_hits: list[str] = []
        self.result: dict[str, Any] = {}

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if "hit config." in message:  # "torch._dynamo hit config.recompile_limit (8) ... function: ..."
            self.limit_hits.append(message.splitlines()[0] + " " + " ".join(message.splitlines()[1:2]).strip())

    @staticmethod
    def _counts() -> dict[str, int]:
        counters = torch._dynamo.utils.counters
        return {"frames_compiled": counters["frames"]["ok"], "graphs": counters["stats"]["unique_graphs"],
                "graph_breaks": sum(counters["graph_break"].values())}

    def __enter__(self) -> "DynamoWatch":
        self._before = self._counts()
        logging.getLogger("torch._dynamo").addHandler(self)
        return self

    def __exit__(self, *exc: Any) -> None:
        logging.getLogger("torch._dynamo").removeHandler(self)
        after = self._counts()
        self.result = {k: after[k] - self._before[k] for k in after}
        self.result.update(recompile_limit_hits=len(self.limit_hits), limit_messages=self.limit_hits[:3],
                           eager_fallback=bool(self.limit_hits))


class _GlobalOnly:
    """Stands in for FlopCounterMode's module tracker, whose backward hooks fail inside autograd.grad
    (the gradient penalty); we only need the total."""

    parents = {"Global"}

    def __enter__(self) -> "_GlobalOnly":
        return self

    def __exit__(self, *exc: Any) -> None:
        return None


def count_flops(fn: Callable[[], Any]) -> int:
    """FLOPs of the convolutions and matrix products that ``fn`` runs (forward and backward)."""
    counter = FlopCounterMode(display=False)
    counter.mod_tracker = _GlobalOnly()
    with counter:
        fn()
    return counter.get_total_flops()

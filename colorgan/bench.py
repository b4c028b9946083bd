"""``colorgan bench``: how fast ColorGAN trains and colorizes on this device, and what limits it.

One run measures every variant (fp32 eager, each speed switch alone, all of them together) round
robin: each round times one step of every variant, and a variant's figure is its median over the
rounds, so a busy machine slows all variants alike and the ratios to fp32 eager stay fair.

Recorded in ``results/bench/<device>.json`` and ``.md``:
- training images/s per variant and its ratio to fp32 eager; the step split into its parts
  (generator, critic, VGG features, rest), each timed alone with synchronised timers;
- model FLOPs per image (``torch.utils.flop_counter`` over one fp32 eager step) and MFU against the
  device's dense peak (``PEAK_TFLOPS``; n/a on CPU);
- peak memory: CUDA max allocated per variant; on CPU the process's peak RSS for the whole run;
- inference images/s (``colorize``), the input pipeline's images/s at 256² (``data.batches`` from a
  uint8 cache, with the pinned ``non_blocking`` copy on CUDA), a profile of the fastest variant, and
  the projected wall time of the paper's protocol (300 epochs of 15,413 images at 256²).
"""

from __future__ import annotations

import copy
import datetime
import logging
import os
import platform
import re
import resource
import statistics
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch._dynamo
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from colorgan import losses, runtime
from colorgan.color import model_to_rgb
from colorgan.config import BENCH_REFERENCE, BENCH_VARIANTS, BenchConfig
from colorgan.data import VOC_NUM_IMAGES, VOC_NUM_TEST, batches
from colorgan.models import build_vgg19_features
from colorgan.step import ColorGANStep

log = logging.getLogger(__name__)

PAPER_EPOCHS = 300  # §3.1
PAPER_TRAIN_IMAGES = VOC_NUM_IMAGES - VOC_NUM_TEST  # 15,413 (§3.1)
PAPER_IMAGE_SIZE = 256
PIPELINE_TARGET = 2000  # images/s at 256² that the H100 goal (paper protocol in 45 min) consumes

# Dense (no sparsity) peak TFLOP/s from the vendors' datasheets; the first pattern found in the device
# name wins, so specific names come before general ones. tf32: fp32 convolutions on tensor cores
# (cuDNN's default, torch.backends.cudnn.allow_tf32).
PEAK_TFLOPS: tuple[tuple[str, dict[str, float]], ...] = (
    ("H100 PCIe", {"bf16": 756.0, "tf32": 378.0, "fp32": 51.2}),
    ("H100 NVL", {"bf16": 835.5, "tf32": 417.5, "fp32": 60.0}),
    ("H100", {"bf16": 989.4, "tf32": 494.7, "fp32": 66.9}),  # SXM5 ("NVIDIA H100 80GB HBM3")
    ("H200 NVL", {"bf16": 835.5, "tf32": 417.5, "fp32": 60.0}),
    ("H200", {"bf16": 989.4, "tf32": 494.7, "fp32": 66.9}),  # SXM
    ("A100", {"bf16": 312.0, "tf32": 156.0, "fp32": 19.5}),
    ("L40S", {"bf16": 362.1, "tf32": 183.0, "fp32": 91.6}),
    ("L4", {"bf16": 121.0, "tf32": 60.0, "fp32": 30.3}),
    ("RTX 4090", {"bf16": 165.2, "tf32": 82.6, "fp32": 82.6}),  # bf16 with fp32 accumulation
)
# Profiler operator/kernel names that are convolutions or matrix products (compute-bound work); the
# rest (elementwise, normalisation, reductions, copies) is mostly memory-bound.
COMPUTE_OPS = re.compile(r"conv|gemm|matmul|\bmm\b|aten::mm|addmm|bmm|linear|cudnn|cutlass|xmma|wgrad|dgrad|fprop",
                         re.IGNORECASE)


# ------------------------------------------------------------------------------------------ device


def device_label(device: torch.device) -> str:
    """'NVIDIA H100 80GB HBM3', or 'cpu AMD EPYC (2 threads)'."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        found = re.search(r"^model name\s*:\s*(.+)$", cpuinfo.read_text(), re.MULTILINE)
        model = found.group(1).strip() if found else model
    return f"cpu {model} ({torch.get_num_threads()} threads)"


def cpu_bf16_support() -> dict[str, Any]:
    """Whether this CPU computes bf16 in hardware: {'native', 'flags', 'torch_capability'}.

    AVX512_BF16 (dot products of bf16 pairs) and AMX_BF16 (tile matrix units) are what oneDNN's bf16
    convolutions use; without them bf16 is emulated and slower than fp32.
    """
    flags: set[str] = set()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        found = re.search(r"^flags\s*:\s*(.+)$", cpuinfo.read_text(), re.MULTILINE)
        flags = set(found.group(1).split()) if found else set()
    bf16 = sorted(flags & {"avx512_bf16", "amx_bf16"})
    capability = torch.backends.cpu.get_cpu_capability()
    return {"native": bool(bf16) or "AMX" in capability, "flags": bf16, "torch_capability": capability}


def slug(text: str) -> str:
    """'NVIDIA H100 80GB HBM3' -> 'nvidia-h100-80gb-hbm3' (for file names)."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def peak_tflops(label: str) -> dict[str, float] | None:
    """Dense peaks {'bf16', 'tf32', 'fp32'} for a CUDA device name; None for CPUs and unknown devices."""
    if label.startswith("cpu"):
        return None
    return next((peaks for pattern, peaks in PEAK_TFLOPS if pattern in label), None)


def conv_precision(step: ColorGANStep) -> str:
    """The precision the convolutions run in: bf16 (autocast), tf32 (CUDA fp32 on tensor cores) or fp32."""
    if step.amp_dtype is not None:
        return "bf16"
    return "tf32" if step.device.type == "cuda" and torch.backends.cudnn.allow_tf32 else "fp32"


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], Any], device: torch.device) -> float:
    """Seconds that ``fn`` takes, with the device synchronised before and after."""
    synchronize(device)
    started = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - started


# ------------------------------------------------------------------------------------------- parts


def step_parts(step: ColorGANStep, batch: torch.Tensor) -> dict[str, Callable[[], None]]:
    """The step's parts as callables, each timed alone (the rest of the step is the remainder).

    generator: z, G forward, backward of a stand-in loss on (ab, G_f(z)), Adam.
    critic: the critic update(s): real and fake scores, gradient penalty (double backward), Adam.
    vgg: the target's features (once, or once per term) plus the fake's features forward and backward
    to the image (what Lp adds to the generator's backward).
    """
    rgb, L, ab_real = step.prepare(batch)
    with torch.no_grad():
        ab_fake, _ = step.generate(L)
    rgb_fake = model_to_rgb(L, ab_fake.float()).contiguous(memory_format=step.memory_format)

    def generator() -> None:
        ab, noise_features = step.generate(L)
        loss = ab.float().mean() + (noise_features.float().mean() if noise_features is not None else 0)
        step.opt_g.zero_grad(set_to_none=True)
        loss.backward()
        step.opt_g.step()

    def critic() -> None:
        for _ in range(step.cfg.n_critic):
            step.critic_update(L, ab_real, ab_fake)

    def vgg() -> None:
        features, _ = step.target_features(rgb)
        image = rgb_fake.detach().requires_grad_(True)
        with runtime.autocast(step.device, step.amp_dtype):
            loss = losses.perceptual_term(step.vgg_forward(image), features)
        loss.float().backward()

    parts = {"generator": generator, "critic": critic}
    if step.vgg_forward is not None:
        parts["vgg"] = vgg
    return parts


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


def resident_bytes(step: ColorGANStep) -> int:
    """Bytes held between steps: weights, buffers, gradients and optimiser state."""
    tensors: dict[int, int] = {}
    modules = [*step.modules().values(), *([step.vgg] if step.vgg is not None else [])]
    for module in modules:
        for t in [*module.parameters(), *module.buffers()]:
            tensors[t.data_ptr()] = t.nbytes
            if t.grad is not None:
                tensors[t.grad.data_ptr()] = t.grad.nbytes
    for opt in step.optimizers().values():
        for state in opt.state.values():
            tensors.update({v.data_ptr(): v.nbytes for v in state.values() if torch.is_tensor(v)})
    return sum(tensors.values())


# ------------------------------------------------------------------------------------ measurements


def build_variants(cfg: BenchConfig, image_size: int, device: torch.device
                   ) -> tuple[dict[str, ColorGANStep], dict[str, str]]:
    """One ColorGANStep per variant (same seed each), and the variants that failed to build."""
    steps, failed = {}, {}
    reference = cfg.model_config(image_size)
    vgg = build_vgg19_features(reference.vgg_weights, reference.vgg_layer, reference.seed)  # built once: slow
    for name in cfg.variant_names():
        torch.manual_seed(cfg.seed)
        try:
            steps[name] = ColorGANStep(cfg.model_config(image_size, **BENCH_VARIANTS[name]), device,
                                       copy.deepcopy(vgg))
        except Exception as err:  # e.g. fused Adam on a device without it: report, measure the rest
            if name == BENCH_REFERENCE:
                raise
            failed[name] = f"{type(err).__name__}: {err}"
    return steps, failed


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


def warm_up(cfg: BenchConfig, steps: dict[str, ColorGANStep], batch: torch.Tensor, device: torch.device
            ) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """Warm every variant up until its step time settles: ({variant: warm-up record}, failures).

    Failed variants are dropped. A compiled variant's record has ``dynamo``: what compiling it took
    (``DynamoWatch``). Dynamo is not reset between variants here: they are timed round robin, and a
    reset would drop the compiled code of the ones warmed up before (``run_bench`` resets once at its start).
    """
    records, failed = {}, {}
    for name in list(steps):
        log.info("bench: warming up %s", name)
        try:
            with DynamoWatch() as watch:
                records[name] = warm_until_settled(lambda s=steps[name]: s(batch), cfg, device)
            if steps[name].cfg.compile:
                records[name]["dynamo"] = watch.result
        except Exception as err:  # torch.compile without a working compiler, for one
            if name == BENCH_REFERENCE:
                raise
            failed[name] = f"{type(err).__name__}: {err}"
            del steps[name]
    return records, failed


def spread(seconds: list[float]) -> float:
    """Interquartile range over the median: how much a step time varies (0.05 = 5%)."""
    if len(seconds) < 2:
        return 0.0
    q1, _, q3 = statistics.quantiles(seconds, n=4, method="inclusive")
    return (q3 - q1) / statistics.median(seconds)


def conv_stack_reference(cfg: BenchConfig, device: torch.device, loads: list[float] | None = None) -> dict[str, Any]:
    """FLOP/s of plain work on this device: four 64-channel 3x3 convolutions, batch 16, 64x64, forward + backward.

    Timed in fp32 and under bf16 autocast, round robin, after settling. A training step's achieved
    FLOP/s over this is a stand-in for MFU where no datasheet peak applies (CPUs).
    """
    torch.manual_seed(cfg.seed)
    stack = nn.Sequential(*[nn.Conv2d(64, 64, 3, padding=1) for _ in range(4)]).to(device)
    x = torch.randn(16, 64, 64, 64, device=device)

    def step(dtype: torch.dtype | None) -> Callable[[], None]:
        def run() -> None:
            stack.zero_grad(set_to_none=True)
            with runtime.autocast(device, dtype):
                out = stack(x)
            out.float().sum().backward()
        return run

    fns = {"fp32": step(None), "bf16": step(torch.bfloat16)}
    flops = count_flops(fns["fp32"])
    for fn in fns.values():
        warm_until_settled(fn, cfg, device)
    result: dict[str, Any] = {"workload": "4 x Conv2d(64, 64, 3x3, padding 1), batch 16, 64x64, forward + backward "
                                          "(input needs no gradient)", "flops": flops}
    for name, values in round_robin(fns, cfg.num_steps, device, loads).items():
        median = statistics.median(values)
        result[name] = {"ms": 1000 * median, "spread": spread(values), "flops_per_s": flops / median}
    return result


def peak_memory(step: ColorGANStep, batch: torch.Tensor, device: torch.device) -> int | None:
    """CUDA: bytes held between steps plus the largest growth of allocated memory during one step."""
    if device.type != "cuda":
        return None
    synchronize(device)
    before = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    step(batch)
    synchronize(device)
    return resident_bytes(step) + torch.cuda.max_memory_allocated(device) - before


def measure_variants(cfg: BenchConfig, steps: dict[str, ColorGANStep], batch: torch.Tensor,
                     device: torch.device, loads: list[float] | None = None) -> dict[str, dict[str, Any]]:
    """Time training steps, their parts and inference of every (warmed-up) variant, round robin."""
    B = batch.shape[0]
    log.info("bench: timing %d steps of %d variants round robin", cfg.num_steps, len(steps))
    step_seconds = round_robin({name: lambda s=step: s(batch) for name, step in steps.items()}, cfg.num_steps, device,
                               loads)
    results = {}
    for name, values in step_seconds.items():
        median = statistics.median(values)
        results[name] = {"settings": BENCH_VARIANTS[name], "images_per_s": B / median, "step_ms": 1000 * median,
                         "step_ms_min": 1000 * min(values), "step_ms_max": 1000 * max(values),
                         "spread": spread(values),
                         "peak_memory_bytes": peak_memory(steps[name], batch, device)}

    if cfg.breakdown:
        log.info("bench: timing the parts of each step")
        parts = {f"{name}/{part}": fn for name, step in steps.items() for part, fn in step_parts(step, batch).items()}
        for fn in parts.values():
            fn()  # compiled variants may build a graph for a new input pattern
        for key, values in round_robin(parts, cfg.num_steps, device, loads).items():
            name, part = key.split("/")
            results[name].setdefault("parts_ms", {})[part] = 1000 * statistics.median(values)
        for result in results.values():  # the remainder may dip below 0 on a noisy machine
            result["parts_ms"]["rest"] = result["step_ms"] - sum(result["parts_ms"].values())

    log.info("bench: timing inference")
    _, L, _ = steps[BENCH_REFERENCE].prepare(batch)
    infer = {name: lambda s=step: s.colorize(L) for name, step in steps.items()}
    for fn in infer.values():
        fn()
    for name, values in round_robin(infer, cfg.num_steps, device, loads).items():
        results[name]["inference_images_per_s"] = B / statistics.median(values)
    return results


def measure_pipeline(cfg: BenchConfig, device: torch.device) -> dict[str, Any]:
    """Images/s that ``data.batches`` delivers from a uint8 cache at ``pipeline_size`` (one thread).

    On CUDA each batch is gathered into pinned memory and copied with ``non_blocking``, as in ``fit``.
    """
    size, pin = cfg.pipeline_size, device.type == "cuda"
    images = np.random.default_rng(cfg.seed).integers(0, 256, (cfg.pipeline_images, 3, size, size), dtype=np.uint8)
    data = batches(images, cfg.batch_size, cfg.seed, pin_memory=pin)
    next(data).to(device, non_blocking=True)

    def run() -> None:
        for _ in range(cfg.pipeline_batches):
            next(data).to(device, non_blocking=True)

    seconds = timed(run, device)
    return {"image_size": size, "batch_size": cfg.batch_size, "images_per_s": cfg.pipeline_batches * cfg.batch_size
            / seconds, "pinned_non_blocking_copy": pin, "flips": True, "threads": 1,
            "source": f"synthetic uint8 array of {cfg.pipeline_images} images in memory (the decode cache's layout)"}


def profile_step(step: ColorGANStep, batch: torch.Tensor, device: torch.device, num_steps: int = 2,
                 top: int = 10) -> dict[str, Any]:
    """Top operators by self time over ``num_steps`` steps, and the share spent in convolutions/matmuls."""
    activities = [torch.profiler.ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    with torch.profiler.profile(activities=activities) as prof:
        for _ in range(num_steps):
            step(batch)
        synchronize(device)
    clock = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    events = [e for e in prof.key_averages() if getattr(e, clock) > 0]
    total = sum(getattr(e, clock) for e in events) or 1.0
    events.sort(key=lambda e: getattr(e, clock), reverse=True)
    compute = sum(getattr(e, clock) for e in events if COMPUTE_OPS.search(e.key))
    return {
        "clock": "GPU kernel time" if device.type == "cuda" else "CPU operator self time",
        "ms_per_step": total / 1000 / num_steps,
        "conv_matmul_share": compute / total,
        "top": [{"name": e.key, "ms_per_step": getattr(e, clock) / 1000 / num_steps, "share": getattr(e, clock) / total}
                for e in events[:top]],
    }


def paper_protocol_hours(images_per_s: float, image_size: int) -> float:
    """Projected hours for 300 epochs of 15,413 images at 256², from throughput measured at ``image_size``.

    Every layer is convolutional, so FLOPs per image grow exactly with the pixel count; the
    projection assumes the same achieved FLOP/s at 256² (optimistic on CPUs at tiny sizes, and
    pessimistic on GPUs, which run small images far below their peak).
    """
    per_image_256 = (PAPER_IMAGE_SIZE / image_size) ** 2 / images_per_s
    return PAPER_EPOCHS * PAPER_TRAIN_IMAGES * per_image_256 / 3600


# ------------------------------------------------------------------------------------------- run


def run_bench(cfg: BenchConfig) -> dict[str, Any]:
    """Measure everything ``cfg`` asks for on one device; returns the record written by ``write_report``."""
    runtime.seed_everything(cfg.seed)
    torch._dynamo.reset()  # compiled code and recompile counts from earlier work in this process would mix in
    load_before = os.getloadavg()[0]  # other processes on the machine: CPU timings depend on them
    device = runtime.select_device(cfg.device)
    cfg = cfg.for_device(device.type)
    if device.type == "cpu" and cfg.refuse_under_load and load_before > cfg.max_other_load:
        raise RuntimeError(f"machine busy: the 1-min load average is {load_before:.2f} before the bench starts "
                           f"(max_other_load={cfg.max_other_load}); measure when `uptime` shows a quiet machine")
    loads: list[float] = []  # 1-min load averages after each timed round
    image_size = cfg.image_size
    label = device_label(device)
    peaks = peak_tflops(label)
    batch = torch.randint(0, 256, (cfg.batch_size, 3, image_size, image_size), dtype=torch.uint8,
                          generator=torch.Generator().manual_seed(cfg.seed)).to(device)

    conv_reference = None
    if cfg.conv_reference:
        log.info("bench: the convolution-stack reference")
        conv_reference = conv_stack_reference(cfg, device, loads)
    steps, failed = build_variants(cfg, image_size, device)
    warmups, failed_warmup = warm_up(cfg, steps, batch, device)
    failed.update(failed_warmup)
    with DynamoWatch() as timing_watch:  # compiles while timing: the warm-up did not cover every guard
        variants = measure_variants(cfg, steps, batch, device, loads)

    reference = steps[BENCH_REFERENCE]
    _, L, _ = reference.prepare(batch)
    train_flops = count_flops(lambda: reference(batch)) / cfg.batch_size
    part_flops = {part: count_flops(fn) / cfg.batch_size for part, fn in step_parts(reference, batch).items()}
    inference_flops = count_flops(lambda: reference.colorize(L)) / cfg.batch_size
    base = variants[BENCH_REFERENCE]["images_per_s"]
    for name, result in variants.items():
        precision = conv_precision(steps[name])
        if not steps[name].cfg.compile:  # the counter cannot see into compiled graphs
            result["executed_flops_per_image"] = count_flops(lambda s=steps[name]: s(batch)) / cfg.batch_size
        result["speedup"] = result["images_per_s"] / base
        result["warmup_s"], result["warmup_steps"] = warmups[name]["seconds"], warmups[name]["steps"]
        result["warmup_settled"] = warmups[name]["settled"]
        if "dynamo" in warmups[name]:
            result["dynamo"] = {**warmups[name]["dynamo"], "compiles_while_timing": timing_watch.result["frames_compiled"]}
        result["precision"] = precision
        result["achieved_flops_per_s"] = train_flops * result["images_per_s"]  # the reference's model FLOPs
        result["mfu"] = result["achieved_flops_per_s"] / (peaks[precision] * 1e12) if peaks else None
        result["mfu_bf16_peak"] = result["achieved_flops_per_s"] / (peaks["bf16"] * 1e12) if peaks else None
        result["conv_reference_fraction"] = (
            result["achieved_flops_per_s"] / conv_reference["bf16" if precision == "bf16" else "fp32"]["flops_per_s"]
            if conv_reference else None)
        result["projected_paper_hours"] = paper_protocol_hours(result["images_per_s"], image_size)
    best = max(variants, key=lambda name: variants[name]["images_per_s"])

    log.info("bench: input pipeline at %d px", cfg.pipeline_size)
    pipeline = measure_pipeline(cfg, device)
    needed = variants[best]["images_per_s"] * (image_size / PAPER_IMAGE_SIZE) ** 2  # training's appetite at 256²
    pipeline.update(training_needs_images_per_s=needed, headroom=pipeline["images_per_s"] / needed,
                    target_images_per_s=PIPELINE_TARGET)
    profile = profile_step(steps[best], batch, device) if cfg.profile else None
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB
    load = machine_load(load_before, loads, os.getloadavg()[0], torch.get_num_threads(), cfg, device)
    if load["under_load"] and cfg.refuse_under_load:
        raise RuntimeError(f"machine busy: other processes put a 1-min load of up to {load['others_max']:.2f} on it "
                           f"during the bench (max_other_load={cfg.max_other_load}); nothing written, measure again "
                           "when it is quiet")

    return {
        "device": {"name": label, "slug": slug(label), "type": device.type, "peak_tflops": peaks,
                   "threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
                   "load_average_1min": load,
                   "cpu_bf16": cpu_bf16_support() if device.type == "cpu" else None,
                   "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32 if device.type == "cuda" else None},
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "git_commit": runtime.git_commit(),
        "versions": runtime.package_versions(),
        "cuda": torch.version.cuda if device.type == "cuda" else None,
        "platform": platform.platform(),
        "config": cfg.to_dict(),
        "image_size": image_size,
        "batch_size": cfg.batch_size,
        "model": {k: v for k, v in reference.cfg.to_dict().items()
                  if k in ("gen_width", "gen_max_width", "vgg_layer", "noise_channels", "noise_width",
                           "noise_layers", "disc_width", "disc_layers", "norm", "n_critic", "adversarial")},
        "timing": f"median of {cfg.num_steps} steps per variant, timed round robin after a warm-up of at least "
                  f"{cfg.num_warmup} steps that continues until {cfg.settle_window} consecutive step times agree within "
                  f"{100 * cfg.settle_tolerance:.0f}% (at most {max(cfg.max_warmup, cfg.num_warmup)} steps); device "
                  "synchronised around each; spread = interquartile range / median",
        "conv_reference": conv_reference,
        "flops": {"train_per_image": train_flops, "inference_per_image": inference_flops,
                  "train_per_image_at_256": train_flops * (PAPER_IMAGE_SIZE / image_size) ** 2,
                  "parts_per_image": part_flops,
                  "method": "torch.utils.flop_counter (convolutions and matmuls, forward and backward) over one "
                            f"{BENCH_REFERENCE} step; MFU uses these model FLOPs for every variant, so work a "
                            "variant adds (vgg_twice) lowers its MFU"},
        "variants": variants,
        "failed": failed,
        "best": best,
        "memory": {"method": "CUDA: resident tensors (weights, grads, Adam state, VGG) + largest growth of "
                             "max_memory_allocated during a step" if device.type == "cuda" else
                             "CPU: peak RSS of the whole bench process (getrusage ru_maxrss; all variants resident)",
                   "process_peak_rss_bytes": peak_rss},
        "pipeline": pipeline,
        "profile": profile,
        "projection": {"image_steps": PAPER_EPOCHS * PAPER_TRAIN_IMAGES,
                       "method": f"300 epochs x {PAPER_TRAIN_IMAGES:,} images; time per image measured at "
                                 f"{image_size}² and scaled by the FLOP ratio (256/{image_size})² (same FLOP/s)"},
    }


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


# ---------------------------------------------------------------------------------------- report


def write_report(record: dict[str, Any], cfg: BenchConfig) -> tuple[Path, Path]:
    """``<output_dir>/<device-slug>[-tag].json`` and ``.md``."""
    name = record["device"]["slug"] + (f"-{slug(cfg.tag)}" if cfg.tag else "")
    json_path, md_path = Path(cfg.output_dir) / f"{name}.json", Path(cfg.output_dir) / f"{name}.md"
    runtime.write_json(json_path, record)
    runtime.atomic_write_bytes(md_path, lambda f: f.write(format_markdown(record).encode()))
    return json_path, md_path


README_COLUMNS = ("bf16", "channels_last", "fused_adam", "all")  # after fp32 eager's images/s


def readme_row(workload: str, record: dict[str, Any]) -> str:
    """docs/speed.md's bench table row for one committed record: fp32 eager images/s, each switch's ratio to
    it ('—' when not measured) and the convolution stack's fp32 / bf16 GFLOP/s (tests/test_bench.py keeps
    docs/speed.md equal to these)."""
    variants, conv = record["variants"], record.get("conv_reference")
    cells = [workload, f"{variants[BENCH_REFERENCE]['images_per_s']:.1f} img/s",
             *(f"{variants[name]['speedup']:.2f}×" if name in variants else "—" for name in README_COLUMNS),
             f"{conv['fp32']['flops_per_s'] / 1e9:.0f} / {conv['bf16']['flops_per_s'] / 1e9:.0f} GFLOP/s" if conv else "—"]
    return "| " + " | ".join(cells) + " |"


def _size(num_bytes: float | None) -> str:
    return "n/a" if num_bytes is None else f"{num_bytes / 2**30:.2f} GiB"


def _hours(hours: float) -> str:
    return f"{hours * 60:.0f} min" if hours < 1 else f"{hours:.1f} h" if hours < 48 else f"{hours / 24:.0f} days"


def _gflop(flops: float | None) -> str:
    return "n/a" if flops is None else f"{flops / 1e9:.2f}"


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def _bf16_note(support: dict[str, Any] | None) -> str:
    if support is None:
        return ""
    if support["native"]:
        return f"; bf16 in hardware ({', '.join(f.upper() for f in support['flags']) or support['torch_capability']})"
    return f"; no bf16 instructions (AVX512_BF16/AMX) on this CPU: bf16 is emulated (torch: {support['torch_capability']})"


def format_markdown(record: dict[str, Any]) -> str:
    """The bench record as a Markdown report: context, one row per variant, pipeline, profile, projection."""
    S, B = record["image_size"], record["batch_size"]
    flops, variants, pipe = record["flops"], record["variants"], record["pipeline"]
    versions, load = record["versions"], record["device"]["load_average_1min"]
    part_names = sorted({p for v in variants.values() for p in v.get("parts_ms", {})},
                        key=["generator", "critic", "vgg", "rest"].index)
    conv = record.get("conv_reference")
    lines = [f"# ColorGAN speed: {record['device']['name']}", ""]
    if load.get("under_load"):
        lines += [f"> **Measured under load**: other processes put a 1-min load of up to {load['others_max']:.1f} on "
                  f"this machine (flag above {load['max_other_load']}); the speeds below are low and not comparable. "
                  "Measure again on a quiet machine (`--refuse-under-load`).", ""]
    lines += [
        f"- device: {record['device']['name']} ({record['device']['type']}, {record['device']['threads']} threads"
        + (f", CUDA {record['cuda']}" if record["cuda"] else "") + ")" + _bf16_note(record["device"].get("cpu_bf16")),
        f"- versions: torch {versions.get('torch')}, torchvision {versions.get('torchvision')}, "
        f"python {versions.get('python')}; commit `{record['git_commit']}`; {record['created']}",
        f"- workload: ColorGAN training step at {S}×{S}, batch {B} (model: "
        + ", ".join(f"{k}={v}" for k, v in record["model"].items()) + ")",
        f"- timing: {record['timing']}; machine load (1-min average) {load['start']:.1f} at the start, "
        + (f"{load['during_mean']:.1f} mean and {load['during_max']:.1f} max while timing (our {load['threads']} "
           f"threads included; others' share up to {load['others_max']:.1f}), " if "during_max" in load else "")
        + f"{load['end']:.1f} at the end, on {record['device']['cpu_count']} CPU cores",
        f"- FLOPs per image: training step {flops['train_per_image'] / 1e9:.2f} GFLOP at {S}² "
        f"({flops['train_per_image_at_256'] / 1e9:.0f} GFLOP at 256²), inference {flops['inference_per_image'] / 1e9:.2f}"
        " GFLOP; by part: " + ", ".join(f"{k} {v / 1e9:.2f}" for k, v in flops["parts_per_image"].items()),
        f"- MFU: against dense peak {record['device']['peak_tflops'] or 'n/a (CPU or unknown device)'} TFLOP/s",
        *([f"- convolution-stack reference ({conv['workload']}): fp32 {conv['fp32']['flops_per_s'] / 1e9:.1f} GFLOP/s "
           f"({conv['fp32']['ms']:.0f} ms, spread {_pct(conv['fp32']['spread'])}), bf16 autocast "
           f"{conv['bf16']['flops_per_s'] / 1e9:.1f} GFLOP/s ({conv['bf16']['ms']:.0f} ms, spread "
           f"{_pct(conv['bf16']['spread'])}); '× conv stack' = the step's achieved FLOP/s over the stack's in the "
           "same precision"] if conv else []),
        f"- memory: {record['memory']['method']}; process peak RSS {_size(record['memory']['process_peak_rss_bytes'])}",
        "",
        "| variant | images/s | × fp32 eager | step ms (min–max) | spread | " + " | ".join(f"{p} ms" for p in part_names)
        + " | inference img/s | precision | GFLOP/img run | achieved GFLOP/s | × conv stack | MFU | peak memory | "
        "warm-up s (steps) | paper protocol |",
        "|---|---:|---:|---:|---:|" + "---:|" * len(part_names) + "---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, v in variants.items():
        parts = [f"{v['parts_ms'][p]:.1f}" if p in v.get("parts_ms", {}) else "" for p in part_names]
        lines.append(
            f"| {name}{' (fastest)' if name == record['best'] else ''} | {v['images_per_s']:.1f} | "
            f"{v['speedup']:.2f} | {v['step_ms']:.1f} ({v['step_ms_min']:.0f}–{v['step_ms_max']:.0f}) | "
            f"{_pct(v.get('spread'))} | "
            + "".join(f"{p} | " for p in parts)
            + f"{v['inference_images_per_s']:.1f} | {v['precision']} | {_gflop(v.get('executed_flops_per_image'))} | "
            f"{_gflop(v.get('achieved_flops_per_s'))} | {_ratio(v.get('conv_reference_fraction'))} | {_pct(v['mfu'])} | "
            f"{_size(v['peak_memory_bytes'])} | {v['warmup_s']:.1f} ({v.get('warmup_steps', '?')}"
            f"{'' if v.get('warmup_settled', True) else ', unsettled'}) | {_hours(v['projected_paper_hours'])} |")
    for name, error in record["failed"].items():
        lines.append(f"| {name} | failed: {error[:120]} |")
    compiled = {name: v["dynamo"] for name, v in variants.items() if "dynamo" in v}
    if compiled:
        lines += ["", "torch.compile (dynamo's counters during each variant's warm-up):"]
        lines += [f"- {name}: {d['frames_compiled']} frames compiled, {d['graphs']} graphs, {d['graph_breaks']} graph "
                  f"breaks, {d['compiles_while_timing']} compiles while timing all variants"
                  + (f"; **fell back to eager** (recompile limit hit {d['recompile_limit_hits']}×: its row times "
                     f"eager code in part)" if d["eager_fallback"] else "") for name, d in compiled.items()]
    lines += [
        "",
        "Parts are timed alone: generator = z + G forward/backward (stand-in loss) + Adam; critic = the critic "
        "update with its gradient penalty; vgg = target features + the fake's features forward/backward; "
        "rest = step − parts (colour conversion, loss terms, the critic pass of Lg, overlap). GFLOP/img run: "
        "what the variant executes (n/a: compiled); MFU counts the reference's model FLOPs.",
        "",
        f"**Input pipeline** ({pipe['source']}, {pipe['image_size']}², batch {pipe['batch_size']}, flips, one thread"
        + (", pinned memory + non_blocking copy" if pipe["pinned_non_blocking_copy"] else "") + "): "
        f"**{pipe['images_per_s']:.0f} images/s**; the fastest variant consumes {pipe['training_needs_images_per_s']:.1f}"
        f" images/s at 256² here ({pipe['headroom']:.0f}× headroom); the H100 goal needs ≥ "
        f"{pipe['target_images_per_s']} images/s ({pipe['images_per_s'] / pipe['target_images_per_s']:.1f}× covered).",
        "",
        f"**Paper protocol** ({record['projection']['image_steps']:,} image-steps): "
        f"{_hours(variants[record['best']]['projected_paper_hours'])} with {record['best']}, "
        f"{_hours(variants[BENCH_REFERENCE]['projected_paper_hours'])} with {BENCH_REFERENCE}. "
        f"Projection: {record['projection']['method']}.",
    ]
    profile = record.get("profile")
    if profile:
        lines += ["", f"**Profile of {record['best']}** ({profile['clock']}, {profile['ms_per_step']:.1f} ms per step; "
                  f"convolutions and matmuls {_pct(profile['conv_matmul_share'])}, the rest mostly memory-bound):", "",
                  "| operator | ms per step | share |", "|---|---:|---:|"]
        lines += [f"| `{op['name'][:80]}` | {op['ms_per_step']:.2f} | {_pct(op['share'])} |" for op in profile["top"]]
    return "\n".join(lines) + "\n"

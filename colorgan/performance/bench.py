"""``colorgan bench``: how fast ColorGAN trains and colorizes on this device, and what limits it.

One run measures every variant (fp32 eager, each speed switch alone, all of them together) round
robin: each round times one step of every variant, and a variant's figure is its median over the
rounds, so a busy machine slows all variants alike and the ratios to fp32 eager stay fair.

Recorded in ``results/bench/<device>.json`` and ``.md``:
- training images/s per variant and its ratio to fp32 eager; the step split into its parts
  (generator, critic, VGG features, rest), each timed alone with synchronised timers;
- model FLOPs per image (``torch.utils.flop_counter`` over one fp32 eager step) and MFU against the
  device's dense peak (``devices.PEAK_TFLOPS``; n/a on CPU);
- peak memory: CUDA max allocated per variant; on CPU the process's peak RSS for the whole run;
- inference images/s (``colorize``), the input pipeline's images/s at 256² (``data.batches`` from a
  uint8 cache, with the pinned ``non_blocking`` copy on CUDA), a profile of the fastest variant, and
  the projected wall time of the paper's protocol (300 epochs of 15,413 images at 256²).

The measurements and ``run_bench`` live here; the device's facts in ``devices``, the timers, warm-up, load
and FLOP counter in ``timing``, the record's files and Markdown in ``bench_report``.
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
from typing import Any, Callable

import numpy as np
import torch
import torch._dynamo
from torch import nn

from colorgan.common import runtime
from colorgan.common.published import PAPER_PROTOCOLS
from colorgan.method import losses
from colorgan.method.color import model_to_rgb
from colorgan.method.data import VOC_NUM_IMAGES, VOC_NUM_TEST, batches
from colorgan.method.models import build_vgg19_features
from colorgan.method.step import ColorGANStep
from colorgan.performance.bench_config import BENCH_REFERENCE, BENCH_VARIANTS, BenchConfig
from colorgan.performance.bench_report import slug
from colorgan.performance.devices import conv_precision, cpu_bf16_support, device_label, peak_tflops, synchronize
from colorgan.performance.timing import DynamoWatch, count_flops, machine_load, round_robin, spread, timed, warm_until_settled

log = logging.getLogger(__name__)

# The paper's protocol (§3.1), from its one home in published.py; the train-image count is data.py's VOC split
PAPER_EPOCHS = PAPER_PROTOCOLS["colorgan"]["num_epochs"][0]  # 300
PAPER_IMAGE_SIZE = PAPER_PROTOCOLS["colorgan"]["image_size"][0]  # 256
PAPER_TRAIN_IMAGES = VOC_NUM_IMAGES - VOC_NUM_TEST  # 15,413
PIPELINE_TARGET = 2000  # images/s at 256² that the H100 goal (paper protocol in 45 min) consumes
# Profiler operator/kernel names that are convolutions or matrix products (compute-bound work); the
# rest (elementwise, normalisation, reductions, copies) is mostly memory-bound.
COMPUTE_OPS = re.compile(r"conv|gemm|matmul|\bmm\b|aten::mm|addmm|bmm|linear|cudnn|cutlass|xmma|wgrad|dgrad|fprop",
                         re.IGNORECASE)


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


def variant_builder(cfg: BenchConfig, image_size: int, device: torch.device) -> Callable[..., ColorGANStep]:
    """``build(variant, **changes)``: a ColorGANStep of the benchmarked model at ``image_size`` with a variant's
    settings (and ``changes``, e.g. a batch size). VGG19 is built once, here, and every step gets its own copy."""
    reference = cfg.model_config(image_size)
    vgg = build_vgg19_features(reference.vgg_weights, reference.vgg_layer, reference.seed)  # built once: slow

    def build(variant: str, **changes: Any) -> ColorGANStep:
        return ColorGANStep(cfg.model_config(image_size, **changes, **BENCH_VARIANTS[variant]), device,
                            copy.deepcopy(vgg))
    return build


def build_variants(cfg: BenchConfig, image_size: int, device: torch.device
                   ) -> tuple[dict[str, ColorGANStep], dict[str, str]]:
    """One ColorGANStep per variant (same seed each), and the variants that failed to build."""
    steps, failed = {}, {}
    build = variant_builder(cfg, image_size, device)
    for name in cfg.variant_names():
        torch.manual_seed(cfg.seed)
        try:
            steps[name] = build(name)
        except Exception as err:  # e.g. fused Adam on a device without it: report, measure the rest
            if name == BENCH_REFERENCE:
                raise
            failed[name] = f"{type(err).__name__}: {err}"
    return steps, failed


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
                       "method": f"{PAPER_EPOCHS} epochs x {PAPER_TRAIN_IMAGES:,} images; time per image measured at "
                                 f"{image_size}² and scaled by the FLOP ratio (256/{image_size})² (same FLOP/s)"},
    }

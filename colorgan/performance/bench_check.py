"""The GPU check's bench section: ``colorgan bench`` at the check's batch, then at the largest batch that fits, with
the paper protocol's projected time per method and the issue's goals (reported beside the measurements, never
asserted)."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Callable

import torch

from colorgan.method.step import ColorGANStep
from colorgan.performance import bench, bench_report
from colorgan.performance.bench_config import BENCH_REFERENCE, BenchConfig
from colorgan.performance.gpu_check_config import GpuCheckConfig, bench_params

log = logging.getLogger(__name__)

# Goals of issue 14 for the GPU run: reported beside the measurements, never asserted.
GOALS = {"mfu_bf16": 0.45, "speedup_vs_fp32_eager": 3.0, "colorgan_paper_protocol_minutes": 55.0,
         "inference_images_per_s": 500.0}


def largest_batch(cfg: GpuCheckConfig, device: torch.device, variants: list[str]) -> int:
    """The largest batch (doubling from ``batch_size`` up to ``max_batch``) at which one step of every bench
    variant in ``variants`` fits in CUDA memory with all of them resident, as the bench holds them;
    ``batch_size`` on other devices. Only out-of-memory ends the search; other errors propagate."""
    if device.type != "cuda":
        return cfg.batch_size
    fits, trial = cfg.batch_size, cfg.batch_size * 2
    build = bench.variant_builder(BenchConfig(**bench_params(cfg)), cfg.image_size, device)
    while trial <= cfg.max_batch:
        steps: list[ColorGANStep] = []
        try:
            batch = torch.randint(0, 256, (trial, 3, cfg.image_size, cfg.image_size), dtype=torch.uint8, device=device)
            for name in variants:
                steps.append(build(name, batch_size=trial))
                steps[-1](batch)
            torch.cuda.synchronize(device)
            fits, trial = trial, trial * 2
        except torch.cuda.OutOfMemoryError:
            break
        finally:
            steps.clear()  # free the trial's memory before the next
            torch.cuda.empty_cache()
    return fits


def check_bench(cfg: GpuCheckConfig, device: torch.device, done: dict[str, Any], until: float,
                report: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """``colorgan bench`` at batch_size (every variant) first, then the largest-batch search and the bench at
    that batch (``large_batch_variants``); each step's error is recorded and what was measured is kept
    (``report`` hands each partial result to the parent). The second run is left out when less time is
    left before ``until`` (epoch s) than the first one took."""
    out = Path(cfg.output_dir) / "bench"
    common = {"image_size": cfg.image_size, "output_dir": str(out), **bench_params(cfg)}
    if cfg.tiny:  # the same code at a size CI can afford: two variants, a few steps
        common.update(variants="bf16", num_steps=2, num_warmup=1, max_warmup=2, breakdown=False, profile=False,
                      conv_reference=False, pipeline_size=32, pipeline_images=8, pipeline_batches=2)
    result: dict[str, Any] = {"ok": None, "runs": {}, "errors": {}, "largest_batch": None, "largest_batch_skipped": None}
    begun = time.monotonic()
    bench_once(cfg.batch_size, {**common, "batch_size": cfg.batch_size, "tag": f"b{cfg.batch_size}"}, result)
    first_seconds = time.monotonic() - begun
    summarise_goals(result, done, cfg)
    report(result)
    if not result["runs"]:
        raise RuntimeError(f"bench at batch {cfg.batch_size} failed: {result['errors'][f'b{cfg.batch_size}']}")
    large_variants = [BENCH_REFERENCE, *[v.strip() for v in cfg.large_batch_variants.split(",")
                                         if v.strip() and v.strip() != BENCH_REFERENCE]]
    try:
        result["largest_batch"] = largest_batch(cfg, device, large_variants)
    except Exception as err:  # e.g. a cuDNN error at a new size: the batch-16 numbers stay
        log.exception("gpu-check: largest-batch search failed")
        result["errors"]["largest_batch"] = f"{type(err).__name__}: {err}"
    large = result["largest_batch"]
    if large and large > cfg.batch_size:
        if until - time.time() < first_seconds:
            result["largest_batch_skipped"] = (f"time: {until - time.time():.0f} s left before the deadline, the first "
                                               f"run took {first_seconds:.0f} s; batch {large} not benchmarked")
        else:
            report(result)
            bench_once(large, {**common, "batch_size": large, "tag": f"b{large}", "variants": ",".join(large_variants),
                               "breakdown": False, "profile": False, "conv_reference": False}, result)
    summarise_goals(result, done, cfg)
    return result


def bench_once(batch_size: int, params: dict[str, Any], result: dict[str, Any]) -> None:
    """One ``colorgan bench`` run into ``result['runs']['b<batch>']``, or its error into ``result['errors']``."""
    key = f"b{batch_size}"
    try:
        bench_cfg = BenchConfig.from_params(params)
        record = bench.run_bench(bench_cfg)
        _, md_path = bench_report.write_report(record, bench_cfg)
        result["runs"][key] = {"report": str(md_path), **summarise_bench(record)}
    except Exception as err:  # a CUDA error in one run must not take the runs already measured with it
        log.exception("gpu-check: bench at batch %d failed", batch_size)
        result["errors"][key] = f"{type(err).__name__}: {err}"


def summarise_goals(result: dict[str, Any], done: dict[str, Any], cfg: GpuCheckConfig) -> None:
    """The projected paper-protocol hours per method and the issue's goals, from the runs measured so far."""
    runs = result["runs"]
    if not runs:
        return
    methods = done.get("methods", {}).get("methods", {})
    projected = {name: m["projected_paper_hours"] for name, m in methods.items() if "projected_paper_hours" in m}
    first = runs.get(f"b{cfg.batch_size}") or next(iter(runs.values()))
    projected["colorgan"] = first["projected_paper_hours"]  # the bench's fastest variant beats a 20-step run
    best = max(runs.values(), key=lambda r: r["images_per_s"])
    goals = {
        "mfu_bf16": best["mfu_bf16_peak"],
        "speedup_vs_fp32_eager": best["speedup"],
        "colorgan_paper_protocol_minutes": 60 * min(r["projected_paper_hours"] for r in runs.values()),
        "inference_images_per_s": max(r["inference_images_per_s"] for r in runs.values()),
    }
    met = {k: (v is not None and (v <= GOALS[k] if k.endswith("minutes") else v >= GOALS[k])) for k, v in goals.items()}
    result.update(projected_paper_hours=projected, goals={"measured": goals, "met": met})


def summarise_bench(record: dict[str, Any]) -> dict[str, Any]:
    best = record["variants"][record["best"]]
    return {"batch_size": record["batch_size"], "best": record["best"], "images_per_s": best["images_per_s"],
            "speedup": best["speedup"], "mfu_bf16_peak": best.get("mfu_bf16_peak"),
            "projected_paper_hours": best["projected_paper_hours"],
            "inference_images_per_s": max(v["inference_images_per_s"] for v in record["variants"].values()),
            "variants": {name: {k: v.get(k) for k in ("images_per_s", "speedup", "mfu", "mfu_bf16_peak",
                                                      "inference_images_per_s", "peak_memory_bytes")}
                         for name, v in record["variants"].items()},
            "failed": record["failed"],
            "dynamo": {name: v["dynamo"] for name, v in record["variants"].items() if "dynamo" in v}}

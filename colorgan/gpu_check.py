"""``colorgan gpu-check``: one prepared command that shows, in minutes, whether a GPU trains this suite right and fast.

Sections, in order, each in its own child process under a hard deadline (``deadline.run_with_deadline``):

1. switches: the same generated batches through ColorGAN in fp32 eager (TF32 off) and with each
   speed switch (bf16 autocast, channels_last, torch.compile, fused Adam) for ``num_steps`` steps;
   every loss term must stay within a stated tolerance of fp32 eager's.
2. methods: every method (ColorGAN, ChromaGAN, ColTran: the CLI passes them in) trains ``num_steps``
   steps at its paper sizes and ``image_size``, then colorizes and scores ``num_eval_images`` test images.
3. ddp: ``torchrun --nproc_per_node=1 -m colorgan train`` (NCCL on CUDA, gloo on CPU) for half the
   steps, then ``--resume`` to the end; compared with one process's uninterrupted run by the relative
   distance of the weights, at half way (DDP) and at the end (resume), the resume step read back from the run.
4. bench (GPU form, measured, not judged): ``colorgan bench`` at ``batch_size`` with every variant,
   then at the largest batch that fits with the variants that run there; MFU against the device's
   dense bf16 peak, the paper protocol's projected time per method, inference images/s, and the
   issue's goals (reported, not asserted).

The record ``<output_dir>/<device>[-tiny].json`` (and its ``.md``) is rewritten atomically before and
after every section, so a check that is killed leaves every finished section on disk. Each section's
status: ``passed`` / ``failed`` (judged), ``measured`` (bench), ``not run`` (with why), ``running``
(in a record left by a killed check). Overall: ``failed`` if a judged section failed, else
``incomplete`` if any section did not finish, else ``ok`` (exit codes in ``EXIT_CODES``).

Data: the bundled sample photos (installed with scikit-image and matplotlib) and seeded generated
batches; nothing from outside the checkout.
"""

from __future__ import annotations

import copy
import datetime
import json
import logging
import os
import resource
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch

from colorgan import bench, deadline, runtime
from colorgan.config import (BENCH_REFERENCE, BENCH_VARIANTS, GPU_CHECK_SECTIONS, BenchConfig, GpuCheckConfig,
                             RunConfig)
from colorgan.data import ImageSet, load_split
from colorgan.ddp_check import check_ddp
from colorgan.gpu_check_report import write_report
from colorgan.metrics import evaluate
from colorgan.models import build_vgg19_features
from colorgan.step import ColorGANStep
from colorgan.train import StepFactory, load_trained, train

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]
# Goals of issue 14 for the GPU run: reported beside the measurements, never asserted.
GOALS = {"mfu_bf16": 0.45, "speedup_vs_fp32_eager": 3.0, "colorgan_paper_protocol_minutes": 55.0,
         "inference_images_per_s": 500.0}
# Model fields per method. GPU form: the papers' sizes (the configs' defaults) with offline VGG weights
# (same FLOPs as ImageNet's); ColTran trains its 256x256 spatial upsampler on 4 images per step, as the
# paper profile does. Tiny form: toy widths that train a step in well under a second on a CPU.
PAPER_SIZES: dict[str, dict[str, Any]] = {"coltran": {"spatial_batch_size": 4}}
TINY_SIZES: dict[str, dict[str, Any]] = {
    "colorgan": {"gen_width": 8, "gen_max_width": 32, "noise_channels": 4, "noise_width": 16, "noise_layers": 2,
                 "disc_width": 8, "disc_layers": 2, "vgg_layer": "relu2_2"},
    "chromagan": {"trunk_width": 8, "head_width": 16, "global_dim": 16, "class_hidden": 32, "decoder_width": 8,
                  "disc_width": 8, "disc_layers": 2, "teacher_size": 32},
    "coltran": {"coarse_size": 8, "hidden_size": 16, "ff_size": 32, "num_heads": 2, "num_encoder_layers": 1,
                "num_outer_layers": 1, "num_inner_layers": 1, "upsampler_hidden_size": 16, "upsampler_ff_size": 32,
                "upsampler_heads": 2, "num_color_upsampler_layers": 1, "num_spatial_upsampler_layers": 1,
                "spatial_batch_size": 2},
}
SWITCH_NOTES = {"compile": "left out of --tiny: compiling takes minutes on 2 CPU cores"}
TOLERANCE_BASIS = ("calibrated on a CPU at toy widths, 32x32, batch 4, 2-4 steps; here they bound a run of the "
                   "size above, so a failure shows its measured deviation to judge by")
JUDGED = ("switches", "methods", "ddp")  # pass/fail; the bench is measured
# Each section's share of the time left when it starts, against the sections still to come: with the
# default 8 minutes, 2 + 2 + 1.5 + 2.5 min, and time a section does not use goes to the later ones.
SHARES = {"switches": 2.0, "methods": 2.0, "ddp": 1.5, "bench": 2.5}
MIN_SECTION_SECONDS = 10.0  # below this a section is not started: spawning Python and importing torch takes seconds
EXIT_CODES = {"ok": 0, "failed": 1, "incomplete": 3}  # 2 is argparse's usage error


def run_gpu_check(cfg: GpuCheckConfig, methods: dict[str, tuple[type[RunConfig], StepFactory]]) -> dict[str, Any]:
    """Run every section ``cfg`` asks for, each under its deadline; returns the record, also written to
    ``report_paths(record, cfg)`` before and after every section. Never raises for a failed check."""
    started = time.monotonic()
    cfg = cfg.resolved()
    limit = 60 * cfg.time_budget_minutes
    record = new_record(cfg)
    sections = record["sections"]
    reserve = min(2 * deadline.GRACE_SECONDS, limit / 10)  # stopping a hung section and writing the record
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as work:
        names = [n for n in GPU_CHECK_SECTIONS if n != "bench" or cfg.bench]
        write_report(record, cfg)
        for i, name in enumerate(names):
            left = limit - reserve - (time.monotonic() - started)
            seconds = min(left, max(left * SHARES[name] / sum(SHARES[n] for n in names[i:]), MIN_SECTION_SECONDS))
            if seconds < MIN_SECTION_SECONDS:
                sections[name] = {"status": "not run", "why": f"time limit: {max(left, 0):.0f} s left of the "
                                  f"{limit:.0f} s limit (time_budget_minutes={cfg.time_budget_minutes})"}
                continue
            log.info("gpu-check: %s (deadline %.0f s)", name, seconds)
            sections[name] = {"status": "running", "deadline_s": seconds, "started": _now()}

            def started_child(pid: int, entry: dict[str, Any] = sections[name]) -> None:
                entry["pid"] = pid  # a record left by a killed check names the process that ran
                write_report(record, cfg)

            cpu_begun = cpu_seconds()
            outcome = deadline.run_with_deadline(run_section, (name, cfg, methods, work, dict(sections)), seconds,
                                                 Path(work) / f"{name}.result.json", logging.getLogger().level,
                                                 started_child)
            sections[name] = section_entry(name, outcome, seconds)
            sections[name]["cpu_seconds"] = cpu_seconds() - cpu_begun  # its process and all it started
            write_report(record, cfg)
    record["seconds"] = time.monotonic() - started
    record["status"] = overall_status(sections)
    record["ok"] = record["status"] == "ok"
    write_report(record, cfg)
    return record


def new_record(cfg: GpuCheckConfig) -> dict[str, Any]:
    """The record before any section ran: device, versions, config, every section 'not run' or pending."""
    device = runtime.select_device(cfg.device)
    try:
        label = bench.device_label(device)
    except Exception as err:  # a broken driver: the record still gets written, and each section says why it fails
        label = f"{device} (name unavailable: {type(err).__name__})"
    sections: dict[str, Any] = {name: {"status": "not run", "why": "not reached: the check stopped before it"}
                                for name in GPU_CHECK_SECTIONS}
    if not cfg.bench:
        sections["bench"] = {"status": "off", "why": "bench=False"}
    return {
        "device": {"name": label, "slug": bench.slug(label), "type": device.type, "index": device.index,
                   "peak_tflops": bench.peak_tflops(label), "cuda": torch.version.cuda if device.type == "cuda" else None},
        "created": _now(), "git_commit": runtime.git_commit(), "versions": runtime.package_versions(),
        "config": cfg.to_dict(), "goals": GOALS, "time_limit_s": 60 * cfg.time_budget_minutes,
        "status": "running", "ok": False, "seconds": None, "sections": sections,
    }


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def section_entry(name: str, outcome: dict[str, Any], seconds: float) -> dict[str, Any]:
    """A section's record from its child's outcome: status, error, and whatever it measured or reported."""
    result = dict(outcome["result"] or {})
    entry: dict[str, Any] = {**result, "deadline_s": seconds, "seconds": outcome["seconds"]}
    if outcome["outcome"] != "finished":
        entry["error"] = outcome["error"]
        entry["status"] = "measured" if name not in JUDGED and result.get("runs") else "failed"
        return entry
    if name in JUDGED:
        entry["status"] = "passed" if result.get("ok") else "failed"
    else:
        entry["status"] = "measured" if result.get("runs") else "failed"
    return entry


def overall_status(sections: Mapping[str, Mapping[str, Any]]) -> str:
    """'failed' if a judged section failed; else 'incomplete' if any section did not finish its work
    (not run, stopped, or a bench that measured nothing); else 'ok'. A section switched off ('off') counts as neither."""
    if any(sections[n]["status"] == "failed" for n in JUDGED if n in sections):
        return "failed"
    done = {"passed", "measured", "off"}
    return "ok" if all(s["status"] in done for s in sections.values()) else "incomplete"


def run_section(report: Callable[[dict[str, Any]], None], until: float, name: str, cfg: GpuCheckConfig,
                methods: dict[str, tuple[type[RunConfig], StepFactory]], work: str,
                done: dict[str, Any]) -> dict[str, Any]:
    """One section in its child process (see ``deadline.run_with_deadline``); ``until``: its deadline (epoch s)."""
    fault = dict(item.strip().split(":") for item in cfg.fault.split(",") if item.strip()).get(name)
    if fault:
        return inject_fault(name, fault)
    device = runtime.select_device(cfg.device)
    work_dir = Path(work)
    if name == "switches":
        return check_switches(cfg, device, report)
    if name == "methods":
        return check_methods(cfg, methods, device, work_dir, report)
    if name == "ddp":
        return check_ddp(cfg, device, work_dir, until, model_params(cfg, "colorgan"))
    return check_speed(cfg, device, done, until, report)


def inject_fault(name: str, action: str) -> dict[str, Any]:
    """Test only (``GpuCheckConfig.fault``): hang, raise, die like a segfault, or stand in without checking."""
    log.warning("gpu-check: fault injection: %s %s", name, action)
    if action == "hang":
        while True:
            time.sleep(1.0)
    if action == "raise":
        raise RuntimeError(f"fault injection: {name} raised")
    if action == "die":
        os.kill(os.getpid(), 9)
    return {"ok": True, "stub": "fault injection: a stand-in that checked nothing", "runs": {"stub": {}}}


def cpu_seconds() -> float:
    """User + system CPU seconds of this process and its waited-for children (torchrun)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


# ---------------------------------------------------------------------------------------- sections


def generated_batches(cfg: GpuCheckConfig, count: int) -> list[torch.Tensor]:
    """``count`` seeded batches (B, 3, S, S) uint8 of smooth random colour images (colour to learn, unlike noise)."""
    generator = torch.Generator().manual_seed(cfg.seed)
    small = torch.rand(count, cfg.batch_size, 3, 4, 4, generator=generator)
    images = torch.nn.functional.interpolate(small.flatten(0, 1), size=cfg.image_size, mode="bilinear",
                                             align_corners=False)
    return list((images * 255).round().to(torch.uint8).unflatten(0, (count, cfg.batch_size)))


def model_params(cfg: GpuCheckConfig, method: str) -> dict[str, Any]:
    return dict(TINY_SIZES.get(method, {}) if cfg.tiny else PAPER_SIZES.get(method, {}))


def switch_names(cfg: GpuCheckConfig) -> list[str]:
    names = [s.strip() for s in cfg.switches.split(",") if s.strip() and s.strip() != BENCH_REFERENCE]
    return [n for n in names if not (cfg.tiny and n == "compile")]


def check_switches(cfg: GpuCheckConfig, device: torch.device,
                   report: Callable[[dict[str, Any]], None] = lambda partial: None) -> dict[str, Any]:
    """Loss terms of each switch vs fp32 eager on the same batches, noise and initial weights.

    TF32 is off here on CUDA, so 'fp32' means fp32. Deviation per term: max over steps of
    |switch - reference| / max over steps of |reference|. torch.compile runs last (the slowest), and
    ``report`` gets the switches judged so far after each, so a deadline keeps them.
    """
    bench_cfg = BenchConfig(batch_size=cfg.batch_size, device=cfg.device, seed=cfg.seed,
                            model_params=json.dumps(model_params(cfg, "colorgan")))
    batches = [b.to(device) for b in generated_batches(cfg, cfg.num_steps)]
    reference_cfg = bench_cfg.model_config(cfg.image_size)
    vgg = build_vgg19_features(reference_cfg.vgg_weights, reference_cfg.vgg_layer, reference_cfg.seed)
    tf32 = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    histories: dict[str, list[dict[str, float]]] = {}
    switches: dict[str, Any] = {}
    result: dict[str, Any] = {"ok": False, "steps": cfg.num_steps, "image_size": cfg.image_size,
                              "batch_size": cfg.batch_size, "tolerance_basis": TOLERANCE_BASIS, "switches": switches,
                              "not_checked": {n: SWITCH_NOTES[n] for n in SWITCH_NOTES if cfg.tiny and n in cfg.switches}}
    try:
        for name in [BENCH_REFERENCE, *sorted(switch_names(cfg), key=lambda n: n == "compile")]:
            torch.manual_seed(cfg.seed)
            torch._dynamo.reset()  # each switch compiles from scratch, far from dynamo's recompile limit
            begun = time.monotonic()
            tolerance = cfg.bf16_tolerance if BENCH_VARIANTS[name].get("amp") == "bf16" else cfg.fp32_tolerance
            try:
                step = ColorGANStep(bench_cfg.model_config(cfg.image_size, **BENCH_VARIANTS[name]), device,
                                    copy.deepcopy(vgg))
                with bench.DynamoWatch() as watch:
                    histories[name] = [{k: float(v) for k, v in step(batch).items()} for batch in batches]
            except Exception as err:
                if name == BENCH_REFERENCE:
                    raise
                switches[name] = {"ok": False, "error": f"{type(err).__name__}: {err}", "tolerance": tolerance}
                continue
            if name == BENCH_REFERENCE:
                result["reference_seconds"] = time.monotonic() - begun
                continue
            switches[name] = judge_switch(histories[name], histories[BENCH_REFERENCE], tolerance,
                                          watch.result if step.cfg.compile else None)
            switches[name]["seconds"] = time.monotonic() - begun
            report(result)
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = tf32
    result["final_losses"] = {name: history[-1] for name, history in histories.items()}
    result["ok"] = all(s["ok"] for s in switches.values())
    return result


def judge_switch(history: list[dict[str, float]], reference: list[dict[str, float]], tolerance: float,
                 dynamo: dict[str, Any] | None) -> dict[str, Any]:
    """One switch's verdict: every term finite and within ``tolerance`` of fp32 eager, and (compiled) no eager fallback."""
    deviation = {term: loss_deviation([h[term] for h in history], [h[term] for h in reference]) for term in reference[0]}
    finite = all(np.isfinite(v) for h in history for v in h.values())
    fallback = dynamo is not None and dynamo["eager_fallback"]
    return {"ok": finite and max(deviation.values()) <= tolerance and not fallback, "tolerance": tolerance,
            "deviation": deviation, "finite": finite, **({"dynamo": dynamo} if dynamo is not None else {})}


def loss_deviation(values: list[float], reference: list[float]) -> float:
    """max_t |values[t] - reference[t]| / max_t |reference[t]| (0 when the reference is all zero)."""
    scale = max(abs(r) for r in reference)
    worst = max(abs(v - r) for v, r in zip(values, reference))
    return worst / scale if scale > 0 else worst


def check_methods(cfg: GpuCheckConfig, methods: dict[str, tuple[type[RunConfig], StepFactory]],
                  device: torch.device, work_dir: Path,
                  report: Callable[[dict[str, Any]], None] = lambda partial: None) -> dict[str, Any]:
    """Each method trains ``num_steps`` steps on the sample photos, then colorizes and scores a few test images
    (``report`` gets the methods done so far after each)."""
    results: dict[str, Any] = {}
    for name, (config_cls, factory) in methods.items():
        begun = time.monotonic()
        try:
            results[name] = train_and_score(cfg, name, config_cls, factory, device, work_dir)
        except Exception as err:
            log.exception("gpu-check: %s failed", name)
            results[name] = {"ok": False, "error": f"{type(err).__name__}: {err}"}
        results[name]["seconds"] = time.monotonic() - begun
        report({"ok": False, "methods": results})
    return {"ok": all(r["ok"] for r in results.values()), "methods": results}


def train_and_score(cfg: GpuCheckConfig, name: str, config_cls: type[RunConfig], factory: StepFactory,
                    device: torch.device, work_dir: Path) -> dict[str, Any]:
    params = {"data": "samples", "image_size": cfg.image_size, "batch_size": cfg.batch_size,
              "num_sample_crops": max(cfg.batch_size, 16), "num_steps": cfg.num_steps, "checkpoint_every": cfg.num_steps,
              "log_every": 1, "run_dir": str(work_dir / name), "progress": False, "device": cfg.device,
              "seed": cfg.seed, "num_bootstrap": 100, **model_params(cfg, name)}
    run_cfg = config_cls.from_params(params)
    fit = train(run_cfg, factory, work_dir / "cache")
    lines = [json.loads(line) for line in (Path(run_cfg.run_dir) / "metrics.jsonl").read_text().splitlines()]
    # the second half of the steps: past cuDNN's algorithm search and the caches' first fill
    step_seconds = statistics.median(line["sec_per_step"] for line in lines[len(lines) // 2:])
    _, step, checkpoint_step = load_trained(run_cfg.run_dir, config_cls, factory, device)
    _, test, _ = load_split(run_cfg, work_dir / "cache")
    few = ImageSet(np.ascontiguousarray(test.images[:cfg.num_eval_images]), test.names[:cfg.num_eval_images])
    begun = time.monotonic()
    scores = evaluate(step.colorize, few, device, name, cfg.num_eval_images, cfg.seed)
    eval_seconds = time.monotonic() - begun
    own = scores[scores["method"] == name]
    images_per_s = cfg.batch_size / step_seconds
    finite = all(np.isfinite(v) for line in lines for k, v in line.items() if isinstance(v, float))
    return {"ok": fit.step == cfg.num_steps and finite and bool(np.isfinite(own["psnr"]).all()),
            "steps": fit.step, "checkpoint_step": checkpoint_step, "model": model_params(cfg, name),
            "final_losses": {k: v for k, v in lines[-1].items() if k not in ("step", "sec_per_step")},
            "train_images_per_s": images_per_s,
            "projected_paper_hours": bench.paper_protocol_hours(images_per_s, cfg.image_size),
            "eval_images": len(few), "eval_seconds": eval_seconds,
            "psnr": float(own["psnr"].mean()), "ssim": float(own["ssim"].mean())}


def largest_batch(cfg: GpuCheckConfig, device: torch.device, variants: list[str]) -> int:
    """The largest batch (doubling from ``batch_size`` up to ``max_batch``) at which one step of every bench
    variant in ``variants`` fits in CUDA memory with all of them resident, as the bench holds them;
    ``batch_size`` on other devices. Only out-of-memory ends the search; other errors propagate."""
    if device.type != "cuda":
        return cfg.batch_size
    fits, trial = cfg.batch_size, cfg.batch_size * 2
    model = BenchConfig(device=cfg.device, seed=cfg.seed, model_params=json.dumps(model_params(cfg, "colorgan")))
    reference = model.model_config(cfg.image_size)
    vgg = build_vgg19_features(reference.vgg_weights, reference.vgg_layer, reference.seed)  # once: slow to build
    while trial <= cfg.max_batch:
        steps: list[ColorGANStep] = []
        try:
            batch = torch.randint(0, 256, (trial, 3, cfg.image_size, cfg.image_size), dtype=torch.uint8, device=device)
            for name in variants:
                steps.append(ColorGANStep(model.model_config(cfg.image_size, batch_size=trial, **BENCH_VARIANTS[name]),
                                          device, copy.deepcopy(vgg)))
                steps[-1](batch)
            torch.cuda.synchronize(device)
            fits, trial = trial, trial * 2
        except torch.cuda.OutOfMemoryError:
            break
        finally:
            steps.clear()  # free the trial's memory before the next
            torch.cuda.empty_cache()
    return fits


def check_speed(cfg: GpuCheckConfig, device: torch.device, done: dict[str, Any], until: float,
                report: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """``colorgan bench`` at batch_size (every variant) first, then the largest-batch search and the bench at
    that batch (``large_batch_variants``); each step's error is recorded and what was measured is kept
    (``report`` hands each partial result to the parent). The second run is left out when less time is
    left before ``until`` (epoch s) than the first one took."""
    out = Path(cfg.output_dir) / "bench"
    common = {"image_size": cfg.image_size, "device": cfg.device, "seed": cfg.seed, "output_dir": str(out),
              "model_params": json.dumps(model_params(cfg, "colorgan"))}
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
        _, md_path = bench.write_report(record, bench_cfg)
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

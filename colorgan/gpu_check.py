"""``colorgan gpu-check``: one prepared command that shows, in minutes, whether a GPU trains this suite right and fast.

Sections, in order (each records its seconds; one that would start after ``time_budget_minutes`` is
skipped and says so):

1. switches: the same generated batches through ColorGAN in fp32 eager (TF32 off) and with each
   speed switch (bf16 autocast, channels_last, torch.compile, fused Adam) for ``num_steps`` steps;
   every loss term must stay within a stated tolerance of fp32 eager's.
2. methods: every method (ColorGAN, ChromaGAN, ColTran: the CLI passes them in) trains ``num_steps``
   steps at its paper sizes and ``image_size``, then colorizes and scores ``num_eval_images`` test images.
3. ddp: ``torchrun --nproc_per_node=1 -m colorgan train`` (NCCL on CUDA, gloo on CPU) for half the
   steps, then ``--resume`` to the end; its weights are compared with one process's uninterrupted run.
4. bench (GPU form): ``colorgan bench`` at ``batch_size`` with every variant, and at the largest batch
   that fits; MFU against the device's dense bf16 peak, the paper protocol's projected time per
   method, inference images/s, and the issue's goals (reported, not asserted).

Writes ``<output_dir>/<device>[-tiny].json`` and ``.md``. Data: the bundled sample photos (installed
with scikit-image and matplotlib) and seeded generated batches; nothing from outside the checkout.
"""

from __future__ import annotations

import copy
import datetime
import json
import logging
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from colorgan import bench, runtime
from colorgan.config import BENCH_REFERENCE, BENCH_VARIANTS, BenchConfig, ColorGANConfig, GpuCheckConfig, RunConfig
from colorgan.data import ImageSet, load_split
from colorgan.metrics import evaluate
from colorgan.models import build_vgg19_features
from colorgan.step import ColorGANStep
from colorgan.train import CheckpointDir, StepFactory, load_trained, train

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


def run_gpu_check(cfg: GpuCheckConfig, methods: dict[str, tuple[type[RunConfig], StepFactory]]) -> dict[str, Any]:
    """Run every section ``cfg`` asks for; returns the record ``write_report`` writes. Never raises for a
    failed check: each section records 'ok' True/False and its error."""
    started = time.monotonic()
    cfg = cfg.resolved()
    device = runtime.select_device(cfg.device)
    label = bench.device_label(device)
    record: dict[str, Any] = {
        "device": {"name": label, "slug": bench.slug(label), "type": device.type,
                   "peak_tflops": bench.peak_tflops(label), "cuda": torch.version.cuda if device.type == "cuda" else None},
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "git_commit": runtime.git_commit(), "versions": runtime.package_versions(), "config": cfg.to_dict(),
        "goals": GOALS, "sections": {},
    }
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as work:
        work_dir = Path(work)
        sections: list[tuple[str, Callable[[], dict[str, Any]]]] = [
            ("switches", lambda: check_switches(cfg, device)),
            ("methods", lambda: check_methods(cfg, methods, device, work_dir)),
            ("ddp", lambda: check_ddp(cfg, device, work_dir)),
        ]
        if cfg.bench:
            sections.append(("bench", lambda: check_speed(cfg, device, record["sections"], started)))
        for name, section in sections:
            elapsed = time.monotonic() - started
            if elapsed > 60 * cfg.time_budget_minutes:
                record["sections"][name] = {"ok": None, "skipped": f"time budget: {elapsed / 60:.1f} min had passed "
                                                                   f"(time_budget_minutes={cfg.time_budget_minutes})"}
                continue
            log.info("gpu-check: %s", name)
            begun, cpu_begun = time.monotonic(), cpu_seconds()
            try:
                result = section()
            except Exception as err:  # one broken section must not hide the others' results
                log.exception("gpu-check: %s failed", name)
                result = {"ok": False, "error": f"{type(err).__name__}: {err}"}
            result["seconds"] = time.monotonic() - begun
            result["cpu_seconds"] = cpu_seconds() - cpu_begun  # this process and its finished children
            record["sections"][name] = result
    record["seconds"] = time.monotonic() - started
    checked = [s["ok"] for s in record["sections"].values() if s.get("ok") is not None]
    record["ok"] = bool(checked) and all(checked)
    return record


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


def check_switches(cfg: GpuCheckConfig, device: torch.device) -> dict[str, Any]:
    """Loss terms of each switch vs fp32 eager on the same batches, noise and initial weights.

    TF32 is off here on CUDA, so 'fp32' means fp32. Deviation per term: max over steps of
    |switch - reference| / max over steps of |reference|.
    """
    bench_cfg = BenchConfig(batch_size=cfg.batch_size, device=cfg.device, seed=cfg.seed,
                            model_params=json.dumps(model_params(cfg, "colorgan")))
    batches = [b.to(device) for b in generated_batches(cfg, cfg.num_steps)]
    reference_cfg = bench_cfg.model_config(cfg.image_size)
    vgg = build_vgg19_features(reference_cfg.vgg_weights, reference_cfg.vgg_layer, reference_cfg.seed)
    tf32 = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    histories: dict[str, list[dict[str, float]]] = {}
    seconds: dict[str, float] = {}
    errors: dict[str, str] = {}
    try:
        for name in [BENCH_REFERENCE, *switch_names(cfg)]:
            torch.manual_seed(cfg.seed)
            begun = time.monotonic()
            try:
                step = ColorGANStep(bench_cfg.model_config(cfg.image_size, **BENCH_VARIANTS[name]), device,
                                    copy.deepcopy(vgg))
                histories[name] = [{k: float(v) for k, v in step(batch).items()} for batch in batches]
            except Exception as err:
                if name == BENCH_REFERENCE:
                    raise
                errors[name] = f"{type(err).__name__}: {err}"
            seconds[name] = time.monotonic() - begun
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = tf32
    reference = histories[BENCH_REFERENCE]
    switches: dict[str, Any] = {}
    for name in switch_names(cfg):
        tolerance = cfg.bf16_tolerance if BENCH_VARIANTS[name].get("amp") == "bf16" else cfg.fp32_tolerance
        if name in errors:
            switches[name] = {"ok": False, "error": errors[name], "tolerance": tolerance}
            continue
        deviation = {term: loss_deviation([h[term] for h in histories[name]], [h[term] for h in reference])
                     for term in reference[0]}
        finite = all(np.isfinite(v) for h in histories[name] for v in h.values())
        switches[name] = {"ok": finite and max(deviation.values()) <= tolerance, "tolerance": tolerance,
                          "deviation": deviation, "seconds": seconds[name]}
    return {"ok": all(s["ok"] for s in switches.values()), "steps": cfg.num_steps, "image_size": cfg.image_size,
            "batch_size": cfg.batch_size, "reference_seconds": seconds[BENCH_REFERENCE], "switches": switches,
            "not_checked": {n: SWITCH_NOTES[n] for n in SWITCH_NOTES if cfg.tiny and n in cfg.switches},
            "final_losses": {name: history[-1] for name, history in histories.items()}}


def loss_deviation(values: list[float], reference: list[float]) -> float:
    """max_t |values[t] - reference[t]| / max_t |reference[t]| (0 when the reference is all zero)."""
    scale = max(abs(r) for r in reference)
    worst = max(abs(v - r) for v, r in zip(values, reference))
    return worst / scale if scale > 0 else worst


def check_methods(cfg: GpuCheckConfig, methods: dict[str, tuple[type[RunConfig], StepFactory]],
                  device: torch.device, work_dir: Path) -> dict[str, Any]:
    """Each method trains ``num_steps`` steps on the sample photos, then colorizes and scores a few test images."""
    results: dict[str, Any] = {}
    for name, (config_cls, factory) in methods.items():
        begun = time.monotonic()
        try:
            results[name] = train_and_score(cfg, name, config_cls, factory, device, work_dir)
        except Exception as err:
            log.exception("gpu-check: %s failed", name)
            results[name] = {"ok": False, "error": f"{type(err).__name__}: {err}"}
        results[name]["seconds"] = time.monotonic() - begun
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


def check_ddp(cfg: GpuCheckConfig, device: torch.device, work_dir: Path) -> dict[str, Any]:
    """torchrun with one process (DDP; NCCL on CUDA): half the steps, then resume to the end; compared with
    one process's uninterrupted run of the same config (equal on CPU; within rounding on CUDA, where
    SyncBatchNorm replaces BatchNorm and cuDNN's kernels are not bitwise deterministic)."""
    half = max(cfg.num_steps // 2, 1)
    params = {"data": "samples", "image_size": cfg.image_size, "batch_size": cfg.batch_size,
              "num_sample_crops": max(cfg.batch_size, 16), "num_steps": cfg.num_steps, "checkpoint_every": half,
              "log_every": 1, "progress": False, "device": cfg.device, "seed": cfg.seed, "num_bootstrap": 100,
              **model_params(cfg, "colorgan")}
    run_dir = work_dir / "ddp"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])}
    logs = []
    for steps, resume in ((half, False), (cfg.num_steps, True)):
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=1", "-m",
                   "colorgan", "train", "--params", json.dumps({**params, "num_steps": steps, "resume": resume,
                                                                 "run_dir": str(run_dir)})]
        done = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
        logs.append(done.stdout[-2000:] + done.stderr[-2000:])
        if done.returncode != 0:
            return {"ok": False, "error": f"torchrun exited {done.returncode}", "log": logs[-1]}
    reference_dir = work_dir / "ddp-reference"
    train(ColorGANConfig.from_params({**params, "run_dir": str(reference_dir)}), ColorGANStep, work_dir / "cache")
    a = CheckpointDir(run_dir / "checkpoints").load_latest()
    b = CheckpointDir(reference_dir / "checkpoints").load_latest()
    difference = max((a["modules"][m][k].float() - b["modules"][m][k].float()).abs().max().item()
                     for m in b["modules"] for k in b["modules"][m])
    tolerance = 0.0 if device.type == "cpu" else 1e-2  # Adam steps are ~lr = 1e-4 per step
    resumed_at = [int(p.stem.split("_")[1]) for p in CheckpointDir(run_dir / "checkpoints", 99).paths()]
    return {"ok": a["step"] == cfg.num_steps and difference <= tolerance, "backend": "nccl" if device.type == "cuda"
            else "gloo", "steps": a["step"], "resumed_from": half, "checkpoints": resumed_at,
            "max_weight_difference": difference, "tolerance": tolerance,
            "world_size": json.loads((run_dir / "provenance.json").read_text()).get("world_size")}


def largest_batch(cfg: GpuCheckConfig, device: torch.device) -> int:
    """The largest batch (doubling from ``batch_size`` up to ``max_batch``) of one fp32 eager ColorGAN step
    that fits in CUDA memory; ``batch_size`` on other devices."""
    if device.type != "cuda":
        return cfg.batch_size
    fits, trial = cfg.batch_size, cfg.batch_size * 2
    model = BenchConfig(device=cfg.device, seed=cfg.seed, model_params=json.dumps(model_params(cfg, "colorgan")))
    reference = model.model_config(cfg.image_size)
    vgg = build_vgg19_features(reference.vgg_weights, reference.vgg_layer, reference.seed)  # once: slow to build
    while trial <= cfg.max_batch:
        try:
            step = ColorGANStep(model.model_config(cfg.image_size, batch_size=trial), device, copy.deepcopy(vgg))
            step(torch.randint(0, 256, (trial, 3, cfg.image_size, cfg.image_size), dtype=torch.uint8, device=device))
            torch.cuda.synchronize(device)
            fits, trial = trial, trial * 2
        except torch.cuda.OutOfMemoryError:
            break
        finally:
            step = None  # noqa: F841 - free the trial's memory before the next
            torch.cuda.empty_cache()
    return fits


def check_speed(cfg: GpuCheckConfig, device: torch.device, done: dict[str, Any], started: float) -> dict[str, Any]:
    """``colorgan bench`` at batch_size (every variant) and at the largest batch; projections and goals.

    The largest-batch run is left out when the first ends past ``time_budget_minutes`` + 1 since ``started``.
    """
    out = Path(cfg.output_dir) / "bench"
    common = {"image_size": cfg.image_size, "device": cfg.device, "seed": cfg.seed, "output_dir": str(out),
              "model_params": json.dumps(model_params(cfg, "colorgan"))}
    if cfg.tiny:  # the same code at a size CI can afford: two variants, a few steps
        common.update(variants="bf16", num_steps=2, num_warmup=1, max_warmup=2, breakdown=False, profile=False,
                      conv_reference=False, pipeline_size=32, pipeline_images=8, pipeline_batches=2)
    runs: dict[str, Any] = {}
    skipped = None
    large = largest_batch(cfg, device)
    batch_sizes = [cfg.batch_size, *([large] if large > cfg.batch_size else [])]
    for batch_size in batch_sizes:
        if batch_size != cfg.batch_size and time.monotonic() - started > 60 * (cfg.time_budget_minutes + 1):
            skipped = f"time budget: batch {batch_size} not benchmarked"
            break
        extra = {} if batch_size == cfg.batch_size else {"variants": cfg.large_batch_variants, "breakdown": False,
                                                          "profile": False, "conv_reference": False}
        bench_cfg = BenchConfig.from_params({**common, "batch_size": batch_size, "tag": f"b{batch_size}", **extra})
        record = bench.run_bench(bench_cfg)
        json_path, md_path = bench.write_report(record, bench_cfg)
        runs[f"b{batch_size}"] = {"report": str(md_path), **summarise_bench(record)}
    methods = done.get("methods", {}).get("methods", {})
    projected = {name: m["projected_paper_hours"] for name, m in methods.items() if "projected_paper_hours" in m}
    first = runs[f"b{cfg.batch_size}"]
    projected["colorgan"] = first["projected_paper_hours"]  # the bench's fastest variant beats a 20-step run
    best = max(runs.values(), key=lambda r: r["images_per_s"])
    goals = {
        "mfu_bf16": best["mfu_bf16_peak"],
        "speedup_vs_fp32_eager": best["speedup"],
        "colorgan_paper_protocol_minutes": 60 * min(r["projected_paper_hours"] for r in runs.values()),
        "inference_images_per_s": max(r["inference_images_per_s"] for r in runs.values()),
    }
    met = {k: (v is not None and (v <= GOALS[k] if k.endswith("minutes") else v >= GOALS[k])) for k, v in goals.items()}
    return {"ok": None, "runs": runs, "largest_batch": large, "largest_batch_skipped": skipped,
            "projected_paper_hours": projected,
            "goals": {"measured": goals, "met": met}}


def summarise_bench(record: dict[str, Any]) -> dict[str, Any]:
    best = record["variants"][record["best"]]
    return {"batch_size": record["batch_size"], "best": record["best"], "images_per_s": best["images_per_s"],
            "speedup": best["speedup"], "mfu_bf16_peak": best.get("mfu_bf16_peak"),
            "projected_paper_hours": best["projected_paper_hours"],
            "inference_images_per_s": max(v["inference_images_per_s"] for v in record["variants"].values()),
            "variants": {name: {k: v.get(k) for k in ("images_per_s", "speedup", "mfu", "mfu_bf16_peak",
                                                      "inference_images_per_s", "peak_memory_bytes")}
                         for name, v in record["variants"].items()},
            "failed": record["failed"]}


# ---------------------------------------------------------------------------------------- report


def write_report(record: dict[str, Any], cfg: GpuCheckConfig) -> tuple[Path, Path]:
    """``<output_dir>/<device-slug>[-tiny].json`` and ``.md``."""
    name = record["device"]["slug"] + ("-tiny" if cfg.tiny else "")
    json_path, md_path = Path(cfg.output_dir) / f"{name}.json", Path(cfg.output_dir) / f"{name}.md"
    runtime.write_json(json_path, record)
    runtime.atomic_write_bytes(md_path, lambda f: f.write(format_markdown(record).encode()))
    return json_path, md_path


def _mark(ok: bool | None) -> str:
    return "measured" if ok is None else "ok" if ok else "FAILED"


def format_markdown(record: dict[str, Any]) -> str:
    """The check as a Markdown page: one table per section, then the goals."""
    c, sections = record["config"], record["sections"]
    lines = [f"# GPU check: {record['device']['name']}{' (tiny CPU form)' if c['tiny'] else ''}", "",
             f"- overall: **{_mark(record['ok'])}** in {record['seconds'] / 60:.1f} min; commit `{record['git_commit']}`; "
             f"torch {record['versions'].get('torch')}; {record['created']}",
             f"- workload: {c['image_size']}x{c['image_size']}, batch {c['batch_size']}, {c['num_steps']} steps per run", ""]
    for name, section in sections.items():
        head = f"## {name}: {'skipped' if 'skipped' in section else _mark(section.get('ok'))}"
        if "seconds" in section:
            head += f" ({section['seconds']:.0f} s, {section['cpu_seconds']:.0f} CPU s)"
        lines += [head, ""]
        if "skipped" in section or "error" in section:
            lines += [f"{section.get('skipped') or section.get('error')}", ""]
            if "log" in section:
                lines += ["```", section["log"][-1500:], "```", ""]
            continue
        if name == "switches":
            lines += ["Same batches, noise and weights; deviation = max over steps of |switch − fp32 eager| / max "
                      "|fp32 eager|, per loss term (TF32 off).", "",
                      "| switch | result | tolerance | worst term | deviation |", "|---|---|---:|---|---:|"]
            for switch, s in section["switches"].items():
                if "error" in s:
                    lines.append(f"| {switch} | FAILED: {s['error'][:100]} | {s['tolerance']} | | |")
                    continue
                term = max(s["deviation"], key=s["deviation"].get)
                lines.append(f"| {switch} | {_mark(s['ok'])} | {s['tolerance']} | {term} | {s['deviation'][term]:.2e} |")
            lines += [f"| {n} | not checked: {why} | | | |" for n, why in section["not_checked"].items()]
        elif name == "methods":
            lines += ["| method | result | steps | train img/s | paper protocol | PSNR | SSIM | eval images (s) |",
                      "|---|---|---:|---:|---:|---:|---:|---:|"]
            for method, m in section["methods"].items():
                if "error" in m:
                    lines.append(f"| {method} | FAILED: {m['error'][:100]} | | | | | | |")
                    continue
                lines.append(f"| {method} | {_mark(m['ok'])} | {m['steps']} | {m['train_images_per_s']:.1f} | "
                             f"{bench._hours(m['projected_paper_hours'])} | {m['psnr']:.2f} | {m['ssim']:.3f} | "
                             f"{m['eval_images']} ({m['eval_seconds']:.1f}) |")
        elif name == "ddp":
            lines += [f"torchrun --nproc_per_node=1 ({section['backend']}, world size {section['world_size']}): "
                      f"{section['resumed_from']} steps, then resumed to {section['steps']}; largest weight difference "
                      f"from one process's uninterrupted run {section['max_weight_difference']:.2e} "
                      f"(tolerance {section['tolerance']})."]
        elif name == "bench":
            lines += ["| batch | fastest variant | images/s | × fp32 eager | MFU (bf16 peak) | inference img/s | "
                      "paper protocol | report |", "|---:|---|---:|---:|---:|---:|---:|---|"]
            for run in section["runs"].values():
                lines.append(f"| {run['batch_size']} | {run['best']} | {run['images_per_s']:.1f} | {run['speedup']:.2f} | "
                             f"{bench._pct(run['mfu_bf16_peak'])} | {run['inference_images_per_s']:.0f} | "
                             f"{bench._hours(run['projected_paper_hours'])} | `{run['report']}` |")
            if section.get("largest_batch_skipped"):
                lines += ["", section["largest_batch_skipped"]]
            lines += ["", "Projected paper protocol (300 epochs of 15,413 images at 256²) per method: "
                      + ", ".join(f"{m} {bench._hours(h)}" for m, h in section["projected_paper_hours"].items())
                      + " (ColorGAN: the bench's fastest variant; the others: the median step of their training run).",
                      "", "| goal | target | measured | met |", "|---|---:|---:|---|"]
            measured, met = section["goals"]["measured"], section["goals"]["met"]
            for goal, target in record["goals"].items():
                value = measured.get(goal)
                shown = "n/a" if value is None else f"{value:,.2f}"
                lines.append(f"| {goal} | {target} | {shown} | {'yes' if met.get(goal) else 'no'} |")
        lines.append("")
    return "\n".join(lines)

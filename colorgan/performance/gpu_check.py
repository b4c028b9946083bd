"""``colorgan gpu-check``: one prepared command that shows, in minutes, whether a GPU trains this suite right and fast.

Sections, in order, each in its own child process under a hard deadline (``deadline.run_with_deadline``):

1. switches: the same generated batches through ColorGAN in fp32 eager (TF32 off) and with each
   speed switch (bf16 autocast, channels_last, torch.compile, fused Adam) for ``num_steps`` steps;
   every loss term must stay within a stated tolerance of fp32 eager's.
2. methods: every method (ColorGAN, ChromaGAN, ColTran: the CLI passes them in) trains ``num_steps``
   steps at its paper sizes and ``image_size``, then colorizes and scores ``num_eval_images`` test images.
3. ddp: ``torchrun --nproc_per_node=1 -m colorgan train`` (NCCL on CUDA, gloo on CPU) for half the
   steps, then ``--resume`` to the end; compared with one process's uninterrupted run by the relative
   distance of the weights, at half way (DDP) and at the end (resume), the resume step read back from the run
   (``ddp_check``).
4. bench (GPU form, measured, not judged): ``colorgan bench`` at ``batch_size`` with every variant,
   then at the largest batch that fits with the variants that run there; MFU against the device's
   dense bf16 peak, the paper protocol's projected time per method, inference images/s, and the
   issue's goals, reported, not asserted (``bench_check``).

This module runs the check: each section under its deadline, statuses, the record; and holds the first two
sections. The DDP and bench sections live in ``ddp_check`` and ``bench_check``, the config and sizes in
``gpu_check_config``, the record's pages in ``gpu_check_report``.

The record ``<output_dir>/<device>[-tiny].json`` (and its ``.md``) is rewritten atomically before and
after every section, so a check that is killed leaves every finished section on disk. Each section's
status: ``passed`` / ``failed`` (judged), ``measured`` (bench), ``not run`` (with why), ``running``
(in a record left by a killed check). Overall: ``failed`` if a judged section failed, else
``incomplete`` if any section did not finish, else ``ok`` (exit codes in ``EXIT_CODES``).

Data: the bundled sample photos (installed with scikit-image and matplotlib) and seeded generated
batches; nothing from outside the checkout.
"""

from __future__ import annotations

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

from colorgan.common import runtime
from colorgan.measures.metrics import evaluate
from colorgan.method.config import RunConfig
from colorgan.method.data import ImageSet, load_split
from colorgan.performance import bench, bench_report, deadline, devices, timing
from colorgan.performance.bench_check import GOALS, check_bench
from colorgan.performance.bench_config import BENCH_REFERENCE, BENCH_VARIANTS, BenchConfig
from colorgan.performance.ddp_check import check_ddp
from colorgan.performance.gpu_check_config import GPU_CHECK_SECTIONS, GpuCheckConfig, bench_params, model_params
from colorgan.performance.gpu_check_report import write_report
from colorgan.training.train import StepFactory, load_trained, train

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
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
        label = devices.device_label(device)
    except Exception as err:  # a broken driver: the record still gets written, and each section says why it fails
        label = f"{device} (name unavailable: {type(err).__name__})"
    sections: dict[str, Any] = {name: {"status": "not run", "why": "not reached: the check stopped before it"}
                                for name in GPU_CHECK_SECTIONS}
    if not cfg.bench:
        sections["bench"] = {"status": "off", "why": "bench=False"}
    return {
        "device": {"name": label, "slug": bench_report.slug(label), "type": device.type, "index": device.index,
                   "peak_tflops": devices.peak_tflops(label), "cuda": torch.version.cuda if device.type == "cuda" else None},
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
    return check_bench(cfg, device, done, until, report)


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
    bench_cfg = BenchConfig(batch_size=cfg.batch_size, **bench_params(cfg))
    batches = [b.to(device) for b in generated_batches(cfg, cfg.num_steps)]
    build = bench.variant_builder(bench_cfg, cfg.image_size, device)
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
                step = build(name)
                with timing.DynamoWatch() as watch:
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
    run_cfg = config_cls.from_params(cfg.run_params(model_params(cfg, name), run_dir=str(work_dir / name)))
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

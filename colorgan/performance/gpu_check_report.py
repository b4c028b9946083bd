"""The GPU check's record on disk: JSON and a Markdown page, each written atomically."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from colorgan.performance import bench
from colorgan.performance.bench_report import hours_text, pct_text, write_json_and_markdown
from colorgan.performance.gpu_check_config import GpuCheckConfig


def report_paths(record: dict[str, Any], cfg: GpuCheckConfig) -> tuple[Path, Path]:
    """``<output_dir>/<device-slug>[-tiny].json`` and ``.md``."""
    name = record["device"]["slug"] + ("-tiny" if cfg.tiny else "")
    return Path(cfg.output_dir) / f"{name}.json", Path(cfg.output_dir) / f"{name}.md"


def write_report(record: dict[str, Any], cfg: GpuCheckConfig) -> tuple[Path, Path]:
    """Write the record as JSON, then Markdown, each atomically (a reader never sees half a file)."""
    return write_json_and_markdown(record, *report_paths(record, cfg), format_markdown)


def _mark(ok: bool | None) -> str:
    return "measured" if ok is None else "ok" if ok else "FAILED"


def format_markdown(record: dict[str, Any]) -> str:
    """The check as a Markdown page: one table per section, then the goals."""
    c, sections = record["config"], record["sections"]
    took = "still running, or stopped before the end" if record["seconds"] is None else \
        f"in {record['seconds'] / 60:.1f} min of the {record['time_limit_s'] / 60:.1f} min limit"
    lines = [f"# GPU check: {record['device']['name']}{' (tiny CPU form)' if c['tiny'] else ''}", "",
             f"- overall: **{record['status']}** {took}; commit `{record['git_commit']}`; "
             f"torch {record['versions'].get('torch')}; {record['created']}",
             f"- workload: {c['image_size']}x{c['image_size']}, batch {c['batch_size']}, {c['num_steps']} steps per run", ""]
    for name, section in sections.items():
        head = f"## {name}: {section['status']}"
        if "seconds" in section:
            head += f" ({section['seconds']:.0f} s of a {section['deadline_s']:.0f} s deadline"
            head += f", {section['cpu_seconds']:.0f} CPU s)" if "cpu_seconds" in section else ")"
        lines += [head, ""]
        if section["status"] in ("not run", "off", "running"):
            lines += [section.get("why") or f"started {section.get('started')}; the check stopped while it ran", ""]
            continue
        if "error" in section:
            lines += [f"Error: {section['error']}", ""]
            if "log" in section:
                lines += ["```", section["log"][-1500:], "```", ""]
        if "stub" in section:
            lines += [section["stub"], ""]
            continue
        lines += SECTION_PAGES[name](record, section) if _has_results(name, section) else []
        lines.append("")
    return "\n".join(lines)


def _has_results(name: str, section: dict[str, Any]) -> bool:
    return {"switches": "switches", "methods": "methods", "ddp": "ddp_distance", "bench": "runs"}[name] in section


def _switches_page(record: dict[str, Any], section: dict[str, Any]) -> list[str]:
    lines = ["Same batches, noise and weights; deviation = max over steps of |switch − fp32 eager| / max "
             f"|fp32 eager|, per loss term (TF32 off). Tolerances: {section.get('tolerance_basis', '')}.", "",
             "| switch | result | tolerance | worst term | deviation | torch.compile |", "|---|---|---:|---|---:|---|"]
    for switch, s in section["switches"].items():
        if "error" in s:
            lines.append(f"| {switch} | FAILED: {s['error'][:100]} | {s['tolerance']} | | | |")
            continue
        term = max(s["deviation"], key=s["deviation"].get)
        d = s.get("dynamo")
        dynamo = "" if d is None else (f"{d['frames_compiled']} frames, {d['graphs']} graphs, {d['graph_breaks']} breaks"
                                       + (", **fell back to eager**" if d["eager_fallback"] else ""))
        lines.append(f"| {switch} | {_mark(s['ok'])} | {s['tolerance']} | {term} | {s['deviation'][term]:.2e} | {dynamo} |")
    return lines + [f"| {n} | not checked: {why} | | | | |" for n, why in section["not_checked"].items()]


def _methods_page(record: dict[str, Any], section: dict[str, Any]) -> list[str]:
    lines = ["| method | result | steps | train img/s | paper protocol | PSNR | SSIM | eval images (s) |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for method, m in section["methods"].items():
        if "error" in m:
            lines.append(f"| {method} | FAILED: {m['error'][:100]} | | | | | | |")
            continue
        lines.append(f"| {method} | {_mark(m['ok'])} | {m['steps']} | {m['train_images_per_s']:.1f} | "
                     f"{hours_text(m['projected_paper_hours'])} | {m['psnr']:.2f} | {m['ssim']:.3f} | "
                     f"{m['eval_images']} ({m['eval_seconds']:.1f}) |")
    return lines


def _ddp_page(record: dict[str, Any], section: dict[str, Any]) -> list[str]:
    def shown(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.2e}"

    return [f"torchrun --nproc_per_node=1 ({section['backend']}, world size {section['world_size']}, rank device "
            f"{section['rank_device']}): {section['half']} steps, then resumed (from step {section['resumed_from']}, "
            f"read back from the run) to {section['steps']}. Relative distance ‖w − w_one‖ / ‖w_one − w0‖ to one "
            f"process's uninterrupted run: DDP at step {section['half']} {shown(section['ddp_distance'])}, resumed "
            f"at the end {shown(section['resume_distance'])}; two identical one-process runs ended "
            f"{shown(section.get('rerun_distance'))} apart here, so the bound is {section['tolerance']:.3g} (the larger of "
            f"{section.get('tolerance_set')} and twice that).",
            *(["", *[f"- {failure}" for failure in section["failures"]]] if section["failures"] else [])]


def _bench_page(record: dict[str, Any], section: dict[str, Any]) -> list[str]:
    lines = ["| batch | fastest variant | images/s | × fp32 eager | MFU (bf16 peak) | inference img/s | "
             "paper protocol | report |", "|---:|---|---:|---:|---:|---:|---:|---|"]
    for run in section["runs"].values():
        lines.append(f"| {run['batch_size']} | {run['best']} | {run['images_per_s']:.1f} | {run['speedup']:.2f} | "
                     f"{pct_text(run['mfu_bf16_peak'])} | {run['inference_images_per_s']:.0f} | "
                     f"{hours_text(run['projected_paper_hours'])} | `{run['report']}` |")
    for run_name, run in section["runs"].items():
        for variant, d in run.get("dynamo", {}).items():
            lines.append(f"\n{run_name} {variant}: {d['frames_compiled']} frames compiled, {d['graph_breaks']} graph "
                         f"breaks, {d['compiles_while_timing']} compiles while timing"
                         + ("; **fell back to eager**" if d["eager_fallback"] else ""))
    lines += [f"\n{key} failed: {error}" for key, error in section.get("errors", {}).items()]
    if section.get("largest_batch_skipped"):
        lines += ["", section["largest_batch_skipped"]]
    if "goals" not in section:
        return lines
    lines += ["", f"Projected paper protocol ({bench.PAPER_EPOCHS} epochs of {bench.PAPER_TRAIN_IMAGES:,} images at "
              f"{bench.PAPER_IMAGE_SIZE}²) per method: "
              + ", ".join(f"{m} {hours_text(h)}" for m, h in section["projected_paper_hours"].items())
              + " (ColorGAN: the bench's fastest variant; the others: the median step of their training run).",
              "", "| goal | target | measured | met |", "|---|---:|---:|---|"]
    measured, met = section["goals"]["measured"], section["goals"]["met"]
    for goal, target in record["goals"].items():
        value = measured.get(goal)
        lines.append(f"| {goal} | {target} | {'n/a' if value is None else f'{value:,.2f}'} | "
                     f"{'yes' if met.get(goal) else 'no'} |")
    return lines


SECTION_PAGES = {"switches": _switches_page, "methods": _methods_page, "ddp": _ddp_page, "bench": _bench_page}

"""`colorgan bench`'s record on disk: ``<device>[-tag].json`` and its Markdown page, each written atomically;
docs/speed.md's table row; and the number formatters the GPU check's page shares."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable

from colorgan.common import runtime
from colorgan.performance.bench_config import BENCH_REFERENCE, BenchConfig


def slug(text: str) -> str:
    """'NVIDIA H100 80GB HBM3' -> 'nvidia-h100-80gb-hbm3' (for file names)."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def write_json_and_markdown(record: dict[str, Any], json_path: Path, md_path: Path,
                            format_markdown: Callable[[dict[str, Any]], str]) -> tuple[Path, Path]:
    """Write ``record`` as JSON, then ``format_markdown(record)``, each atomically (a reader never sees half a file);
    the bench's and the GPU check's records both go to disk this way."""
    runtime.write_json(json_path, record)
    runtime.atomic_write_bytes(md_path, lambda f: f.write(format_markdown(record).encode()))
    return json_path, md_path


def write_report(record: dict[str, Any], cfg: BenchConfig) -> tuple[Path, Path]:
    """``<output_dir>/<device-slug>[-tag].json`` and ``.md``."""
    name = record["device"]["slug"] + (f"-{slug(cfg.tag)}" if cfg.tag else "")
    json_path, md_path = Path(cfg.output_dir) / f"{name}.json", Path(cfg.output_dir) / f"{name}.md"
    return write_json_and_markdown(record, json_path, md_path, format_markdown)


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


def size_text(num_bytes: float | None) -> str:
    """Bytes as GiB ('n/a' for None)."""
    return "n/a" if num_bytes is None else f"{num_bytes / 2**30:.2f} GiB"


def hours_text(hours: float) -> str:
    """Hours as minutes, hours or days, whichever reads best."""
    return f"{hours * 60:.0f} min" if hours < 1 else f"{hours:.1f} h" if hours < 48 else f"{hours / 24:.0f} days"


def gflop_text(flops: float | None) -> str:
    """FLOPs as GFLOP ('n/a' for None)."""
    return "n/a" if flops is None else f"{flops / 1e9:.2f}"


def pct_text(value: float | None) -> str:
    """A fraction as a percentage ('n/a' for None)."""
    return "n/a" if value is None else f"{100 * value:.1f}%"


def ratio_text(value: float | None) -> str:
    """A ratio with two decimals ('n/a' for None)."""
    return "n/a" if value is None else f"{value:.2f}"


def bf16_note(support: dict[str, Any] | None) -> str:
    """The report's note on whether this CPU computes bf16 in hardware ('' off the CPU)."""
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
        + (f", CUDA {record['cuda']}" if record["cuda"] else "") + ")" + bf16_note(record["device"].get("cpu_bf16")),
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
           f"({conv['fp32']['ms']:.0f} ms, spread {pct_text(conv['fp32']['spread'])}), bf16 autocast "
           f"{conv['bf16']['flops_per_s'] / 1e9:.1f} GFLOP/s ({conv['bf16']['ms']:.0f} ms, spread "
           f"{pct_text(conv['bf16']['spread'])}); '× conv stack' = the step's achieved FLOP/s over the stack's in the "
           "same precision"] if conv else []),
        f"- memory: {record['memory']['method']}; process peak RSS {size_text(record['memory']['process_peak_rss_bytes'])}",
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
            f"{pct_text(v.get('spread'))} | "
            + "".join(f"{p} | " for p in parts)
            + f"{v['inference_images_per_s']:.1f} | {v['precision']} | {gflop_text(v.get('executed_flops_per_image'))} | "
            f"{gflop_text(v.get('achieved_flops_per_s'))} | {ratio_text(v.get('conv_reference_fraction'))} | "
            f"{pct_text(v['mfu'])} | "
            f"{size_text(v['peak_memory_bytes'])} | {v['warmup_s']:.1f} ({v.get('warmup_steps', '?')}"
            f"{'' if v.get('warmup_settled', True) else ', unsettled'}) | {hours_text(v['projected_paper_hours'])} |")
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
        f"{hours_text(variants[record['best']]['projected_paper_hours'])} with {record['best']}, "
        f"{hours_text(variants[BENCH_REFERENCE]['projected_paper_hours'])} with {BENCH_REFERENCE}. "
        f"Projection: {record['projection']['method']}.",
    ]
    profile = record.get("profile")
    if profile:
        lines += ["", f"**Profile of {record['best']}** ({profile['clock']}, {profile['ms_per_step']:.1f} ms per step; "
                  f"convolutions and matmuls {pct_text(profile['conv_matmul_share'])}, the rest mostly memory-bound):", "",
                  "| operator | ms per step | share |", "|---|---:|---:|"]
        lines += [f"| `{op['name'][:80]}` | {op['ms_per_step']:.2f} | {pct_text(op['share'])} |" for op in profile["top"]]
    return "\n".join(lines) + "\n"

"""Tables and figures of the book: Table 1, Fig. 2, training curves, data overview, run report.

Every function computes from run folders (config, provenance, checkpoints, metrics log); nothing
here types a number in, except the paper's published values, which only ever appear in columns
labelled "paper".
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from colorgan import runtime
from colorgan.color import gray_rgb, rgb_to_lab, rgb_to_model, uint8_to_float
from colorgan.ablation import ABLATION_DIR
from colorgan.config import DataConfig, RunConfig
from colorgan.data import ImageSet, load_split
from colorgan.evaluate import eval_dir, evaluate_or_reuse, test_set_name
from colorgan.metrics import GRAYSCALE, bootstrap_ci, pooled_psnr, pooled_psnr_ci
from colorgan.published import PAPER_NAMES, PAPER_PROTOCOLS, VARIANTS, paper_table1, same_protocol_as_paper
from colorgan.score import ground_truth_digest
from colorgan.testset import load_test_folder
from colorgan.train import StepFactory, load_trained

Methods = dict[str, tuple[type[RunConfig], StepFactory]]  # e.g. cli.METHODS

# The book shows tables in full: pandas would cut notes, evidence and run folders at 50 characters ("...").
pd.set_option("display.max_colwidth", None)

# Table 1 of the paper (PASCAL VOC, 256x256, their training): reference values, never our results; their one
# home is colorgan/published.py, with the protocol and the (unstated) convention of each number.
PAPER_TABLE1 = paper_table1()
# Table 1's column headers name their convention (published.VARIANTS); the paper's own are unstated
TABLE1_PSNR, TABLE1_SSIM = VARIANTS["psnr"].label, VARIANTS["ssim"].label
PAPER_PSNR, PAPER_SSIM = "paper PSNR (published), convention unstated", "paper SSIM (published), convention unstated"
METHOD_NAMES = {"colorgan": "ColorGAN", "chromagan": "ChromaGAN", "coltran": "ColTran", GRAYSCALE: GRAYSCALE}
PAPER_PROTOCOL = PAPER_PROTOCOLS["colorgan"]
# Never a difference: fields that do not change the numbers (bookkeeping; the seed, as the note says "up to
# seed"), that change only the speed (same maths, see `colorgan bench`), or that belong to a data source
# other than the paper's (the data line covers them).
_NOT_PROTOCOL = {"method", "seed", "run_dir", "resume", "progress", "device", "log_every", "checkpoint_every",
                 "keep_checkpoints", "num_bootstrap", "data_root", "test_fraction", "num_sample_crops",
                 "channels_last", "compile", "fused_adam", "share_vgg_targets"}
# A field that only matters under another field's value: gp_weight under wgan-gp, clip_value under wgan-clip.
_APPLIES_WHEN = {"gp_weight": ("adversarial", "wgan-gp"), "clip_value": ("adversarial", "wgan-clip")}


# ------------------------------------------------------------------------------------ provenance


def read_run(run_dir: Path | str) -> dict[str, Any]:
    """A run folder's records: config, provenance, finished (or None) and eval summary (or None)."""
    run_dir = Path(run_dir)

    def load(name: str) -> Any:
        path = run_dir / name
        return json.loads(path.read_text()) if path.is_file() else None

    return {"run_dir": str(run_dir), "config": load("config.json"), "provenance": load("provenance.json"),
            "finished": load("finished.json"), "eval": load("eval/summary.json")}


def _method(config: dict[str, Any]) -> str:
    """Whose protocol applies: the run's method; a data-only config (no training fields) is held to ColorGAN's."""
    method = config.get("method", "colorgan")
    return "colorgan" if method not in PAPER_PROTOCOLS and "batch_size" not in config else method


def _resolved(config: dict[str, Any], field: str, vgg_source: str | None, device: str | None) -> Any:
    """A config value as the run used it: the VGG weights it loaded, the precision 'auto' chose."""
    value = config.get(field)
    if field == "vgg_weights" and vgg_source:
        return "imagenet" if vgg_source == "imagenet" else vgg_source
    if field == "amp" and value == "auto" and device:
        return "bf16" if device.startswith("cuda") else "off"  # runtime.autocast_dtype's rule
    return value


def protocol_differences(config: dict[str, Any], vgg_source: str | None = None,
                         device: str | None = None) -> list[str]:
    """How a run's config differs from its method's paper protocol, one readable line per difference.

    Every field of ``PAPER_PROTOCOLS[method]`` that the config has is compared (a config without a
    training budget, e.g. the data overview's, is compared on what it has; a config without a method
    is ColorGAN's). ``vgg_source`` (provenance's ``vgg_weights``) and ``device`` ('cpu', 'cuda') say
    what the run actually used. A method without a recorded protocol has no lines (see the note).
    """
    protocol = PAPER_PROTOCOLS.get(_method(config), {})
    by_steps = bool(config.get("num_steps"))
    lines = []
    for field, (paper_value, paper_text) in protocol.items():
        if field not in config or (field == "num_epochs" and by_steps):
            continue  # with num_steps > 0 the epochs are ignored: the num_steps line gives the budget
        value = _resolved(config, field, vgg_source, device)
        if field == "amp" and value == "auto":
            lines.append(f"amp='auto' (bf16 on CUDA, fp32 on CPU; paper: {paper_text})")
        elif field == "num_steps" and value:
            lines.append(f"num_steps={value} optimiser steps (paper: {paper_text})")
        elif field != "num_steps" and value != paper_value:
            lines.append(f"{field}={value!r} (paper: {paper_text})")
    return lines


def protocol_choices(config: dict[str, Any]) -> list[str]:
    """Fields that change the numbers but that the method's paper leaves open, as 'field=value' chosen here."""
    fixed = PAPER_PROTOCOLS.get(_method(config), {})
    chosen = []
    for field, value in config.items():
        condition = _APPLIES_WHEN.get(field)
        if field in fixed or field in _NOT_PROTOCOL or (
                condition and condition[0] in config and config[condition[0]] != condition[1]):
            continue  # fixed, no effect on the numbers, or unused (gp_weight under weight clipping)
        chosen.append(f"{field}={value!r}")
    return chosen


def comparability_note(config: dict[str, Any], vgg_source: str | None = None, device: str | None = None) -> str:
    """A Markdown note: can these numbers be compared with the method's paper, and if not, why not; then
    the fields that paper leaves open, with the values this run chose."""
    method = _method(config)
    choices = protocol_choices(config)
    open_text = (f"\n\nLeft open by the paper, chosen here: {', '.join(f'`{c}`' for c in choices)}."
                 if choices else "")
    if method not in PAPER_PROTOCOLS:
        return f"**No paper protocol is recorded for method {method!r}**, so nothing was compared." + open_text
    paper = PAPER_NAMES[method]
    differences = protocol_differences(config, vgg_source, device)
    if not differences:
        return (f"**Protocol matches {paper}** in every field it fixes; numbers are comparable up to seed and "
                "hardware." + open_text)
    items = "\n".join(f"- {line}" for line in differences)
    return (f"**Not comparable with {paper}.** These numbers come from a run that differs from its protocol:\n"
            f"{items}" + open_text)


def run_note(run_dir: Path | str) -> str:
    """``comparability_note`` for a trained run, with the VGG weights and the device it actually used."""
    record = read_run(run_dir)
    provenance = record["provenance"] or {}
    return comparability_note(record["config"], provenance.get("vgg_weights"), provenance.get("device"))


# -------------------------------------------------------------------------------------- Table 1


def table1(run_dirs: list[str], methods: Methods, num_diversity_samples: int = 0, device: str = "auto",
           external_runs: list[str] | None = None, test_root: str = "", protocol: str = "resize",
           inception_weights: str = "auto", lpips_weights: str = "auto") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Evaluate every run (or reuse its evaluation) on the shared test split, and add external outputs.

    Args:
        test_root / protocol: score the runs on this folder of photos (``evaluate_run``'s test_root) instead
            of their own test split.
        external_runs: folders written by ``colorgan score`` (another tool's outputs scored with the same
            metric code); each becomes a row with its provenance.
        inception_weights / lpips_weights: 'auto' (torch hub cache if present), 'off', or a file path.
    Returns:
        (table, per_image): table has one row per method plus the grayscale reference, with PSNR and
        SSIM means and 95% bootstrap intervals, CIEDE2000, colourfulness and its gap to the ground
        truth (ΔCF), LPIPS and FID (or why they are n/a), our provenance (steps, VGG weights) and, in
        separate columns labelled 'paper', the published numbers.
    """
    records = [read_run(run_dir) for run_dir in run_dirs]
    sizes = {record["run_dir"]: record["config"]["image_size"] for record in records}
    if len(set(sizes.values())) > 1:
        raise ValueError(f"Table 1 compares methods at one image size; these runs differ: {sizes}. Train them at the "
                         "same image_size")
    rows, per_image_all, test_names = [], [], None
    for run_dir, record in zip(run_dirs, records):
        method = record["config"]["method"]
        config_cls, build_step = methods[method]
        per_image, summary = evaluate_or_reuse(
            run_dir, config_cls, build_step, device,
            num_diversity_samples=num_diversity_samples if method == "colorgan" else 0,
            inception_weights=inception_weights, lpips_weights=lpips_weights,
            **({"test_root": test_root, "protocol": protocol} if test_root else {}))
        record = read_run(run_dir)
        if test_root:  # the evaluation's summary.json as just written or reused
            folder = eval_dir(run_dir, test_set_name(test_root, protocol))
            record["eval"] = json.loads((folder / "summary.json").read_text())
        names = sorted(per_image.loc[per_image.method == method, "image"])
        if test_names is not None and names != test_names:
            raise ValueError(f"{run_dir} was evaluated on other test images than {run_dirs[0]}; Table 1 needs "
                             "every method on the same split (same data settings)")
        test_names = names
        kept = per_image if not per_image_all else per_image[per_image.method != GRAYSCALE]
        per_image_all.append(kept.assign(run_dir=str(run_dir)))
        seed = record["config"]["seed"]
        num_resamples = record["config"].get("num_bootstrap", 1000)
        for name, group in kept.groupby("method", sort=False):
            rows.append(_table_row(name, group, record, seed, num_resamples, _set_entry(summary, name)))
    runs_set = _runs_scored_set(records[0]["config"]["image_size"], test_names or [], test_root, protocol)
    apart = {}  # row index -> why it is not compared with the runs
    for folder in external_runs or []:
        record, per_image, summary = read_score(folder)
        name = record["method"]
        per_image = per_image[per_image.method == name]  # a score's own grayscale row is its own reference
        why = _apart_reason(_external_scored_set(record, per_image), runs_set)
        external = {"run_dir": str(folder), "config": {}, "provenance": {"notes": record["provenance"]},
                    "finished": None, "eval": record, "external": True}
        if why:
            apart[len(rows)] = why
        else:  # only rows on the runs' images, size and protocol share the per-image figures
            per_image_all.append(per_image.assign(run_dir=str(folder)))
        rows.append(_table_row(name, per_image, external, 0, 1000, _set_entry(summary, name)))
    table = pd.DataFrame(rows)
    table[APART] = [apart.get(i, "") for i in range(len(table))]
    order = {name: i for i, name in enumerate(["ColorGAN", "ChromaGAN", "ColTran", GRAYSCALE])}
    # rows scored on other images, sizes or protocols go below the runs, never ranked among them
    table = table.sort_values("Method", key=lambda s: s.map(lambda m: order.get(m, 50))).reset_index(drop=True)
    table = pd.concat([table[table[APART] == ""], table[table[APART] != ""]], ignore_index=True)
    return table, pd.concat(per_image_all, ignore_index=True)


# Table 1's column that sets a row apart: '' for rows on the runs' images, size and protocol, else what differs
APART = "scored apart (why)"


def _runs_scored_set(image_size: int, names: list[str], test_root: str, protocol: str) -> dict[str, Any]:
    """The runs' scored set: their size, protocol, image keys and (on a test_root) the ground-truth digest."""
    keys = sorted(_stem(n) for n in names)
    digest = ground_truth_digest({_stem(n): Path(test_root).expanduser() / n for n in names}) if test_root else None
    return {"image_size": [image_size, image_size], "protocol": protocol if test_root else "resize",
            "num_images": len(keys), "keys": keys, "ground_truth_digest": digest}


def _external_scored_set(record: dict[str, Any], per_image: pd.DataFrame) -> dict[str, Any]:
    """A ``colorgan score`` folder's scored set (older folders lack 'scored_set': its size and protocol then)."""
    scored = record.get("scored_set") or {"image_size": record.get("image_size"), "protocol": record.get("protocol")}
    keys = sorted(_stem(n) for n in per_image.image)
    return {**scored, "num_images": len(keys), "keys": keys, "ground_truth_digest": scored.get("ground_truth_digest")}


def _apart_reason(scored: dict[str, Any], runs: dict[str, Any]) -> str:
    """'' when ``scored`` is the runs' set (same images, size, protocol), else a heading saying what differs:
    'scored at 256² on 40 images; the runs: 64² on 40 images'."""
    digests = (scored["ground_truth_digest"], runs["ground_truth_digest"])
    # a run's own split has no files to digest: its image names are compared then
    same_images = scored["keys"] == runs["keys"] and (None in digests or digests[0] == digests[1])
    same_protocol = scored["protocol"] == runs["protocol"]
    if list(scored["image_size"] or []) == runs["image_size"] and same_protocol and same_images:
        return ""

    def described(s: dict[str, Any], other_images: bool) -> str:
        width, height = s["image_size"] or ("?", "?")
        size = f"{width}²" if width == height else f"{width}×{height}"
        protocol = "" if same_protocol else f" ({s['protocol']})"
        return f"{size}{protocol} on {s['num_images']} images" + (", not the runs'" if other_images else "")

    return f"scored at {described(scored, not same_images)}; the runs: {described(runs, False)}"


def read_score(folder: Path | str) -> tuple[dict[str, Any], pd.DataFrame, pd.DataFrame]:
    """A ``colorgan score`` results folder: (summary.json record, per-image metrics, summary)."""
    folder = Path(folder)
    paths = [folder / "summary.json", folder / "per_image.csv", folder / "summary.csv"]
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"external_runs: {folder} lacks {missing}; give folders written by "
                                "`colorgan score PRED_DIR GT_DIR -o FOLDER`")
    return json.loads(paths[0].read_text()), pd.read_csv(paths[1]), pd.read_csv(paths[2])


def _stem(name: str) -> str:
    return name.rsplit(".", 1)[0] if "." in Path(name).name else name


def _set_entry(summary: pd.DataFrame, method: str) -> dict[str, Any]:
    """A method's FID and FID note from an evaluation summary (older summaries have neither)."""
    rows = summary[summary.method == method]
    if rows.empty or "fid" not in rows:
        return {"fid": None, "fid_note": "n/a (evaluated before FID existed)"}
    fid, note = rows.fid.iloc[0], rows.get("fid_note", pd.Series([""])).iloc[0]
    return {"fid": None if pd.isna(fid) else float(fid), "fid_note": "" if pd.isna(note) else str(note)}


def _metric_cell(group: pd.DataFrame, column: str, digits: int, missing: str) -> Any:
    return round(float(group[column].mean()), digits) if column in group and group[column].notna().all() else missing


def _table_row(method: str, group: pd.DataFrame, record: dict, seed: int, num_resamples: int,
               set_entry: dict[str, Any] | None = None) -> dict[str, Any]:
    psnr, psnr_low, psnr_high = bootstrap_ci(group.psnr.to_numpy(), num_resamples, seed)
    ssim, ssim_low, ssim_high = bootstrap_ci(group.ssim.to_numpy(), num_resamples, seed)
    is_reference = method == GRAYSCALE
    is_external = bool(record.get("external"))
    provenance = record["provenance"] or {}
    finished = record["finished"] or {}
    evaluation = record.get("eval") or {}
    # the paper's numbers stand beside ours only on the paper's test images (its protocol, §3.1)
    in_paper_protocol = (not is_external and "path" not in (evaluation.get("test_set") or {})
                         and same_protocol_as_paper(record["config"].get("data", ""),
                                                    record["config"].get("image_size", 0), len(group)))
    paper_psnr, paper_ssim = PAPER_TABLE1.get(method, (None, None)) if in_paper_protocol else (None, None)
    pooled, pooled_low, pooled_high = pooled_psnr_ci(group.psnr.to_numpy(), num_resamples, seed)
    set_entry = set_entry or {"fid": None, "fid_note": "n/a"}
    fid_note = set_entry.get("fid_note") or "n/a"
    if set_entry.get("fid") is not None:
        # a substitute feature network's distance is not FID: the label says so beside the number
        fid = round(set_entry["fid"], 2) if "pytorch-fid" in fid_note else f"{set_entry['fid']:.2f} ({fid_note})"
    else:
        fid = fid_note if fid_note.startswith("n/a") else f"n/a ({fid_note})"
    lpips_note = evaluation.get("lpips_network", "n/a (no LPIPS weights)")
    has_colour = "colourfulness_gt" in group
    steps = "—" if is_reference or is_external else finished.get("step", evaluation.get("checkpoint_step"))
    return {
        "Method": METHOD_NAMES.get(method, method),
        TABLE1_PSNR: round(psnr, 3),
        "PSNR 95% CI": f"[{psnr_low:.3f}, {psnr_high:.3f}]",
        VARIANTS["psnr_pooled"].label: round(pooled, 3),
        f"{VARIANTS['psnr_pooled'].label} 95% CI": f"[{pooled_low:.3f}, {pooled_high:.3f}]",
        TABLE1_SSIM: round(ssim, 4),
        "SSIM 95% CI": f"[{ssim_low:.4f}, {ssim_high:.4f}]",
        "CIEDE2000": _metric_cell(group, "ciede2000", 2, "n/a"),
        VARIANTS["cf"].label: _metric_cell(group, "colourfulness", 2, "n/a"),
        VARIANTS["dcf"].label: _metric_cell(group, "colourfulness_gap", 2, "n/a") if has_colour else "n/a",
        # evaluations stored before the absolute-value convention existed have no such column: n/a, never guessed
        VARIANTS["cf_abs"].label: _metric_cell(group, "colourfulness_abs", 2, "n/a (scored before cf_abs)"),
        VARIANTS["dcf_abs"].label: _metric_cell(group, "colourfulness_abs_gap", 2, "n/a (scored before cf_abs)"),
        "LPIPS": _metric_cell(group, "lpips", 4, lpips_note if lpips_note.startswith("n/a") else "n/a"),
        "FID": fid,
        "test images": len(group),
        "steps": steps,
        "VGG weights": "—" if is_reference or is_external else provenance.get("vgg_weights", "n/a"),
        "notes": "reference: input L with ab = 0" if is_reference else provenance.get("notes", ""),
        PAPER_PSNR: paper_psnr,
        PAPER_SSIM: paper_ssim,
    }


def psnr_reductions(per_image: pd.DataFrame) -> pd.DataFrame:
    """Per method: PSNR as the mean of per-image PSNR and as the PSNR of the MSE pooled over the images (each
    the mean over seeds when ``per_image`` has a 'seed' column), and their difference in dB.

    Both come from the per-image PSNR alone (``metrics.pooled_psnr``), so stored results can be re-reduced
    without the colorizations.
    """
    rows = []
    for method, group in per_image.groupby("method", sort=False):
        seeds = [g for _, g in group.groupby("seed")] if "seed" in group else [group]
        mean = float(np.mean([g.psnr.mean() for g in seeds]))
        pooled = float(np.mean([pooled_psnr(g.psnr.to_numpy()) for g in seeds]))
        rows.append({"Method": METHOD_NAMES.get(method, method), "seeds": len(seeds), "images": len(seeds[0]),
                     TABLE1_PSNR: round(mean, 2), VARIANTS["psnr_pooled"].label: round(pooled, 2),
                     "pooled − per-image (dB)": round(pooled - mean, 2)})
    return pd.DataFrame(rows)


def save_table1(table: pd.DataFrame, per_image: pd.DataFrame, out_dir: Path | str) -> list[Path]:
    """Write table1.csv, table1.md and per_image_metrics.csv into ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / "table1.csv", out_dir / "table1.md", out_dir / "per_image_metrics.csv"]
    table.to_csv(paths[0], index=False)
    paths[1].write_text("\n".join(f"{_apart_heading(why)}{table_markdown(rows)}" for why, rows in table1_blocks(table)))
    per_image.to_csv(paths[2], index=False)
    return paths


def table1_blocks(table: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """Table 1 as blocks: ('', the runs and the rows on their images, size and protocol), then one
    (what differs, rows) per other scored set. The column that says why is left out of the blocks."""
    # a table read back from CSV has an all-empty column as float NaN: as text first, then '' for the missing
    why = (table[APART].astype(object).where(table[APART].notna(), "") if APART in table
           else pd.Series([""] * len(table), index=table.index))
    rows = table.drop(columns=[APART], errors="ignore")
    blocks = [("", rows[why == ""])]
    blocks += [(reason, rows[why == reason]) for reason in dict.fromkeys(why[why != ""])]
    return blocks


def _apart_title(why: str) -> str:
    return f"Not compared with the runs (other images, size or protocol): {why}"


def _apart_heading(why: str) -> str:
    return f"\n**{_apart_title(why)}**\n\n" if why else ""


def table1_html(table: pd.DataFrame) -> Html:
    """Table 1 for the book: the compared rows, then each row scored on another set below, headed by what differs."""
    import html

    return Html("".join((f"<p><strong>{html.escape(_apart_title(why))}</strong></p>" if why else "") + html_table(rows)
                        for why, rows in table1_blocks(table)))


def table_markdown(table: pd.DataFrame) -> str:
    """GitHub-flavoured Markdown of a table (no tabulate dependency)."""
    columns = list(table.columns)
    cells = [[("" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v)) for v in row]
             for row in table.itertuples(index=False)]
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in cells]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------- figures


def figure2(run_dirs: list[str], methods: Methods, num_images: int = 4, num_diversity_samples: int = 5,
            seed: int = 0, device: str = "auto", checkpoint: str = "last") -> plt.Figure:
    """Fig. 2: the same test images by every method, beside the grayscale input and the ground truth,
    and a diversity strip: several noise samples of ColorGAN for the first image. ``checkpoint``: 'last'
    or 'best_val' weights of each run."""
    torch_device = runtime.select_device(device)
    colorizers, test = {}, None
    for run_dir in run_dirs:
        method = read_run(run_dir)["config"]["method"]
        config_cls, build_step = methods[method]
        cfg, step, _ = load_trained(run_dir, config_cls, build_step, torch_device, checkpoint=checkpoint)
        colorizers[METHOD_NAMES.get(method, method)] = step.colorize
        test = test or load_split(cfg)[1]
    picks = _spread(len(test), num_images)
    rgb = uint8_to_float(torch.from_numpy(np.ascontiguousarray(test.images[picks]))).to(torch_device)
    L, _ = rgb_to_model(rgb)
    columns = {"grayscale input": gray_rgb(L)}
    for name, colorize in colorizers.items():
        columns[name] = colorize(L, torch.Generator().manual_seed(seed))
    columns["ground truth"] = rgb
    has_strip = "ColorGAN" in colorizers and num_diversity_samples >= 2
    num_rows = len(picks) + (1 if has_strip else 0)
    num_cols = max(len(columns), num_diversity_samples if has_strip else 0)
    fig, axes = plt.subplots(num_rows, num_cols, figsize=(2.0 * num_cols, 2.0 * num_rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for col, (title, images) in enumerate(columns.items()):
        axes[0, col].set_title(title, fontsize=9)
        for row in range(len(picks)):
            axes[row, col].imshow(_to_hwc(images[row]))
    if has_strip:
        generator = torch.Generator().manual_seed(seed + 1)
        for k in range(num_diversity_samples):
            sample = colorizers["ColorGAN"](L[:1], generator)
            ax = axes[-1, k]
            ax.imshow(_to_hwc(sample[0]))
            ax.set_title(f"ColorGAN, z #{k + 1}", fontsize=8)
    fig.suptitle("Test images (" + ", ".join(test.names[i] for i in picks) + ")", fontsize=8)
    return finish(fig)


def learning_curves(run_dirs: list[str], metrics: tuple[str, ...] = ("psnr", "ssim", "colourfulness")) -> plt.Figure:
    """Validation curves of every run on one axis per metric: images seen -> score, one colour per method,
    each seed a thin line, the grayscale (ab = 0) level dashed. Reads each run's ``val.jsonl``."""
    from colorgan.validation import read_val_log

    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.2), squeeze=False)
    colours = dict(zip(METHOD_NAMES, plt.rcParams["axes.prop_cycle"].by_key()["color"]))
    labelled, gray = set(), {}
    for run_dir in run_dirs:
        method = read_run(run_dir)["config"]["method"]
        records = pd.DataFrame(read_val_log(run_dir))
        if records.empty:
            continue
        for ax, metric in zip(axes[0], metrics):
            ax.plot(records.images_seen, records[metric], lw=0.9, alpha=0.8, color=colours.get(method),
                    label=None if method in labelled else METHOD_NAMES.get(method, method))
            gray[metric] = records[f"gray_{metric}"].iloc[-1]
        labelled.add(method)
    for ax, metric in zip(axes[0], metrics):
        if metric in gray:
            ax.axhline(gray[metric], color="0.4", ls="--", lw=1, label=GRAYSCALE)
        ax.set_title(f"validation {metric}", fontsize=9)
        ax.set_xlabel("training images seen", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0, 0].legend(fontsize=7)
    return finish(fig)


def training_curves(run_dir: Path | str) -> plt.Figure:
    """Every logged loss term against the step (one panel per term)."""
    path = Path(run_dir) / "metrics.jsonl"
    log = pd.DataFrame([json.loads(line) for line in path.read_text().splitlines() if line.strip()])
    terms = [c for c in log.columns if c not in ("step", "sec_per_step")]
    cols = min(4, len(terms))
    rows = int(np.ceil(len(terms) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.4 * rows), squeeze=False)
    for ax, term in zip(axes.flat, terms):
        ax.plot(log.step, log[term], lw=1)
        ax.set_title(term, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(terms):]:
        ax.axis("off")
    return finish(fig)


def data_overview(cfg: DataConfig, num_examples: int = 8) -> tuple[pd.DataFrame, plt.Figure, plt.Figure]:
    """Split counts, a grid of training examples, and the colour statistics (ab histogram, L histogram)."""
    train, test, info = load_split(cfg)
    counts = pd.DataFrame([{"split": "train", "images": len(train)}, {"split": "test", "images": len(test)},
                           {"split": "skipped (unreadable)", "images": len(info["skipped"])}])
    picks = _spread(len(train), num_examples)
    grid, axes = plt.subplots(1, len(picks), figsize=(1.6 * len(picks), 1.8), squeeze=False)
    for ax, i in zip(axes[0], picks):
        ax.imshow(train.images[i].transpose(1, 2, 0))
        ax.set_title(train.names[i][:18], fontsize=6)
        ax.axis("off")
    return counts, finish(grid), _colour_statistics(train, test)


def _colour_statistics(train: ImageSet, test: ImageSet, max_images: int = 256) -> plt.Figure:
    fig, axes = plt.subplots(1, 3, figsize=(10, 2.8))
    for split, images in (("train", train), ("test", test)):
        picks = _spread(len(images), min(max_images, len(images)))
        lab = rgb_to_lab(uint8_to_float(torch.from_numpy(np.ascontiguousarray(images.images[picks]))))
        L, a, b = (lab[:, i].flatten().numpy() for i in range(3))
        axes[0].hist(L, bins=50, range=(0, 100), histtype="step", density=True, label=split)
        if split == "train":
            axes[1].hist2d(a, b, bins=60, range=[[-80, 80], [-80, 80]], norm=matplotlib.colors.LogNorm(),
                           cmap="viridis")
        chroma = np.hypot(a, b)
        axes[2].hist(chroma, bins=50, range=(0, 100), histtype="step", density=True, label=split)
    axes[0].set(title="L* distribution", xlabel="L*")
    axes[1].set(title="a*b* density (train, log)", xlabel="a*", ylabel="b*")
    axes[2].set(title="chroma sqrt(a*²+b*²)", xlabel="chroma")
    axes[0].legend(fontsize=7)
    axes[2].legend(fontsize=7)
    return finish(fig)


def run_report(run_dirs: list[str]) -> pd.DataFrame:
    """What was run: one row per run with data, size, steps, VGG weights, seed, commit, device, versions, time."""
    rows = []
    for run_dir in run_dirs:
        record = read_run(run_dir)
        config, provenance = record["config"], record["provenance"] or {}
        finished = record["finished"] or {}
        data = provenance.get("data", {})
        rows.append({
            "method": METHOD_NAMES.get(config["method"], config["method"]),
            "data": f"{data.get('source', config['data'])}: {data.get('num_train', '?')} train / "
                    f"{data.get('num_test', '?')} test",
            "image size": config["image_size"],
            "steps": f"{finished.get('step', '?')} (batch {config['batch_size']})",
            "VGG weights": provenance.get("vgg_weights", "n/a"),
            "seed": config["seed"],
            "git commit": short_commit(str(provenance.get("git_commit", "?"))),
            "device": provenance.get("device_name", "?"),
            "torch": provenance.get("versions", {}).get("torch", "?"),
            "train wall time (s)": round(finished.get("wall_seconds", float("nan")), 1),
            "run folder": run_dir,
        })
    return pd.DataFrame(rows)


def short_commit(commit: str) -> str:
    """'240043b065ec7c10...-dirty' -> '240043b065ec-dirty': shortened, but never hiding uncommitted changes."""
    return commit[:12] + ("-dirty" if commit.endswith("-dirty") else "")


def save_run_metadata(run_dirs: list[str], profile: str, out_dir: Path | str) -> Path:
    """``run_metadata.json``: every run's config, provenance and finish record, for the repository."""
    path = Path(out_dir) / "run_metadata.json"
    runs = [{k: v for k, v in read_run(r).items() if k != "eval"} for r in run_dirs]
    runtime.write_json(path, {"profile": profile, "runs": runs})
    return path


def stage_times(out_dir: Path | str) -> pd.DataFrame:
    """The pipeline's stages with the wall time of their last execution (from ``stages.json``)."""
    path = Path(out_dir) / "stages.json"
    state = json.loads(path.read_text()) if path.is_file() else {}
    return pd.DataFrame([{"stage": name, "seconds": record["seconds"]} for name, record in state.items()])


def finish(fig: plt.Figure) -> plt.Figure:
    """Lay out and detach a figure from pyplot: notebooks then show it once, as the value they return."""
    fig.tight_layout()
    plt.close(fig)
    return fig


def _spread(n: int, k: int) -> list[int]:
    """k indices spread evenly over range(n) (deterministic, covers the whole set)."""
    return sorted(set(np.linspace(0, n - 1, num=min(k, n)).round().astype(int).tolist()))


def _to_hwc(rgb: torch.Tensor) -> np.ndarray:
    return rgb.detach().float().cpu().clamp(0, 1).permute(1, 2, 0).numpy()


# ------------------------------------------------------------------------------- book presentation
# The book is read by reviewers, not by the people who wrote the notebooks: tables without pandas' index,
# numbers right-aligned, long text wrapped, and every table in a box that scrolls on its own on a phone.

# a number, a signed difference or 'mean [low, high]' (with an optional '*' mark): right-aligned
_NUMERIC = r"^(?=.*\d)[\s\d.,+\-−\[\]()*e]+$"


class Html(str):
    """A string of HTML that Jupyter (and the book) displays as HTML."""

    def _repr_html_(self) -> str:
        return str(self)


MAX_COLUMNS = 7  # more columns than this do not fit a 1280 px page with their intervals under the numbers


def html_table(table: pd.DataFrame, caption: str = "", footnotes: tuple[str, ...] = ("notes",)) -> Html:
    """A DataFrame as a readable HTML table: no index column, numbers right-aligned with their intervals
    under them (a column 'X 95% CI' joins the column before it whose name starts with X), text in the
    ``footnotes`` columns as numbered notes below the table, other text wrapped; all inside a box that
    scrolls sideways by itself if the table is still wider than the page. A text column that says the same
    in every row becomes one note; a table of many columns and few rows is shown transposed."""
    import html
    import re

    def cell(value: Any) -> str:
        if value is None or (isinstance(value, float) and np.isnan(value)):
            return ""
        if isinstance(value, (float, np.floating)):
            return f"{round(float(value), 4):g}"  # 4 decimals at most: 19.285354 -> 19.2854
        return str(value)

    table = table.copy()
    for column in [c for c in table.columns if f"{c}_low" in table.columns and f"{c}_high" in table.columns]:
        # an evaluation summary's 'psnr', 'psnr_low', 'psnr_high' -> 'psnr' = 'mean [low, high]'
        table[column] = [f"{cell(v)} [{cell(lo)}, {cell(hi)}]" if cell(lo) else cell(v)
                         for v, lo, hi in zip(table[column], table[f"{column}_low"], table[f"{column}_high"])]
        table = table.drop(columns=[f"{column}_low", f"{column}_high"])
    for column in [c for c in table.columns if str(c).endswith(" 95% CI")]:
        base = str(column)[: -len(" 95% CI")]
        before = list(table.columns)[: list(table.columns).index(column)]
        owner = next((c for c in reversed(before) if str(c) == base or str(c).startswith(base + " ")), None)
        if owner is not None:
            table[owner] = [f"{cell(v)} {cell(ci)}".strip() for v, ci in zip(table[owner], table[column])]
            table = table.drop(columns=column)
    notes: list[str] = []
    for column in [c for c in table.columns if c not in footnotes and len(table) > 1]:
        values = set(table[column].map(cell))
        if len(values) == 1 and not re.match(_NUMERIC, next(iter(values))) and next(iter(values)) not in ("", "—"):
            # the same text in every row (e.g. 'n/a (no LPIPS weights)'): said once under the table
            notes.append(f"{column}: {next(iter(values))} (every row)")
            table = table.drop(columns=column)
    for column in [c for c in footnotes if c in table.columns]:
        marks = []
        for text in table[column].map(cell):
            if text:
                notes.append(text)
            marks.append(f"[{len(notes)}]" if text else "")
        table[column] = marks
    if len(table.columns) > MAX_COLUMNS and len(table) < len(table.columns) / 2:
        # few rows, many columns (Table 1, an evaluation summary): metrics as rows, methods as columns (the
        # paper's own Table 1 layout) reads narrower than one wide row per method
        first = table.columns[0]
        table = table.set_index(first).T.reset_index().rename(columns={"index": str(first)})
    columns = list(table.columns)
    cells = [[cell(v) for v in row] for row in table.itertuples(index=False)]
    numeric = [all(re.match(_NUMERIC, row[i]) or row[i] in ("", "—") for row in cells) and
               any(row[i] not in ("", "—") for row in cells) for i in range(len(columns))]
    head = "".join(f'<th class="{"num" if numeric[i] else "text"}">{html.escape(str(c))}</th>'
                   for i, c in enumerate(columns))

    def shown(value: str, is_number: bool) -> str:
        # 'mean [low, high]': the interval goes on its own line under its number, so columns stay narrow
        value, _, interval = value.partition(" [") if is_number else (value, "", "")
        return html.escape(value) + (f'<span class="ci">[{html.escape(interval)}</span>' if interval else "")

    def is_number(value: str, column: int) -> bool:  # per cell: a transposed table mixes numbers and text
        return numeric[column] or bool(re.match(_NUMERIC, value))

    body = "".join("<tr>" + "".join(f'<td class="{"num" if is_number(v, i) else "text"}">{shown(v, is_number(v, i))}</td>'
                                    for i, v in enumerate(row)) + "</tr>" for row in cells)
    title = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    notes_html = ("<ol class=\"table-notes\">" + "".join(f"<li>{html.escape(n)}</li>" for n in notes) + "</ol>"
                  if notes else "")
    return Html(f'<div class="report-table"><table>{title}<thead><tr>{head}</tr></thead>'
                f"<tbody>{body}</tbody></table></div>{notes_html}")


class _FirstOccurrence(logging.Filter):
    """Passes each distinct (logger, level, message) once."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[tuple[str, int, str]] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, record.levelno, record.getMessage())
        first = key not in self.seen
        self.seen.add(key)
        return first


def log_each_warning_once() -> None:
    """A chapter's warnings on stderr as Python shows them by default, but each distinct message once: a
    warning that every run of a study repeats (ChromaGAN without its ImageNet teacher) says nothing new the
    second time, and the page should not print it six times. Calling it again changes nothing."""
    root = logging.getLogger()
    if any(isinstance(f, _FirstOccurrence) for h in root.handlers for f in h.filters):
        return
    handler = logging.StreamHandler()
    handler.setLevel(logging.WARNING)
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.addFilter(_FirstOccurrence())
    root.addHandler(handler)


def ran_with(cfg: Any) -> Html:
    """'What this chapter ran with': the parameters that differ from the config's defaults as a small
    table, and every parameter (with its meaning) in a collapsed block, instead of the parameters code."""
    import dataclasses
    import html

    from colorgan.params import field_default

    rows, changed = [], []
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        row = {"parameter": f.name, "value": _short(value), "meaning": f.metadata.get("help", "")}
        rows.append(row)
        if value != field_default(f):
            changed.append(row)
    name = html.escape(type(cfg).__name__)
    shown = html_table(pd.DataFrame(changed)) if changed else Html("<p>Every parameter at its default.</p>")
    return Html(f'<div class="ran-with"><p><strong>What this chapter ran with</strong> (<code>{name}</code>, '
                f"{len(changed)} of {len(rows)} parameters changed from their defaults):</p>{shown}"
                f"<details><summary>All {len(rows)} parameters</summary>{html_table(pd.DataFrame(rows))}"
                "</details></div>")


def _short(value: Any, limit: int = 160) -> str:
    text = json.dumps(value) if isinstance(value, (dict, list)) else str(value)
    return text if len(text) <= limit else text[:limit] + " …"


def require_runs(run_dirs: list[str], notebooks: str = "book/train_*.ipynb") -> None:
    """Fail with a message that says what to run when a run folder is missing or unfinished."""
    missing = [r for r in run_dirs if not (Path(r) / "finished.json").is_file()]
    if missing:
        raise FileNotFoundError(f"run_dirs: no finished run in {missing}; run {notebooks} first (as they are, "
                                "they write exactly these folders) or set run_dirs to a profile's runs, "
                                "e.g. results/smoke/runs/* after `make reproduce`")


def run_records(run_dir: Path | str, log_lines: int = 5) -> Html:
    """A collapsed block with a run folder's config.json, provenance.json, finished.json and the last
    lines of its metrics log: every number on the page traces back to the run that made it."""
    import html

    run_dir = Path(run_dir)
    parts = []
    for name in ("config.json", "provenance.json", "finished.json", "eval/summary.json"):
        path = run_dir / name
        if path.is_file():
            parts.append(f"<p><code>{name}</code></p><pre>{html.escape(path.read_text().strip())}</pre>")
    log_path = run_dir / "metrics.jsonl"
    if log_path.is_file():
        lines = log_path.read_text().strip().splitlines()
        parts.append(f"<p><code>metrics.jsonl</code> (last {min(log_lines, len(lines))} of {len(lines)} lines)</p>"
                     f"<pre>{html.escape(chr(10).join(lines[-log_lines:]))}</pre>")
    summary = f"Run records: <code>{html.escape(str(run_dir))}</code> (config, provenance, log)"
    return Html(f'<details class="run-records"><summary>{summary}</summary>{"".join(parts)}</details>')


def all_training_curves(run_dirs: list[str]) -> plt.Figure:
    """Every method's logged loss terms on one figure: one panel per method, a log axis where all are > 0."""
    fig, axes = plt.subplots(1, len(run_dirs), figsize=(4.2 * len(run_dirs), 3.2), squeeze=False)
    for ax, run_dir in zip(axes[0], run_dirs):
        method = read_run(run_dir)["config"]["method"]
        path = Path(run_dir) / "metrics.jsonl"
        log = pd.DataFrame([json.loads(line) for line in path.read_text().splitlines() if line.strip()])
        terms = [c for c in log.columns if c not in ("step", "sec_per_step", "lr")]
        for term in terms:
            ax.plot(log.step, log[term], lw=1, label=term)
        if terms and (log[terms] > 0).all().all():
            ax.set_yscale("log")
        ax.set_title(METHOD_NAMES.get(method, method), fontsize=10)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=6, ncol=2)
    return finish(fig)


def metric_distributions(per_image: pd.DataFrame, metrics: tuple[str, ...] = ("psnr", "ssim")) -> plt.Figure:
    """Per-image PSNR and SSIM per method (box plots with every image as a dot), grayscale reference included.

    With several seeds per method (a ``seed`` column, as in a study) each dot is one image, seeds averaged.
    """
    metrics = tuple(m for m in metrics if m in per_image)
    if "seed" in per_image:
        per_image = per_image.groupby(["method", "image"], sort=False)[list(metrics)].mean().reset_index()
    methods = list(dict.fromkeys(per_image.method))
    labels = [METHOD_NAMES.get(m, m) for m in methods]
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.0 * len(metrics), 3.4), squeeze=False)
    rng = np.random.default_rng(0)  # jitter of the dots only
    for ax, metric in zip(axes[0], metrics):
        values = [per_image.loc[per_image.method == m, metric].to_numpy() for m in methods]
        ax.boxplot(values, showfliers=False)
        ax.set_xticks(range(1, len(labels) + 1), labels, fontsize=8, rotation=15)
        for i, v in enumerate(values, start=1):
            ax.scatter(i + rng.uniform(-0.15, 0.15, len(v)), v, s=6, alpha=0.5, color="tab:blue")
        ax.set_title(f"per-image {metric.upper()} ({'dB' if metric == 'psnr' else 'higher is better'})", fontsize=9)
        ax.tick_params(axis="y", labelsize=7)
    return finish(fig)


def delta_chart(table: pd.DataFrame, higher_is_better: dict[str, bool] | None = None) -> plt.Figure:
    """The ablation as differences: per metric, each variant's paired Δ to the reference with its 95%
    bootstrap interval (``table``: the long ablation table with diff_vs_full, diff_low, diff_high)."""
    rows = table.dropna(subset=["diff_vs_full"])
    metrics = list(dict.fromkeys(rows.metric))
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.0 * len(metrics), 0.35 * rows.variant.nunique() + 1.6),
                             squeeze=False, sharey=True)
    for ax, metric in zip(axes[0], metrics):
        r = rows[rows.metric == metric]
        y = np.arange(len(r))
        significant = r.significant.astype(object).fillna(False).astype(bool)  # a CSV round trip gives objects
        for yi, (diff, low, high, mark) in enumerate(zip(r.diff_vs_full, r.diff_low, r.diff_high, significant)):
            colour = "tab:red" if mark else "tab:gray"
            ax.errorbar([diff], [yi], xerr=[[diff - low], [high - diff]], fmt="o", ms=4, color=colour, capsize=3)
        ax.axvline(0, color="black", lw=0.8)
        ax.set_yticks(y, r.variant, fontsize=7)
        better = (higher_is_better or {}).get(metric)
        ax.set_title(f"Δ{metric} vs full" + ("" if better is None else f" ({'↑' if better else '↓'} better)"),
                     fontsize=9)
        ax.tick_params(axis="x", labelsize=7)
    axes[0, 0].invert_yaxis()
    fig.suptitle("red: 95% interval excludes 0", fontsize=8)
    return finish(fig)


def gallery(run_dirs: list[str], methods: Methods, per_image: pd.DataFrame, num_images: int = 3, seed: int = 0,
            device: str = "auto", test_root: str = "", protocol: str = "resize") -> plt.Figure:
    """Per method, its ``num_images`` worst and best test images by PSNR: the method's colorization above
    the ground truth, titled with the image and its PSNR (dB).

    ``test_root`` / ``protocol``: the folder the runs were scored on (``table1``'s), where the picked images
    are read from ('' = each run's own test split)."""
    torch_device = runtime.select_device(device)
    fig, axes = plt.subplots(2 * len(run_dirs), 2 * num_images, figsize=(2.4 * 2 * num_images, 4.9 * len(run_dirs)),
                             squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for row, run_dir in enumerate(run_dirs):
        method = read_run(run_dir)["config"]["method"]
        config_cls, build_step = methods[method]
        cfg, step, _ = load_trained(run_dir, config_cls, build_step, torch_device, inference_only=True)
        # the picked images come from the set that was scored, never from another one
        test = load_test_folder(test_root, cfg.image_size, protocol)[0] if test_root else load_split(cfg)[1]
        scores = per_image[(per_image.method == method) & (per_image.run_dir.astype(str) == str(run_dir))]
        ranked = scores.sort_values("psnr")
        picks = [("worst", r) for r in ranked.head(num_images).itertuples()]
        picks += [("best", r) for r in ranked.tail(num_images)[::-1].itertuples()]
        index = {name: i for i, name in enumerate(test.names)}
        rgb = uint8_to_float(torch.from_numpy(np.ascontiguousarray(test.images[[index[r.image] for _, r in picks]])))
        L, _ = rgb_to_model(rgb.to(torch_device))  # (2k, 1, H, W): one colorize call per method
        outputs = step.colorize(L, torch.Generator().manual_seed(seed))
        for col, (kind, r) in enumerate(picks):
            top, bottom = axes[2 * row, col], axes[2 * row + 1, col]
            top.imshow(_to_hwc(outputs[col]), interpolation="nearest")
            top.set_title(f"{METHOD_NAMES.get(method, method)} {kind}: {r.psnr:.1f} dB\n{r.image[:28]}", fontsize=7)
            bottom.imshow(_to_hwc(rgb[col]), interpolation="nearest")
            bottom.set_title("ground truth", fontsize=7)
    return finish(fig)


def headline(out_dir: Path | str) -> str:
    """The front page's answer, from whatever the profile's results folder holds (Markdown with HTML tables):
    Table 1 against the grayscale row and the paper, verdicts on claims, and what it took on which machine.
    New experiments plug in by writing ``table1.csv``, ``*verdicts*.csv``, ``stages.json`` or
    ``run_metadata.json`` there."""
    out_dir = Path(out_dir)
    parts = []
    table_path = out_dir / "table1.csv"
    if table_path.is_file():
        parts.append("## The answer: every method against the grayscale input and the paper\n\n"
                     + html_table(headline_table(pd.read_csv(table_path))) + "\n\n"
                     "*ours*: computed here, mean of per-image values [95% interval] (a study's: over seeds and "
                     "test images); *paper*: the values printed in the paper's Table 1 (never computed here; PASCAL "
                     "VOC2012's 1,712 test images at 256 px, conventions unstated). *grayscale* colours "
                     "nothing (ab = 0): a method that does not beat it has not learnt colour yet.\n")
    # an ablation-only profile keeps its verdicts in its ablation folder (a study's summary already holds them)
    found = sorted(out_dir.glob("*verdicts*.csv")) or sorted((out_dir / ABLATION_DIR).glob("*verdicts*.csv"))
    for path in found:
        verdicts = pd.read_csv(path)
        if "claim_id" in verdicts:  # colorgan.verdicts' full record: the page shows what a reader compares
            verdicts = verdicts[["claim", "verdict", "effect", "low", "high", "margin"]].round(4)
        parts.append(f"## Verdicts on the paper's claims ({path.stem.replace('_', ' ')})\n\n"
                     + html_table(verdicts) + "\n\nComputed from the intervals, not written by hand.\n")
    parts.append(_cost_summary(out_dir))
    return "\n".join(p for p in parts if p)


def headline_table(table: pd.DataFrame) -> pd.DataFrame:
    """Table 1 reduced to what a reader compares: method, ours with intervals, the paper's values, and the
    difference to the grayscale reference (PSNR dB / SSIM)."""
    table = table1_blocks(table)[0][1]  # rows scored on other images, sizes or protocols are not compared
    # tables written before the columns named their convention (e.g. the study's) use the short names
    psnr_col, ssim_col, paper_psnr, paper_ssim = (
        next((c for c in names if c in table), names[-1])
        for names in ((TABLE1_PSNR, "PSNR (dB)"), (TABLE1_SSIM, "SSIM"), (PAPER_PSNR, "paper PSNR (published)"),
                      (PAPER_SSIM, "paper SSIM (published)")))
    gray = table[table.Method == METHOD_NAMES[GRAYSCALE]]
    gray_psnr = float(gray[psnr_col].iloc[0]) if len(gray) else np.nan
    gray_ssim = float(gray[ssim_col].iloc[0]) if len(gray) else np.nan
    rows = []
    for r in table.to_dict("records"):
        is_gray = r["Method"] == METHOD_NAMES[GRAYSCALE]
        rows.append({
            "method": r["Method"],
            "PSNR (dB), ours": f"{r[psnr_col]:.2f} {_interval(r.get('PSNR 95% CI'), 2)}",
            "Δ vs grayscale": "—" if is_gray else f"{r[psnr_col] - gray_psnr:+.2f}",
            "PSNR, paper": _paper(r.get(paper_psnr), 3),
            "SSIM, ours": f"{r[ssim_col]:.3f} {_interval(r.get('SSIM 95% CI'), 3)}",
            "SSIM Δ vs grayscale": "—" if is_gray else f"{r[ssim_col] - gray_ssim:+.3f}",
            "SSIM, paper": _paper(r.get(paper_ssim), 3),
        })
    return pd.DataFrame(rows)


def _interval(text: Any, digits: int) -> str:
    if not isinstance(text, str):
        return ""
    low, high = (float(v) for v in text.strip("[]").split(","))
    return f"[{low:.{digits}f}, {high:.{digits}f}]"


def _paper(value: Any, digits: int) -> str:
    return "—" if value is None or (isinstance(value, float) and np.isnan(value)) else f"{float(value):.{digits}f}"


def _cost_summary(out_dir: Path) -> str:
    """'How long it took and on what': stage wall times and the machines, commits and data of the runs."""
    lines = []
    times = stage_times(out_dir)
    if len(times):
        total = times.seconds.sum()
        lines.append(f"- **Time:** {total / 60:.1f} min of stage wall time (last execution of each stage: "
                     + ", ".join(f"{r.stage} {r.seconds:.0f} s" for r in times.itertuples()) + ").")
    meta_path = out_dir / "run_metadata.json"
    if meta_path.is_file():
        runs = json.loads(meta_path.read_text()).get("runs", [])
        provenance = [r.get("provenance") or {} for r in runs]
        devices = sorted({p.get("device_name", "?") for p in provenance})
        commits = sorted({short_commit(str(p.get("git_commit", "?"))) for p in provenance})
        versions = provenance[0].get("versions", {}) if provenance else {}
        data = sorted({f"{(p.get('data') or {}).get('source', '?')} ({(p.get('data') or {}).get('num_train', '?')} "
                       f"train / {(p.get('data') or {}).get('num_test', '?')} test, "
                       f"{(p.get('data') or {}).get('image_size', '?')} px)" for p in provenance})
        train_seconds = sum((r.get("finished") or {}).get("wall_seconds", 0) for r in runs)
        lines.append(f"- **Machine:** {', '.join(devices)}; torch {versions.get('torch', '?')}, "
                     f"Python {versions.get('python', '?')}.")
        lines.append(f"- **Runs:** {len(runs)}, {train_seconds / 60:.1f} min of training in all; data: "
                     f"{'; '.join(data)}; commit {', '.join(commits)}.")
    return ("## How long it took, and on what\n\n" + "\n".join(lines) + "\n") if lines else ""

"""Tables and figures of the book: Table 1, Fig. 2, training curves, data overview, run report.

Every function computes from run folders (config, provenance, checkpoints, metrics log); nothing
here types a number in, except the paper's published values, which only ever appear in columns
labelled "paper".
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from colorgan import runtime
from colorgan.color import gray_rgb, rgb_to_lab, rgb_to_model, uint8_to_float
from colorgan.config import DataConfig, RunConfig
from colorgan.data import ImageSet, load_split
from colorgan.evaluate import eval_dir, evaluate_or_reuse, test_set_name
from colorgan.metrics import GRAYSCALE, bootstrap_ci
from colorgan.train import StepFactory, load_trained

Methods = dict[str, tuple[type[RunConfig], StepFactory]]  # e.g. cli.METHODS

# The book shows tables in full: pandas would cut notes, evidence and run folders at 50 characters ("...").
pd.set_option("display.max_colwidth", None)

# Table 1 of the paper (PASCAL VOC, 256x256, their training): reference values, never our results.
PAPER_TABLE1 = {"chromagan": (24.154, 0.926), "coltran": (23.839, 0.868), "colorgan": (24.333, 0.938)}
METHOD_NAMES = {"colorgan": "ColorGAN", "chromagan": "ChromaGAN", "coltran": "ColTran", GRAYSCALE: GRAYSCALE}
# The paper's protocol (§3.1) as field -> (value, how the paper says it).
PAPER_PROTOCOL = {
    "data": ("voc", "PASCAL VOC2012 (17,125 images; 15,413 train / 1,712 test)"),
    "image_size": (256, "256×256"),
    "num_epochs": (300, "300 epochs"),
    "batch_size": (16, "batch 16"),
    "vgg_weights": ("imagenet", "ImageNet-pretrained VGG"),
}


# ------------------------------------------------------------------------------------ provenance


def read_run(run_dir: Path | str) -> dict[str, Any]:
    """A run folder's records: config, provenance, finished (or None) and eval summary (or None)."""
    run_dir = Path(run_dir)

    def load(name: str) -> Any:
        path = run_dir / name
        return json.loads(path.read_text()) if path.is_file() else None

    return {"run_dir": str(run_dir), "config": load("config.json"), "provenance": load("provenance.json"),
            "finished": load("finished.json"), "eval": load("eval/summary.json")}


def protocol_differences(config: dict[str, Any], vgg_source: str | None = None) -> list[str]:
    """How a run's config differs from the paper's protocol, one readable line per difference."""
    lines = []
    for field, (paper_value, paper_text) in PAPER_PROTOCOL.items():
        if field not in config:
            continue  # e.g. the data overview has no training budget
        value = config.get(field)
        if field == "vgg_weights":
            value = vgg_source or value
            if value != "imagenet":
                lines.append(f"vgg_weights={value} (paper: {paper_text})")
        elif field == "num_epochs" and config.get("num_steps"):
            lines.append(f"num_steps={config['num_steps']} optimiser steps (paper: {paper_text})")
        elif value != paper_value:
            lines.append(f"{field}={value!r} (paper: {paper_text})")
    if config.get("max_images"):
        lines.append(f"max_images={config['max_images']} (paper: all training images)")
    return lines


def comparability_note(config: dict[str, Any], vgg_source: str | None = None) -> str:
    """A Markdown admonition saying whether these numbers can be compared with the paper, and why not."""
    differences = protocol_differences(config, vgg_source)
    if not differences:
        return "**Protocol matches the paper's §3.1 settings**; numbers are comparable up to seed and hardware."
    items = "\n".join(f"- {line}" for line in differences)
    return ("**Not comparable with the paper.** These numbers come from a run that differs from the paper's "
            f"protocol:\n{items}")


def run_note(run_dir: Path | str) -> str:
    """``comparability_note`` for a trained run, with the VGG weights it actually used."""
    record = read_run(run_dir)
    return comparability_note(record["config"], (record["provenance"] or {}).get("vgg_weights"))


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
    rows, per_image_all, test_names = [], [], None
    for run_dir in run_dirs:
        record = read_run(run_dir)
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
    test_stems = sorted(_stem(n) for n in test_names or [])
    for folder in external_runs or []:
        record, per_image, summary = read_score(folder)
        name = record["method"]
        note = record["provenance"]
        if sorted(_stem(n) for n in per_image.image) != test_stems:
            note += "; NOT the runs' test images (other or fewer files), so not comparable row by row"
        external = {"run_dir": str(folder), "config": {}, "provenance": {"notes": note}, "finished": None,
                    "eval": record, "external": True}
        per_image_all.append(per_image.assign(run_dir=str(folder)))
        rows.append(_table_row(name, per_image, external, 0, 1000, _set_entry(summary, name)))
    table = pd.DataFrame(rows)
    order = {name: i for i, name in enumerate(["ColorGAN", "ChromaGAN", "ColTran", GRAYSCALE])}
    table = table.sort_values("Method", key=lambda s: s.map(lambda m: order.get(m, 50))).reset_index(drop=True)
    return table, pd.concat(per_image_all, ignore_index=True)


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
    paper_psnr, paper_ssim = (None, None) if is_external else PAPER_TABLE1.get(method, (None, None))
    provenance = record["provenance"] or {}
    finished = record["finished"] or {}
    evaluation = record.get("eval") or {}
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
        "PSNR (dB)": round(psnr, 3),
        "PSNR 95% CI": f"[{psnr_low:.3f}, {psnr_high:.3f}]",
        "SSIM": round(ssim, 4),
        "SSIM 95% CI": f"[{ssim_low:.4f}, {ssim_high:.4f}]",
        "CIEDE2000": _metric_cell(group, "ciede2000", 2, "n/a"),
        "colourfulness": _metric_cell(group, "colourfulness", 2, "n/a"),
        "ΔCF vs ground truth": _metric_cell(group, "colourfulness_gap", 2, "n/a") if has_colour else "n/a",
        "LPIPS": _metric_cell(group, "lpips", 4, lpips_note if lpips_note.startswith("n/a") else "n/a"),
        "FID": fid,
        "test images": len(group),
        "steps": steps,
        "VGG weights": "—" if is_reference or is_external else provenance.get("vgg_weights", "n/a"),
        "notes": "reference: input L with ab = 0" if is_reference else provenance.get("notes", ""),
        "paper PSNR (published)": paper_psnr,
        "paper SSIM (published)": paper_ssim,
    }


def save_table1(table: pd.DataFrame, per_image: pd.DataFrame, out_dir: Path | str) -> list[Path]:
    """Write table1.csv, table1.md and per_image_metrics.csv into ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / "table1.csv", out_dir / "table1.md", out_dir / "per_image_metrics.csv"]
    table.to_csv(paths[0], index=False)
    paths[1].write_text(table_markdown(table))
    per_image.to_csv(paths[2], index=False)
    return paths


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
            seed: int = 0, device: str = "auto") -> plt.Figure:
    """Fig. 2: the same test images by every method, beside the grayscale input and the ground truth,
    and a diversity strip: several noise samples of ColorGAN for the first image."""
    torch_device = runtime.select_device(device)
    colorizers, test = {}, None
    for run_dir in run_dirs:
        method = read_run(run_dir)["config"]["method"]
        config_cls, build_step = methods[method]
        cfg, step, _ = load_trained(run_dir, config_cls, build_step, torch_device)
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

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
from colorgan.evaluate import evaluate_or_reuse
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


def table1(run_dirs: list[str], methods: Methods, num_diversity_samples: int = 0, device: str = "auto"
           ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Evaluate every run (or reuse its evaluation) on the shared test split.

    Returns:
        (table, per_image): table has one row per method plus the grayscale reference, with PSNR and
        SSIM means and 95% bootstrap intervals, our provenance (steps, VGG weights) and, in separate
        columns labelled 'paper', the published numbers.
    """
    rows, per_image_all, test_names = [], [], None
    for run_dir in run_dirs:
        record = read_run(run_dir)
        method = record["config"]["method"]
        config_cls, build_step = methods[method]
        per_image, _ = evaluate_or_reuse(run_dir, config_cls, build_step, device,
                                         num_diversity_samples=num_diversity_samples if method == "colorgan" else 0)
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
            rows.append(_table_row(name, group, record, seed, num_resamples))
    table = pd.DataFrame(rows)
    order = {name: i for i, name in enumerate(["ColorGAN", "ChromaGAN", "ColTran", GRAYSCALE])}
    table = table.sort_values("Method", key=lambda s: s.map(lambda m: order.get(m, 99))).reset_index(drop=True)
    return table, pd.concat(per_image_all, ignore_index=True)


def _table_row(method: str, group: pd.DataFrame, record: dict, seed: int, num_resamples: int) -> dict[str, Any]:
    psnr, psnr_low, psnr_high = bootstrap_ci(group.psnr.to_numpy(), num_resamples, seed)
    ssim, ssim_low, ssim_high = bootstrap_ci(group.ssim.to_numpy(), num_resamples, seed)
    is_reference = method == GRAYSCALE
    paper_psnr, paper_ssim = PAPER_TABLE1.get(method, (None, None))
    provenance = record["provenance"] or {}
    finished = record["finished"] or {}
    return {
        "Method": METHOD_NAMES.get(method, method),
        "PSNR (dB)": round(psnr, 3),
        "PSNR 95% CI": f"[{psnr_low:.3f}, {psnr_high:.3f}]",
        "SSIM": round(ssim, 4),
        "SSIM 95% CI": f"[{ssim_low:.4f}, {ssim_high:.4f}]",
        "test images": len(group),
        "steps": "—" if is_reference else finished.get("step", record["eval"] and record["eval"]["checkpoint_step"]),
        "VGG weights": "—" if is_reference else provenance.get("vgg_weights", "n/a"),
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


# ------------------------------------------------------------------------------- book presentation
# The book is read by reviewers, not by the people who wrote the notebooks: tables without pandas' index,
# numbers right-aligned, long text wrapped, and every table in a box that scrolls on its own on a phone.

# a number, a signed difference or 'mean [low, high]' (with an optional '*' mark): right-aligned
_NUMERIC = r"^(?=.*\d)[\s\d.,+\-−\[\]()*e]+$"


class Html(str):
    """A string of HTML that Jupyter (and the book) displays as HTML."""

    def _repr_html_(self) -> str:
        return str(self)


def html_table(table: pd.DataFrame, caption: str = "", footnotes: tuple[str, ...] = ("notes",)) -> Html:
    """A DataFrame as a readable HTML table: no index column, numbers right-aligned with their intervals
    under them (a column 'X 95% CI' joins the column before it whose name starts with X), text in the
    ``footnotes`` columns as numbered notes below the table, other text wrapped; all inside a box that
    scrolls sideways by itself if the table is still wider than the page."""
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
    for column in [c for c in footnotes if c in table.columns]:
        marks = []
        for text in table[column].map(cell):
            if text:
                notes.append(text)
            marks.append(f"[{len(notes)}]" if text else "")
        table[column] = marks
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

    body = "".join("<tr>" + "".join(f'<td class="{"num" if numeric[i] else "text"}">{shown(v, numeric[i])}</td>'
                                    for i, v in enumerate(row)) + "</tr>" for row in cells)
    title = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    notes_html = ("<ol class=\"table-notes\">" + "".join(f"<li>{html.escape(n)}</li>" for n in notes) + "</ol>"
                  if notes else "")
    return Html(f'<div class="report-table"><table>{title}<thead><tr>{head}</tr></thead>'
                f"<tbody>{body}</tbody></table></div>{notes_html}")


def ran_with(cfg: Any) -> Html:
    """'What this chapter ran with': the parameters that differ from the config's defaults as a small
    table, and every parameter (with its meaning) in a collapsed block, instead of the parameters code."""
    import dataclasses
    import html

    from colorgan.config import field_default

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
    """Per-image PSNR and SSIM per method (box plots with every image as a dot), grayscale reference included."""
    methods = list(dict.fromkeys(per_image.method))
    labels = [METHOD_NAMES.get(m, m) for m in methods]
    metrics = tuple(m for m in metrics if m in per_image)
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
            device: str = "auto") -> plt.Figure:
    """Per method, its ``num_images`` worst and best test images by PSNR: the method's colorization above
    the ground truth, titled with the image and its PSNR (dB)."""
    torch_device = runtime.select_device(device)
    fig, axes = plt.subplots(2 * len(run_dirs), 2 * num_images, figsize=(2.4 * 2 * num_images, 4.9 * len(run_dirs)),
                             squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for row, run_dir in enumerate(run_dirs):
        method = read_run(run_dir)["config"]["method"]
        config_cls, build_step = methods[method]
        cfg, step, _ = load_trained(run_dir, config_cls, build_step, torch_device, inference_only=True)
        test = load_split(cfg)[1]
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
                     "*ours*: computed here, mean [95% bootstrap interval] over the test images; *paper*: "
                     "the values printed in the paper's Table 1 (never computed here). *grayscale* colours "
                     "nothing (ab = 0): a method that does not beat it has not learnt colour yet.\n")
    for path in sorted(out_dir.glob("*verdicts*.csv")):
        verdicts = pd.read_csv(path)
        parts.append(f"## Verdicts on the paper's claims ({path.stem.replace('_', ' ')})\n\n"
                     + html_table(verdicts) + "\n\nComputed from the intervals, not written by hand.\n")
    parts.append(_cost_summary(out_dir))
    return "\n".join(p for p in parts if p)


def headline_table(table: pd.DataFrame) -> pd.DataFrame:
    """Table 1 reduced to what a reader compares: method, ours with intervals, the paper's values, and the
    difference to the grayscale reference (PSNR dB / SSIM)."""
    gray = table[table.Method == METHOD_NAMES[GRAYSCALE]]
    gray_psnr = float(gray["PSNR (dB)"].iloc[0]) if len(gray) else np.nan
    gray_ssim = float(gray["SSIM"].iloc[0]) if len(gray) else np.nan
    rows = []
    for r in table.to_dict("records"):
        is_gray = r["Method"] == METHOD_NAMES[GRAYSCALE]
        rows.append({
            "method": r["Method"],
            "PSNR (dB), ours": f"{r['PSNR (dB)']:.2f} {_interval(r.get('PSNR 95% CI'), 2)}",
            "Δ vs grayscale": "—" if is_gray else f"{r['PSNR (dB)'] - gray_psnr:+.2f}",
            "PSNR, paper": _paper(r.get("paper PSNR (published)"), 3),
            "SSIM, ours": f"{r['SSIM']:.3f} {_interval(r.get('SSIM 95% CI'), 3)}",
            "SSIM Δ vs grayscale": "—" if is_gray else f"{r['SSIM'] - gray_ssim:+.3f}",
            "SSIM, paper": _paper(r.get("paper SSIM (published)"), 3),
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

"""The book's figures: Fig. 2 (every method on the same test images, and ColorGAN's diversity), learning and
training curves, the data overview, per-image metric distributions, and each method's worst and best images."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from colorgan.common import runtime
from colorgan.common.formatting import finish
from colorgan.common.published import METHOD_NAMES
from colorgan.measures.metrics import GRAYSCALE
from colorgan.measures.testset import load_test_folder
from colorgan.method.color import gray_rgb, rgb_to_lab, rgb_to_model, uint8_to_float
from colorgan.method.config import DataConfig
from colorgan.method.data import ImageSet, load_split
from colorgan.training.run_store import read_run
from colorgan.training.train import load_trained

if TYPE_CHECKING:
    from colorgan.experiments.study import Methods


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
    from colorgan.training.validation import read_val_log

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


def _spread(n: int, k: int) -> list[int]:
    """k indices spread evenly over range(n) (deterministic, covers the whole set)."""
    return sorted(set(np.linspace(0, n - 1, num=min(k, n)).round().astype(int).tolist()))


def _to_hwc(rgb: torch.Tensor) -> np.ndarray:
    return rgb.detach().float().cpu().clamp(0, 1).permute(1, 2, 0).numpy()

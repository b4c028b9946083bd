"""PSNR/SSIM per image (piq), bootstrap intervals, diversity, and the evaluation of a colorizer.

Protocol (same for every method, see ../shared/docs/baselines.md §3): prediction and ground truth are
RGB at the evaluation size, quantised to 8 bits as a saved image would be, PSNR and SSIM with
data range 1, SSIM with an 11x11 Gaussian window (sigma 1.5) averaged over the three channels, as
Wang et al. and ``tf.image.ssim`` define it. The ground truth is never round-tripped through Lab.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd
import piq
import torch

from colorgan.color import gray_rgb, rgb_to_lab, rgb_to_model, uint8_to_float
from colorgan.data import ImageSet

Colorizer = Callable[[torch.Tensor, torch.Generator], torch.Tensor]  # L (B,1,H,W) -> rgb (B,3,H,W)
GRAYSCALE = "grayscale (ab = 0)"
# per-image columns of ``evaluate``; delta_cf = colourfulness - the ground truth's (< 0: duller than the photo)
METRICS = ("psnr", "ssim", "ciede2000", "colourfulness", "delta_cf", "diversity")


def quantize(rgb: torch.Tensor) -> torch.Tensor:
    """Round (B, 3, H, W) in [0, 1] to the 256 levels of an 8-bit image."""
    return torch.round(rgb.clamp(0, 1) * 255) / 255


def psnr_ssim(pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image PSNR (dB) and SSIM of (B, 3, H, W) RGB in [0, 1] -> two (B,) float tensors."""
    pred, target = quantize(pred.float()), quantize(target.float())
    psnr = piq.psnr(pred, target, data_range=1.0, reduction="none")
    # downsample=False: piq would otherwise shrink images above 256 px before SSIM
    ssim = piq.ssim(pred, target, data_range=1.0, kernel_size=11, kernel_sigma=1.5, reduction="none",
                    downsample=False)
    return psnr, ssim


def ciede2000(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean CIEDE2000 colour difference per image (scikit-image). (B, 3, H, W) in [0, 1] -> (B,), >= 0."""
    from skimage.color import deltaE_ciede2000

    pred_lab = rgb_to_lab(quantize(pred.float().cpu())).permute(0, 2, 3, 1).double().numpy()
    target_lab = rgb_to_lab(quantize(target.float().cpu())).permute(0, 2, 3, 1).double().numpy()
    return torch.tensor([float(deltaE_ciede2000(p, t, channel_axis=-1).mean())
                         for p, t in zip(pred_lab, target_lab)])


def colourfulness(rgb: torch.Tensor) -> torch.Tensor:
    """Hasler & Süsstrunk (2003) colourfulness M = σ_rgyb + 0.3·μ_rgyb on 0..255 RGB.

    rgb: (B, 3, H, W) in [0, 1] -> (B,), 0 for a gray image; ~15 'slightly', ~60 'quite', ~110 'extremely'.
    """
    r, g, b = (quantize(rgb.float()) * 255).unbind(dim=1)
    rg, yb = (r - g).flatten(1), (0.5 * (r + g) - b).flatten(1)
    std = torch.sqrt(rg.var(dim=1, unbiased=False) + yb.var(dim=1, unbiased=False))
    mean = torch.sqrt(rg.mean(dim=1) ** 2 + yb.mean(dim=1) ** 2)
    return std + 0.3 * mean


def paired_bootstrap(a: np.ndarray, b: np.ndarray, num_resamples: int = 2000, seed: int = 0,
                     level: float = 0.95) -> tuple[float, float, float]:
    """Mean of the paired differences a - b (same images) with a percentile bootstrap interval.

    Resampling images keeps each pair together, so image difficulty cancels out.
    Returns (mean difference, low, high).
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired_bootstrap needs values for the same images; got shapes {a.shape} and {b.shape}")
    return bootstrap_ci(a - b, num_resamples, seed, level)


def bootstrap_ci(values: np.ndarray, num_resamples: int = 1000, seed: int = 0,
                 level: float = 0.95) -> tuple[float, float, float]:
    """Mean and percentile bootstrap interval of the mean. values: (N,) -> (mean, low, high)."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        raise ValueError("bootstrap_ci needs at least one value")
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, values.size, size=(num_resamples, values.size))].mean(axis=1)
    alpha = (1 - level) / 2
    low, high = np.quantile(means, [alpha, 1 - alpha])
    return float(values.mean()), float(low), float(high)


def pairwise_ab_distance(rgb_samples: torch.Tensor) -> torch.Tensor:
    """Diversity of K colorizations of the same images.

    Args:
        rgb_samples: (K, B, 3, H, W) in [0, 1], K >= 2.
    Returns:
        (B,) mean over sample pairs and pixels of the Euclidean ab distance, in CIELAB units.
    """
    K = rgb_samples.shape[0]
    if K < 2:
        raise ValueError(f"diversity needs at least 2 samples per image; got {K}")
    ab = torch.stack([rgb_to_lab(s)[:, 1:] for s in rgb_samples])  # (K, B, 2, H, W)
    distances = [(ab[i] - ab[j]).norm(dim=1).mean(dim=(1, 2)) for i in range(K) for j in range(i + 1, K)]
    return torch.stack(distances).mean(dim=0)


def evaluate(colorize: Colorizer, test: ImageSet, device: torch.device, method: str,
             batch_size: int = 16, seed: int = 0, num_diversity_samples: int = 0) -> pd.DataFrame:
    """Score ``colorize`` and the grayscale reference on every test image.

    Returns:
        One row per (method, image): columns method, image, psnr, ssim, ciede2000, colourfulness, delta_cf
        (colourfulness minus the ground truth's), and diversity when ``num_diversity_samples`` >= 2 (the
        grayscale row's diversity is 0 by construction).
    """
    generator = torch.Generator().manual_seed(seed)
    rows = []
    for start in range(0, len(test), batch_size):
        rgb = uint8_to_float(torch.from_numpy(np.ascontiguousarray(test.images[start:start + batch_size]))).to(device)
        names = test.names[start:start + batch_size]
        L, _ = rgb_to_model(rgb)
        outputs = {method: colorize(L, generator), GRAYSCALE: gray_rgb(L)}
        diversity = None
        if num_diversity_samples >= 2:
            samples = torch.stack([outputs[method]] + [colorize(L, generator)
                                                       for _ in range(num_diversity_samples - 1)])
            diversity = pairwise_ab_distance(samples).cpu()
        truth_colourfulness = colourfulness(rgb)
        for name, pred in outputs.items():
            psnr, ssim = psnr_ssim(pred, rgb)
            delta_e, colourful = ciede2000(pred, rgb), colourfulness(pred)
            for i, image in enumerate(names):
                row = {"method": name, "image": image, "psnr": float(psnr[i]), "ssim": float(ssim[i]),
                       "ciede2000": float(delta_e[i]), "colourfulness": float(colourful[i]),
                       "delta_cf": float(colourful[i] - truth_colourfulness[i])}
                if diversity is not None:
                    row["diversity"] = float(diversity[i]) if name == method else 0.0
                rows.append(row)
    return pd.DataFrame(rows)


def summarize(per_image: pd.DataFrame, num_resamples: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Per method: mean and 95% bootstrap interval of every metric column, and the image count."""
    metric_columns = [c for c in METRICS if c in per_image]
    rows = []
    for method, group in per_image.groupby("method", sort=False):
        row = {"method": method, "num_images": len(group)}
        for column in metric_columns:
            mean, low, high = bootstrap_ci(group[column].to_numpy(), num_resamples, seed)
            row.update({column: mean, f"{column}_low": low, f"{column}_high": high})
        rows.append(row)
    return pd.DataFrame(rows)

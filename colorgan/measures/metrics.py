"""PSNR/SSIM/CIEDE2000/colourfulness/LPIPS per image, FID per set (piq), bootstrap intervals, diversity, and the
evaluation of a colorizer.

Protocol (same for every method, see ../shared/docs/baselines.md §3): prediction and ground truth are
RGB at the evaluation size, quantised to 8 bits as a saved image would be, PSNR and SSIM with
data range 1, SSIM with an 11x11 Gaussian window (sigma 1.5) averaged over the three channels, as
Wang et al. and ``tf.image.ssim`` define it. The ground truth is never round-tripped through Lab.

Conventions (``colorgan.common.published.CONVENTIONS`` names them): ``psnr`` is the mean of per-image PSNR and
``psnr_pooled`` the PSNR of the MSE pooled over the set; ``colourfulness`` is Hasler & Süsstrunk's signed
opponents and ``colourfulness_abs`` the absolute-value variant of DDColor's and CT2's released evaluation code.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd
import piq
import torch

from colorgan.measures.feature_nets import FeatureNets
from colorgan.method.color import gray_rgb, rgb_to_lab, rgb_to_model, uint8_to_float
from colorgan.method.data import ImageSet

Colorizer = Callable[[torch.Tensor, torch.Generator], torch.Tensor]  # L (B,1,H,W) -> rgb (B,3,H,W)
GRAYSCALE = "grayscale (ab = 0)"
# per-image columns of ``evaluate`` (colourfulness_gap = prediction's minus ground truth's colourfulness, ΔCF;
# the *_abs columns are the same in DDColor's/CT2's absolute-value convention)
METRICS = ("psnr", "ssim", "ciede2000", "colourfulness", "colourfulness_gt", "colourfulness_gap",
           "colourfulness_abs", "colourfulness_abs_gt", "colourfulness_abs_gap", "lpips", "diversity")
METRIC_PROTOCOL = ("RGB quantised to 8 bit, PSNR/SSIM (piq, data_range=1, SSIM 11x11 Gaussian σ=1.5), PSNR as the "
                   "mean of per-image PSNR (psnr) and of the pooled MSE (psnr_pooled), CIEDE2000 (scikit-image), "
                   "colourfulness (Hasler-Süsstrunk, signed opponents) and colourfulness_abs (DDColor/CT2 code: "
                   "absolute opponents), LPIPS-VGG and FID (piq)")
DIVERSITY_SEED_OFFSET = 7919  # the diversity samples' generator: seed + this, independent of the scored sample's


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
    return _opponent_colourfulness(rgb, absolute=False)


def colourfulness_abs(rgb: torch.Tensor) -> torch.Tensor:
    """Colourfulness as DDColor's and CT2's released evaluation code computes it, on 0..255 RGB.

    DDColor ``basicsr/metrics/colorfulness.py`` (``calculate_cf``) and CT2 ``segm/eval_colorfullness.py`` take
    |R - G| and |(R + G)/2 - B| before the statistics; Hasler & Süsstrunk (``colourfulness``) keep the signs.
    The absolute values move weight from the spread term to the mean term, so the two differ by several units
    on photos and ΔCF can change sign: only compare a number with a published one in the same convention.

    rgb: (B, 3, H, W) in [0, 1] -> (B,), 0 for a gray image.
    """
    return _opponent_colourfulness(rgb, absolute=True)


def _opponent_colourfulness(rgb: torch.Tensor, absolute: bool) -> torch.Tensor:
    """σ_rgyb + 0.3·μ_rgyb of the opponents rg = R - G, yb = (R + G)/2 - B (|rg|, |yb| when ``absolute``)."""
    r, g, b = (quantize(rgb.float()) * 255).unbind(dim=1)
    rg, yb = (r - g).flatten(1), (0.5 * (r + g) - b).flatten(1)
    if absolute:
        rg, yb = rg.abs(), yb.abs()
    std = torch.sqrt(rg.var(dim=1, unbiased=False) + yb.var(dim=1, unbiased=False))
    mean = torch.sqrt(rg.mean(dim=1) ** 2 + yb.mean(dim=1) ** 2)
    return std + 0.3 * mean


def pooled_psnr(psnr: np.ndarray) -> float:
    """PSNR (dB) of the MSE pooled over a set, from per-image PSNR at data range 1.

    MSE_i = 10^(-PSNR_i / 10), so the pooled value -10·log10(mean MSE_i) is exact from the per-image column
    (torchmetrics' default reduction over a set; the mean of per-image PSNR is never below it, by Jensen).
    psnr: (N,) dB -> float dB.
    """
    psnr = np.asarray(psnr, dtype=np.float64)
    if psnr.size == 0:
        raise ValueError("pooled_psnr needs at least one per-image PSNR")
    return float(-10 * np.log10(np.mean(10 ** (-psnr / 10))))


def pooled_psnr_ci(psnr: np.ndarray, num_resamples: int = 1000, seed: int = 0,
                   level: float = 0.95) -> tuple[float, float, float]:
    """``pooled_psnr`` with a percentile bootstrap interval over images: (value, low, high) in dB.

    Resamples the per-image MSE; the pooled PSNR falls as the mean MSE rises, so the MSE interval's ends swap.
    """
    mse = 10 ** (-np.asarray(psnr, dtype=np.float64) / 10)
    _, mse_low, mse_high = bootstrap_ci(mse, num_resamples, seed, level)
    return pooled_psnr(psnr), float(-10 * np.log10(mse_high)), float(-10 * np.log10(mse_low))


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


def frechet_distance(pred_features: torch.Tensor, target_features: torch.Tensor) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (piq's FID, float64 statistics).

    Args:
        pred_features, target_features: (N, D) and (M, D); both need more than D rows, else their
            covariance is singular and the distance is dominated by estimation error (FID with the
            2,048 Inception features therefore needs at least FID_MIN_IMAGES = 2,049 images per set).
    Raises:
        ValueError: too few rows for the feature dimension.
    """
    dim = pred_features.shape[1]
    fewest = min(len(pred_features), len(target_features))
    if fewest <= dim:
        raise ValueError(f"a Fréchet distance on {dim} features needs at least {dim + 1} images per set; got {fewest}")
    return float(piq.FID().compute_metric(pred_features.double(), target_features.double()))


FID_MIN_IMAGES = 2049  # more than the Inception's 2,048 pool3 features (frechet_distance's rule)


class Scorer:
    """Scores batches of predictions against ground truth: the one metric path for runs and folders.

    Per image: PSNR, SSIM, CIEDE2000, colourfulness of prediction and ground truth and their gap (in both
    conventions: ``colourfulness*`` and ``colourfulness_abs*``), and LPIPS when ``nets.lpips`` is given.
    Per set: the Fréchet distance of ``nets.inception`` features.
    """

    def __init__(self, nets: FeatureNets | None = None):
        self.nets = nets or FeatureNets()
        self.rows: list[dict] = []
        self._features: dict[str, list[torch.Tensor]] = {}
        self._target_features: dict[str, torch.Tensor] = {}  # image name -> (D,), computed once per image

    @torch.no_grad()
    def add(self, method: str, names: list[str], pred: torch.Tensor, target: torch.Tensor,
            extra: dict[str, torch.Tensor] | None = None) -> None:
        """pred, target: (B, 3, H, W) RGB in [0, 1]; extra: more (B,) per-image columns (e.g. diversity)."""
        pred, target = quantize(pred.float()), quantize(target.float())
        psnr, ssim = psnr_ssim(pred, target)
        columns = {"psnr": psnr, "ssim": ssim, "ciede2000": ciede2000(pred, target),
                   "colourfulness": colourfulness(pred), "colourfulness_gt": colourfulness(target),
                   "colourfulness_abs": colourfulness_abs(pred), "colourfulness_abs_gt": colourfulness_abs(target)}
        columns["colourfulness_gap"] = columns["colourfulness"] - columns["colourfulness_gt"]
        columns["colourfulness_abs_gap"] = columns["colourfulness_abs"] - columns["colourfulness_abs_gt"]
        if self.nets.lpips is not None:
            columns["lpips"] = self.nets.lpips(pred, target)
        columns.update(extra or {})
        columns = {k: v.detach().float().cpu() for k, v in columns.items()}
        for i, image in enumerate(names):
            self.rows.append({"method": method, "image": image, **{k: float(v[i]) for k, v in columns.items()}})
        if self.nets.inception is not None:
            self._features.setdefault(method, []).append(self.nets.inception(pred).double().cpu())
            missing = [i for i, n in enumerate(names) if n not in self._target_features]
            if missing:
                feats = self.nets.inception(target[missing]).double().cpu()
                self._target_features.update({names[i]: f for i, f in zip(missing, feats)})

    def per_image(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows)

    def set_metrics(self) -> dict[str, dict]:
        """Per method: {'fid': value or None, 'fid_note': the network's label or why there is no value}."""
        out = {}
        for method in dict.fromkeys(r["method"] for r in self.rows):
            if self.nets.inception is None:
                out[method] = {"fid": None, "fid_note": self.nets.fid_label}
                continue
            pred = torch.cat(self._features[method])
            names = [r["image"] for r in self.rows if r["method"] == method]
            target = torch.stack([self._target_features[n] for n in names])
            try:
                out[method] = {"fid": frechet_distance(pred, target), "fid_note": self.nets.fid_label}
            except ValueError as err:
                out[method] = {"fid": None, "fid_note": f"n/a ({err})"}
        return out


def evaluate(colorize: Colorizer, test: ImageSet, device: torch.device, method: str,
             batch_size: int = 16, seed: int = 0, num_diversity_samples: int = 0) -> pd.DataFrame:
    """Score ``colorize`` and the grayscale reference on every test image (``evaluate_sets`` without FID)."""
    return evaluate_sets(colorize, test, device, method, batch_size, seed, num_diversity_samples)[0]


def evaluate_sets(colorize: Colorizer, test: ImageSet, device: torch.device, method: str,
                  batch_size: int = 16, seed: int = 0, num_diversity_samples: int = 0,
                  nets: FeatureNets | None = None, progress: bool = False) -> tuple[pd.DataFrame, dict[str, dict]]:
    """Score ``colorize`` and the grayscale reference on every test image.

    The scored colorization draws its noise from a generator seeded with ``seed``, the extra
    diversity samples from a second, independent one: the scored numbers do not depend on
    ``num_diversity_samples``.

    Returns:
        (per_image, set_metrics): one row per (method, image) with ``Scorer``'s columns (and diversity when
        ``num_diversity_samples`` >= 2; the grayscale row's diversity is 0 by construction); per method
        the set-level FID entry of ``Scorer.set_metrics``.
    """
    from tqdm.auto import tqdm  # imported here: only evaluation shows a bar

    generator = torch.Generator().manual_seed(seed)
    diversity_generator = torch.Generator().manual_seed(seed + DIVERSITY_SEED_OFFSET)
    scorer = Scorer(nets)
    for start in tqdm(range(0, len(test), batch_size), desc=f"evaluate {method}", disable=not progress, leave=False):
        # np.array copies: a memmap slice is read-only, which torch warns about
        rgb = uint8_to_float(torch.from_numpy(np.array(test.images[start:start + batch_size]))).to(device)
        names = test.names[start:start + batch_size]
        L, _ = rgb_to_model(rgb)
        pred = colorize(L, generator)
        extra, gray_extra = None, None
        if num_diversity_samples >= 2:
            samples = torch.stack([pred] + [colorize(L, diversity_generator)
                                            for _ in range(num_diversity_samples - 1)])
            extra = {"diversity": pairwise_ab_distance(samples)}
            gray_extra = {"diversity": torch.zeros(len(names))}
        scorer.add(method, names, pred, rgb, extra)
        scorer.add(GRAYSCALE, names, gray_rgb(L), rgb, gray_extra)
    per_image = scorer.per_image()
    # rows grouped by method (all of the method's images, then the grayscale reference's)
    per_image = pd.concat([per_image[per_image.method == method], per_image[per_image.method == GRAYSCALE]],
                          ignore_index=True)
    return per_image, scorer.set_metrics()


def summarize(per_image: pd.DataFrame, num_resamples: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Per method: mean and 95% bootstrap interval of every metric column, the pooled-MSE PSNR
    (``psnr_pooled``, with its interval), and the image count."""
    metric_columns = [c for c in METRICS if c in per_image]
    rows = []
    for method, group in per_image.groupby("method", sort=False):
        row = {"method": method, "num_images": len(group)}
        for column in metric_columns:
            mean, low, high = bootstrap_ci(group[column].to_numpy(), num_resamples, seed)
            row.update({column: mean, f"{column}_low": low, f"{column}_high": high})
        if "psnr" in group:
            pooled, low, high = pooled_psnr_ci(group["psnr"].to_numpy(), num_resamples, seed)
            row.update({"psnr_pooled": pooled, "psnr_pooled_low": low, "psnr_pooled_high": high})
        rows.append(row)
    return pd.DataFrame(rows)


def with_set_metrics(summary: pd.DataFrame, set_metrics: dict[str, dict]) -> pd.DataFrame:
    """``summary`` with each method's FID and its note as columns."""
    return summary.assign(fid=[set_metrics.get(m, {}).get("fid") for m in summary.method],
                          fid_note=[set_metrics.get(m, {}).get("fid_note", "") for m in summary.method])

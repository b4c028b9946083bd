"""Differentiable, batched sRGB <-> CIELAB (D65, 2° observer) in torch, and the model's normalisation.

Conventions used everywhere in the suite:
    rgb: (B, 3, H, W) float in [0, 1] (sRGB, gamma-encoded)
    lab: (B, 3, H, W) float, L in [0, 100], a and b roughly in [-110, 110]
    L:   (B, 1, H, W) in [-1, 1]  (= L* / 50 - 1)
    ab:  (B, 2, H, W) in [-1, 1]  (= (a*, b*) / 110)

The formulas follow IEC 61966-2-1 (sRGB) and CIE 15 (Lab), the same ones scikit-image uses, so
results agree with ``skimage.color.rgb2lab`` / ``lab2rgb`` (tested to < 1e-3).
"""

from __future__ import annotations

import torch

AB_SCALE = 110.0  # |a|, |b| of sRGB colours stay below ~107, so ab/110 lies in [-1, 1]

# sRGB (linear) -> XYZ, D65. Same matrix as skimage.color.colorconv.xyz_from_rgb.
_XYZ_FROM_RGB = torch.tensor(
    [
        [0.412453, 0.357580, 0.180423],
        [0.212671, 0.715160, 0.072169],
        [0.019334, 0.119193, 0.950227],
    ],
    dtype=torch.float64,
)
_RGB_FROM_XYZ = torch.linalg.inv(_XYZ_FROM_RGB)
_D65_WHITE = torch.tensor([0.95047, 1.0, 1.08883], dtype=torch.float64)
_DELTA = 6.0 / 29.0


def _apply_matrix(matrix: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Multiply every pixel's 3-vector by ``matrix``. x: (B, 3, H, W) -> (B, 3, H, W)."""
    return torch.einsum("ij,bjhw->bihw", matrix.to(device=x.device, dtype=x.dtype), x)


def _srgb_to_linear(rgb: torch.Tensor) -> torch.Tensor:
    # clamp before pow: a negative base gives NaN gradients even where torch.where discards it
    return torch.where(rgb > 0.04045, ((rgb.clamp(min=0.04045) + 0.055) / 1.055) ** 2.4, rgb / 12.92)


def _linear_to_srgb(linear: torch.Tensor) -> torch.Tensor:
    safe = linear.clamp(min=0.0031308)
    return torch.where(linear > 0.0031308, 1.055 * safe ** (1 / 2.4) - 0.055, linear * 12.92)


def _lab_f(t: torch.Tensor) -> torch.Tensor:
    return torch.where(t > _DELTA**3, t.clamp(min=_DELTA**3) ** (1 / 3), t / (3 * _DELTA**2) + 4 / 29)


def _lab_f_inv(t: torch.Tensor) -> torch.Tensor:
    return torch.where(t > _DELTA, t**3, 3 * _DELTA**2 * (t - 4 / 29))


def rgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """sRGB to CIELAB.

    Args:
        rgb: (B, 3, H, W) in [0, 1].
    Returns:
        lab: (B, 3, H, W); L in [0, 100], a/b in about [-110, 110].
    """
    _check_channels(rgb, 3, "rgb")
    xyz = _apply_matrix(_XYZ_FROM_RGB, _srgb_to_linear(rgb))
    xyz = xyz / _D65_WHITE.to(device=rgb.device, dtype=rgb.dtype).view(1, 3, 1, 1)
    fx, fy, fz = _lab_f(xyz).unbind(dim=1)
    L = 116 * fy - 16
    a = 500 * (fx - fy)
    b = 200 * (fy - fz)
    return torch.stack([L, a, b], dim=1)  # (B, 3, H, W)


def lab_to_rgb(lab: torch.Tensor) -> torch.Tensor:
    """CIELAB to sRGB, clipped to the displayable range.

    Args:
        lab: (B, 3, H, W); L in [0, 100].
    Returns:
        rgb: (B, 3, H, W) in [0, 1]. Out-of-gamut colours are clipped (as skimage does).
    """
    _check_channels(lab, 3, "lab")
    L, a, b = lab.unbind(dim=1)
    fy = (L + 16) / 116
    f = torch.stack([fy + a / 500, fy, fy - b / 200], dim=1)  # (B, 3, H, W)
    xyz = _lab_f_inv(f) * _D65_WHITE.to(device=lab.device, dtype=lab.dtype).view(1, 3, 1, 1)
    linear = _apply_matrix(_RGB_FROM_XYZ, xyz)
    return _linear_to_srgb(linear.clamp(min=0.0)).clamp(0.0, 1.0)


def normalize_lab(lab: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Split Lab into the model's inputs: L (B, 1, H, W) in [-1, 1] and ab (B, 2, H, W) in [-1, 1]."""
    return lab[:, :1] / 50.0 - 1.0, lab[:, 1:] / AB_SCALE


def denormalize_lab(L: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`normalize_lab`: L (B, 1, H, W) and ab (B, 2, H, W) in [-1, 1] -> lab (B, 3, H, W)."""
    return torch.cat([(L + 1.0) * 50.0, ab * AB_SCALE], dim=1)


def rgb_to_model(rgb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """rgb (B, 3, H, W) in [0, 1] -> (L, ab), both normalised to [-1, 1]."""
    return normalize_lab(rgb_to_lab(rgb))


def model_to_rgb(L: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
    """(L, ab) normalised to [-1, 1] -> rgb (B, 3, H, W) in [0, 1]."""
    return lab_to_rgb(denormalize_lab(L, ab))


def gray_rgb(L: torch.Tensor) -> torch.Tensor:
    """The grayscale reference output (ab = 0): L (B, 1, H, W) in [-1, 1] -> rgb (B, 3, H, W) in [0, 1]."""
    return model_to_rgb(L, torch.zeros_like(L).expand(-1, 2, -1, -1))


def uint8_to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 (B, 3, H, W) in [0, 255] -> float32 (B, 3, H, W) in [0, 1]."""
    return images.float().div_(255.0)


def _check_channels(x: torch.Tensor, channels: int, name: str) -> None:
    if x.ndim != 4 or x.shape[1] != channels:
        raise ValueError(f"{name} must have shape (B, {channels}, H, W); got {tuple(x.shape)}")

import numpy as np
import pytest
import torch
from skimage import color as skcolor

from colorgan.method.color import (denormalize_lab, gray_rgb, lab_to_rgb, model_to_rgb, normalize_lab, rgb_to_lab,
                            rgb_to_model, uint8_to_float)


def random_rgb(seed: int = 0, shape=(3, 3, 17, 19)) -> torch.Tensor:
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def to_hwc(x: torch.Tensor) -> np.ndarray:
    return x.permute(0, 2, 3, 1).numpy()


def test_rgb_to_lab_agrees_with_skimage():
    rgb = random_rgb()
    ours = to_hwc(rgb_to_lab(rgb))
    theirs = skcolor.rgb2lab(to_hwc(rgb))
    assert np.abs(ours - theirs).max() < 1e-3


def test_lab_to_rgb_agrees_with_skimage():
    lab = skcolor.rgb2lab(to_hwc(random_rgb(1)))
    ours = to_hwc(lab_to_rgb(torch.from_numpy(lab).permute(0, 3, 1, 2)))
    assert np.abs(ours - skcolor.lab2rgb(lab)).max() < 1e-3


def test_round_trip_float32():
    rgb = random_rgb(2).float()
    assert (lab_to_rgb(rgb_to_lab(rgb)) - rgb).abs().max() < 1e-3
    L, ab = rgb_to_model(rgb)
    assert (model_to_rgb(L, ab) - rgb).abs().max() < 1e-3


def test_normalised_ranges_cover_srgb_gamut():
    # every corner of the RGB cube (the most saturated colours) stays inside [-1, 1]
    corners = torch.tensor([[r, g, b] for r in (0, 1) for g in (0, 1) for b in (0, 1)], dtype=torch.float32)
    L, ab = rgb_to_model(corners.T.reshape(1, 3, 8, 1))
    assert L.min() >= -1 and L.max() <= 1 + 1e-5
    assert ab.abs().max() <= 1


def test_gray_output_has_zero_chroma():
    L, _ = normalize_lab(rgb_to_lab(random_rgb(3).float()))
    lab = rgb_to_lab(gray_rgb(L))
    assert lab[:, 1:].abs().max() < 0.05


def test_gradients_are_finite_at_black_and_white():
    rgb = torch.tensor([0.0, 1.0, 0.5, 1e-6]).view(1, 1, 2, 2).repeat(1, 3, 1, 1).requires_grad_(True)
    L, ab = rgb_to_model(rgb)
    (L.sum() + ab.sum() + model_to_rgb(L, ab).sum()).backward()
    assert torch.isfinite(rgb.grad).all()


def test_bad_shape_is_a_clear_error():
    with pytest.raises(ValueError, match=r"rgb must have shape \(B, 3, H, W\)"):
        rgb_to_lab(torch.rand(3, 8, 8))


def test_dark_colours_follow_the_linear_segments_of_srgb_and_lab():
    # below 0.04045 sRGB is linear, below (6/29)^3 of white Lab's f is: uniform random colours rarely go there
    rgb = random_rgb(4) * 0.06
    # 1e-4: scikit-image writes the linear Lab segment with rounded constants (0.008856, 7.787)
    assert np.abs(to_hwc(rgb_to_lab(rgb)) - skcolor.rgb2lab(to_hwc(rgb))).max() < 1e-4
    lab = skcolor.rgb2lab(to_hwc(rgb))
    ours = to_hwc(lab_to_rgb(torch.from_numpy(lab).permute(0, 3, 1, 2)))
    assert np.abs(ours - skcolor.lab2rgb(lab)).max() < 1e-6


def test_out_of_gamut_lab_is_clipped_as_skimage_clips():
    lab = torch.tensor([[60.0, 90.0, -100.0], [50.0, -128.0, 60.0], [30.0, 20.0, 20.0]], dtype=torch.float64)
    lab = lab.T.reshape(1, 3, 3, 1)  # the first two are out of gamut
    theirs = skcolor.lab2rgb(to_hwc(lab))
    assert theirs.max() == 1.0 and theirs.min() == 0.0  # the clip is reached at both ends
    assert np.abs(to_hwc(lab_to_rgb(lab)) - theirs).max() < 1e-9
    assert lab_to_rgb(lab.float()).dtype == torch.float32 and rgb_to_lab(random_rgb().float()).dtype == torch.float32


def test_known_values_of_the_normalisation():
    white = torch.ones(1, 3, 1, 1, dtype=torch.float64)
    # white: L = 100 and ab ~ 0 (the matrix's rows sum to D65 to 5 digits, so ~5e-3, as in skimage)
    assert rgb_to_lab(white).flatten().tolist() == pytest.approx(skcolor.rgb2lab(to_hwc(white)).ravel(), abs=1e-9)
    assert rgb_to_lab(white)[0, 0].item() == pytest.approx(100.0, abs=1e-6)
    lab = torch.tensor([25.0, -55.0, 110.0]).view(1, 3, 1, 1)
    L, ab = normalize_lab(lab)
    assert L.item() == -0.5 and ab.flatten().tolist() == [-0.5, 1.0]
    assert torch.equal(denormalize_lab(L, ab), lab)
    assert torch.equal(uint8_to_float(torch.tensor([0, 51, 255], dtype=torch.uint8).view(1, 3, 1, 1)).flatten(),
                       torch.tensor([0.0, 0.2, 1.0]))
    with pytest.raises(ValueError, match=r"lab must have shape \(B, 3, H, W\)"):
        lab_to_rgb(torch.rand(1, 2, 4, 4))
    with pytest.raises(ValueError, match=r"rgb must have shape \(B, 3, H, W\)"):
        rgb_to_lab(torch.rand(1, 1, 3, 4, 4))


class OneDevicePerOp(torch.overrides.TorchFunctionMode):
    """Fails any torch call whose tensor arguments (0-d ones aside, as CUDA allows them) are on different devices."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}

        def tensors(value):
            if isinstance(value, torch.Tensor):
                return [value] if value.dim() > 0 else []
            if isinstance(value, (list, tuple)):
                return [t for v in value for t in tensors(v)]
            return []

        devices = {t.device for t in tensors(list(args) + list(kwargs.values()))}
        assert len(devices) <= 1, f"{getattr(func, '__name__', func)} mixes devices {devices}"
        return func(*args, **kwargs)


def test_the_conversions_keep_every_constant_on_the_inputs_device():
    """An input on PyTorch's 'meta' device (shapes, no data): every op must see one device, as on CUDA, so a
    constant left on the CPU fails here on a CPU-only machine."""
    rgb = torch.rand(2, 3, 4, 5, device="meta")
    with OneDevicePerOp():
        lab = rgb_to_lab(rgb)
        back = lab_to_rgb(lab)
    assert lab.device.type == back.device.type == "meta" and lab.shape == back.shape == rgb.shape

"""FID and LPIPS: the code path on substitute networks the tests build (their numbers are not FID), the
minimum image count, and weights that are never downloaded (absent -> n/a, never random weights)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn

from colorgan.measures import feature_nets
from colorgan.measures.feature_nets import FeatureNets, InceptionFeatures, load_feature_nets, lpips_network
from colorgan.measures.metrics import FID_MIN_IMAGES, Scorer, frechet_distance

SUBSTITUTE = "substitute network: 4x4 average colours (not FID)"


def substitute_net() -> nn.Module:
    """rgb (B, 3, H, W) -> (B, 48): the 4x4 block means. Small, fixed, and enough to test the FID code path."""
    return nn.Sequential(nn.AdaptiveAvgPool2d(4), nn.Flatten())


def images(num: int, seed: int) -> torch.Tensor:
    return torch.rand(num, 3, 16, 16, generator=torch.Generator().manual_seed(seed))


def test_frechet_distance_is_zero_for_identical_sets_and_grows_with_a_shift():
    net = substitute_net()
    x = net(images(200, 0))
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-4)
    distances = [frechet_distance(net((images(200, 0) + shift).clamp(0, 1)), x) for shift in (0.05, 0.1, 0.2)]
    assert 0 < distances[0] < distances[1] < distances[2], distances


def test_frechet_distance_refuses_too_few_images():
    features = torch.randn(48, 48)  # not more rows than features: singular covariance
    with pytest.raises(ValueError, match="needs at least 49 images"):
        frechet_distance(features, torch.randn(100, 48))
    assert FID_MIN_IMAGES == 2049  # Inception's 2,048 pool3 features + 1


def test_scorer_labels_substitute_numbers_and_refuses_small_sets():
    nets = FeatureNets(inception=substitute_net(), fid_label=SUBSTITUTE)
    scorer = Scorer(nets)
    target = images(120, 1)
    for start in range(0, 120, 16):  # batches: the target features are computed once per image
        names = [f"im{i}" for i in range(start, min(start + 16, 120))]
        scorer.add("same", names, target[start:start + 16], target[start:start + 16])
        scorer.add("shifted", names, (target[start:start + 16] + 0.2).clamp(0, 1), target[start:start + 16])
    result = scorer.set_metrics()
    assert result["same"]["fid"] == pytest.approx(0.0, abs=1e-4)
    assert result["shifted"]["fid"] > 1.0
    assert all(entry["fid_note"] == SUBSTITUTE for entry in result.values())
    small = Scorer(nets)
    small.add("few", [f"im{i}" for i in range(10)], target[:10], target[:10])
    assert small.set_metrics()["few"] == {"fid": None, "fid_note": "n/a (a Fréchet distance on 48 features needs "
                                                                  "at least 49 images per set; got 10)"}


def test_absent_weights_give_na_labels_and_no_networks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    nets = load_feature_nets("auto", "auto")
    assert (nets.inception, nets.lpips, nets.is_fid, nets.is_lpips) == (None, None, False, False)
    assert nets.fid_label == "n/a (no Inception weights)" and nets.lpips_label == "n/a (no LPIPS weights)"
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_feature_nets(str(tmp_path / "missing.pth"), "off")
    scorer = Scorer(nets)
    scorer.add("m", ["a"], images(1, 0), images(1, 1))
    assert scorer.set_metrics()["m"] == {"fid": None, "fid_note": "n/a (no Inception weights)"}
    assert "lpips" not in scorer.per_image()


@pytest.mark.slow
def test_inception_loads_from_the_hub_cache_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A state_dict of the FID Inception's shape in $TORCH_HOME/hub/checkpoints/ is found and used (no download).

    Its weights here are random, so the values mean nothing: only the loading and the shapes are tested.
    """
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    reference = feature_nets.fid_inception_graph()  # a state_dict of the right shape (random weights)
    path = tmp_path / "hub" / "checkpoints" / feature_nets.INCEPTION_FILE
    path.parent.mkdir(parents=True)
    torch.save(reference.state_dict(), path)
    nets = load_feature_nets("auto", "off")
    assert nets.is_fid and feature_nets.INCEPTION_FILE in nets.fid_label
    assert isinstance(nets.inception, InceptionFeatures)
    with torch.no_grad():
        assert nets.inception(images(2, 0)).shape == (2, 2048)


@pytest.mark.slow
def test_lpips_is_zero_for_identical_images_and_positive_otherwise():
    """piq's LPIPS path with a random VGG16 and unit channel weights (a substitute: not LPIPS values)."""
    weights = [torch.ones(1, c, 1, 1) for c in (64, 128, 256, 512, 512)]
    net = lpips_network(torchvision.models.vgg16(weights=None).state_dict(), weights)
    x, y = images(2, 0), images(2, 1)
    with torch.no_grad():
        same, different = net(x, x), net(x, y)
    assert same.shape == (2,) and torch.allclose(same, torch.zeros(2))
    assert (different > 0).all()

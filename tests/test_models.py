from pathlib import Path

import pytest
import torch
import torchvision

from colorgan.method.config import VGG19_LAYERS
from colorgan.method.models import build_colorgan, build_vgg19_features, hub_checkpoint_path
from colorgan.method.step import ColorGANStep
from tests.bad_images import evil_pickle
from tests.conftest import tiny_config


@pytest.mark.parametrize("changes", [{}, {"vgg_layer": "relu2_1"}, {"vgg_layer": "relu3_1", "use_skips": False},
                                     {"use_noise": False, "lambda_s": 0.0}, {"norm": "instance"}])
def test_generator_and_critic_shapes(tmp_path: Path, changes):
    cfg = tiny_config(tmp_path, **changes)
    generator, critic = build_colorgan(cfg)
    L = torch.rand(2, 1, 32, 32) * 2 - 1
    z = generator.sample_noise(L, torch.Generator().manual_seed(0))
    ab, noise_features = generator(L, z)
    assert ab.shape == (2, 2, 32, 32) and ab.abs().max() <= 1
    _, channels, factor = VGG19_LAYERS[cfg.vgg_layer]
    if cfg.use_noise:
        assert noise_features.shape == (2, channels, 32 // factor, 32 // factor)
    else:
        assert z is None and noise_features is None
    assert critic(L, ab).shape == (2, 1, 32 // 2**cfg.disc_layers, 32 // 2**cfg.disc_layers)


def test_noise_changes_the_output(tiny_cfg):
    generator, _ = build_colorgan(tiny_cfg)
    generator.eval()
    L = torch.rand(1, 1, 32, 32) * 2 - 1
    a, _ = generator(L, generator.sample_noise(L, torch.Generator().manual_seed(0)))
    b, _ = generator(L, generator.sample_noise(L, torch.Generator().manual_seed(1)))
    assert not torch.allclose(a, b)


def test_random_vgg_is_seeded_and_frozen():
    a = build_vgg19_features("random", "relu2_1", seed=3)
    b = build_vgg19_features("random", "relu2_1", seed=3)
    assert a.source == "random(seed=3)"
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not any(p.requires_grad for p in a.parameters())
    assert a(torch.rand(1, 3, 16, 16)).shape == (1, 128, 8, 8)


def test_imagenet_weights_load_from_the_hub_cache(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    reference = torchvision.models.vgg19(weights=None)
    # only the layers we use, as torchvision names them: small enough to write in a test
    state = {f"features.{k}": v for k, v in reference.features[:21].state_dict().items()}
    path = hub_checkpoint_path(torchvision.models.VGG19_Weights.IMAGENET1K_V1)
    assert path.parent == tmp_path / "hub" / "checkpoints"
    path.parent.mkdir(parents=True)
    torch.save(state, path)
    vgg = build_vgg19_features("imagenet", "relu4_1", seed=0)
    assert vgg.source == "imagenet"
    assert torch.equal(vgg.features[0].weight, reference.features[0].weight)


def test_missing_imagenet_weights_say_where_to_put_them(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"place it at .*hub/checkpoints/vgg19-dcbb9e9d\.pth"):
        build_vgg19_features("imagenet", "relu4_1", seed=0)


def test_weights_file_path(tmp_path: Path):
    reference = torchvision.models.vgg19(weights=None).features[:7]
    torch.save(reference.state_dict(), tmp_path / "vgg.pth")  # features-only keys work too
    vgg = build_vgg19_features(str(tmp_path / "vgg.pth"), "relu2_1", seed=0)
    assert vgg.source.startswith("file:")
    with pytest.raises(ValueError, match="lacks"):
        build_vgg19_features(str(tmp_path / "vgg.pth"), "relu4_1", seed=0)


def test_weights_file_with_code_in_it_is_refused(tmp_path: Path):
    marker, evil = tmp_path / "payload_ran", tmp_path / "evil.pth"
    evil_pickle(evil, marker)
    cfg = tiny_config(tmp_path, vgg_weights=str(evil))  # the file exists, so the config accepts the path
    with pytest.raises(ValueError, match=r"weights file .*evil\.pth was refused: it holds pickled objects other "
                                         r"than tensors .*could run code.*GLOBAL \w+\.system"):
        ColorGANStep(cfg, torch.device("cpu"))
    assert not marker.exists()
    # control: the file really carries a payload, which runs as soon as it is loaded without weights_only
    torch.load(evil, weights_only=False)
    assert marker.exists()

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from baselines.chromagan import (NUM_CLASSES, ChromaGANConfig, ChromaGANGenerator, ChromaGANStep, class_kl_term,
                                 from_chromagan_units, tile_L, to_chromagan_units)
from colorgan.cli import METHODS, main
from colorgan.method.data import sample_images
from colorgan.method.models import PatchCritic, hub_checkpoint_path
from colorgan.report import table1
from tests.conftest import assert_resume_equals_uninterrupted, fixed_batch_history, write_images

CPU = torch.device("cpu")


def tiny_chromagan(tmp_path: Path, **changes) -> ChromaGANConfig:
    """A ChromaGAN with the paper's topology at widths that train a step in a fraction of a second."""
    params = dict(image_size=32, batch_size=4, num_sample_crops=16, num_steps=4, trunk_width=4, head_width=16,
                  global_dim=8, class_hidden=16, decoder_width=8, disc_width=8, disc_layers=2, teacher_size=32,
                  run_dir=str(tmp_path / "run"), progress=False, log_every=1, checkpoint_every=2, num_bootstrap=200)
    params.update(changes)
    return ChromaGANConfig(**params)


def fixed_batch(size: int = 32) -> torch.Tensor:
    train_set, _ = sample_images(8, size)
    return torch.from_numpy(train_set.images[:4].copy())


@pytest.mark.parametrize("size", [32, 64])
def test_generator_and_critic_shapes(tmp_path: Path, size: int):
    cfg = tiny_chromagan(tmp_path, image_size=size)
    generator = ChromaGANGenerator(cfg)
    L01 = torch.rand(2, 1, size, size)
    ab01, class_logits = generator(L01)
    assert ab01.shape == (2, 2, size, size) and 0 <= ab01.min() and ab01.max() <= 1  # sigmoid output
    assert class_logits.shape == (2, NUM_CLASSES)
    # the dense in-dimension follows the image size: (S/32)² positions of head_width channels
    assert generator.class_head[0].in_features == cfg.head_width * (size // 32) ** 2
    critic = PatchCritic(3, cfg.disc_width, cfg.disc_layers, slope=cfg.disc_slope)
    assert critic(L01, ab01).shape == (2, 1, size // 4, size // 4)


def test_units_are_the_official_codes_and_invert():
    L = torch.tensor([-1.0, 1.0]).view(2, 1, 1, 1)
    ab = torch.tensor([[0.0, -1.0], [0.5, 1.0]]).view(2, 2, 1, 1)
    L01, ab01 = to_chromagan_units(L, ab)
    assert L01.flatten().tolist() == [0.0, 1.0]  # L* / 100
    assert ab01[0, 0].item() == pytest.approx(128 / 255)  # a* = 0 is OpenCV's 128
    assert torch.allclose(from_chromagan_units(ab01), ab, atol=1e-6)
    assert torch.equal(tile_L(L01, "unit")[:, 2], L01[:, 0])  # the official code: tiled L in [0, 1], no mean
    normalised = tile_L(torch.full((1, 1, 1, 1), 0.485), "imagenet")
    assert normalised[0, 0].item() == pytest.approx(0.0) and normalised[0, 1].item() != 0  # per-channel mean/std


def test_class_kl_is_zero_only_for_matching_distributions():
    logits = torch.randn(3, NUM_CLASSES)
    assert class_kl_term(logits, logits).item() == pytest.approx(0, abs=1e-5)
    assert class_kl_term(logits, torch.randn(3, NUM_CLASSES)).item() > 0.1


def test_chromagan_learns_a_fixed_batch(tmp_path: Path):
    torch.manual_seed(0)
    color = [terms["color"] for terms in
             fixed_batch_history(ChromaGANStep(tiny_chromagan(tmp_path, lr_g=3e-3, lr_d=3e-3), CPU), fixed_batch(), 40)]
    assert color[-1] < 0.5 * color[0], color


def test_random_weights_switch_the_class_term_off_and_say_so(tmp_path: Path, caplog):
    with caplog.at_level(logging.WARNING):
        step = ChromaGANStep(tiny_chromagan(tmp_path), CPU)
    assert "class KL term (alpha=0.003) is OFF" in caplog.text
    assert step.teacher is None and step.weights["classes"] == 0
    description = step.describe()
    assert description["vgg_weights"] == "random(seed=0)"
    assert description["class_kl"].startswith("off (vgg_weights=random")
    terms = step(fixed_batch())
    assert "classes" not in terms and {"color", "adversarial", "g_total", "d_loss", "gp", "wasserstein"} <= set(terms)


def write_vgg16_to_hub_cache(torch_home: Path) -> dict[str, torch.Tensor]:
    """A VGG16 state_dict under the file name torchvision expects. Conv weights are random; the 124M classifier
    weights are broadcast views of small tensors, so the file stays a few dozen MB."""
    features = torchvision.models.vgg16(weights=None).features.state_dict()
    state = {f"features.{k}": v for k, v in features.items()}
    for index, (d_in, d_out) in {0: (25088, 4096), 3: (4096, 4096), 6: (4096, NUM_CLASSES)}.items():
        state[f"classifier.{index}.weight"] = (torch.randn(d_out, 1) * 0.01).expand(d_out, d_in)
        state[f"classifier.{index}.bias"] = torch.randn(d_out) * 0.1
    path = hub_checkpoint_path(torchvision.models.VGG16_Weights.IMAGENET1K_V1)
    assert path.parent == torch_home / "hub" / "checkpoints" and path.name == "vgg16-397923af.pth"
    path.parent.mkdir(parents=True)
    torch.save(state, path)
    return state


def test_imagenet_weights_switch_the_class_term_on(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    state = write_vgg16_to_hub_cache(tmp_path)
    step = ChromaGANStep(tiny_chromagan(tmp_path, vgg_weights="imagenet", trunk_width=64, batch_size=2), CPU)
    assert step.teacher is not None and step.weights["classes"] == 0.003
    assert step.describe()["vgg_weights"] == "imagenet" and step.describe()["class_kl"].startswith("on (alpha=0.003")
    assert torch.equal(step.generator.trunk[0].weight, state["features.0.weight"])  # trunk initialised from VGG16
    terms = step(fixed_batch()[:2])
    assert terms["classes"] > 0
    assert step.generator.class_head[-1].weight.grad is not None  # the KL term trains the class head
    assert not any(p.requires_grad for p in step.teacher.parameters())


def test_missing_weights_and_wrong_trunk_width_are_clear_errors(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"place it at .*hub/checkpoints/vgg16-397923af\.pth"):
        ChromaGANStep(tiny_chromagan(tmp_path, vgg_weights="imagenet", trunk_width=64), CPU)
    with pytest.raises(ValueError, match="trunk_width: 4 cannot hold vgg_weights='imagenet'"):
        tiny_chromagan(tmp_path, vgg_weights="imagenet")
    with pytest.raises(ValueError, match="image_size: 48 must be divisible by 32"):
        tiny_chromagan(tmp_path, image_size=48)


def test_resume_equals_uninterrupted(tmp_path: Path):
    assert_resume_equals_uninterrupted(tiny_chromagan, ChromaGANStep, tmp_path)
    provenance = json.loads((tmp_path / "b" / "run" / "provenance.json").read_text())
    assert provenance["class_kl"].startswith("off") and provenance["vgg_weights"] == "random(seed=0)"


TINY_CLI = ["--method", "chromagan", "--image-size", "32", "--batch-size", "4", "--num-sample-crops", "16",
            "--num-steps", "2", "--trunk-width", "4", "--head-width", "16", "--global-dim", "8", "--class-hidden", "16",
            "--decoder-width", "8", "--disc-width", "8", "--no-progress", "--num-bootstrap", "200"]


def test_cli_train_evaluate_colorize_and_table1(tmp_path: Path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the image cache goes under ./.cache
    run = tmp_path / "run"
    assert main(["train", *TINY_CLI, "--run-dir", str(run)]) == 0
    assert main(["evaluate", str(run)]) == 0
    out = capsys.readouterr().out
    assert "chromagan" in out and "notes: class KL term off (vgg_weights=random" in out
    table, _ = table1.table1([str(run)], METHODS)  # the book's Table 1 shows the switch beside the numbers
    assert list(table.Method) == ["ChromaGAN", "grayscale (ab = 0)"] and table.steps[0] == 2
    assert table.notes[0].startswith("class KL term off (vgg_weights=random")
    write_images(tmp_path / "photos", 1, size=(50, 40))
    assert main(["colorize", str(tmp_path / "photos" / "img_000.png"), "-o", str(tmp_path / "out"),
                 "--run", str(run)]) == 0
    assert np.asarray(Image.open(tmp_path / "out" / "img_000_color.png")).shape == (40, 50, 3)


def test_critic_scores_the_updated_generators_fake(tmp_path: Path, monkeypatch):
    """As the official Keras loop: the critic update colorizes the batch again with the just-updated generator."""
    import baselines.chromagan as chromagan

    seen = {}

    def spy(critic, optimizer, L, ab_real, ab_fake, *args, **kwargs):
        seen["fake"] = ab_fake.clone()
        return {}

    monkeypatch.setattr(chromagan, "critic_update", spy)
    step = ChromaGANStep(tiny_chromagan(tmp_path, lr_g=1e-2), torch.device("cpu"))  # a step that visibly moves G
    batch = fixed_batch()
    L01, _ = chromagan.to_chromagan_units(*chromagan.rgb_to_model(chromagan.uint8_to_float(batch)))
    with torch.no_grad():
        before, _ = step.generator(L01)
    step(batch)
    with torch.no_grad():
        after, _ = step.generator(L01)
    assert torch.allclose(seen["fake"], after, atol=1e-6)
    assert (seen["fake"] - before).abs().max() > 1e-3  # the pre-update fake is not what the critic saw

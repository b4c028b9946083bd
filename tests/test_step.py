"""ColorGANStep's speed switches change speed, not the maths; random draws split exactly across ranks."""

import copy
from pathlib import Path

import pytest
import torch

from colorgan import losses
from colorgan.models import VGGFeatures, build_colorgan, build_vgg19_features
from colorgan.step import ColorGANStep
from tests.conftest import tiny_config

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def vgg() -> VGGFeatures:
    return build_vgg19_features("random", "relu4_1", seed=0)  # built once: a random VGG19 takes seconds


def run_steps(cfg, vgg: VGGFeatures, num_steps: int = 2) -> tuple[list[dict[str, float]], dict[str, torch.Tensor]]:
    torch.manual_seed(0)
    step = ColorGANStep(cfg, CPU, copy.deepcopy(vgg))
    batch = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    terms = [{k: float(v) for k, v in step(batch).items()} for _ in range(num_steps)]
    return terms, {k: v.detach().clone() for k, v in step.generator.state_dict().items()}


# Weight tolerance: None = not compared. channels_last picks other convolution kernels, and Adam turns
# their rounding differences in near-zero gradients into full-size steps; the loss terms still agree.
@pytest.mark.parametrize("switch, weight_atol", [({"share_vgg_targets": False}, 0.0), ({"fused_adam": False}, 1e-6),
                                                 ({"channels_last": True}, None)])
def test_speed_switches_keep_the_maths(tmp_path: Path, vgg, switch, weight_atol):
    ref_terms, ref_weights = run_steps(tiny_config(tmp_path), vgg)
    terms, weights = run_steps(tiny_config(tmp_path, **switch), vgg)
    for ref, got in zip(ref_terms, terms):
        assert got.keys() == ref.keys()
        assert all(got[k] == pytest.approx(ref[k], rel=1e-4, abs=1e-6) for k in ref), (ref, got)
    if weight_atol is not None:
        assert all(torch.allclose(weights[k].float(), ref_weights[k].float(), rtol=0, atol=weight_atol)
                   for k in ref_weights)


def test_bf16_autocast_trains(tmp_path: Path, vgg):
    terms, _ = run_steps(tiny_config(tmp_path, amp="bf16"), vgg)
    assert all(torch.isfinite(torch.tensor(list(t.values()))).all() for t in terms)


def test_noise_and_penalty_draws_split_across_ranks(tiny_cfg):
    generator, critic = build_colorgan(tiny_cfg)
    L = torch.zeros(4, 1, 32, 32)
    whole = generator.sample_noise(L, torch.Generator().manual_seed(5))
    halves = [generator.sample_noise(L[:2], torch.Generator().manual_seed(5), (r, 2)) for r in (0, 1)]
    assert torch.equal(torch.cat(halves), whole)

    ab_real, ab_fake = torch.rand(4, 2, 32, 32), torch.rand(4, 2, 32, 32)
    mixed = []
    spy = lambda L, ab: mixed.append(ab.detach()) or critic(L, ab)  # noqa: E731 - records x̂
    losses.gradient_penalty(spy, L, ab_real, ab_fake, torch.Generator().manual_seed(6))
    for r in (0, 1):
        rows = slice(2 * r, 2 * r + 2)
        losses.gradient_penalty(spy, L[rows], ab_real[rows], ab_fake[rows], torch.Generator().manual_seed(6), (r, 2))
    assert torch.equal(torch.cat(mixed[1:]), mixed[0])

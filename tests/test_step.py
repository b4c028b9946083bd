"""ColorGANStep's speed switches change speed, not the maths; random draws split exactly across ranks."""

import copy
from pathlib import Path

import pytest
import torch

from colorgan.method import losses
from colorgan.method.models import VGGFeatures, build_colorgan, build_vgg19_features
from colorgan.method.step import ColorGANStep
from tests.conftest import relative_distance, tiny_config

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def vgg() -> VGGFeatures:
    return build_vgg19_features("random", "relu4_1", seed=0)  # built once: a random VGG19 takes seconds


def module_tensors(step: ColorGANStep) -> dict[str, torch.Tensor]:
    """The generator's and critic's tensors now, keyed '<module>.<name>'."""
    return {f"{m}.{k}": v.detach().clone()
            for m, module in step.modules().items() for k, v in module.state_dict().items()}


def parameter_names(step: ColorGANStep) -> set[str]:
    """The keys of ``module_tensors`` that are trained weights (the rest: BatchNorm statistics and counters)."""
    return {f"{m}.{k}" for m, module in step.modules().items() for k, _ in module.named_parameters()}


Run = tuple[list[dict[str, float]], dict[str, torch.Tensor], dict[str, torch.Tensor], set[str]]


def run_steps(cfg, vgg: VGGFeatures, num_steps: int = 2) -> Run:
    """``num_steps`` updates on one fixed batch: (each step's loss terms, final tensors, initial tensors,
    the names among them that are trained weights)."""
    torch.manual_seed(0)
    step = ColorGANStep(cfg, CPU, copy.deepcopy(vgg))
    initial = module_tensors(step)
    batch = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    terms = [{k: float(v) for k, v in step(batch).items()} for _ in range(num_steps)]
    return terms, module_tensors(step), initial, parameter_names(step)


@pytest.fixture(scope="module")
def reference(vgg, tmp_path_factory) -> Run:
    """fp32, eager, contiguous, fused Adam, shared VGG targets (tiny_config's defaults)."""
    return run_steps(tiny_config(tmp_path_factory.mktemp("reference")), vgg)


def assert_same_training(reference: Run, run: Run, loss_rel: float, loss_abs: float,
                         weight_distance: float | None) -> None:
    """Every loss term of every step within ``pytest.approx(rel=loss_rel, abs=loss_abs)`` of the reference's,
    and the final weights within ``weight_distance`` of the reference's, in units of how far the
    reference's training moved them (``relative_distance``: 0 = identical, 1 = as if untrained; None:
    not compared). The BatchNorm statistics, which move with the data alone, are held to the same
    bound on their own."""
    (ref_terms, ref_tensors, ref_initial, parameters), (terms, tensors, initial, _) = reference, run
    assert all(torch.equal(initial[k], ref_initial[k]) for k in ref_initial)  # the same start
    for number, (ref, got) in enumerate(zip(ref_terms, terms), 1):
        assert got.keys() == ref.keys()
        assert all(got[k] == pytest.approx(ref[k], rel=loss_rel, abs=loss_abs) for k in ref), (number, ref, got)
    if weight_distance is None:
        return
    statistics = [k for k, v in ref_tensors.items() if k not in parameters and v.is_floating_point()]
    for kind, keys in (("weights", parameters), ("BatchNorm statistics", statistics)):
        distance = relative_distance(tensors, ref_tensors, ref_initial, keys)
        assert distance <= weight_distance, f"{kind} ended {distance:.3g} of the training's own change apart"


# Each switch, its stated tolerances (docs/speed.md) and what was measured (2 steps, 32², batch 4;
# weights: relative_distance over the trained weights):
# - share_vgg_targets off: the same operations, so bit for bit.
# - fused_adam off: the same sums in another order (losses 7e-8 relative, weights 2e-6).
# - channels_last: other convolution kernels (losses 5e-6, weights 5.4e-3: Adam turns rounding in
#   near-zero gradients into full-size steps, which one L2 norm over all weights keeps small).
# - compile (slow test below): losses 2e-6, weights within the same bound as channels_last.
# - bf16 autocast: 8-bit mantissas (losses 2e-3 relative, but the Wasserstein estimate, a difference of
#   two close scores, 1e-2 relative, 4e-5 absolute). Weights are not held (None): Adam's first steps
#   are about lr·sign(gradient) per weight, and bf16's rounding flips the sign of the many near-zero
#   gradients, so after 2 steps the weights are 0.56 apart (lr x1.5: 0.64).
# A changed learning rate ends further apart than any bound here: lr x1.1 0.22, lr x1.5 0.64 (test below).
SWITCHES = {
    "share_vgg_targets": ({"share_vgg_targets": False}, 0.0, 0.0, 0.0),
    "fused_adam": ({"fused_adam": False}, 1e-5, 1e-7, 1e-4),
    "channels_last": ({"channels_last": True}, 1e-4, 1e-6, 5e-2),
    "bf16": ({"amp": "bf16"}, 5e-3, 1e-4, None),
}


@pytest.mark.parametrize("name", SWITCHES)
def test_speed_switches_keep_the_maths(tmp_path: Path, vgg, reference, name):
    switch, loss_rel, loss_abs, weight_distance = SWITCHES[name]
    assert_same_training(reference, run_steps(tiny_config(tmp_path, **switch), vgg), loss_rel, loss_abs,
                         weight_distance)


def test_switch_tolerances_catch_a_changed_learning_rate(tmp_path: Path, vgg, reference):
    # the loosest tolerances above must still see a real change in the maths
    changed = run_steps(tiny_config(tmp_path, lr_g=1.5e-4, lr_d=3e-4), vgg)
    with pytest.raises(AssertionError, match="of the training's own change apart"):
        assert_same_training(reference, changed, 1.0, 1.0, max(t[-1] or 0.0 for t in SWITCHES.values()))


@pytest.mark.slow
def test_compile_keeps_the_maths(tmp_path: Path, vgg, reference):
    # torch.compile (inductor, C++ on CPU) of the generator, the critic and the VGG: minutes on 2 CPU cores
    assert_same_training(reference, run_steps(tiny_config(tmp_path, compile=True), vgg), 1e-4, 1e-6, 5e-2)


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

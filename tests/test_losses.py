import pytest
import torch

from colorgan.method import losses
from colorgan.method.models import PatchCritic


def test_critic_loss_rewards_real_over_fake():
    assert losses.critic_loss(torch.tensor([2.0]), torch.tensor([-1.0])) == -3.0
    assert losses.adversarial_term(torch.tensor([0.5, 1.5])) == -1.0


def test_gradient_penalty_is_zero_for_a_unit_slope_critic():
    # D(L, ab) = sum(ab * w) with |w| = 1 has gradient norm exactly 1 everywhere
    w = torch.randn(1, 2, 4, 4)
    w = w / w.norm()
    critic = lambda L, ab: (ab * w).sum(dim=(1, 2, 3))  # noqa: E731
    ab = torch.randn(3, 2, 4, 4)
    assert losses.gradient_penalty(critic, torch.zeros(3, 1, 4, 4), ab, ab + 1).item() == pytest.approx(0, abs=1e-6)
    steep = lambda L, ab: 3 * (ab * w).sum(dim=(1, 2, 3))  # noqa: E731
    assert losses.gradient_penalty(steep, torch.zeros(3, 1, 4, 4), ab, ab + 1).item() == pytest.approx(4, rel=1e-4)


def test_gradient_penalty_reaches_the_critic_weights():
    critic = PatchCritic(3, 4, 2)
    penalty = losses.gradient_penalty(critic, torch.rand(2, 1, 16, 16), torch.rand(2, 2, 16, 16),
                                      torch.rand(2, 2, 16, 16))
    penalty.backward()
    assert all(p.grad is not None for name, p in critic.named_parameters() if name.endswith("weight"))


def test_objective_weights_terms_and_skips_zero_weights():
    terms = {"l1": torch.tensor(2.0), "adversarial": torch.tensor(-1.0)}
    weights = {"adversarial": 0.1, "perceptual": 0.0, "l1": 10.0, "feature": 0.0}
    total, logged = losses.generator_objective(terms, weights)
    assert total.item() == pytest.approx(19.9)
    assert set(logged) == {"l1", "adversarial"}
    assert losses.active_terms(weights) == ["adversarial", "l1"]
    with pytest.raises(KeyError, match="perceptual"):
        losses.generator_objective(terms, {**weights, "perceptual": 1.0})


def test_gradient_penalty_is_taken_at_the_interpolates():
    # D(L, ab) = ½|ab|² has gradient ab: the penalty reads the norm of the very points it is evaluated at,
    # so the real points, the fake points or another mix give another number
    critic = lambda L, ab: 0.5 * (ab ** 2).sum(dim=(1, 2, 3))  # noqa: E731
    gen = torch.Generator().manual_seed(0)
    real, fake = torch.randn(4, 2, 3, 3, generator=gen), 3 * torch.randn(4, 2, 3, 3, generator=gen)
    u = torch.rand(4, 1, 1, 1, generator=torch.Generator().manual_seed(11))  # the draw gradient_penalty makes
    expected = ((((u * real + (1 - u) * fake).flatten(1).norm(dim=1)) - 1) ** 2).mean()
    penalty = losses.gradient_penalty(critic, torch.zeros(4, 1, 3, 3), real, fake, torch.Generator().manual_seed(11))
    assert penalty.item() == pytest.approx(expected.item(), rel=1e-6)
    for wrong in (real, fake, 0.5 * (real + fake), (1 - u) * real + u * fake):
        assert abs(((wrong.flatten(1).norm(dim=1) - 1) ** 2).mean().item() - expected.item()) > 0.1
    # world_size 2: rank 1 takes rows 2..3 of the draw made for the global batch of 4
    half = losses.gradient_penalty(critic, torch.zeros(2, 1, 3, 3), real[2:], fake[2:],
                                   torch.Generator().manual_seed(11), shard=(1, 2))
    mixed = u[2:] * real[2:] + (1 - u[2:]) * fake[2:]
    assert half.item() == pytest.approx(((mixed.flatten(1).norm(dim=1) - 1) ** 2).mean().item(), rel=1e-6)


def test_gradient_penalty_does_not_reach_the_generator_but_reaches_the_critic():
    w = torch.randn(1, 2, 4, 4, requires_grad=True)
    fake = torch.randn(2, 2, 4, 4, requires_grad=True)
    penalty = losses.gradient_penalty(lambda L, ab: (ab * w).sum(dim=(1, 2, 3)) ** 2, torch.zeros(2, 1, 4, 4),
                                      torch.randn(2, 2, 4, 4), fake)
    penalty.backward()
    assert fake.grad is None  # ab_fake is detached: the penalty trains the critic only
    assert w.grad is not None and w.grad.abs().sum() > 0  # create_graph: the gradient's norm is differentiable


@pytest.mark.parametrize("term", [losses.l1_term, losses.perceptual_term, losses.feature_term])
def test_l1_terms_are_the_mean_absolute_difference(term):
    gen = torch.Generator().manual_seed(2)
    fake, real = torch.randn(2, 3, 4, 5, generator=gen), torch.randn(2, 3, 4, 5, generator=gen)
    assert term(fake, real).item() == pytest.approx((fake - real).abs().mean().item(), rel=1e-6)
    assert term(fake, real).ndim == 0


def test_objective_ignores_a_computed_term_whose_weight_is_zero_and_logs_detached_values():
    l1 = torch.tensor(2.0, requires_grad=True)
    terms = {"l1": l1, "feature": torch.tensor(5.0), "adversarial": torch.tensor(-1.0)}
    total, logged = losses.generator_objective(terms, {"l1": 10.0, "feature": 0.0, "adversarial": 0.5})
    assert total.item() == pytest.approx(19.5)  # feature computed but weighted 0: left out, not multiplied
    assert {name: value.item() for name, value in logged.items()} == {"l1": 2.0, "feature": 5.0, "adversarial": -1.0}
    assert not any(value.requires_grad for value in logged.values()) and total.requires_grad
    assert losses.active_terms({"l1": 1e-9, "feature": 0.0, "adversarial": -1.0}) == ["l1"]
    # a computed term without a weight is logged and left out of the total
    total, logged = losses.generator_objective({**terms, "extra": torch.tensor(7.0)}, {"l1": 1.0})
    assert total.item() == 2.0 and logged["extra"].item() == 7.0


def test_gradient_penalty_mixes_in_the_dtype_of_the_data():
    seen = []

    def critic(L, ab):
        seen.append(ab.dtype)
        return ab.float().sum(dim=(1, 2, 3))

    ab = torch.rand(2, 2, 4, 4).to(torch.bfloat16)
    losses.gradient_penalty(critic, torch.zeros(2, 1, 4, 4), ab, ab)
    assert seen == [torch.bfloat16]  # u is cast to the data's dtype: a float32 u would promote the mix

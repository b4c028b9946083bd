import pytest
import torch

from colorgan import losses
from colorgan.models import PatchCritic


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

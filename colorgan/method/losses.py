"""Loss terms as small pure functions (paper eq. 1-2), plus the Wasserstein critic's objective.

Each term takes tensors and returns a scalar. ``generator_objective`` weights them; a term whose
weight is 0 is never computed (the caller only computes terms listed by ``active_terms``).

Choice of Wasserstein regulariser: the paper cites the original WGAN (Arjovsky et al. 2017, [2]),
which clips critic weights. We default to the gradient penalty (Gulrajani et al. 2017) because
clipping is known to under-use the critic's capacity and to be sensitive to the clip value; the
paper's own choice is one switch away (``adversarial='wgan-clip'``).
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from colorgan.common import runtime

LOSS_WEIGHTS = {"adversarial": "lambda_g", "perceptual": "lambda_p", "l1": "lambda_l1", "feature": "lambda_s"}


def l1_term(ab_fake: torch.Tensor, ab_real: torch.Tensor) -> torch.Tensor:
    """L1 (eq. 1): mean |ab_fake - ab_real| over (B, 2, H, W), ab in [-1, 1]."""
    return F.l1_loss(ab_fake, ab_real)


def perceptual_term(features_fake: torch.Tensor, features_real: torch.Tensor) -> torch.Tensor:
    """Lp (eq. 1): mean L1 distance between VGG features (B, C, h, w) of output and target RGB."""
    return F.l1_loss(features_fake, features_real)


def feature_term(noise_features: torch.Tensor, features_real: torch.Tensor) -> torch.Tensor:
    """Ls (eq. 2): E|G_f(z) - VGG(y)|_1, both (B, C, h, w).

    G_f never sees the image, so this pulls G_f(z) towards the expected VGG feature map of the data;
    the paper gives no further detail and we implement eq. 2 literally.
    """
    return F.l1_loss(noise_features, features_real)


def adversarial_term(critic_fake: torch.Tensor) -> torch.Tensor:
    """Lg (eq. 1), the generator's Wasserstein loss: -E[D(L, ab_fake)]."""
    return -critic_fake.mean()


def critic_loss(critic_real: torch.Tensor, critic_fake: torch.Tensor) -> torch.Tensor:
    """Wasserstein critic loss: E[D(fake)] - E[D(real)] (the critic raises real scores, lowers fake)."""
    return critic_fake.mean() - critic_real.mean()


def gradient_penalty(critic: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], L: torch.Tensor,
                     ab_real: torch.Tensor, ab_fake: torch.Tensor, generator: torch.Generator | None = None,
                     shard: tuple[int, int] = (0, 1)) -> torch.Tensor:
    """WGAN-GP penalty E[(||∇_ab D(L, x̂)||_2 - 1)²] at x̂ = u·ab_real + (1-u)·ab_fake, u ~ U(0, 1) per sample.

    The gradient is taken w.r.t. ab only (L is the condition, as in ChromaGAN's official code).
    ``shard`` = (rank, world_size): u is drawn for the global batch and this rank's rows are used.
    """
    rank, world_size = shard
    u = torch.rand(ab_real.shape[0] * world_size, 1, 1, 1, generator=generator)
    u = runtime.to_device(runtime.rows_of_rank(u, rank, world_size), ab_real.device).to(ab_real.dtype)
    mixed = (u * ab_real + (1 - u) * ab_fake.detach()).requires_grad_(True)
    scores = critic(L, mixed)
    (grad,) = torch.autograd.grad(scores.sum(), mixed, create_graph=True)
    return ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()


def active_terms(weights: dict[str, float]) -> list[str]:
    """Names of the terms with a non-zero weight, e.g. {'l1': 10, 'feature': 0} -> ['l1']."""
    return [name for name, weight in weights.items() if weight > 0]


def generator_objective(terms: dict[str, torch.Tensor], weights: dict[str, float]
                        ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Eq. 1: sum of weight·term over the computed terms.

    Args:
        terms: {'adversarial'|'perceptual'|'l1'|'feature': scalar}; only active terms need be present.
        weights: the same keys -> lambda.
    Returns:
        (total, {name: detached value}) for backward and for logging.
    """
    missing = [name for name in active_terms(weights) if name not in terms]
    if missing:
        raise KeyError(f"terms {missing} have non-zero weight but were not computed")
    total = sum(weights[name] * value for name, value in terms.items() if weights.get(name, 0) > 0)
    return total, {name: value.detach() for name, value in terms.items()}

"""ColorGAN's training step: one critic update and one generator update on the paper's objective (eq. 1)."""

from __future__ import annotations

import torch
from torch import nn

from colorgan import losses, runtime
from colorgan.color import model_to_rgb, rgb_to_model, uint8_to_float
from colorgan.config import ColorGANConfig
from colorgan.models import VGGFeatures, build_colorgan, build_vgg19_features


class ColorGANStep:
    """Plugs ColorGAN into ``train.fit``. Holds the networks, the frozen VGG19 and both Adam optimisers.

    Order per batch (pix2pix style): generator forward once; critic update(s) on the detached fake;
    then the generator update against the updated critic. Target VGG features are computed once and
    shared by Lp and Ls.
    """

    def __init__(self, cfg: ColorGANConfig, device: torch.device, vgg: VGGFeatures | None = None):
        self.cfg, self.device = cfg, device
        self.generator, self.critic = build_colorgan(cfg)
        self.generator.to(device)
        self.critic.to(device)
        self.weights = {name: getattr(cfg, attr) for name, attr in losses.LOSS_WEIGHTS.items()}
        needs_vgg = self.weights["perceptual"] > 0 or self.weights["feature"] > 0
        self.vgg = (vgg or build_vgg19_features(cfg.vgg_weights, cfg.vgg_layer, cfg.seed)).to(device) \
            if needs_vgg else None
        self.opt_g = torch.optim.Adam(self.generator.parameters(), lr=cfg.lr_g, betas=(cfg.beta1, cfg.beta2))
        self.opt_d = torch.optim.Adam(self.critic.parameters(), lr=cfg.lr_d, betas=(cfg.beta1, cfg.beta2))
        self.rng = torch.Generator().manual_seed(cfg.seed)
        self.amp_dtype = runtime.autocast_dtype(cfg.amp, device)

    def describe(self) -> dict[str, str]:
        """Recorded in provenance.json and shown beside every result."""
        return {"vgg_weights": self.vgg.source if self.vgg is not None else "unused (lambda_p = lambda_s = 0)"}

    def modules(self) -> dict[str, nn.Module]:
        return {"generator": self.generator, "critic": self.critic}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"generator": self.opt_g, "critic": self.opt_d}

    def __call__(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        """batch: (B, 3, H, W) uint8 RGB -> {'d_loss', 'gp', 'wasserstein', 'g_total', <terms>}: detached scalars."""
        cfg = self.cfg
        rgb = uint8_to_float(batch)
        L, ab_real = rgb_to_model(rgb)  # colour conversion in fp32, outside autocast
        z = self.generator.sample_noise(L, self.rng)
        with runtime.autocast(self.device, self.amp_dtype):
            ab_fake, noise_features = self.generator(L, z)
        logs: dict[str, torch.Tensor] = {}

        if self.weights["adversarial"] > 0:
            for _ in range(cfg.n_critic):
                logs.update(self._critic_update(L, ab_real, ab_fake.detach()))

        terms: dict[str, torch.Tensor] = {}
        with runtime.autocast(self.device, self.amp_dtype):
            if self.weights["l1"] > 0:
                terms["l1"] = losses.l1_term(ab_fake.float(), ab_real)
            if self.vgg is not None:
                with torch.no_grad():
                    features_real = self.vgg(rgb)
                if self.weights["perceptual"] > 0:
                    rgb_fake = model_to_rgb(L, ab_fake.float())
                    terms["perceptual"] = losses.perceptual_term(self.vgg(rgb_fake), features_real)
                if self.weights["feature"] > 0:
                    terms["feature"] = losses.feature_term(noise_features, features_real)
            if self.weights["adversarial"] > 0:
                self.critic.requires_grad_(False)  # the generator's update must not touch the critic
                terms["adversarial"] = losses.adversarial_term(self.critic(L, ab_fake))
                self.critic.requires_grad_(True)
        total, values = losses.generator_objective({k: v.float() for k, v in terms.items()}, self.weights)
        self.opt_g.zero_grad(set_to_none=True)
        total.backward()
        self.opt_g.step()
        return {**logs, **values, "g_total": total.detach()}

    def _critic_update(self, L: torch.Tensor, ab_real: torch.Tensor, ab_fake: torch.Tensor) -> dict[str, torch.Tensor]:
        gp_weight = self.cfg.gp_weight if self.cfg.adversarial == "wgan-gp" else 0.0
        logs = critic_update(self.critic, self.opt_d, L, ab_real, ab_fake, gp_weight, self.rng, self.amp_dtype)
        if self.cfg.adversarial == "wgan-clip":
            with torch.no_grad():
                for p in self.critic.parameters():
                    p.clamp_(-self.cfg.clip_value, self.cfg.clip_value)
        return logs

    @torch.no_grad()
    def colorize(self, L: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """L: (B, 1, H, W) in [-1, 1] -> rgb (B, 3, H, W) in [0, 1]. ``generator`` draws z (default: self.rng)."""
        was_training = self.generator.training
        self.generator.eval()
        z = self.generator.sample_noise(L, generator or self.rng)
        with runtime.autocast(self.device, self.amp_dtype):
            ab, _ = self.generator(L, z)
        self.generator.train(was_training)
        return model_to_rgb(L, ab.float())



def critic_update(critic: nn.Module, optimizer: torch.optim.Optimizer, L: torch.Tensor, ab_real: torch.Tensor,
                  ab_fake: torch.Tensor, gp_weight: float, rng: torch.Generator,
                  amp_dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
    """One Wasserstein critic update: E[D(L, ab_fake)] - E[D(L, ab_real)] + gp_weight·GP (GP skipped at 0).

    Shared by every WGAN method of the suite (ColorGAN, ChromaGAN). L: (B, 1, H, W); ab_real, ab_fake
    (detached): (B, 2, H, W), in whatever units the method's critic reads.

    Returns:
        {'wasserstein', 'd_loss'[, 'gp']}: detached scalars.
    """
    with runtime.autocast(L.device, amp_dtype):
        score_real, score_fake = critic(L, ab_real), critic(L, ab_fake)
    loss = losses.critic_loss(score_real.float(), score_fake.float())
    logs = {"wasserstein": -loss.detach()}
    if gp_weight > 0:
        # in fp32: the double backward of the penalty is where low precision hurts most
        penalty = losses.gradient_penalty(critic, L, ab_real, ab_fake, rng)
        loss = loss + gp_weight * penalty
        logs["gp"] = penalty.detach()
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return {**logs, "d_loss": loss.detach()}

"""ColorGAN's training step: one critic update and one generator update on the paper's objective (eq. 1)."""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from colorgan.common import distributed, runtime
from colorgan.method import losses
from colorgan.method.color import model_to_rgb, rgb_to_model, uint8_to_float
from colorgan.method.config import ColorGANConfig
from colorgan.method.models import VGGFeatures, build_colorgan, build_vgg19_features


class ColorGANStep:
    """Plugs ColorGAN into ``train.fit``. Holds the networks, the frozen VGG19 and both Adam optimisers.

    Order per batch (pix2pix style): generator forward once; critic update(s) on the detached fake;
    then the generator update against the updated critic. Target VGG features are computed once and
    shared by Lp and Ls (``share_vgg_targets``).

    Training forwards go through ``generator_forward``, ``critic_forward`` and ``vgg_forward``: the
    modules themselves, or their DDP and/or ``torch.compile`` wrappers. ``modules()`` always returns
    the plain modules, so checkpoints never depend on how a run was sped up.
    """

    def __init__(self, cfg: ColorGANConfig, device: torch.device, vgg: VGGFeatures | None = None):
        self.cfg, self.device = cfg, device
        self.generator, self.critic = build_colorgan(cfg)
        self.weights = {name: getattr(cfg, attr) for name, attr in losses.LOSS_WEIGHTS.items()}
        needs_vgg = self.weights["perceptual"] > 0 or self.weights["feature"] > 0
        self.vgg = (vgg or build_vgg19_features(cfg.vgg_weights, cfg.vgg_layer, cfg.seed)) if needs_vgg else None
        # NHWC lets cuDNN / oneDNN use their channels-last convolution kernels (weights and inputs alike)
        self.memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
        for module in (self.generator, self.critic, self.vgg):
            if module is not None:
                module.to(device, memory_format=self.memory_format)
        adam = {"betas": (cfg.beta1, cfg.beta2), "fused": cfg.fused_adam}
        self.opt_g = torch.optim.Adam(self.generator.parameters(), lr=cfg.lr_g, **adam)
        self.opt_d = torch.optim.Adam(self.critic.parameters(), lr=cfg.lr_d, **adam)
        self.rng = torch.Generator().manual_seed(cfg.seed)
        self.amp_dtype = runtime.autocast_dtype(cfg.amp, device)
        self.shard = (0, 1)  # (rank, world size): which rows of the global batch's random draws are ours
        self._build_forwards(lambda module: module)

    def _build_forwards(self, wrap: Callable[[nn.Module], nn.Module]) -> None:
        # wrap (DDP) before compiling: torch's recommended order, so compiled graphs split at DDP's buckets
        def prepare(module: nn.Module) -> Callable:
            return torch.compile(module) if self.cfg.compile else module

        self.generator_forward = prepare(wrap(self.generator))
        self.critic_forward = prepare(wrap(self.critic))
        self.vgg_forward = prepare(self.vgg) if self.vgg is not None else None  # frozen: nothing to synchronise

    def distribute(self, ctx: distributed.Context) -> None:
        """Train as one of ``ctx.world_size`` data-parallel ranks (called by ``fit`` under torchrun)."""
        self.shard = (ctx.rank, ctx.world_size)
        self._build_forwards(lambda module: distributed.data_parallel(module, self.device))

    def describe(self) -> dict[str, str]:
        """Recorded in provenance.json and shown beside every result."""
        return {"vgg_weights": self.vgg.source if self.vgg is not None else "unused (lambda_p = lambda_s = 0)"}

    def modules(self) -> dict[str, nn.Module]:
        return {"generator": self.generator, "critic": self.critic}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"generator": self.opt_g, "critic": self.opt_d}

    def __call__(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        """batch: (B, 3, H, W) uint8 RGB -> {'d_loss', 'gp', 'wasserstein', 'g_total', <terms>}: detached scalars."""
        rgb, L, ab_real = self.prepare(batch)
        ab_fake, noise_features = self.generate(L)
        logs: dict[str, torch.Tensor] = {}

        if self.weights["adversarial"] > 0:
            for _ in range(self.cfg.n_critic):
                logs.update(self.critic_update(L, ab_real, ab_fake.detach()))

        features_lp, features_ls = self.target_features(rgb)
        terms: dict[str, torch.Tensor] = {}
        with runtime.autocast(self.device, self.amp_dtype):
            if self.weights["l1"] > 0:
                terms["l1"] = losses.l1_term(ab_fake.float(), ab_real)
            if self.weights["perceptual"] > 0:
                rgb_fake = model_to_rgb_fp32(L, ab_fake).contiguous(memory_format=self.memory_format)
                terms["perceptual"] = losses.perceptual_term(self.vgg_forward(rgb_fake), features_lp)
            if self.weights["feature"] > 0:
                terms["feature"] = losses.feature_term(noise_features, features_ls)
            if self.weights["adversarial"] > 0:
                self.critic.requires_grad_(False)  # the generator's update must not touch the critic
                terms["adversarial"] = losses.adversarial_term(self.critic_forward(L, ab_fake))
                self.critic.requires_grad_(True)
        total, values = losses.generator_objective({k: v.float() for k, v in terms.items()}, self.weights)
        self.opt_g.zero_grad(set_to_none=True)
        total.backward()
        self.opt_g.step()
        return {**logs, **values, "g_total": total.detach()}

    # The phases of a step, also timed one by one by `colorgan bench`.

    def prepare(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """batch (B, 3, H, W) uint8 -> rgb (B, 3, H, W) in [0, 1], L (B, 1, H, W), ab (B, 2, H, W) in [-1, 1]."""
        rgb = uint8_to_float(batch).contiguous(memory_format=self.memory_format)
        with torch.autocast(self.device.type, enabled=False):  # fp32 even if a caller runs this under autocast
            L, ab_real = rgb_to_model(rgb)
        return rgb, L, ab_real

    def generate(self, L: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Draw z and run the generator: L (B, 1, H, W) -> ab (B, 2, H, W), G_f(z) (B, C, h, w) or None."""
        z = self.generator.sample_noise(L, self.rng, self.shard)
        with runtime.autocast(self.device, self.amp_dtype):
            return self.generator_forward(L, z)

    def target_features(self, rgb: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """VGG features of the target rgb for Lp and for Ls: one forward for both unless share_vgg_targets is off."""
        if self.vgg_forward is None:
            return None, None
        with torch.no_grad(), runtime.autocast(self.device, self.amp_dtype):
            features = self.vgg_forward(rgb)
            both = self.weights["perceptual"] > 0 and self.weights["feature"] > 0
            if both and not self.cfg.share_vgg_targets:
                return features, self.vgg_forward(rgb)
        return features, features

    def critic_update(self, L: torch.Tensor, ab_real: torch.Tensor, ab_fake: torch.Tensor) -> dict[str, torch.Tensor]:
        """One Wasserstein critic step on real and (detached) fake ab -> {'wasserstein', 'gp', 'd_loss'}."""
        gp_weight = self.cfg.gp_weight if self.cfg.adversarial == "wgan-gp" else 0.0
        logs = critic_update(self.critic, self.opt_d, L, ab_real, ab_fake, gp_weight, self.rng, self.amp_dtype,
                             self.critic_forward, self.shard)
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
        L = L.contiguous(memory_format=self.memory_format)
        z = self.generator.sample_noise(L, generator or self.rng)
        with runtime.autocast(self.device, self.amp_dtype):
            ab, _ = self.generator(L, z)
        self.generator.train(was_training)
        return model_to_rgb(L, ab.float())


def model_to_rgb_fp32(L: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
    """``model_to_rgb`` in fp32 even inside autocast: L (B, 1, H, W), ab (B, 2, H, W) in [-1, 1] -> rgb in [0, 1].

    Under bf16 autocast the conversion's einsum would run in bf16 (8 bits of mantissa: steps of ~0.4% in
    the colour matrix products), so the predicted image the perceptual loss compares would be coarser
    than the target, whose conversion runs in fp32 (``prepare``). Both go through fp32.
    """
    with torch.autocast(L.device.type, enabled=False):
        return model_to_rgb(L.float(), ab.float())


def critic_update(critic: nn.Module, optimizer: torch.optim.Optimizer, L: torch.Tensor, ab_real: torch.Tensor,
                  ab_fake: torch.Tensor, gp_weight: float, rng: torch.Generator,
                  amp_dtype: torch.dtype | None = None, critic_forward: Callable | None = None,
                  shard: tuple[int, int] = (0, 1)) -> dict[str, torch.Tensor]:
    """One Wasserstein critic update: E[D(L, ab_fake)] - E[D(L, ab_real)] + gp_weight·GP (GP skipped at 0).

    Shared by every WGAN method of the suite (ColorGAN, ChromaGAN). L: (B, 1, H, W); ab_real, ab_fake
    (detached): (B, 2, H, W), in whatever units the method's critic reads. ``critic_forward`` is the
    (compiled or DDP-wrapped) forward to score with; ``shard`` this rank's slice of the global batch.

    Returns:
        {'wasserstein', 'd_loss'[, 'gp']}: detached scalars.
    """
    forward = critic if critic_forward is None else critic_forward  # not `or`: a compiled module refuses bool()
    with runtime.autocast(L.device, amp_dtype):
        score_real, score_fake = forward(L, ab_real), forward(L, ab_fake)
    loss = losses.critic_loss(score_real.float(), score_fake.float())
    logs = {"wasserstein": -loss.detach()}
    if gp_weight > 0:
        # in fp32 and eager: the double backward of the penalty is where low precision hurts most, and
        # torch.compile cannot differentiate twice. DDP still averages these gradients: its hooks sit on
        # the parameters, not on the wrapper's forward.
        penalty = losses.gradient_penalty(critic, L, ab_real, ab_fake, rng, shard)
        loss = loss + gp_weight * penalty
        logs["gp"] = penalty.detach()
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return {**logs, "d_loss": loss.detach()}

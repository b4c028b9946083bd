"""ChromaGAN (Vitoria, Raad & Ballester, WACV 2020), re-implemented in PyTorch on the suite's harness.

Generator (paper Fig. 2; official Keras code ``pvitoria/ChromaGAN``):
    VGG16 conv trunk (conv1_1 .. relu4_3) on L tiled to 3 channels -> (B, 8w, S/8, S/8), then
    - global branch: 4 convolutions (two of stride 2) -> (B, h, S/32, S/32) -> flatten ->
      (a) class head Dense 4096 -> 4096 -> 1000 (the class distribution, softmax), and
      (b) global vector Dense 1024 -> 512 -> 256 (linear, as in the Keras code);
    - mid-level branch: 2 convolutions -> (B, 256, S/8, S/8);
    - fusion: concat(mid-level, global vector repeated over the S/8 grid) -> decoder -> ab (sigmoid).
Critic: PatchGAN on (L, ab) (the shared ``PatchCritic``, LeakyReLU slope 0.3 = Keras's default).

Objective (paper §3.2; Keras ``combined`` weights [1, 0.003, -0.1]):
    L_G = lambda_e·MSE(ab, ab_gt) + alpha·KL(p_VGG16(L) || p_class) - lambda_g·E[D(L, ab)]
    L_D = E[D(L, ab)] - E[D(L, ab_gt)] + gp_weight·E[(||grad_ab D(L, x̂)|| - 1)²]
One generator update, then one critic update on a fake recomputed by the updated generator, as the Keras
loop does (its critic model holds the generator and colorizes the batch again).

Units: like the Keras code, the networks read and write OpenCV's 8-bit Lab divided by 255: L in [0, 1]
(L*/100) and ab in [0, 1] ((a*, b*) + 128) / 255. Keeping these units keeps the relative scale of the
colour, class and Wasserstein terms (and the meaning of the gradient penalty) as in the original.

Deviations, all recorded in the run's provenance and results:
    - Size: trains and is scored at the suite's ``image_size`` instead of 224, so every method sees the
      same pixels. The dense layers' in-dimension is (S/32)²·head_width and the global vector is
      repeated over (S/8)² positions (at S = 224 this is exactly the paper's 7·7·512 and 28·28).
    - ``vgg_weights=random``: no ImageNet teacher exists, so the class KL term is switched off
      (the paper's "without class distribution" ablation) and the trunk starts from random weights;
      ``describe()`` records this and every results table shows it.
    - Blocks: the shared ``ConvBlock`` orders conv -> BatchNorm -> ReLU (Keras: conv+ReLU -> BN); the
      shared PatchCritic's last two layers are 3x3 with constant width (Keras: 4x4, 512 then 1 channel).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from colorgan.common import runtime
from colorgan.common.params import opt
from colorgan.method import losses
from colorgan.method.color import AB_SCALE, model_to_rgb, rgb_to_model, uint8_to_float
from colorgan.method.config import RunConfig
from colorgan.method.models import ConvBlock, PatchCritic, load_state_dict_file, pretrained_state_dict
from colorgan.method.step import critic_update

log = logging.getLogger(__name__)

NUM_CLASSES = 1000  # ImageNet classes predicted by the VGG16 teacher
VGG16_WIDTH = 64  # conv1 width of the real VGG16; pretrained weights need exactly this
TRUNK_LAYERS = 23  # torchvision vgg16().features[:23] = conv1_1 .. relu4_3 (Keras block4_conv3)
TRUNK_FACTOR = 8  # three max-pools in the trunk
GLOBAL_FACTOR = 32  # two more stride-2 convolutions in the global branch
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ChromaGANConfig(RunConfig):
    """ChromaGAN (Vitoria et al., WACV 2020). Defaults are the paper's / official code's values.

    Loss (paper §3.2): L_G = lambda_e·L_e + alpha·L_class + lambda_g·L_wgan, critic with gp_weight·GP.
    """

    method: ClassVar[str] = "chromagan"

    run_dir: str = opt("runs/chromagan", "folder for config, provenance, metrics log and checkpoints")
    batch_size: int = opt(10, "images per step (official code: 10)", min=1)
    num_epochs: int = opt(5, "passes over the training set (official code: 5); ignored if num_steps > 0", min=1)

    # --- model (paper Fig. 2) ---
    trunk_width: int = opt(VGG16_WIDTH, "VGG16 trunk conv1 width; the trunk uses w, 2w, 4w, 8w (VGG16: 64)", min=1)
    head_width: int = opt(512, "channels of the global and mid-level branch convolutions (paper: 512)", min=1)
    global_dim: int = opt(256, "global feature vector size g; its dense layers are 4g -> 2g -> g (paper: 256)",
                          min=1)
    class_hidden: int = opt(4096, "width of the two hidden dense layers before the 1000-way softmax (paper: 4096)",
                            min=1)
    decoder_width: int = opt(128, "decoder width d: fusion 2d (1x1), then d, d/2, d/2, d/4 (paper: 128)", min=4)
    vgg_weights: str = opt("random", "imagenet (torchvision VGG16 from the torch hub cache), random (then the "
                           "class-distribution KL term is off), or a VGG16 .pth state_dict path; inits the trunk "
                           "and is the KL teacher")
    vgg_input: str = opt("unit", "what the trunk and the teacher read: 'unit' = tiled L in [0, 1] as the "
                         "official code (no mean subtraction); 'imagenet' = ImageNet mean/std normalised",
                         choices=("unit", "imagenet"))
    teacher_size: int = opt(224, "the VGG16 teacher classifies the tiled L resized to this size (its "
                            "training size); 0 = at image_size", min=0)
    disc_width: int = opt(64, "channels of the PatchGAN critic's first layer (paper: 64)", min=1)
    disc_layers: int = opt(3, "stride-2 layers in the PatchGAN critic (paper: 3)", min=1)
    disc_slope: float = opt(0.3, "LeakyReLU slope of the critic (Keras default alpha: 0.3)", min=0.0)

    # --- losses and optimisation (paper §3.2-3.3, official code) ---
    lambda_e: float = opt(1.0, "weight of the colour error L_e, MSE on ab (paper: 1)", min=0.0)
    alpha: float = opt(0.003, "weight alpha of the class-distribution KL term (paper: 0.003); "
                       "switched off when vgg_weights=random", min=0.0)
    lambda_g: float = opt(0.1, "weight lambda_g of the generator's Wasserstein term (paper: 0.1)", min=0.0)
    gp_weight: float = opt(10.0, "gradient penalty weight (paper: 10)", min=0.0)
    lr_g: float = opt(2e-5, "Adam learning rate of the generator (paper: 2e-5)", min=0.0)
    lr_d: float = opt(2e-5, "Adam learning rate of the critic (paper: 2e-5)", min=0.0)
    beta1: float = opt(0.5, "Adam beta1 (paper: 0.5)", min=0.0, max=1.0)
    beta2: float = opt(0.999, "Adam beta2 (Keras default: 0.999)", min=0.0, max=1.0)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.image_size % GLOBAL_FACTOR:
            raise ValueError(f"image_size: {self.image_size} must be divisible by {GLOBAL_FACTOR} (the trunk and "
                             "global branch halve the size five times)")
        if self.vgg_weights != "random" and self.trunk_width != VGG16_WIDTH:
            raise ValueError(f"trunk_width: {self.trunk_width} cannot hold vgg_weights={self.vgg_weights!r}; "
                             f"pretrained VGG16 weights need trunk_width={VGG16_WIDTH} (or use vgg_weights=random)")
        if max(self.lambda_e, self.alpha, self.lambda_g) == 0:
            raise ValueError("lambda_e, alpha, lambda_g: all three are 0, so the generator has no loss; "
                             "give at least one a positive weight")


# ------------------------------------------------------------------------------------------ units


def to_chromagan_units(L: torch.Tensor, ab: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Suite units -> the official code's (OpenCV 8-bit Lab / 255).

    Args:
        L: (B, 1, H, W) in [-1, 1] (L*/50 - 1); ab: (B, 2, H, W) in [-1, 1] ((a*, b*) / 110).
    Returns:
        L01: (B, 1, H, W) in [0, 1] (L*/100); ab01: (B, 2, H, W) in [0, 1] (((a*, b*) + 128) / 255).
    """
    return (L + 1) / 2, (ab * AB_SCALE + 128) / 255


def from_chromagan_units(ab01: torch.Tensor) -> torch.Tensor:
    """ab01 (B, 2, H, W) in [0, 1] -> suite ab (B, 2, H, W) ((a*, b*) / 110; may slightly exceed [-1, 1])."""
    return (ab01 * 255 - 128) / AB_SCALE


def tile_L(L01: torch.Tensor, vgg_input: str) -> torch.Tensor:
    """What VGG16 reads: L01 (B, 1, H, W) in [0, 1] tiled to (B, 3, H, W), ImageNet-normalised if asked."""
    L3 = L01.expand(-1, 3, -1, -1)  # (B, 3, H, W)
    if vgg_input == "imagenet":
        mean = torch.tensor(IMAGENET_MEAN, device=L01.device).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD, device=L01.device).view(1, 3, 1, 1)
        L3 = (L3 - mean) / std
    return L3


# ------------------------------------------------------------------------------------------ VGG16


def vgg16_trunk(width: int) -> nn.Sequential:
    """VGG16's conv1_1 .. relu4_3 with channels w, 2w, 4w, 8w: (B, 3, S, S) -> (B, 8w, S/8, S/8).

    Same layer indices as torchvision's ``vgg16().features[:23]``, so its state_dict keys load directly.
    """
    w = width
    layout = [w, w, "M", 2 * w, 2 * w, "M", 4 * w, 4 * w, 4 * w, "M", 8 * w, 8 * w, 8 * w]
    return torchvision.models.vgg.make_layers(layout)


def vgg16_state(weights: str) -> tuple[dict[str, torch.Tensor], str]:
    """A full VGG16 state_dict ('features.N.*', 'classifier.N.*') and a label for provenance.

    Args:
        weights: 'imagenet' (torch hub cache, never downloaded) or a path to a torchvision VGG16 state_dict.
    """
    if weights == "imagenet":
        return pretrained_state_dict(torchvision.models.VGG16_Weights.IMAGENET1K_V1), "imagenet"
    return load_state_dict_file(weights), f"file:{weights}"


def require_keys(state: dict[str, torch.Tensor], wanted: list[str], weights: str, what: str) -> None:
    """Raise a ValueError naming ``vgg_weights`` and the first missing keys if ``state`` lacks any of ``wanted``."""
    missing = [k for k in wanted if k not in state]
    if missing:
        raise ValueError(f"vgg_weights={weights!r}: the state_dict lacks {missing[:4]} needed for {what}; "
                         "give a torchvision VGG16 state_dict (keys 'features.N.*' and 'classifier.N.*')")


class VGG16Teacher(nn.Module):
    """The frozen ImageNet VGG16 classifier on tiled L: its softmax is the KL term's target distribution."""

    def __init__(self, state: dict[str, torch.Tensor], weights: str, vgg_input: str, size: int):
        super().__init__()
        with torch.device("meta"):  # no random init of 138M parameters that are overwritten at once
            net = torchvision.models.vgg16(weights=None)
        require_keys(state, list(net.state_dict()), weights, "the VGG16 teacher")
        net.load_state_dict({k: state[k] for k in net.state_dict()}, assign=True)
        self.net = net.eval().requires_grad_(False)
        self.vgg_input, self.size = vgg_input, size

    def train(self, mode: bool = True) -> "VGG16Teacher":
        return super().train(False)  # always eval: the teacher never changes

    def forward(self, L01: torch.Tensor) -> torch.Tensor:
        """L01: (B, 1, S, S) in [0, 1] -> ImageNet class logits (B, 1000)."""
        if self.size and self.size != L01.shape[-1]:
            L01 = F.interpolate(L01, size=(self.size, self.size), mode="bilinear", align_corners=False)
        return self.net(tile_L(L01, self.vgg_input))


# ------------------------------------------------------------------------------------------ generator


class ChromaGANGenerator(nn.Module):
    """L01 (B, 1, S, S) in [0, 1] -> ab01 (B, 2, S, S) in [0, 1] and class logits (B, 1000)."""

    def __init__(self, cfg: ChromaGANConfig):
        super().__init__()
        trunk_channels, h, g, d = 8 * cfg.trunk_width, cfg.head_width, cfg.global_dim, cfg.decoder_width
        self.vgg_input = cfg.vgg_input
        self.grid = cfg.image_size // TRUNK_FACTOR  # side of the fusion grid (paper: 28 at S = 224)
        flat = h * (cfg.image_size // GLOBAL_FACTOR) ** 2  # paper: 7·7·512 at S = 224
        self.trunk = vgg16_trunk(cfg.trunk_width)
        self.global_features = nn.Sequential(ConvBlock(trunk_channels, h, stride=2), ConvBlock(h, h),
                                             ConvBlock(h, h, stride=2), ConvBlock(h, h), nn.Flatten())
        # both dense stacks are linear until the softmax, as in the official code
        c = cfg.class_hidden
        self.class_head = nn.Sequential(nn.Linear(flat, c), nn.Linear(c, c), nn.Linear(c, NUM_CLASSES))
        self.global_head = nn.Sequential(nn.Linear(flat, 4 * g), nn.Linear(4 * g, 2 * g), nn.Linear(2 * g, g))
        self.mid_level = nn.Sequential(ConvBlock(trunk_channels, h), ConvBlock(h, g))
        up = nn.Upsample(scale_factor=2, mode="nearest")
        self.decoder = nn.Sequential(
            ConvBlock(2 * g, 2 * d, kernel=1, norm="none"), ConvBlock(2 * d, d, norm="none"), up,
            ConvBlock(d, d // 2, norm="none"), ConvBlock(d // 2, d // 2, norm="none"), up,
            ConvBlock(d // 2, d // 4, norm="none"), nn.Conv2d(d // 4, 2, 3, 1, 1), nn.Sigmoid(), up)

    def forward(self, L01: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """L01: (B, 1, S, S) in [0, 1] -> (ab01 (B, 2, S, S) in [0, 1], class logits (B, 1000))."""
        trunk = self.trunk(tile_L(L01, self.vgg_input))  # (B, 8w, S/8, S/8)
        flat = self.global_features(trunk)  # (B, h·(S/32)²)
        global_vector = self.global_head(flat)  # (B, g)
        repeated = global_vector[:, :, None, None].expand(-1, -1, self.grid, self.grid)  # (B, g, S/8, S/8)
        fused = torch.cat([self.mid_level(trunk), repeated], dim=1)  # (B, 2g, S/8, S/8)
        return self.decoder(fused), self.class_head(flat)


# ------------------------------------------------------------------------------------------ losses


def color_error_term(ab_fake: torch.Tensor, ab_real: torch.Tensor) -> torch.Tensor:
    """L_e (paper §3.2, Keras 'mse'): mean squared error over (B, 2, H, W), ab in ChromaGAN's [0, 1] units."""
    return F.mse_loss(ab_fake, ab_real)


def class_kl_term(class_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """L_class (paper §3.2, Keras 'kld'): KL(p_teacher || p_class), summed over the 1000 classes, mean over B.

    Args:
        class_logits: (B, 1000) from the generator; teacher_logits: (B, 1000) from the frozen VGG16.
    """
    return F.kl_div(F.log_softmax(class_logits, dim=1), F.log_softmax(teacher_logits, dim=1), log_target=True,
                    reduction="batchmean")


# ------------------------------------------------------------------------------------------ step


class ChromaGANStep:
    """Plugs ChromaGAN into ``train.fit``: generator, PatchGAN critic, optional VGG16 teacher, two Adams."""

    def __init__(self, cfg: ChromaGANConfig, device: torch.device):
        self.cfg, self.device = cfg, device
        self.generator = ChromaGANGenerator(cfg).to(device)
        self.critic = PatchCritic(3, cfg.disc_width, cfg.disc_layers, slope=cfg.disc_slope).to(device)
        self.teacher: VGG16Teacher | None = None
        if cfg.vgg_weights == "random":
            self.vgg_source = f"random(seed={cfg.seed})"  # the trunk's init follows the run's seed
            if cfg.alpha > 0:
                log.warning("vgg_weights=random: there is no ImageNet teacher, so ChromaGAN's class KL term "
                            "(alpha=%s) is OFF for this run; this is recorded in provenance.json", cfg.alpha)
        else:
            state, self.vgg_source = vgg16_state(cfg.vgg_weights)
            trunk_keys = [f"features.{k}" for k in self.generator.trunk.state_dict()]
            require_keys(state, trunk_keys, cfg.vgg_weights, "the trunk (conv1_1 .. conv4_3)")
            self.generator.trunk.load_state_dict({k.removeprefix("features."): state[k] for k in trunk_keys})
            if cfg.alpha > 0:
                self.teacher = VGG16Teacher(state, cfg.vgg_weights, cfg.vgg_input, cfg.teacher_size).to(device)
        self.weights = {"color": cfg.lambda_e, "classes": cfg.alpha if self.teacher is not None else 0.0,
                        "adversarial": cfg.lambda_g}
        betas = (cfg.beta1, cfg.beta2)
        self.opt_g = torch.optim.Adam(self.generator.parameters(), lr=cfg.lr_g, betas=betas)
        self.opt_d = torch.optim.Adam(self.critic.parameters(), lr=cfg.lr_d, betas=betas)
        self.rng = torch.Generator().manual_seed(cfg.seed)
        self.amp_dtype = runtime.autocast_dtype(cfg.amp, device)

    def describe(self) -> dict[str, str]:
        """Recorded in provenance.json and eval/summary.json; ``notes`` is shown beside every result (Table 1)."""
        if self.teacher is not None:
            class_kl = f"on (alpha={self.cfg.alpha}, teacher: {self.vgg_source} VGG16)"
        elif self.cfg.vgg_weights == "random":
            class_kl = "off (vgg_weights=random: no ImageNet teacher; paper's 'without class distribution')"
        else:
            class_kl = "off (alpha=0)"
        return {"vgg_weights": self.vgg_source, "class_kl": class_kl,
                "notes": f"class KL term {class_kl}; trained and scored at {self.cfg.image_size} px (paper: 224)"}

    def modules(self) -> dict[str, nn.Module]:
        return {"generator": self.generator, "critic": self.critic}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"generator": self.opt_g, "critic": self.opt_d}

    def __call__(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        """batch: (B, 3, S, S) uint8 RGB -> {'color', ['classes'], 'adversarial', 'g_total', 'd_loss', 'gp', ...}."""
        L01, ab_real = to_chromagan_units(*rgb_to_model(uint8_to_float(batch)))  # conversion in fp32
        with runtime.autocast(self.device, self.amp_dtype):
            ab_fake, class_logits = self.generator(L01)
        terms: dict[str, torch.Tensor] = {}
        if self.weights["color"] > 0:
            terms["color"] = color_error_term(ab_fake.float(), ab_real)
        if self.weights["classes"] > 0:
            with torch.no_grad(), runtime.autocast(self.device, self.amp_dtype):
                teacher_logits = self.teacher(L01)
            terms["classes"] = class_kl_term(class_logits.float(), teacher_logits.float())
        if self.weights["adversarial"] > 0:
            self.critic.requires_grad_(False)  # the generator's update must not touch the critic
            with runtime.autocast(self.device, self.amp_dtype):
                terms["adversarial"] = losses.adversarial_term(self.critic(L01, ab_fake).float())
            self.critic.requires_grad_(True)
        total, values = losses.generator_objective(terms, self.weights)
        self.opt_g.zero_grad(set_to_none=True)
        total.backward()
        self.opt_g.step()
        logs = {}
        if self.weights["adversarial"] > 0:  # the Keras loop: critic after generator, on the updated generator's fake
            with torch.no_grad(), runtime.autocast(self.device, self.amp_dtype):
                ab_fake, _ = self.generator(L01)
            logs = critic_update(self.critic, self.opt_d, L01, ab_real, ab_fake.float(), self.cfg.gp_weight,
                                 self.rng, self.amp_dtype)
        return {**values, **logs, "g_total": total.detach()}

    @torch.no_grad()
    def colorize(self, L: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """L: (B, 1, S, S) in [-1, 1] -> rgb (B, 3, S, S) in [0, 1] (input L kept). Deterministic: no noise."""
        was_training = self.generator.training
        self.generator.eval()
        with runtime.autocast(self.device, self.amp_dtype):
            ab01, _ = self.generator((L + 1) / 2)
        self.generator.train(was_training)
        return model_to_rgb(L, from_chromagan_units(ab01.float()))

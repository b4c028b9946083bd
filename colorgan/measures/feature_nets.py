"""Feature networks of the field's learned metrics, FID and LPIPS, loaded from local files only.

Both come from piq (already the PSNR/SSIM library): its FID Inception (the TensorFlow
``inception-2015-12-05`` graph ported by pytorch-fid, pool3 features, 2,048 per image) and its
LPIPS (VGG16 features with the learned linear weights of Zhang et al., 2018). piq would fetch the
weights from the internet; here they are read the way ``vgg_weights=imagenet`` is read
(``models.py``): from a local file, or from the torch hub cache ``$TORCH_HOME/hub/checkpoints/``
(default ``~/.cache/torch/hub/checkpoints/``), with ``torch.load(weights_only=True)``. Nothing is
downloaded; absent weights give "n/a" labels, never numbers from random weights.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
import torchvision
from torch import nn

from colorgan.method.models import hub_checkpoint_path, load_state_dict_file

log = logging.getLogger(__name__)

# file name in the hub cache -> where to fetch it on a machine with internet access
INCEPTION_FILE = "pt_inception-2015-12-05-6726825d.pth"
INCEPTION_URL = f"https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/{INCEPTION_FILE}"
LPIPS_FILE = "lpips_weights.pt"
LPIPS_URL = f"https://github.com/photosynthesis-team/photosynthesis.metrics/releases/download/v0.4.0/{LPIPS_FILE}"
VGG16_WEIGHTS = torchvision.models.VGG16_Weights.IMAGENET1K_V1  # vgg16-397923af.pth: LPIPS's backbone
LPIPS_LAYERS = ("3", "8", "15", "22", "29")  # relu1_2, relu2_2, relu3_3, relu4_3, relu5_3 of vgg16().features
NO_INCEPTION = "n/a (no Inception weights)"
NO_LPIPS = "n/a (no LPIPS weights)"


@dataclass(frozen=True)
class FeatureNets:
    """The networks of the set-level and perceptual metrics, and what to call their numbers.

    inception: rgb (B, 3, H, W) in [0, 1] -> features (B, D); None: no FID column.
    lpips: (pred, target) (B, 3, H, W) in [0, 1] -> (B,) distance >= 0; None: no LPIPS column.
    fid_label / lpips_label: the source ("pt_inception-2015-12-05 (pytorch-fid port, via piq)"), a
        substitute ("substitute network (not FID)") or why the column is empty ("n/a (...)").
    is_fid: the features are the real FID Inception's, so the number may be called FID.
    """

    inception: nn.Module | None = None
    lpips: nn.Module | None = None
    fid_label: str = NO_INCEPTION
    lpips_label: str = NO_LPIPS
    is_fid: bool = False
    is_lpips: bool = False


def fid_inception_graph() -> nn.Module:
    """The FID InceptionV3 graph (1008 classes, no aux logits) with random weights, ready for a state_dict."""
    from piq.feature_extractors import fid_inception as piq_inception

    inception = torchvision.models.inception_v3(weights=None, num_classes=1008, aux_logits=False, init_weights=False)
    # these blocks of the FID graph differ from torchvision's Inception (piq's fid_inception_v3, no download)
    inception.Mixed_5b = piq_inception.FIDInceptionA(192, pool_features=32)
    inception.Mixed_5c = piq_inception.FIDInceptionA(256, pool_features=64)
    inception.Mixed_5d = piq_inception.FIDInceptionA(288, pool_features=64)
    inception.Mixed_6b = piq_inception.FIDInceptionC(768, channels_7x7=128)
    inception.Mixed_6c = piq_inception.FIDInceptionC(768, channels_7x7=160)
    inception.Mixed_6d = piq_inception.FIDInceptionC(768, channels_7x7=160)
    inception.Mixed_6e = piq_inception.FIDInceptionC(768, channels_7x7=192)
    inception.Mixed_7b = piq_inception.FIDInceptionE1(1280)
    inception.Mixed_7c = piq_inception.FIDInceptionE2(2048)
    return inception


class InceptionFeatures(nn.Module):
    """piq's FID InceptionV3 (resize to 299 bilinear, scale to [-1, 1], pool3) with weights from a state_dict.

    rgb (B, 3, H, W) in [0, 1] -> (B, 2048).
    """

    def __init__(self, state: dict[str, torch.Tensor]):
        super().__init__()
        inception = fid_inception_graph()
        inception.load_state_dict(state)
        self.blocks = nn.Sequential(
            inception.Conv2d_1a_3x3, inception.Conv2d_2a_3x3, inception.Conv2d_2b_3x3, nn.MaxPool2d(3, 2),
            inception.Conv2d_3b_1x1, inception.Conv2d_4a_3x3, nn.MaxPool2d(3, 2),
            inception.Mixed_5b, inception.Mixed_5c, inception.Mixed_5d, inception.Mixed_6a, inception.Mixed_6b,
            inception.Mixed_6c, inception.Mixed_6d, inception.Mixed_6e, inception.Mixed_7a, inception.Mixed_7b,
            inception.Mixed_7c, nn.AdaptiveAvgPool2d(1))
        self.requires_grad_(False).eval()

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        x = nn.functional.interpolate(rgb, size=(299, 299), mode="bilinear", align_corners=False)
        return self.blocks(2 * x - 1).flatten(1)  # (B, 2048)


def lpips_network(vgg16_state: dict[str, torch.Tensor], linear_weights: list[torch.Tensor]) -> nn.Module:
    """piq's LPIPS (ImageNet-normalised input, unit-normalised features, learned channel weights).

    Returns a module (pred, target) (B, 3, H, W) in [0, 1] -> (B,).
    """
    from piq.perceptual import ContentLoss

    features = torchvision.models.vgg16(weights=None).features
    prefix = "features."
    state = {k[len(prefix):]: v for k, v in vgg16_state.items() if k.startswith(prefix)} or vgg16_state
    features.load_state_dict(state)
    # up to relu5_3: the last max-pool feeds no LPIPS layer (and would fail on images under 32 px)
    features = features[: int(LPIPS_LAYERS[-1]) + 1]
    net = ContentLoss(features, layers=LPIPS_LAYERS, weights=linear_weights, distance="mse", reduction="none",
                      normalize_features=True)
    return net.requires_grad_(False).eval()


def _weights_path(setting: str, file_name: str, what: str, url: str) -> Path | None:
    """'auto': the hub-cache file if present, else None; 'off': None; anything else: a file that must exist.
    ``url``: where the file can be fetched on a machine with internet access (said when it is missing)."""
    if setting == "off":
        return None
    if setting == "auto":
        path = Path(torch.hub.get_dir()) / "checkpoints" / file_name
        if not path.is_file():
            log.info("%s: %s not in the torch hub cache (%s); its column is n/a (the file: %s)", what, file_name,
                     path.parent, url)
            return None
        return path
    path = Path(setting).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"{what}: {path} does not exist; give a weights file, 'auto' (torch hub cache) "
                                "or 'off'")
    return path


def load_feature_nets(inception_weights: str = "auto", lpips_weights: str = "auto",
                      device: torch.device = torch.device("cpu")) -> FeatureNets:
    """FID Inception and LPIPS networks from local weights ('auto': the torch hub cache, 'off', or a path).

    For LPIPS ``lpips_weights`` names the linear-weights file; the VGG16 backbone is read from the hub
    cache (``vgg16-397923af.pth``) either way.
    """
    inception, lpips = None, None
    fid_label, lpips_label = NO_INCEPTION, NO_LPIPS
    inception_path = _weights_path(inception_weights, INCEPTION_FILE, "inception_weights",
                                   INCEPTION_URL)
    if inception_path is not None:
        inception = InceptionFeatures(load_state_dict_file(inception_path)).to(device)
        fid_label = f"{inception_path.name} (pytorch-fid Inception, via piq)"
    lpips_path = _weights_path(lpips_weights, LPIPS_FILE, "lpips_weights", LPIPS_URL)
    vgg16_path = hub_checkpoint_path(VGG16_WEIGHTS)
    if lpips_path is not None and not vgg16_path.is_file():
        if lpips_weights != "auto":
            raise FileNotFoundError(f"lpips_weights: LPIPS also needs the VGG16 backbone {vgg16_path.name} at "
                                    f"{vgg16_path}; fetch {VGG16_WEIGHTS.url} on a machine with internet access")
        lpips_path, lpips_label = None, "n/a (no VGG16 weights for LPIPS)"
    if lpips_path is not None:
        linear = _load_linear_weights(lpips_path)
        lpips = lpips_network(load_state_dict_file(vgg16_path), linear).to(device)
        lpips_label = f"{lpips_path.name} + {vgg16_path.name} (LPIPS-VGG, via piq)"
    return FeatureNets(inception, lpips, fid_label, lpips_label, is_fid=inception is not None,
                       is_lpips=lpips is not None)


def _load_linear_weights(path: Path) -> list[torch.Tensor]:
    """LPIPS's five (1, C, 1, 1) channel weights, as piq's release file stores them (a list of tensors)."""
    from colorgan.common.runtime import load_weights_only

    weights = load_weights_only(path, "LPIPS weights file")
    if isinstance(weights, dict):
        weights = list(weights.values())
    channels = (64, 128, 256, 512, 512)
    if (not isinstance(weights, (list, tuple)) or len(weights) != 5
            or any(tuple(w.shape) != (1, c, 1, 1) for w, c in zip(weights, channels))):
        raise ValueError(f"{path} is not piq's LPIPS weights file: expected five (1, C, 1, 1) tensors for "
                         f"C = {channels}")
    return [w.float() for w in weights]

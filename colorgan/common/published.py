"""The published numbers this suite is compared with, and the convention each was computed in: data, not code.

A number from a paper can only stand beside ours when both were computed the same way (the metric's
*convention*: formula, reduction over the set, window, data range) on the same test images prepared the
same way (the *protocol*: data set, resize or center-crop, size, image count). ``VARIANTS`` names every way
this suite computes a quantity (the summary column of ``metrics.summarize`` it lands in), ``CONVENTIONS``
says which variant each paper's released evaluation code uses, and ``PUBLISHED`` lists the numbers with
their protocol, convention and source. Only numbers found in a nameable source are listed; what could not
be confirmed is listed in ``MISSING`` instead of being guessed.

This module is the one home of the papers' values: the ColorGAN paper's Table 1 (``paper_table1``) and the
protocol each paper trained with (``PAPER_PROTOCOLS``: data, size, epochs, batch, λs, learning rates, ...), with
the ColorGAN paper's own sentences they come from (``COLORGAN_PAPER_TEXT``; tests/test_published.py holds each
value against them and them against the paper's text). Everything else reads them here; the configs' defaults
are held to them by the same test.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class Variant:
    """One way of computing a quantity: the summary column it lands in and a header that names its convention."""

    name: str  # e.g. 'cf_abs'
    quantity: str  # 'PSNR', 'SSIM', 'CF', 'ΔCF', 'FID'
    column: str  # column of ``metrics.summarize`` (per-image means) or of the set metrics ('psnr_pooled', 'fid')
    label: str  # column header in tables and terminal output
    definition: str


VARIANTS = {v.name: v for v in (
    Variant("psnr", "PSNR", "psnr", "PSNR (dB), per-image mean",
            "mean over images of 10·log10(1/MSE_i) on 8-bit RGB, data range 1 (= 255 on 0..255)"),
    Variant("psnr_pooled", "PSNR", "psnr_pooled", "PSNR (dB), pooled MSE",
            "10·log10(1/mean_i MSE_i): one MSE over the whole set (torchmetrics' default reduction); "
            "never above the per-image mean"),
    Variant("ssim", "SSIM", "ssim", "SSIM (Gaussian 11x11, σ 1.5)",
            "Wang et al.: 11x11 Gaussian window σ = 1.5, population covariance, valid (interior) pixels only, "
            "mean of the three RGB channels, data range 1 (skimage gaussian_weights=True, "
            "use_sample_covariance=False; tf.image.ssim)"),
    Variant("cf", "CF", "colourfulness", "CF (Hasler-Süsstrunk)",
            "Hasler & Süsstrunk (2003): σ_rgyb + 0.3·μ_rgyb of rg = R - G, yb = (R + G)/2 - B on 0..255 RGB, "
            "signs kept; mean over images"),
    Variant("cf_abs", "CF", "colourfulness_abs", "CF_abs (DDColor/CT2 code)",
            "the same statistic of the absolute values abs(R - G) and abs((R + G)/2 - B) (DDColor "
            "basicsr/metrics/colorfulness.py calculate_cf; CT2 segm/eval_colorfullness.py); mean over images"),
    Variant("dcf", "ΔCF", "colourfulness_gap", "ΔCF (Hasler-Süsstrunk)",
            "mean over images of CF(prediction) - CF(ground truth), signed (negative: duller than the photo)"),
    Variant("dcf_abs", "ΔCF", "colourfulness_abs_gap", "ΔCF_abs (DDColor/CT2 code)",
            "the same signed difference with CF_abs (whether DDColor's and CT2's tables print it signed or as "
            "an absolute value is unstated)"),
    Variant("fid", "FID", "fid", "FID",
            "Fréchet distance of Inception pool3 features (piq); the network is named in the FID note"),
)}

# convention -> quantity -> variant name (what that paper's released evaluation code computes, as far as it shows)
CONVENTIONS: dict[str, dict[str, str]] = {
    # this suite's own defaults; the ColorGAN paper states neither PSNR's reduction nor SSIM's window
    "paper": {"PSNR": "psnr", "SSIM": "ssim", "CF": "cf", "ΔCF": "dcf"},
    # DDColor basicsr/models/color_model.py: per-image metrics summed and divided by the image count;
    # CF is calculate_cf (absolute opponents); its PSNR entry in options/train/train_ddcolor.yml is commented out.
    # Its FID uses torchvision's Inception weights, not pytorch-fid's: no FID of ours is in its convention.
    "ddcolor": {"PSNR": "psnr", "CF": "cf_abs", "ΔCF": "dcf_abs"},
    # CT2 segm/metrics.py avg_ssim_psnr: per-image compare_psnr(gt, pred, 255) averaged; eval_colorfullness.py:
    # absolute opponents. Its SSIM (skimage 7x7 uniform window, sample covariance, data_range=225) is not
    # implemented here: no CT2 SSIM number is in PUBLISHED. Its FID network is DDColor's (segm/metrics.py).
    "ct2": {"PSNR": "psnr", "CF": "cf_abs", "ΔCF": "dcf_abs"},
}
CONVENTION_CHOICES = (*CONVENTIONS, "all")


def variants(convention: str = "all") -> list[Variant]:
    """The variants a convention reports ('all': every variant), in ``VARIANTS`` order.

    Raises:
        ValueError: an unknown convention name.
    """
    if convention not in CONVENTION_CHOICES:
        raise ValueError(f"convention: {convention!r} is not one of {', '.join(CONVENTION_CHOICES)}")
    names = set(VARIANTS) if convention == "all" else set(CONVENTIONS[convention].values())
    return [v for v in VARIANTS.values() if v.name in names]


def summary_columns(convention: str = "all") -> list[tuple[str, str]]:
    """(summary column, header) of each variant of a convention, for ``evaluate.format_summary``."""
    return [(v.column, v.label) for v in variants(convention)]


@dataclass(frozen=True)
class PublishedNumber:
    """One number from a paper's table, with what it takes to compare with it."""

    paper: str
    method: str  # the row in that paper's table (a config method name where this suite trains it)
    dataset: str
    protocol: str  # how the test photos were brought to size: 'resize', 'center-crop' or 'unstated'
    image_size: int  # px, square
    num_images: int
    quantity: str  # 'PSNR', 'SSIM', 'CF', 'ΔCF', 'FID'
    value: float
    convention: str  # a VARIANTS name when the released code shows it, else what is known ('unstated: ...')
    source: str


COLORGAN_PAPER = "ColorGAN (Shafiq & Lee)"
_COLORGAN_TABLE1 = dict(paper=COLORGAN_PAPER, dataset="PASCAL VOC2012 test split", protocol="resize", image_size=256,
                        num_images=1712, source="ColorGAN paper, Table 1 (data and size: §3.1)")
_UNSTATED_PSNR = "unstated (the paper names PSNR only: no data range, no per-image or pooled reduction)"
_UNSTATED_SSIM = "unstated (the paper names SSIM only: no window, no data range, no colour handling)"
_DDCOLOR_VAL5K = dict(paper="DDColor (Kang et al., ICCV 2023)", method="DDColor",
                      dataset="ImageNet val5k (first 5,000 ILSVRC2012 val images)", protocol="center-crop",
                      image_size=256, num_images=5000)
_DDCOLOR_SOURCE = ("DDColor paper, Table 1 (ImageNet val5k), as quoted in github.com/piddnad/DDColor/issues/9; "
                   "protocol: the maintainer's answer in the same thread")

PUBLISHED: tuple[PublishedNumber, ...] = (
    PublishedNumber(method="chromagan", quantity="PSNR", value=24.154, convention=_UNSTATED_PSNR, **_COLORGAN_TABLE1),
    PublishedNumber(method="chromagan", quantity="SSIM", value=0.926, convention=_UNSTATED_SSIM, **_COLORGAN_TABLE1),
    PublishedNumber(method="coltran", quantity="PSNR", value=23.839, convention=_UNSTATED_PSNR, **_COLORGAN_TABLE1),
    PublishedNumber(method="coltran", quantity="SSIM", value=0.868, convention=_UNSTATED_SSIM, **_COLORGAN_TABLE1),
    PublishedNumber(method="colorgan", quantity="PSNR", value=24.333, convention=_UNSTATED_PSNR, **_COLORGAN_TABLE1),
    PublishedNumber(method="colorgan", quantity="SSIM", value=0.938, convention=_UNSTATED_SSIM, **_COLORGAN_TABLE1),
    PublishedNumber(quantity="CF", value=38.26, convention="cf_abs", source=_DDCOLOR_SOURCE, **_DDCOLOR_VAL5K),
    PublishedNumber(quantity="FID", value=3.92, source=_DDCOLOR_SOURCE, **_DDCOLOR_VAL5K,
                    convention="torchvision Inception-v3 ImageNet weights (inception_v3_google-1a9a5a14.pth), "
                               "bilinear to 299 px, pool3, real statistics of the same 5,000 ground truths "
                               "(basicsr/metrics/custom_fid.py, models/color_model.py): not pytorch-fid's "
                               "network, so not this suite's FID"),
    PublishedNumber(paper="ColTran (Kumar et al., ICLR 2021)", method="coltran", quantity="FID", value=19.37,
                    dataset="ImageNet val, first 5,000 images", protocol="center-crop", image_size=256,
                    num_images=5000,
                    convention="FID-5K: TF-GAN Inception features, 5,000 samples against real images from beyond "
                               "index 5,000 (maintainer, google-research/google-research#1020): not this suite's FID",
                    source="ColTran paper (ImageNet FID), value as summarised at emergentmind.com/papers/2102.04432 "
                           "and sciencestack.ai/paper/2102.04432; protocol: coltran/datasets.py eval center crop"),
)

# Numbers the issue asked for that could not be confirmed in a source this suite can name (left out, not guessed).
MISSING = (
    "ChromaGAN's own paper (Vitoria et al., WACV 2020): its PSNR table (ImageNet val at 224 px); "
    "pvitoria/ChromaGAN#17 says only 'about 25'",
    "ColTran's paper: any per-image metric (its README advises against PSNR/SSIM)",
    "DDColor on ImageNet val5k: PSNR and ΔCF; DDColor on COCO-Stuff and ADE20K: every number",
    "CT2 (Weng et al., ECCV 2022): every number (its released code and README give the protocol and the "
    "conventions only)",
)


def paper_table1() -> dict[str, tuple[float, float]]:
    """The ColorGAN paper's Table 1: method -> (PSNR dB, SSIM), PASCAL VOC at 256x256 (their protocol, not ours)."""
    values = {(n.method, n.quantity): n.value for n in PUBLISHED if n.paper == COLORGAN_PAPER}
    return {m: (values[(m, "PSNR")], values[(m, "SSIM")]) for m in dict.fromkeys(m for m, _ in values)}


# Table 1 of the paper (PASCAL VOC, 256x256, their training): reference values, never our results
PAPER_TABLE1 = paper_table1()


def same_protocol_as_paper(data: str, image_size: int, num_images: int) -> bool:
    """Whether a run's test images are the ColorGAN paper's Table 1 protocol (VOC test split, 256 px, 1,712)."""
    return (data, image_size, num_images) == ("voc", _COLORGAN_TABLE1["image_size"], _COLORGAN_TABLE1["num_images"])


def published_table() -> "pd.DataFrame":
    """Every published number with its dataset, protocol, convention and source (the book's and README's table)."""
    import pandas as pd  # here, not at the top: the CLI reads CONVENTION_CHOICES and must answer at once

    rows = [asdict(n) for n in PUBLISHED]
    for row in rows:
        variant = VARIANTS.get(row["convention"])
        row["convention"] = f"{variant.name}: {variant.label}" if variant else row["convention"]
    return pd.DataFrame(rows, columns=["paper", "method", "quantity", "value", "convention", "dataset", "protocol",
                                       "image_size", "num_images", "source"])


def conventions_table() -> "pd.DataFrame":
    """Per convention and quantity: the variant, its column header and its definition."""
    import pandas as pd

    return pd.DataFrame([{"convention": name, "quantity": quantity, "variant": variant,
                          "column": VARIANTS[variant].label, "definition": VARIANTS[variant].definition}
                         for name, table in CONVENTIONS.items() for quantity, variant in table.items()])

# --------------------------------------------------------------------------- the papers' protocols

# The ColorGAN paper's sentences that state its protocol, verbatim (§2.1 after eq. 2, and §3.1)
COLORGAN_PAPER_TEXT = {
    "eq2": "standard deviation $\\sigma=0.1$. The terms $\\lambda_g, \\lambda_p, \\lambda_{L1}$, and λ_s are fixed "
           "empirically and set to $\\{\\lambda_g, \\lambda_p, \\lambda_{L1}, \\lambda_s\\} = \\{0.1,100,10,1\\}$.",
    "training": "For training, the PASCAL VOC dataset is used, which has 17125 images. 15413 images are used for "
                "training while 1712 images are used for testing. The images are rescaled to 256x256 and trained "
                "for 300 epochs. The learning rate was set to 1×10^{-4} and 2×10^{-4} for the generator and "
                "discriminator respectively. We use a batch size of 16 and an Adam optimizer with $\\beta_1 = 0.5$ "
                "and $\\beta_2 = 0.999$.",
}

# The papers' protocols, one table per method: config field -> (the paper's value, how the paper says it).
# ColorGAN: §3.1 and eq. 1-2 of Shafiq & Lee. Precision: the paper names no mixed precision, so fp32.
# Baselines: their own papers (and official code; ../shared/docs/baselines.md) for the model and the
# optimisation; data and image size are ColorGAN's Table 1 setting, the one their numbers are compared in
# (ColorGAN does not say how it trained them, so their training budget is left open).
_TABLE1_DATA = {
    "data": ("voc", "PASCAL VOC2012 (ColorGAN's Table 1: 15,413 train / 1,712 test)"),
    "image_size": (256, "256×256 (ColorGAN's Table 1)"),
    "max_images": (0, "all training images"),
}
PAPER_PROTOCOLS: dict[str, dict[str, tuple[Any, str]]] = {
    "colorgan": {
        "data": ("voc", "PASCAL VOC2012 (17,125 images; 15,413 train / 1,712 test)"),
        "image_size": (256, "256×256"),
        "max_images": (0, "all 15,413 training images"),
        "num_epochs": (300, "300 epochs"),
        "num_steps": (0, "300 full epochs"),
        "max_minutes": (0.0, "300 full epochs"),
        "batch_size": (16, "batch 16"),
        "lr_g": (1e-4, "generator learning rate 1e-4"),
        "lr_d": (2e-4, "discriminator learning rate 2e-4"),
        "beta1": (0.5, "Adam β1 = 0.5"),
        "beta2": (0.999, "Adam β2 = 0.999"),
        "lambda_g": (0.1, "λg = 0.1 (eq. 1)"),
        "lambda_p": (100.0, "λp = 100 (eq. 1)"),
        "lambda_l1": (10.0, "λL1 = 10 (eq. 1)"),
        "lambda_s": (1.0, "λs = 1 (eq. 1)"),
        "noise_std": (0.1, "z ~ N(0, 0.1²) (eq. 2)"),
        "use_noise": (True, "noise branch on (§2.1)"),
        "use_skips": (True, "encoder-to-generator skips on (§2.1)"),
        "adversarial": ("wgan-clip", "WGAN as in its ref. [2] (Arjovsky et al.: weight clipping)"),
        "vgg_weights": ("imagenet", "pre-trained VGG for Lp and Ls"),
        "amp": ("off", "fp32 (no mixed precision mentioned)"),
    },
    "chromagan": {
        **_TABLE1_DATA,
        "trunk_width": (64, "VGG16 trunk (64 channels first)"),
        "head_width": (512, "branch convolutions 512"),
        "global_dim": (256, "global vector 256"),
        "class_hidden": (4096, "class head 4096-4096-1000"),
        "decoder_width": (128, "decoder 128 channels"),
        "disc_width": (64, "PatchGAN critic, 64 channels first"),
        "disc_layers": (3, "3 stride-2 critic layers"),
        "disc_slope": (0.3, "LeakyReLU 0.3 (Keras default)"),
        "vgg_input": ("unit", "tiled L in [0, 1], no mean subtraction (official code)"),
        "teacher_size": (224, "VGG16 teacher at 224 px"),
        "lambda_e": (1.0, "colour error weight 1"),
        "alpha": (0.003, "class KL weight α = 0.003"),
        "lambda_g": (0.1, "λg = 0.1"),
        "gp_weight": (10.0, "gradient penalty 10"),
        "lr_g": (2e-5, "Adam 2e-5"),
        "lr_d": (2e-5, "Adam 2e-5"),
        "beta1": (0.5, "Adam β1 = 0.5"),
        "beta2": (0.999, "Adam β2 = 0.999"),
        "vgg_weights": ("imagenet", "ImageNet VGG16 (trunk and class teacher)"),
        "amp": ("off", "fp32"),
    },
    "coltran": {
        **_TABLE1_DATA,
        "coarse_size": (64, "64×64 core"),
        "hidden_size": (512, "core width 512"),
        "ff_size": (512, "core feed-forward 512"),
        "num_heads": (4, "4 heads"),
        "num_encoder_layers": (4, "4 encoder layers"),
        "num_outer_layers": (2, "2 outer decoder layers"),
        "num_inner_layers": (2, "2 inner decoder layers"),
        "lambda_ar": (0.99, "0.99·NLL_AR"),
        "lambda_parallel": (0.01, "0.01·NLL_parallel"),
        "upsampler_hidden_size": (512, "upsampler width 512"),
        "upsampler_ff_size": (512, "upsampler feed-forward 512"),
        "upsampler_heads": (4, "upsampler heads 4"),
        "num_color_upsampler_layers": (4, "4 colour upsampler layers"),
        "num_spatial_upsampler_layers": (3, "3 spatial upsampler layers"),
        "lr": (3e-4, "RMSprop 3e-4"),
        "ema_decay": (0.999, "Polyak average 0.999"),
        "amp": ("off", "fp32"),
    },
}
# What tables and figures call each method (a config's ``method`` -> the name its paper gives it); any other row
# (the grayscale reference, a tool scored by ``colorgan score``) keeps its own name: ``METHOD_NAMES.get(m, m)``.
METHOD_NAMES = {"colorgan": "ColorGAN", "chromagan": "ChromaGAN", "coltran": "ColTran"}
# Whose protocol a comparability note holds a run to (``paper_comparison``), as the note names it.
PAPER_NAMES = {"colorgan": "the paper's §3.1 settings",
               "chromagan": "ChromaGAN's paper (Vitoria et al.) in ColorGAN's Table 1 setting",
               "coltran": "ColTran's paper (Kumar et al.) in ColorGAN's Table 1 setting"}


def protocol_values(method: str) -> dict[str, Any]:
    """A method's paper protocol as config field -> value (what its config's defaults read)."""
    return {name: value for name, (value, _) in PAPER_PROTOCOLS[method].items()}

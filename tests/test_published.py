"""The papers' values have one home (colorgan/common/published.py): held against the ColorGAN paper's own sentences,
those sentences against the paper's text, and the configs' defaults against them."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from colorgan.common import published
from colorgan.common.params import field_default
from colorgan.method.config import ColorGANConfig
from colorgan.report import paper_comparison

PAPER = Path(__file__).resolve().parents[2] / "shared" / "paper" / "colorgan-paper.txt"
# defaults that differ from the paper's protocol on purpose, each with its reason (the README's deviations)
DEVIATIONS = {
    "data": "the offline default trains on the bundled sample photos; PROFILE=paper sets voc",
    "vgg_weights": "no pretrained weights can be downloaded here; imagenet reads them from the hub cache",
    "adversarial": "the paper gives no clip value or critic schedule; the gradient penalty needs neither",
    "amp": "a speed switch: auto uses bf16 only where it was measured faster; amp=off is the paper's fp32",
}


def values_in_the_papers_sentences() -> dict[str, object]:
    """The ColorGAN protocol read from the quoted sentences alone (not from PAPER_PROTOCOLS)."""
    eq2, training = published.COLORGAN_PAPER_TEXT["eq2"], published.COLORGAN_PAPER_TEXT["training"]
    sigma = float(re.search(r"\\sigma=([\d.]+)", eq2)[1])
    lambdas = [float(v) for v in re.search(r"= \$?\\\{([\d.,]+)\\\}", eq2)[1].split(",")]
    lr = re.search(r"set to (\d)×10\^\{-(\d)\} and (\d)×10\^\{-(\d)\}", training)
    images = re.search(r"has (\d+) images\. (\d+) images are used for training while (\d+)", training)
    return {
        "noise_std": sigma,
        **dict(zip(("lambda_g", "lambda_p", "lambda_l1", "lambda_s"), lambdas)),
        "image_size": int(re.search(r"rescaled to (\d+)x\1", training)[1]),
        "num_epochs": int(re.search(r"for (\d+) epochs", training)[1]),
        "lr_g": int(lr[1]) * 10.0 ** -int(lr[2]),
        "lr_d": int(lr[3]) * 10.0 ** -int(lr[4]),
        "batch_size": int(re.search(r"batch size of (\d+)", training)[1]),
        "beta1": float(re.search(r"\\beta_1 = ([\d.]+)", training)[1]),
        "beta2": float(re.search(r"\\beta_2 = ([\d.]+)", training)[1]),
        "images": tuple(int(v) for v in images.groups()),
    }


def test_the_protocol_is_what_the_papers_sentences_say():
    said = values_in_the_papers_sentences()
    protocol = {field: value for field, (value, _) in published.PAPER_PROTOCOLS["colorgan"].items()}
    for field, value in said.items():
        if field == "images":  # the data line states the counts
            total, train, test = value
            assert train + test == total
            assert f"{total:,}" in published.PAPER_PROTOCOLS["colorgan"]["data"][1]
            assert f"{train:,} train / {test:,} test" in published.PAPER_PROTOCOLS["colorgan"]["data"][1]
        else:
            assert protocol[field] == pytest.approx(value, rel=1e-12), field
    assert len(said) == 13  # every value the sentences state is checked


@pytest.mark.skipif(not PAPER.is_file(), reason=f"the paper's text is not at {PAPER} (it is in ../shared, not "
                                                "part of this repository)")
def test_the_quoted_sentences_are_the_papers_own():
    text = PAPER.read_text()
    for name, sentence in published.COLORGAN_PAPER_TEXT.items():
        assert sentence in text, f"COLORGAN_PAPER_TEXT[{name!r}] is not verbatim in {PAPER.name}"


def test_colorgan_defaults_are_the_protocol_or_a_named_deviation():
    defaults = {f.name: field_default(f) for f in dataclasses.fields(ColorGANConfig)}
    for field, (value, _) in published.PAPER_PROTOCOLS["colorgan"].items():
        assert field in defaults, f"the protocol names {field}, which ColorGANConfig does not have"
        if field in DEVIATIONS:
            assert defaults[field] != value, f"{field} no longer deviates: drop it from DEVIATIONS"
        else:
            assert defaults[field] == value, f"ColorGANConfig.{field} = {defaults[field]!r}, the paper: {value!r}"


# the baselines' defaults are their papers' sizes and settings (PROFILES shrink them for a CPU); these differ
BASELINE_DEVIATIONS = {
    "data": "the offline default trains on the bundled sample photos; PROFILE=paper sets voc",
    "vgg_weights": "no pretrained weights can be downloaded here; imagenet reads them from the hub cache",
    "amp": "a speed switch: auto uses bf16 only where it was measured faster; amp=off is the paper's fp32",
}


@pytest.mark.parametrize("method", ["chromagan", "coltran"])
def test_baseline_defaults_are_their_papers_protocol_or_a_named_deviation(method):
    """A baseline's paper values live in published.PAPER_PROTOCOLS and in its config's defaults: held together."""
    from colorgan.cli import methods

    config_cls = methods()[method][0]
    defaults = {f.name: field_default(f) for f in dataclasses.fields(config_cls)}
    for field, (value, _) in published.PAPER_PROTOCOLS[method].items():
        assert field in defaults, f"the {method} protocol names {field}, which {config_cls.__name__} does not have"
        if field in BASELINE_DEVIATIONS:
            assert defaults[field] != value, f"{method}.{field} no longer deviates: drop it from BASELINE_DEVIATIONS"
        else:
            assert defaults[field] == value, f"{config_cls.__name__}.{field} = {defaults[field]!r}, paper: {value!r}"


def test_the_paper_comparison_reads_the_protocols_from_their_home():
    assert paper_comparison.PAPER_PROTOCOLS is published.PAPER_PROTOCOLS
    assert not hasattr(paper_comparison, "_TABLE1_DATA")  # one copy only

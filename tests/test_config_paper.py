"""Config defaults against the paper: every "(paper: X)" in a help text is the default, or a declared deviation."""

from __future__ import annotations

import dataclasses
import re

import pytest

from baselines.chromagan import ChromaGANConfig
from baselines.coltran.config import ColTranConfig
from colorgan.common.params import field_default
from colorgan.method.config import ColorGANConfig

# "(paper: X)" or "(paper: X; default differs: why)"
PAPER_NOTE = re.compile(r"\(paper: (?P<value>[^;()]+?)(?:; (?P<rest>[^()]*))?\)")
# the ColorGAN paper's §2-3.1 values: each field must carry its note (a note dropped from a help text fails here)
COLORGAN_PAPER_FIELDS = {"data", "image_size", "batch_size", "num_epochs", "vgg_weights", "noise_std", "lambda_g",
                         "lambda_p", "lambda_l1", "lambda_s", "adversarial", "lr_g", "lr_d", "beta1", "beta2"}
DECLARED_DEVIATIONS = {"data", "vgg_weights", "adversarial"}  # the config module's docstring names the same three


def paper_notes(cls: type) -> dict[str, tuple[str, str | None, object]]:
    """field -> (the paper's value as written, the text after ';' or None, the field's default)."""
    notes = {}
    for f in dataclasses.fields(cls):
        match = PAPER_NOTE.search(f.metadata.get("help", ""))
        if match:
            notes[f.name] = (match["value"].split(",")[0].strip(), match["rest"], field_default(f))
    return notes


def same_value(written: str, default: object) -> bool:
    """'1e-4' == 0.0001, '100' == 100.0, 'voc' == 'voc'."""
    if isinstance(default, (int, float)) and not isinstance(default, bool):
        return float(written) == float(default)
    return written == str(default)


@pytest.mark.parametrize("cls", [ColorGANConfig, ChromaGANConfig, ColTranConfig])
def test_defaults_are_the_papers_values_or_declared_deviations(cls):
    notes = paper_notes(cls)
    assert notes, f"{cls.__name__}: no help text names a paper value"
    for name, (paper, rest, default) in notes.items():
        if rest is not None and rest.startswith("default differs: "):
            assert not same_value(paper, default), f"{name}: declared as differing, yet defaults to {paper}"
        else:
            assert same_value(paper, default), f"{name}: the paper gives {paper}, the default is {default!r}"
            assert rest is None, f"{name}: after the paper's value, write '; default differs: why' ({rest!r})"


def test_every_colorgan_paper_value_is_noted_and_the_deviations_are_the_declared_ones():
    notes = paper_notes(ColorGANConfig)
    assert COLORGAN_PAPER_FIELDS <= set(notes), sorted(COLORGAN_PAPER_FIELDS - set(notes))
    differing = {name for name, (_, rest, _) in notes.items() if rest is not None}
    assert differing == DECLARED_DEVIATIONS
    assert (notes["vgg_weights"][0], notes["adversarial"][0], notes["data"][0]) == ("imagenet", "wgan-clip", "voc")

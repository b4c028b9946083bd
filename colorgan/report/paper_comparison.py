"""Can a run's numbers be compared with its method's paper: its config against that paper's protocol, field
by field, and the fields the paper leaves open (the note each chapter shows beside its numbers)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from colorgan.common.published import PAPER_NAMES, PAPER_PROTOCOLS
from colorgan.training.run_store import read_run


# Never a difference: fields that do not change the numbers (bookkeeping; the seed, as the note says "up to
# seed"), that change only the speed (same maths, see `colorgan bench`), or that belong to a data source
# other than the paper's (the data line covers them).
_NOT_PROTOCOL = {"method", "seed", "run_dir", "resume", "progress", "device", "log_every", "checkpoint_every",
                 "keep_checkpoints", "num_bootstrap", "data_root", "test_fraction", "num_sample_crops",
                 "channels_last", "compile", "fused_adam", "share_vgg_targets"}
# A field that only matters under another field's value: gp_weight under wgan-gp, clip_value under wgan-clip.
_APPLIES_WHEN = {"gp_weight": ("adversarial", "wgan-gp"), "clip_value": ("adversarial", "wgan-clip")}


def _method(config: dict[str, Any]) -> str:
    """Whose protocol applies: the run's method; a data-only config (no training fields) is held to ColorGAN's."""
    method = config.get("method", "colorgan")
    return "colorgan" if method not in PAPER_PROTOCOLS and "batch_size" not in config else method


def _resolved(config: dict[str, Any], field: str, vgg_source: str | None, device: str | None) -> Any:
    """A config value as the run used it: the VGG weights it loaded, the precision 'auto' chose."""
    value = config.get(field)
    if field == "vgg_weights" and vgg_source:
        return "imagenet" if vgg_source == "imagenet" else vgg_source
    if field == "amp" and value == "auto" and device:
        return "bf16" if device.startswith("cuda") else "off"  # runtime.autocast_dtype's rule
    return value


def protocol_differences(config: dict[str, Any], vgg_source: str | None = None,
                         device: str | None = None) -> list[str]:
    """How a run's config differs from its method's paper protocol, one readable line per difference.

    Every field of ``PAPER_PROTOCOLS[method]`` that the config has is compared (a config without a
    training budget, e.g. the data overview's, is compared on what it has; a config without a method
    is ColorGAN's). ``vgg_source`` (provenance's ``vgg_weights``) and ``device`` ('cpu', 'cuda') say
    what the run actually used. A method without a recorded protocol has no lines (see the note).
    """
    protocol = PAPER_PROTOCOLS.get(_method(config), {})
    by_steps = bool(config.get("num_steps"))
    lines = []
    for field, (paper_value, paper_text) in protocol.items():
        if field not in config or (field == "num_epochs" and by_steps):
            continue  # with num_steps > 0 the epochs are ignored: the num_steps line gives the budget
        value = _resolved(config, field, vgg_source, device)
        if field == "amp" and value == "auto":
            lines.append(f"amp='auto' (bf16 on CUDA, fp32 on CPU; paper: {paper_text})")
        elif field == "num_steps" and value:
            lines.append(f"num_steps={value} optimiser steps (paper: {paper_text})")
        elif field != "num_steps" and value != paper_value:
            lines.append(f"{field}={value!r} (paper: {paper_text})")
    return lines


def protocol_choices(config: dict[str, Any]) -> list[str]:
    """Fields that change the numbers but that the method's paper leaves open, as 'field=value' chosen here."""
    fixed = PAPER_PROTOCOLS.get(_method(config), {})
    chosen = []
    for field, value in config.items():
        condition = _APPLIES_WHEN.get(field)
        if field in fixed or field in _NOT_PROTOCOL or (
                condition and condition[0] in config and config[condition[0]] != condition[1]):
            continue  # fixed, no effect on the numbers, or unused (gp_weight under weight clipping)
        chosen.append(f"{field}={value!r}")
    return chosen


def comparability_note(config: dict[str, Any], vgg_source: str | None = None, device: str | None = None) -> str:
    """A Markdown note: can these numbers be compared with the method's paper, and if not, why not; then
    the fields that paper leaves open, with the values this run chose."""
    method = _method(config)
    choices = protocol_choices(config)
    open_text = (f"\n\nLeft open by the paper, chosen here: {', '.join(f'`{c}`' for c in choices)}."
                 if choices else "")
    if method not in PAPER_PROTOCOLS:
        return f"**No paper protocol is recorded for method {method!r}**, so nothing was compared." + open_text
    paper = PAPER_NAMES[method]
    differences = protocol_differences(config, vgg_source, device)
    if not differences:
        return (f"**Protocol matches {paper}** in every field it fixes; numbers are comparable up to seed and "
                "hardware." + open_text)
    items = "\n".join(f"- {line}" for line in differences)
    return (f"**Not comparable with {paper}.** These numbers come from a run that differs from its protocol:\n"
            f"{items}" + open_text)


def run_note(run_dir: Path | str) -> str:
    """``comparability_note`` for a trained run, with the VGG weights and the device it actually used."""
    record = read_run(run_dir)
    provenance = record["provenance"] or {}
    return comparability_note(record["config"], provenance.get("vgg_weights"), provenance.get("device"))

"""Licence, citation and make's choice of environment (issue 15)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


def test_code_has_an_mit_licence():
    assert (REPO / "LICENSE").read_text().startswith("MIT License")


def test_citation_names_the_suite_and_the_paper_it_reproduces():
    cff = yaml.safe_load((REPO / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0" and cff["license"] == "MIT"
    assert all(cff[key] for key in ("message", "title", "authors"))
    (paper,) = cff["references"]
    assert paper["title"] == "ColorGAN: Generative Adversarial Network based Image Colorization"
    names = [(a["given-names"], a["family-names"]) for a in paper["authors"]]
    assert names == [("Hamza", "Shafiq"), ("Bumshik", "Lee")]
    assert {a["affiliation"] for a in paper["authors"]} == {
        "Department of Information and Communication Engineering, Chosun University"}


def make_dry_run(target: str, **env: str) -> str:
    """What `make -n TARGET` would run under ``env`` (no active environment unless given)."""
    base = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "CONDA_PREFIX", "CONDA_DEFAULT_ENV")}
    completed = subprocess.run(["make", "-n", target], cwd=REPO, env={**base, **env}, capture_output=True, text=True)
    return completed.stdout + completed.stderr


@pytest.mark.parametrize("env, chosen", [
    ({}, ".venv"),
    ({"VIRTUAL_ENV": "/opt/myvenv"}, "/opt/myvenv"),
    ({"CONDA_PREFIX": "/opt/conda/envs/colorgan-repro", "CONDA_DEFAULT_ENV": "colorgan-repro"},
     "/opt/conda/envs/colorgan-repro"),
    ({"CONDA_PREFIX": "/opt/conda", "CONDA_DEFAULT_ENV": "base"}, ".venv"),  # never install into conda's base
])
def test_make_uses_the_active_environment(env, chosen):
    out = make_dry_run("setup", **env)
    assert f'echo "environment: {chosen}"' in out
    if chosen != ".venv":  # installed into as is (its stamp is missing here), never a new .venv
        assert f"{chosen}/bin/python -m pip install --quiet -e '.[dev]'" in out and "-m venv" not in out

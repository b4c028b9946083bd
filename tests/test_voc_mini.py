"""voc-mini is rebuilt from VOC2012 exactly as it was made, every file checked (issue 15).

The real originals are not on this machine, so the rebuild is tested on a tiny fake VOCdevkit whose
digests the test computes from the recipe (whole image -> 256x256 LANCZOS, RGB, JPEG quality 92).
"""

from __future__ import annotations

import csv
import hashlib
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from colorgan import cli
from colorgan.tools import voc_mini as subset  # the name voc_mini is conftest's fixture of the shared copy


def recipe_sha256(original: Path) -> str:
    """The digest of voc-mini's file for ``original``, by the recipe in the set's README."""
    buffer = io.BytesIO()
    Image.open(original).convert("RGB").resize((256, 256), Image.LANCZOS).save(buffer, "JPEG", quality=92)
    return hashlib.sha256(buffer.getvalue()).hexdigest()


@pytest.fixture
def fake_voc(tmp_path: Path) -> tuple[Path, Path]:
    """A VOCdevkit with three photos (one grayscale, odd sizes) and a manifest of them: (devkit, manifest)."""
    images = tmp_path / "VOCdevkit" / "VOC2012" / "JPEGImages"
    images.mkdir(parents=True)
    rng = np.random.default_rng(0)
    rows = []
    for (name, split, size, mode) in (("2008_000001.jpg", "train", (500, 333), "RGB"),
                                      ("2008_000002.jpg", "train", (375, 500), "L"),
                                      ("2009_000003.jpg", "test", (500, 375), "RGB")):
        pixels = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
        Image.fromarray(pixels).convert(mode).save(images / name, quality=90)
        rows.append([split, name, recipe_sha256(images / name)])
    manifest = tmp_path / "manifest.csv"
    with open(manifest, "w", newline="") as f:
        csv.writer(f).writerows([["split", "file", "sha256"], *rows])
    return tmp_path / "VOCdevkit", manifest


def test_build_makes_the_set_and_checks_every_digest(fake_voc, tmp_path):
    devkit, manifest = fake_voc
    out = subset.build(devkit, tmp_path / "data" / "voc-mini", manifest)
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.jpg")) == [
        "test/2009_000003.jpg", "train/2008_000001.jpg", "train/2008_000002.jpg"]
    for path in out.rglob("*.jpg"):
        with Image.open(path) as image:
            assert image.size == (256, 256) and image.mode == "RGB" and image.format == "JPEG"
    assert (out / "MANIFEST.csv").read_text() == manifest.read_text()
    assert not (tmp_path / "data" / "voc-mini.partial").exists()
    assert subset.build(devkit, out, manifest) == out  # an existing folder is verified, not rebuilt


def test_mismatches_and_missing_originals_are_named_and_nothing_is_installed(fake_voc, tmp_path):
    devkit, manifest = fake_voc
    rows = list(csv.reader(manifest.open()))
    rows[1][2] = "0" * 64  # another digest than the recipe makes
    rows.append(["test", "2012_999999.jpg", "1" * 64])  # not in this VOC copy
    csv.writer(manifest.open("w", newline="")).writerows(rows)
    out = tmp_path / "voc-mini"
    with pytest.raises(ValueError) as err:
        subset.build(devkit, out, manifest)
    message = str(err.value)
    assert "2 of 4 files match the manifest" in message
    assert "1 originals are not in" in message and "2012_999999.jpg" in message
    assert "1 have another SHA-256 (train/2008_000001.jpg: expected 000000000000..." in message
    assert "voc-mini.partial, which is NOT voc-mini" in message
    assert not out.exists()


def test_verify_names_a_changed_or_missing_file(fake_voc, tmp_path):
    devkit, manifest = fake_voc
    out = subset.build(devkit, tmp_path / "voc-mini", manifest)
    changed = out / "train" / "2008_000002.jpg"
    changed.write_bytes(changed.read_bytes() + b"\0")
    (out / "test" / "2009_000003.jpg").unlink()
    with pytest.raises(ValueError, match=r"1 of 3 files match.*1 are missing \(first: test/2009_000003.jpg\)"
                                         r".*train/2008_000002.jpg: expected"):
        subset.verify(out, manifest)


def test_cli_builds_and_reports(fake_voc, tmp_path, monkeypatch, capsys):
    devkit, manifest = fake_voc
    monkeypatch.setattr(subset, "MANIFEST", manifest)
    assert cli.main(["data-voc-mini", "--voc", str(devkit), "--out", str(tmp_path / "out")]) == 0
    assert "every SHA-256 matches" in capsys.readouterr().out
    assert cli.main(["data-voc-mini", "--out", str(tmp_path / "nowhere")]) == 2
    assert "make data-voc-mini DATA=/path/to/VOCdevkit" in capsys.readouterr().err


def test_cli_with_the_real_manifest_names_the_missing_originals(tmp_path, capsys):
    (tmp_path / "VOCdevkit" / "VOC2012" / "JPEGImages").mkdir(parents=True)
    assert cli.main(["data-voc-mini", "--voc", str(tmp_path / "VOCdevkit"), "--out", str(tmp_path / "v")]) == 2
    assert "0 of 2250 files match the manifest; 2250 originals are not in" in capsys.readouterr().err


def test_the_packaged_manifest_is_the_sets_file_list():
    entries = subset.read_manifest()
    assert len(entries) == 2250 and sum(e.split == "test" for e in entries) == 250
    assert len({e.file for e in entries}) == 2250


def test_the_packaged_manifest_matches_the_shared_copy(voc_mini):  # skips, with its reason, where absent
    shared = {(r["split"], r["file"], r["sha256"]) for r in csv.DictReader((voc_mini / "MANIFEST.csv").open())}
    assert {(e.split, e.file, e.sha256) for e in subset.read_manifest()} == shared
    assert subset.verify(voc_mini) == voc_mini

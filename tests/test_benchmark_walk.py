"""Benchmarking another colorizer as a user walks it (issue 26): the grayscale row of `score`, provenance of
`colorize` outputs, Table 1 rows scored on other images or sizes set apart, and the gallery on a test_root."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from skimage.color import lab2rgb, rgb2lab
from skimage.metrics import peak_signal_noise_ratio

from colorgan.cli import METHODS, main
from colorgan.measures.metrics import GRAYSCALE
from colorgan.measures.testset import prepare, walk
from colorgan.report import figures, front_page, table1
from colorgan.reproduce import pipeline, plan
from tests.conftest import write_images
from tests.test_score import folder_run, no_hub_weights  # noqa: F401 -- fixtures shared with test_score

REPO = Path(__file__).resolve().parents[1]


def skimage_gray(rgb8: np.ndarray) -> np.ndarray:
    """The ab = 0 image of (H, W, 3) uint8 RGB by scikit-image's Lab, as 8-bit RGB."""
    lab = rgb2lab(rgb8)
    lab[..., 1:] = 0
    return (np.clip(lab2rgb(lab), 0, 1) * 255).round().astype(np.uint8)


def half_saturated(gt: Path, out: Path, size: tuple[int, int] | None) -> None:
    """Each ground-truth photo blended 50 % with its own grayscale (at ``size``, or its own size): a 'tool'."""
    for path in walk(gt)[0]:
        img = Image.open(path).convert("RGB")
        img = img.resize(size, Image.Resampling.LANCZOS) if size else img
        rgb8 = np.asarray(img)
        blend = (rgb8.astype(np.float64) + skimage_gray(rgb8)) / 2
        target = out / path.relative_to(gt).with_suffix(".png")
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(blend.round().astype(np.uint8)).save(target)


# ------------------------------------------------------------------------------------ score: gray row


def test_score_has_a_grayscale_row_and_the_paired_delta(tmp_path: Path, capsys):
    """Fails on the old code: `score` had only the tool's row."""
    gt, pred = tmp_path / "gt", tmp_path / "pred"
    write_images(gt, 6, size=(40, 30), seed=8)
    half_saturated(gt, pred, (32, 32))
    assert main(["score", str(pred), str(gt), "--name", "HalfSat", "-o", str(tmp_path / "scored")]) == 0
    out = capsys.readouterr().out
    summary = pd.read_csv(tmp_path / "scored" / "summary.csv").set_index("method")
    assert list(summary.index) == ["HalfSat", GRAYSCALE]
    per_image = pd.read_csv(tmp_path / "scored" / "per_image.csv")
    gray = per_image[per_image.method == GRAYSCALE].set_index("image")
    tool = per_image[per_image.method == "HalfSat"].set_index("image")
    assert sorted(gray.index) == sorted(tool.index) == [f"img_{i:03d}" for i in range(6)]
    for key in gray.index:  # gray from the ground truth at the prediction's size and protocol, by scikit-image
        truth = prepare(Image.open(gt / f"{key}.png"), 32, "resize").transpose(1, 2, 0)
        expected = peak_signal_noise_ratio(truth, skimage_gray(truth), data_range=255)
        assert gray.loc[key, "psnr"] == pytest.approx(expected, abs=0.05), key
    delta = (tool.psnr - gray.loc[tool.index, "psnr"]).mean()
    row = summary.loc["HalfSat"]
    assert row.psnr_vs_gray == pytest.approx(delta, abs=1e-9)
    assert row.psnr_vs_gray_low < row.psnr_vs_gray < row.psnr_vs_gray_high
    assert row.psnr_vs_gray > 0  # half the colour back beats none
    assert pd.isna(summary.loc[GRAYSCALE, "psnr_vs_gray"])
    assert GRAYSCALE in out
    assert f"HalfSat minus grayscale (same images, paired 95% interval): PSNR {delta:+.3f} dB" in out
    record = json.loads((tmp_path / "scored" / "summary.json").read_text())
    assert record["scored_set"]["image_size"] == [32, 32] and record["scored_set"]["num_images"] == 6
    assert record["vs_gray"]["psnr_vs_gray"] == pytest.approx(delta, abs=1e-9)


# ----------------------------------------------------------------------------- colorize: provenance


def test_colorize_writes_its_provenance_and_score_uses_it(folder_run, tmp_path: Path, capsys):
    """Fails on the old code: no colorize.json, bare PNGs, and score named the row after the folder."""
    run_dir, other = folder_run
    out = tmp_path / "out"
    assert main(["colorize", str(other), "-o", str(out), "--run", str(run_dir), "--protocol", "center-crop",
                 "--seed", "3", "--no-progress"]) == 0
    record = json.loads((out / "colorize.json").read_text())
    assert record["run"] == str(run_dir.resolve()) and record["method"] == "colorgan"
    assert record["checkpoint_step"] == 2 and record["checkpoint_digest"].endswith(
        record["checkpoint_digest"].split(":")[-1]) and len(record["checkpoint_digest"].split(":")[-1]) == 64
    assert record["protocol"] == "center-crop" and record["image_size"] == 32 and record["seed"] == 3
    assert record["git_commit"] and record["time"].startswith("20")
    text = Image.open(out / "img_000.png").text
    assert text["colorgan:run"] == record["run"] and text["colorgan:protocol"] == "center-crop"
    assert text["colorgan:checkpoint_step"] == "2" and text["colorgan:image_size"] == "32"
    capsys.readouterr()
    assert main(["score", str(out), str(other), "--protocol", "center-crop", "-o", str(tmp_path / "s1")]) == 0
    captured = capsys.readouterr()
    summary = pd.read_csv(tmp_path / "s1" / "summary.csv")
    assert summary.method.iloc[0] == record["name"] and run_dir.name in record["name"]
    assert "warning" not in captured.err
    # scored with another protocol than it was colorized with: said, and still scored
    assert main(["score", str(out), str(other), "--protocol", "resize", "-o", str(tmp_path / "s2")]) == 0
    err = capsys.readouterr().err
    assert "warning:" in err and "--protocol center-crop" in err and "--protocol resize" in err
    assert json.loads((tmp_path / "s2" / "summary.json").read_text())["warnings"]


# ------------------------------------------------------------------------------ Table 1 and the gallery


def test_table1_sets_rows_on_other_sets_apart_and_the_gallery_reads_the_scored_folder(folder_run, tmp_path: Path):
    """The issue's walk at toy size: the runs scored on a test_root folder, external rows at the runs' size and at
    another size and protocol. Fails on the old code: the 48² row sat among the runs with no word, and the
    gallery looked the test_root's images up in the run's own split (KeyError)."""
    run_dir, other = folder_run  # a 32² run; `other` holds 5 photos, two of them in a sub-folder
    made = {}
    tools = (("HalfSat32", 32, "resize"), ("HalfSat48", 48, "resize"), ("HalfSatCC", 32, "center-crop"))
    for name, size, protocol in tools:
        half_saturated(other, tmp_path / name, (size, size))
        made[name] = tmp_path / f"{name}-score"
        assert main(["score", str(tmp_path / name), str(other), "--name", name, "--protocol", protocol,
                     "-o", str(made[name])]) == 0
    table, per_image = table1.table1([str(run_dir)], METHODS, device="cpu", test_root=str(other), protocol="resize",
                                     external_runs=[str(f) for f in made.values()])
    why = table.set_index("Method")[table1.APART]
    assert why["HalfSat32"] == "" and why["ColorGAN"] == "" and why[GRAYSCALE] == ""
    assert why["HalfSat48"] == "scored at 48² on 5 images; the runs: 32² on 5 images"
    assert why["HalfSatCC"] == "scored at 32² (center-crop) on 5 images; the runs: 32² (resize) on 5 images"
    assert list(table.Method[-2:]) == ["HalfSat48", "HalfSatCC"]  # below the runs, never ranked among them
    assert (table.Method == GRAYSCALE).sum() == 1  # the scores' own gray rows are not added
    assert set(per_image.method) == {"colorgan", GRAYSCALE, "HalfSat32"}
    headline = front_page.front_page_table(table)
    assert "HalfSat48" not in set(headline.method) and "HalfSat32" in set(headline.method)
    table1.save_table1(table, per_image, tmp_path / "out")
    markdown = (tmp_path / "out" / "table1.md").read_text()
    main_table, rest = markdown.split("Not compared with the runs", 1)
    assert "HalfSat32" in main_table and "HalfSat48" not in main_table and "HalfSat48" in rest
    assert "scored at 48² on 5 images; the runs: 32² on 5 images" in rest
    assert "scored at 48²" in table1.table1_html(table)
    # the gallery picks from the scored folder: its sub-folder photos are found
    fig = figures.gallery([str(run_dir)], METHODS, per_image, num_images=2, device="cpu", test_root=str(other),
                         protocol="resize")
    titles = " ".join(ax.get_title() for ax in fig.axes)
    picked = set(per_image[per_image.method == "colorgan"].image)
    assert sum(name in titles for name in picked) == 4


def test_table1_says_when_an_external_row_is_on_other_images(folder_run, tmp_path: Path):
    """The runs on their own split; a row scored at their size on another folder is apart, saying so."""
    run_dir, other = folder_run
    half_saturated(other, tmp_path / "tool", (32, 32))
    assert main(["score", str(tmp_path / "tool"), str(other), "--name", "Tool", "-o", str(tmp_path / "s")]) == 0
    table, _ = table1.table1([str(run_dir)], METHODS, device="cpu", external_runs=[str(tmp_path / "s")])
    assert table.set_index("Method").loc["Tool", table1.APART] == \
        "scored at 32² on 5 images, not the runs'; the runs: 32² on 5 images"


# ------------------------------------------------------------------------------------- PARAMS through make


@pytest.mark.parametrize("typed", ["[a,b]", '["a","b"]', "['a','b']"])
def test_make_hands_params_lists_to_the_parser_as_typed(typed: str):
    """Fails on the old Makefile for '["a","b"]' (its quotes re-quoted away) and on the old parser for '[a,b]'."""
    echo = f"{sys.executable} -c 'import json, sys; print(json.dumps(sys.argv))'"  # stands for the python make runs
    completed = subprocess.run(["make", "--no-print-directory", "-o", "no-stamp", "reproduce", "STAMP=no-stamp",
                                f"PY={echo}", f"PARAMS=table1.external_runs={typed} table1.protocol=resize"],
                               cwd=REPO, capture_output=True, text=True, timeout=60)
    assert completed.returncode == 0, completed.stderr
    argv = json.loads(completed.stdout.splitlines()[-1])
    params = argv[argv.index("--params") + 1]
    assert plan.parse_overrides(params) == {"table1.external_runs": ["a", "b"], "table1.protocol": "resize"}


# ----------------------------------------------------------------------------------------- quiet output


def test_notebook_kernels_are_quiet_unless_verbose(tmp_path: Path, capfd):
    """Fails on the old code: every stage's kernel printed 'running over TCP without encryption'."""
    import nbformat

    source = tmp_path / "tiny.ipynb"
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1", metadata={"tags": ["parameters"]})],
                                        metadata={"kernelspec": {"name": "python3", "language": "python",
                                                                 "display_name": "Python 3"}})
    nbformat.write(notebook, source)
    warnings = {}
    for verbose in (False, True):
        pipeline.execute_notebook(source, tmp_path / f"out-{verbose}.ipynb", {"x": 2}, verbose=verbose)
        warnings[verbose] = "without encryption" in capfd.readouterr().err
    assert warnings == {False: False, True: True}


def test_papermill_cell_log_only_with_verbose():
    """Fails on the old code: papermill's per-cell INFO lines went to the terminal."""
    for argv, level in ((["ablations", "--profile", "no-such"], logging.WARNING),
                        (["ablations", "--profile", "no-such", "-v"], logging.INFO)):
        assert main(argv) == 2  # the unknown profile stops it before any work
        assert logging.getLogger("papermill").level == level


# ------------------------------------------------------------------------------ a CLI that answers at once


@pytest.mark.parametrize("argv", [["--help"], ["train", "--help"], ["score", "--help"], ["evaluate", "--help"],
                                  ["reproduce", "--help"], ["train", "--no-such-flag"]])
def test_help_and_bad_flags_import_nothing_heavy(argv: list[str]):
    """Fails on the old code, which imported torch, torchvision (the baselines), pandas and matplotlib before parsing
    (5 s a call on this CPU; `make bench-cli` times it, no test does)."""
    probe = ("import sys\nfrom colorgan.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
             "print(sorted(m for m in ('torch', 'torchvision', 'pandas', 'matplotlib') if m in sys.modules))")
    completed = subprocess.run([sys.executable, "-c", probe, *argv], cwd=REPO, capture_output=True, text=True,
                               timeout=120)
    assert completed.stdout.splitlines()[-1] == "[]", completed.stdout + completed.stderr


def test_the_cli_protocols_are_the_test_sets():
    from colorgan import cli
    from colorgan.measures import testset

    assert tuple(cli.PROTOCOLS) == testset.PROTOCOLS
    assert tuple(cli.methods()) == cli.METHOD_KEYS


# ------------------------------------------------------------------------------- the ablation, offline


def test_make_ablations_runs_the_offline_smoke_ablation(tmp_path: Path):
    """Fails on the old Makefile, which turned the default profile into ablation-mini (voc-mini, not on a fresh clone)."""
    def command(*variables: str) -> str:
        completed = subprocess.run(["make", "-n", "--no-print-directory", "ablations", *variables], cwd=REPO,
                                   capture_output=True, text=True, timeout=60)
        assert completed.returncode == 0, completed.stderr
        return completed.stdout.splitlines()[-1]

    assert "colorgan ablations --profile smoke " in command()
    planned = plan.plan("smoke", METHODS, overrides={}, results_root=tmp_path, kind="ablations")
    assert planned.params["ablations"]["base"]["data"] == "samples"  # the built-in photos: nothing to fetch
    assert "colorgan ablations --profile ablation-mini " in command("PROFILE=ablation-mini")
    with pytest.raises(FileNotFoundError, match="voc-mini"):  # still needs voc-mini, and says how to get it
        plan.plan("ablation-mini", METHODS, str(tmp_path / "no-voc-mini"), {}, tmp_path, kind="ablations")


def test_table1_read_back_from_csv_splits_into_blocks_without_a_dtype_warning(tmp_path):
    """A Table 1 whose rows were all compared has an empty 'scored apart' column, which a CSV round trip reads
    as float NaN: the blocks come out as one, with no pandas warning (a future pandas raises there)."""
    table = pd.DataFrame({"Method": ["ColorGAN", "grayscale (ab = 0)"], "PSNR": [20.0, 19.0],
                          table1.APART: ["", ""]})
    table.to_csv(tmp_path / "t.csv", index=False)
    read_back = pd.read_csv(tmp_path / "t.csv")
    assert read_back[table1.APART].isna().all()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        blocks = table1.table1_blocks(read_back)
    assert [why for why, _ in blocks] == [""] and list(blocks[0][1].Method) == ["ColorGAN", "grayscale (ab = 0)"]

"""The book pipeline: notebook parameters match the configs, validation before work, stage caching."""

import ast
import dataclasses
import json
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from colorgan import pipeline, report  # noqa: F401  (report sets pandas' display options)
from colorgan.cli import METHODS
from colorgan.config import ABLATION_VARIANTS, AblationConfig, StudyConfig, SummaryConfig, field_default

BOOK = Path(__file__).resolve().parents[1] / "book"


def parameters_cell(name: str) -> dict:
    nb = nbformat.read(BOOK / f"{name}.ipynb", as_version=4)
    cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1, f"{name}.ipynb needs exactly one cell tagged 'parameters'"
    tree = ast.parse(cells[0].source)
    return {node.targets[0].id: ast.literal_eval(node.value) for node in tree.body}


@pytest.mark.parametrize("stage", [*pipeline.stages_for(METHODS), pipeline.Stage("ablations", AblationConfig),
                                   pipeline.Stage("study", StudyConfig), pipeline.Stage("summary", SummaryConfig)],
                         ids=lambda s: s.name)
def test_parameters_cell_matches_the_config(stage):
    params = parameters_cell(stage.name)
    fields = {f.name: field_default(f) for f in dataclasses.fields(stage.config_cls)}
    assert params == fields


def test_notebooks_hold_no_logic():
    for path in BOOK.glob("*.ipynb"):
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert not any(word in cell.source for word in ("def ", "class ", "for batch", ".backward(")), path
                assert len(cell.source.splitlines()) <= 15 or "parameters" in cell.metadata.get("tags", []), path


def test_plan_validates_every_stage_before_work(tmp_path):
    with pytest.raises(ValueError, match=r"PARAMS: no stage has a parameter 'epochs' \(did you mean 'num_epochs'\?\)"):
        pipeline.plan("smoke", METHODS, overrides={"epochs": 5}, results_root=tmp_path)
    with pytest.raises(ValueError, match="lambda_s: -1 is below the minimum"):
        pipeline.plan("smoke", METHODS, overrides={"lambda_s": -1}, results_root=tmp_path)
    with pytest.raises(ValueError, match="PROFILE: no reproduce profile 'smoky'"):
        pipeline.plan("smoky", METHODS, results_root=tmp_path)
    with pytest.raises(ValueError, match="DATA: this profile reads data='voc'"):
        pipeline.plan("paper", METHODS, results_root=tmp_path)
    assert not any(tmp_path.iterdir())  # nothing was written


def test_incomplete_voc_folder_is_reported_before_work(tmp_path):
    jpegs = tmp_path / "VOCdevkit" / "VOC2012" / "JPEGImages"
    jpegs.mkdir(parents=True)
    (jpegs / "2008_000001.jpg").touch()
    with pytest.raises(FileNotFoundError, match="holds 1 JPEGs, VOC2012 has 17,125"):
        pipeline.plan("paper", METHODS, str(tmp_path / "VOCdevkit"), results_root=tmp_path / "results")


def test_overrides_reach_the_stages_that_have_them(tmp_path):
    p = pipeline.plan("smoke", METHODS, overrides=pipeline.parse_overrides("lambda_s=0 num_steps=7 seed=3"),
                      results_root=tmp_path)
    train = p.params["train_colorgan"]
    assert (train["lambda_s"], train["num_steps"], train["seed"]) == (0, 7, 3)
    assert p.params["table1"]["seed"] == 3 and "lambda_s" not in p.params["data"]
    assert p.params["table1"]["run_dirs"] == [p.params[f"train_{method}"]["run_dir"] for method in METHODS]
    other = pipeline.plan("smoke", METHODS, overrides={"lambda_s": 0.5}, results_root=tmp_path)
    assert other.params["train_colorgan"]["run_dir"] != train["run_dir"]  # a run folder per config


def test_unchanged_stages_are_cached_and_changes_rerun_downstream(tmp_path):
    ran = []

    def fake_execute(source: Path, output: Path, params: dict) -> None:
        ran.append(source.stem)
        output.write_text(json.dumps(params))

    first = pipeline.plan("smoke", METHODS, results_root=tmp_path)
    assert set(pipeline.run(first, fake_execute, book=False).values()) == {"ran"}
    ran.clear()
    assert set(pipeline.run(first, fake_execute, book=False).values()) == {"cached"} and not ran
    # overrides write to their own folder; run in the first one here to see which stage keys changed
    changed = pipeline.plan("smoke", METHODS, overrides={"num_fig2_images": 2}, results_root=tmp_path)
    pipeline.run(dataclasses.replace(changed, out_dir=first.out_dir), fake_execute, book=False)
    assert ran == ["table1", "report"]
    ran.clear()
    changed = pipeline.plan("smoke", METHODS, overrides={"num_fig2_images": 2, "lambda_p": 50},
                            results_root=tmp_path)
    pipeline.run(dataclasses.replace(changed, out_dir=first.out_dir), fake_execute, book=False)
    assert ran == [name for name in ran if name != "data"] and "train_colorgan" in ran and "report" in ran


def test_ablation_plan_puts_run_overrides_into_the_base(tmp_path):
    p = pipeline.plan("smoke", METHODS, overrides={"num_steps": 3, "seeds": [5]}, results_root=tmp_path,
                      kind="ablations")
    params = p.params["ablations"]
    assert params["base"]["num_steps"] == 3 and params["seeds"] == [5]
    with pytest.raises(ValueError, match="the ablation study has no parameter 'seed_list'"):
        pipeline.plan("smoke", METHODS, overrides={"seed_list": [1]}, results_root=tmp_path, kind="ablations")


def test_one_variant_can_be_changed_from_the_command_line(tmp_path):
    overrides = pipeline.parse_overrides("variants.noise_std_0.5={'noise_std':0.4} variants.lr={'lr_g':3e-4}")
    variants = pipeline.plan("smoke", METHODS, overrides=overrides, results_root=tmp_path,
                             kind="ablations").params["ablations"]["variants"]
    assert variants["noise_std_0.5"] == {"noise_std": 0.4} and variants["lr"] == {"lr_g": 3e-4}
    assert {k: v for k, v in variants.items() if k not in ("noise_std_0.5", "lr")} == {
        k: v for k, v in ABLATION_VARIANTS.items() if k != "noise_std_0.5"}
    with pytest.raises(ValueError, match=r"variants\['no_l1'\]: lambda_l1: -1 is below the minimum"):
        pipeline.plan("smoke", METHODS, overrides={"variants.no_l1": {"lambda_l1": -1}}, results_root=tmp_path,
                      kind="ablations")


def test_book_tables_show_long_text_in_full():
    """Table 1's notes, the verdicts' evidence and run folders run past pandas' 50-character cut
    (importing colorgan.report, as every notebook does, lifts it)."""
    long_note = "class KL term off (vgg_weights=random: no ImageNet teacher; paper's 'without class distribution')"
    assert long_note in pd.DataFrame({"notes": [long_note]})._repr_html_()


def test_run_report_keeps_the_dirty_mark(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"method": "colorgan", "data": "samples", "image_size": 32,
                                                 "batch_size": 4, "seed": 0}))
    (run / "provenance.json").write_text(json.dumps({"git_commit": "240043b065ec7c10a4e29a82e7921b0c36f1820c-dirty"}))
    assert report.run_report([str(run)])["git commit"][0] == "240043b065ec-dirty"
    assert report.short_commit("240043b065ec7c10a4e29a82e7921b0c36f1820c") == "240043b065ec"

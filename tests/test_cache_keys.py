"""Caches key on the code, and PARAMS overrides never overwrite a profile's results (issue 15)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from colorgan.cli import METHODS
from colorgan.method.step import ColorGANStep
from colorgan.reproduce import pipeline, plan
from colorgan.training import run_files, source_hash, train
from tests.conftest import tiny_config

REPO = Path(__file__).resolve().parents[1]


def test_code_hash_follows_every_py_file_of_the_library_and_baselines(tmp_path):
    for package in source_hash.CODE_PACKAGES:
        shutil.copytree(REPO / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    before = source_hash.code_hash(tmp_path)
    assert before == source_hash.code_hash(REPO)  # content, not location
    (tmp_path / "baselines" / "chromagan.py").write_text((tmp_path / "baselines" / "chromagan.py").read_text() + "#\n")
    edited = source_hash.code_hash(tmp_path)
    assert edited != before
    (tmp_path / "colorgan" / "notes.txt").write_text("not code")
    assert source_hash.code_hash(tmp_path) == edited


def test_a_report_edit_keeps_the_training_runs_and_a_model_edit_does_not(tmp_path):
    for package in source_hash.CODE_PACKAGES:
        shutil.copytree(REPO / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    code, training = source_hash.code_hash(tmp_path), source_hash.training_code_hash(tmp_path)
    assert training == source_hash.training_code_hash(REPO) and training != code
    report = tmp_path / "colorgan" / "report" / "table1.py"
    report.write_text(report.read_text() + "#\n")
    assert source_hash.code_hash(tmp_path) != code  # the book's stages re-run ...
    assert source_hash.training_code_hash(tmp_path) == training  # ... reusing the finished runs
    for name in ("colorgan/method/models.py", "baselines/coltran/core.py", "colorgan/measures/metrics.py"):
        path = tmp_path / name
        before = source_hash.training_code_hash(tmp_path)
        path.write_text(path.read_text() + "#\n")
        assert source_hash.training_code_hash(tmp_path) != before, name


def test_adding_splitting_or_moving_presentation_code_keeps_the_training_runs(tmp_path):
    """Presentation is left out by folder: a new report module, or one moved to another presentation folder,
    does not retrain anything (issue 24: a move of presentation code must not change the run hash)."""
    for package in source_hash.CODE_PACKAGES:
        shutil.copytree(REPO / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    training = source_hash.training_code_hash(tmp_path)
    (tmp_path / "colorgan" / "report" / "new_chart.py").write_text("def chart():\n    pass\n")
    shutil.move(tmp_path / "colorgan" / "report" / "figures.py", tmp_path / "colorgan" / "reproduce" / "figures.py")
    assert source_hash.training_code_hash(tmp_path) == training
    (tmp_path / "colorgan" / "method" / "new_loss.py").write_text("def loss():\n    pass\n")
    assert source_hash.training_code_hash(tmp_path) != training  # a new module below the presentation layers


def test_training_code_never_imports_a_presentation_module():
    """Leaving presentation out of the runs' hash is safe only while nothing that trains imports it."""
    import ast

    presentation = set(source_hash.presentation_files())
    assert presentation >= source_hash.PRESENTATION_FILES
    modules = {name[:-3].replace("/", ".") for name in presentation}
    layers = {f"colorgan.{layer}" for layer in source_hash.PRESENTATION_LAYERS}
    for package in source_hash.CODE_PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            if path.relative_to(REPO).as_posix() in presentation:
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                names = ([node.module or ""] + [f"{node.module}.{a.name}" for a in node.names]
                         if isinstance(node, ast.ImportFrom) else
                         [a.name for a in node.names] if isinstance(node, ast.Import) else [])
                hits = [n for n in names if n in modules or n in layers or n == "colorgan.cli"]
                assert not hits, f"{path.relative_to(REPO)} imports {hits}: a change there could change training"


def test_an_edited_tree_reruns_every_stage(tmp_path, monkeypatch):
    ran = []

    def fake_execute(source: Path, output: Path, params: dict) -> None:
        ran.append(source.stem)
        output.write_text(json.dumps(params))

    p = plan.plan("smoke", METHODS, results_root=tmp_path)
    pipeline.run(p, fake_execute, book=False)
    ran.clear()
    assert set(pipeline.run(p, fake_execute, book=False).values()) == {"cached"}
    monkeypatch.setattr(plan, "code_hash", lambda: "edited")  # the stage keys
    monkeypatch.setattr(train, "code_hash", lambda: "edited")  # the run folders' names (train.run_hash)
    assert set(pipeline.run(p, fake_execute, book=False).values()) == {"ran"}
    # and the training stages train into new folders instead of reusing the old code's runs
    edited = plan.plan("smoke", METHODS, results_root=tmp_path)
    for stage in ("train_colorgan", "train_chromagan", "train_coltran"):
        assert edited.params[stage]["run_dir"] != p.params[stage]["run_dir"]


def test_a_finished_run_of_other_code_is_not_reused(tmp_path, monkeypatch):
    cfg = tiny_config(tmp_path, num_steps=2)
    train.train_or_reuse(cfg, ColorGANStep, tmp_path / "cache")
    assert json.loads((Path(cfg.run_dir) / "code.json").read_text())["code_hash"] == source_hash.training_code_hash()
    assert train.train_or_reuse(cfg, ColorGANStep, tmp_path / "cache").step == 2  # same code: reused
    monkeypatch.setattr(train, "code_hash", lambda: "0123456789abcdef")
    with pytest.raises(ValueError, match=r"made by other code \(code hash [0-9a-f]{16}, now 0123456789abcdef\)"):
        train.train_or_reuse(cfg, ColorGANStep, tmp_path / "cache")


def test_a_run_without_a_code_record_is_not_reused(tmp_path):
    cfg = tiny_config(tmp_path, num_steps=2)
    train.train(cfg, ColorGANStep, tmp_path / "cache")  # every run records its code (`colorgan train` too) ...
    record = Path(cfg.run_dir) / run_files.CODE_RECORD
    assert json.loads(record.read_text())["code_hash"] == source_hash.training_code_hash()
    assert train.train_or_reuse(cfg, ColorGANStep, tmp_path / "cache").step == 2  # ... so it is reused
    record.unlink()  # a run from before code records
    with pytest.raises(ValueError, match="unrecorded version"):
        train.train_or_reuse(cfg, ColorGANStep, tmp_path / "cache")


def test_overrides_write_to_their_own_results_folder(tmp_path):
    plain = plan.plan("smoke", METHODS, results_root=tmp_path)
    assert plain.out_dir == tmp_path.resolve() / "smoke"
    changed = plan.plan("smoke", METHODS, overrides={"num_steps": 80}, results_root=tmp_path)
    assert changed.out_dir == tmp_path.resolve() / "smoke+num_steps=80"
    assert changed.params["table1"]["out_dir"].endswith("smoke+num_steps=80")
    assert changed.params["report"]["out_dir"].endswith("smoke+num_steps=80")
    # training runs stay in the profile's run store (named by config and code): nothing is overwritten there
    changed_run = Path(changed.params["train_colorgan"]["run_dir"])
    plain_run = Path(plain.params["train_colorgan"]["run_dir"])
    assert changed_run.parent == plain_run.parent
    assert changed_run != plain_run
    two = plan.plan("smoke", METHODS, overrides={"seed": 3, "train_colorgan.gen_width": 16}, results_root=tmp_path)
    assert two.out_dir.name == "smoke+seed=3+train_colorgan.gen_width=16"


def test_unsafe_or_long_overrides_get_a_digest_and_a_params_json(tmp_path):
    """Fails on the old names (issue 26): 'smoke+variants.noise_std_0.5=__noise_std__0.4_-<digest>', and with
    paths in PARAMS every path in the folder's name; no file said what the overrides were."""
    overrides = plan.parse_overrides("variants.noise_std_0.5={'noise_std':0.4}")
    p = plan.plan("smoke", METHODS, overrides=overrides, results_root=tmp_path, kind="ablations")
    name = p.out_dir.name
    assert re.fullmatch(r"smoke\+[0-9a-f]{8}", name)
    other = plan.results_name("smoke", {"variants.noise_std_0.5": {"noise_std": 0.3}})
    assert other != name  # the digest tells the overrides apart
    assert p.params["ablations"]["out_dir"].endswith(f"{name}/ablation")  # the ablation's own folder
    paths = plan.parse_overrides("table1.external_runs=['/home/me/score64','/home/me/score256'] "
                                 "table1.test_root=/home/me/gt")
    assert re.fullmatch(r"smoke\+[0-9a-f]{8}", plan.results_name("smoke", paths))
    table_only = plan.plan("smoke", METHODS, overrides={"table1.num_fig2_images": 2}, results_root=tmp_path)
    pipeline.run(table_only, execute=lambda source, output, params: output.write_text("{}"), book=False)
    assert json.loads((table_only.out_dir / "params.json").read_text()) == {
        "profile": "smoke", "overrides": {"table1.num_fig2_images": 2}}
    assert plan.override_folders("smoke", tmp_path) == [(table_only.out_dir, {"table1.num_fig2_images": 2})]


def test_missing_default_voc_mini_says_how_to_build_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # make runs in the clone's root; here a clone where data/voc-mini was never built
    for profile, kind in (("voc-mini", "reproduce"), ("ablation-mini", "ablations")):
        with pytest.raises(FileNotFoundError, match=r"make data-voc-mini DATA=/path/to/VOCdevkit.*DATA="):
            plan.plan(profile, METHODS, results_root=tmp_path, kind=kind)
    (tmp_path / "data" / "voc-mini").mkdir(parents=True)
    p = plan.plan("voc-mini", METHODS, results_root=tmp_path)
    assert p.params["train_colorgan"]["data_root"] == "data/voc-mini"
    assert plan.plan("voc-mini", METHODS, str(tmp_path / "data" / "voc-mini"), results_root=tmp_path)


def test_a_planned_ablation_keeps_its_jobs_and_its_overrides(tmp_path):
    """The executor's jobs and the typed overrides are two fields of the plan: neither may take the other's place
    (a merge once passed the jobs positionally into ``overrides``, and the runs trained in the kernel instead)."""
    overrides = plan.parse_overrides("variants.noise_std_0.5={'noise_std':0.4}")
    p = plan.plan("smoke", METHODS, overrides=overrides, results_root=tmp_path, kind="ablations")
    assert p.overrides == overrides
    assert len(p.jobs["ablations"]) == len(p.runs["ablations"]) > 0
    assert [job.cfg.run_dir for job in p.jobs["ablations"]] == [run_dir for _, run_dir in p.runs["ablations"]]


def test_the_ablation_notebook_is_given_the_variants_it_is_planned_with(tmp_path):
    """Without ``variants`` in its parameters the notebook trains its hand-run demo pair (full, no_noise) while
    the plan's progress counts every default variant: the planner passes the variants it planned."""
    p = plan.plan("smoke", METHODS, results_root=tmp_path, kind="ablations")
    variants = p.params["ablations"]["variants"]
    assert len(variants) > 2 and "full" in variants
    planned = {label.rsplit(" seed ", 1)[0] for label, _ in p.runs["ablations"]}
    assert planned == set(variants)

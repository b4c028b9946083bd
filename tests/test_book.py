"""The book pipeline: notebook parameters match the configs, validation before work, stage caching."""

import ast
import dataclasses
import json
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest

# importing formatting, as every notebook does, sets pandas' display options
from colorgan.cli import METHODS
from colorgan.common import formatting
from colorgan.common.params import field_default
from colorgan.experiments import study
from colorgan.experiments.ablation import ABLATION_VARIANTS, AblationConfig
from colorgan.experiments.study import StudyConfig
from colorgan.report import figures, front_page, run_pages
from colorgan.report.summary import SummaryConfig
from colorgan.reproduce import book_build, pipeline, plan  # noqa: F401

BOOK = Path(__file__).resolve().parents[1] / "book"


def parameters_cell(name: str) -> dict:
    nb = nbformat.read(BOOK / f"{name}.ipynb", as_version=4)
    cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1, f"{name}.ipynb needs exactly one cell tagged 'parameters'"
    tree = ast.parse(cells[0].source)
    return {node.targets[0].id: ast.literal_eval(node.value) for node in tree.body}


# What each notebook runs when opened in Jupyter and run as it is (no papermill): a demo of a minute or two
# on the bundled sample photos, writing under results/notebooks/. These are the only values in which a
# parameters cell may differ from its config's defaults (which are the paper's settings, too big to run by
# hand on a laptop): the names still map one to one, every other value is the default, and each differing
# value is listed here, so a default that drifts in either place fails the test below.
RUNS = "results/notebooks/runs"
_DATA = {"image_size": 32, "num_sample_crops": 128}
_TRAIN = {**_DATA, "batch_size": 8, "num_steps": 30, "log_every": 5, "checkpoint_every": 30}
_COLORGAN = {"gen_width": 16, "gen_max_width": 128, "noise_width": 64, "disc_width": 16}
AS_IS = {
    "data": _DATA,
    "train_colorgan": {**_TRAIN, **_COLORGAN, "run_dir": f"{RUNS}/colorgan"},
    "train_chromagan": {**_TRAIN, "run_dir": f"{RUNS}/chromagan", "trunk_width": 16, "head_width": 128,
                        "global_dim": 64, "class_hidden": 256, "decoder_width": 32, "disc_width": 16,
                        "lr_g": 1e-4, "lr_d": 1e-4},
    "train_coltran": {**_TRAIN, "run_dir": f"{RUNS}/coltran", "coarse_size": 8, "hidden_size": 32, "ff_size": 64,
                      "num_heads": 2, "num_encoder_layers": 1, "num_outer_layers": 1, "num_inner_layers": 1,
                      "upsampler_hidden_size": 32, "upsampler_ff_size": 64, "upsampler_heads": 2,
                      "num_color_upsampler_layers": 1, "num_spatial_upsampler_layers": 1, "spatial_batch_size": 2,
                      "lr": 3e-3, "ema_decay": 0.95},
    # the three folders the training notebooks above write when run as they are
    "table1": {"run_dirs": [f"{RUNS}/colorgan", f"{RUNS}/chromagan", f"{RUNS}/coltran"],
               "out_dir": "results/notebooks", "num_diversity_samples": 3},
    "report": {"run_dirs": [f"{RUNS}/colorgan", f"{RUNS}/chromagan", f"{RUNS}/coltran"],
               "profile": "notebooks", "out_dir": "results/notebooks"},
    "ablations": {"variants": {"full": {}, "no_noise": {"use_noise": False, "lambda_s": 0.0}}, "seeds": [0, 1],
                  "base": {**_TRAIN, **_COLORGAN, "progress": False}, "num_diversity_samples": 2,
                  "out_dir": "results/notebooks/ablations", "runs_dir": "results/notebooks/runs"},
}
# the study: one seed of each method at the demo size; the summary reads what the study wrote
AS_IS["study"] = {
    "methods": {"colorgan": _COLORGAN,
                "chromagan": {k: v for k, v in AS_IS["train_chromagan"].items() if k not in {*_TRAIN, "run_dir"}},
                "coltran": {k: v for k, v in AS_IS["train_coltran"].items() if k not in {*_TRAIN, "run_dir"}}},
    "base": {**_DATA, "batch_size": 8, "num_val_images": 16, "val_every": 10, "checkpoint_every": 10, "log_every": 5},
    "seeds": [0], "num_images_seen": 240, "num_diversity_samples": 2, "out_dir": "results/notebooks/study",
    "runs_dir": "results/notebooks/runs"}
AS_IS["summary"] = {"out_dir": "results/notebooks/study"}
STAGES = [*plan.stages_for(METHODS), plan.Stage("ablations", AblationConfig),
          plan.Stage("study", StudyConfig), plan.Stage("summary", SummaryConfig)]
AS_IS_ORDER = ["data", "train_colorgan", "train_chromagan", "train_coltran", "table1", "report", "ablations", "study",
               "summary"]


@pytest.mark.parametrize("stage", STAGES, ids=lambda s: s.name)
def test_parameters_cell_matches_the_config(stage):
    """Names one to one with the dataclass; values its defaults except the listed as-is demo values."""
    params = parameters_cell(stage.name)
    fields = {f.name: field_default(f) for f in dataclasses.fields(stage.config_cls)}
    assert list(params) == list(fields)
    assert set(AS_IS[stage.name]) <= set(fields)
    assert params == {**fields, **AS_IS[stage.name]}


@pytest.mark.parametrize("stage", STAGES, ids=lambda s: s.name)
def test_notebooks_run_as_they_are_are_small_and_valid(stage):
    cfg = stage.config_cls.from_params(parameters_cell(stage.name))  # the as-is defaults validate
    runs = ([{**cfg.base, **v} for v in cfg.variants.values()] * len(cfg.seeds) if stage.name == "ablations"
            else [c.to_dict() for c in study.run_configs(cfg, METHODS).values()] if stage.name == "study"
            else [cfg.to_dict()])
    assert len(runs) <= 4
    for run in runs:
        assert run.get("image_size", 32) <= 32 and run.get("num_steps", 30) <= 30
        assert run.get("data", "samples") == "samples"
    written = {k: v for k, v in cfg.to_dict().items() if k in ("run_dir", "out_dir", "run_dirs", "runs_dir")}
    paths = [p for v in written.values() for p in (v if isinstance(v, list) else [v])]
    assert all(path.startswith("results/notebooks") for path in paths), paths  # the data chapter writes none
    note = nbformat.read(BOOK / f"{stage.name}.ipynb", as_version=4).cells[1]
    assert "by hand" in note.source and "make reproduce PROFILE=" in note.source


def test_notebooks_show_no_code_in_the_book():
    """Parameters are removed (the chapter shows 'what it ran with'); every other code cell is hidden
    behind a toggle (Jupyter Book's hide-input) and its first cell shows run_pages.ran_with."""
    for path in BOOK.glob("*.ipynb"):
        nb = nbformat.read(path, as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        for cell in code:
            tags = cell.metadata.get("tags", [])
            assert "remove-cell" in tags if "parameters" in tags else "hide-input" in tags, (path.name, cell.source)
        assert "display(run_pages.ran_with(cfg))" in code[1].source, path.name


def test_every_notebook_names_its_kernel():
    # papermill refuses a notebook without a kernelspec ("No language found in notebook"), and the
    # as-is test below runs them with an explicit kernel, so it would not notice
    for path in BOOK.glob("*.ipynb"):
        spec = nbformat.read(path, as_version=4).metadata.get("kernelspec", {})
        assert spec.get("language") == "python" and spec.get("name"), path.name


@pytest.mark.slow
def test_every_notebook_runs_as_it_is(tmp_path, monkeypatch):
    """Opened by hand: each notebook, executed without parameters in order, runs its small demo."""
    import os

    from nbclient import NotebookClient

    # the kernel imports this checkout's colorgan and baselines, as Jupyter started in the repository would
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(BOOK.parent), os.environ.get("PYTHONPATH")])))
    for name in AS_IS_ORDER:
        nb = nbformat.read(BOOK / f"{name}.ipynb", as_version=4)
        # a generous cell limit: on a shared 2-core machine the ablation cell (4 tiny runs) took over 15 min
        NotebookClient(nb, timeout=3600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
                       ).execute()
    out = tmp_path / "results" / "notebooks"
    for name in ("table1.csv", "fig2.png", "gallery.png", "metric_distributions.png", "run_metadata.json",
                 "ablations/ablation_table.csv", "ablations/verdicts.csv", "ablations/ablation_deltas.png"):
        assert (out / name).is_file(), name
    assert {p.name for p in (out / "runs").iterdir()} >= {"colorgan", "chromagan", "coltran"}
    for name in ("table1.md", "learning_curves.png", "metric_distributions.png", "fig2.png", "verdicts.csv",
                 "per_image_metrics.csv"):
        assert (out / "study" / name).is_file(), name


def test_plan_validates_every_stage_before_work(tmp_path):
    with pytest.raises(ValueError, match=r"PARAMS: no stage has a parameter 'epochs' \(did you mean 'num_epochs'\?\)"):
        plan.plan("smoke", METHODS, overrides={"epochs": 5}, results_root=tmp_path)
    with pytest.raises(ValueError, match="lambda_s: -1 is below the minimum"):
        plan.plan("smoke", METHODS, overrides={"lambda_s": -1}, results_root=tmp_path)
    with pytest.raises(ValueError, match="PROFILE: no reproduce profile 'smoky'"):
        plan.plan("smoky", METHODS, results_root=tmp_path)
    with pytest.raises(ValueError, match="DATA: this profile reads data='voc'"):
        plan.plan("paper", METHODS, results_root=tmp_path)
    assert not any(tmp_path.iterdir())  # nothing was written


def test_incomplete_voc_folder_is_reported_before_work(tmp_path):
    jpegs = tmp_path / "VOCdevkit" / "VOC2012" / "JPEGImages"
    jpegs.mkdir(parents=True)
    (jpegs / "2008_000001.jpg").touch()
    with pytest.raises(FileNotFoundError, match="holds 1 JPEGs, VOC2012 has 17,125"):
        plan.plan("paper", METHODS, str(tmp_path / "VOCdevkit"), results_root=tmp_path / "results")


def test_overrides_reach_the_stages_that_have_them(tmp_path):
    p = plan.plan("smoke", METHODS, overrides=plan.parse_overrides("lambda_s=0 num_steps=7 seed=3"),
                  results_root=tmp_path)
    train = p.params["train_colorgan"]
    assert (train["lambda_s"], train["num_steps"], train["seed"]) == (0, 7, 3)
    assert p.params["table1"]["seed"] == 3 and "lambda_s" not in p.params["data"]
    assert p.params["table1"]["run_dirs"] == [p.params[f"train_{method}"]["run_dir"] for method in METHODS]
    other = plan.plan("smoke", METHODS, overrides={"lambda_s": 0.5}, results_root=tmp_path)
    assert other.params["train_colorgan"]["run_dir"] != train["run_dir"]  # a run folder per config


def test_unchanged_stages_are_cached_and_changes_rerun_downstream(tmp_path):
    ran = []

    def fake_execute(source: Path, output: Path, params: dict) -> None:
        ran.append(source.stem)
        output.write_text(json.dumps(params))

    first = plan.plan("smoke", METHODS, results_root=tmp_path)
    assert set(pipeline.run(first, fake_execute, book=False).values()) == {"ran"}
    ran.clear()
    assert set(pipeline.run(first, fake_execute, book=False).values()) == {"cached"} and not ran
    # overrides write to their own folder; run in the first one here to see which stage keys changed
    changed = plan.plan("smoke", METHODS, overrides={"num_fig2_images": 2}, results_root=tmp_path)
    pipeline.run(dataclasses.replace(changed, out_dir=first.out_dir), fake_execute, book=False)
    assert ran == ["table1", "report"]
    ran.clear()
    changed = plan.plan("smoke", METHODS, overrides={"num_fig2_images": 2, "lambda_p": 50},
                        results_root=tmp_path)
    pipeline.run(dataclasses.replace(changed, out_dir=first.out_dir), fake_execute, book=False)
    assert ran == [name for name in ran if name != "data"] and "train_colorgan" in ran and "report" in ran


def test_ablation_plan_puts_run_overrides_into_the_base(tmp_path):
    p = plan.plan("smoke", METHODS, overrides={"num_steps": 3, "seeds": [5]}, results_root=tmp_path,
                  kind="ablations")
    params = p.params["ablations"]
    assert params["base"]["num_steps"] == 3 and params["seeds"] == [5]
    with pytest.raises(ValueError, match="the ablation study has no parameter 'seed_list'"):
        plan.plan("smoke", METHODS, overrides={"seed_list": [1]}, results_root=tmp_path, kind="ablations")


def test_one_variant_can_be_changed_from_the_command_line(tmp_path):
    overrides = plan.parse_overrides("variants.noise_std_0.5={'noise_std':0.4} variants.lr={'lr_g':3e-4}")
    variants = plan.plan("smoke", METHODS, overrides=overrides, results_root=tmp_path,
                         kind="ablations").params["ablations"]["variants"]
    assert variants["noise_std_0.5"] == {"noise_std": 0.4} and variants["lr"] == {"lr_g": 3e-4}
    assert {k: v for k, v in variants.items() if k not in ("noise_std_0.5", "lr")} == {
        k: v for k, v in ABLATION_VARIANTS.items() if k != "noise_std_0.5"}
    with pytest.raises(ValueError, match=r"variants\['no_l1'\]: lambda_l1: -1 is below the minimum"):
        plan.plan("smoke", METHODS, overrides={"variants.no_l1": {"lambda_l1": -1}}, results_root=tmp_path,
                  kind="ablations")


def test_book_tables_show_long_text_in_full():
    """Table 1's notes, the verdicts' evidence and run folders run past pandas' 50-character cut
    (importing colorgan.common.formatting, as every notebook does, lifts it)."""
    long_note = "class KL term off (vgg_weights=random: no ImageNet teacher; paper's 'without class distribution')"
    assert long_note in pd.DataFrame({"notes": [long_note]})._repr_html_()


def test_run_report_keeps_the_dirty_mark(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"method": "colorgan", "data": "samples", "image_size": 32,
                                                 "batch_size": 4, "seed": 0}))
    (run / "provenance.json").write_text(json.dumps({"git_commit": "240043b065ec7c10a4e29a82e7921b0c36f1820c-dirty"}))
    assert run_pages.run_report([str(run)])["git commit"][0] == "240043b065ec-dirty"
    assert formatting.short_commit("240043b065ec7c10a4e29a82e7921b0c36f1820c") == "240043b065ec"


def _table1_csv(folder: Path) -> None:
    pd.DataFrame([
        {"Method": "ColorGAN", "PSNR (dB)": 21.5, "PSNR 95% CI": "[21.000, 22.000]", "SSIM": 0.9,
         "SSIM 95% CI": "[0.8900, 0.9100]", "test images": 10, "steps": 120, "VGG weights": "random(seed=0)",
         "notes": "", "paper PSNR (published)": 24.333, "paper SSIM (published)": 0.938},
        {"Method": "grayscale (ab = 0)", "PSNR (dB)": 20.0, "PSNR 95% CI": "[19.000, 21.000]", "SSIM": 0.88,
         "SSIM 95% CI": "[0.8700, 0.8900]", "test images": 10, "steps": "—", "VGG weights": "—",
         "notes": "reference: input L with ab = 0", "paper PSNR (published)": None, "paper SSIM (published)": None},
    ]).to_csv(folder / "table1.csv", index=False)


def test_html_table_reads_like_a_report():
    table = pd.DataFrame({"Method": ["ColorGAN"], "PSNR (dB)": [21.5], "PSNR 95% CI": ["[21.000, 22.000]"],
                          "notes": ["a long note " * 10]})
    html = formatting.html_table(table)
    assert "<th" in html and "index" not in html and ">0<" not in html  # no pandas index column
    assert '<td class="num">21.5<span class="ci">[21.000, 22.000]</span></td>' in html  # interval under it
    assert "PSNR 95% CI" not in html
    assert '<td class="num">[1]</td>' in html and '<ol class="table-notes"><li>a long note' in html
    assert html.startswith('<div class="report-table">')  # the box that scrolls on its own
    summary = pd.DataFrame({"method": ["colorgan"], "psnr": [19.285354445962344], "psnr_low": [18.9337033594355],
                            "psnr_high": [19.605527615547178]})
    assert '<td class="num">19.2854<span class="ci">[18.9337, 19.6055]</span></td>' in formatting.html_table(summary)


def test_front_page_answers_from_the_results_folder(tmp_path):
    assert front_page.front_page(tmp_path) == ""  # nothing there yet: nothing claimed
    _table1_csv(tmp_path)
    pd.DataFrame([{"claim": "The noise branch adds diversity", "evidence": "diversity: +0.1 [0.05, 0.2]",
                   "verdict": "holds"}]).to_csv(tmp_path / "study_verdicts.csv", index=False)
    (tmp_path / "stages.json").write_text(json.dumps({"train_colorgan": {"seconds": 90.0}}))
    page = front_page.front_page(tmp_path)
    assert "21.50" in page and "24.333" in page and "+1.50" in page  # ours, the paper's, Δ vs grayscale
    assert "The noise branch adds diversity" in page and "holds" in page
    assert "1.5 min" in page
    p = plan.plan("smoke", METHODS, results_root=tmp_path / "results")
    p.out_dir.mkdir(parents=True)
    _table1_csv(p.out_dir)
    intro = book_build.intro_page(p)
    assert "Not comparable with the paper" in intro and "24.333" in intro and "21.50" in intro
    assert "copies" not in intro  # the paper does not say how it got the baselines' numbers
    ablations = plan.plan("smoke", METHODS, results_root=tmp_path / "results", kind="ablations")
    assert "Not comparable with the paper" in book_build.intro_page(ablations)  # from the variants' base config
    assert 'copyright: "2026"' in book_build.BOOK_CONFIG and "colorgan-repro contributors" in book_build.BOOK_CONFIG


def test_ran_with_shows_what_changed_and_keeps_the_rest_folded():
    from colorgan.report.table1 import Table1Config

    html = run_pages.ran_with(Table1Config(run_dirs=["runs/a"], num_fig2_images=2))
    shown, folded = html.split("<details>")
    assert "num_fig2_images" in shown and "device" not in shown and "device" in folded
    assert f"2 of {len(dataclasses.fields(Table1Config))} parameters changed" in shown


def test_missing_runs_say_which_notebooks_to_run(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"run book/train_\*\.ipynb first"):
        run_pages.require_runs([str(tmp_path / "runs" / "colorgan")])


def test_ablation_delta_chart_draws_each_interval(tmp_path):
    from colorgan.experiments.ablation import HIGHER_IS_BETTER

    rows = [{"variant": "full", "metric": "psnr", "mean": 20.0, "low": 19.0, "high": 21.0, "seeds": 2}]
    rows += [{"variant": v, "metric": "psnr", "mean": 19.0, "low": 18.0, "high": 20.0, "seeds": 2, "diff_vs_full": d,
              "diff_low": d - 0.5, "diff_high": d + 0.5, "significant": abs(d) > 0.5} for v, d in (("no_ls", -1.0),
                                                                                                   ("no_l1", 0.2))]
    pd.DataFrame(rows).to_csv(tmp_path / "t.csv", index=False)
    fig = formatting.delta_chart(pd.read_csv(tmp_path / "t.csv"), HIGHER_IS_BETTER)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["no_ls", "no_l1"]
    assert "Δpsnr vs full (↑ better)" == ax.get_title()
    fig.savefig(tmp_path / "deltas.png")


def test_distributions_of_a_study_show_one_dot_per_image(tmp_path):
    """Several seeds per method: each image counts once (seeds averaged), so no method looks denser."""
    rows = [{"method": m, "seed": s, "image": f"im{i}", "psnr": 20.0 + s, "ssim": 0.5}
            for m in ("colorgan", "coltran") for s in (0, 1, 2) for i in range(5)]
    fig = figures.metric_distributions(pd.DataFrame(rows))
    dots = fig.axes[0].collections
    assert [len(c.get_offsets()) for c in dots] == [5, 5]
    assert np.allclose([c.get_offsets()[:, 1].mean() for c in dots], 21.0)


def test_a_chapter_prints_each_warning_once(capsys):
    import logging

    root = logging.getLogger()
    before = list(root.handlers)
    try:
        formatting.log_each_warning_once()
        formatting.log_each_warning_once()  # a second call adds nothing
        log = logging.getLogger("baselines.chromagan")
        for _ in range(6):
            log.warning("vgg_weights=random: no teacher")
        log.warning("another message")
        log.info("not shown")
        assert capsys.readouterr().err.splitlines() == ["vgg_weights=random: no teacher", "another message"]
    finally:
        root.handlers[:] = before


@pytest.mark.parametrize("profile", ["smoke", "voc-mini", "paper"])
def test_a_training_stage_hands_its_notebook_every_field_of_the_run_it_names(profile, tmp_path, monkeypatch):
    """A training notebook's parameters cell holds small demo values; a field left to it trained another config
    than the run folder's name and the executor's (the paper profile trained 30 steps of a demo-size ColorGAN, and
    with the executor first the notebook then refused the executor's checkpoint)."""
    monkeypatch.setattr(plan, "_check_data_root", lambda *args, **kwargs: None)  # no VOC2012 here
    p = plan.plan(profile, METHODS, data_root="" if profile == "smoke" else str(tmp_path), results_root=tmp_path)
    for method, (config_cls, _) in METHODS.items():
        params = p.params[f"train_{method}"]
        assert set(params) == {f.name for f in dataclasses.fields(config_cls)}, method
        (job,) = p.jobs[f"train_{method}"]
        assert config_cls.from_params(params) == job.cfg, method
    if profile == "paper":
        colorgan = p.params["train_colorgan"]
        assert (colorgan["num_steps"], colorgan["num_epochs"], colorgan["gen_width"], colorgan["image_size"]) == \
            (0, 300, 64, 256)


@pytest.mark.parametrize("profile", ["smoke", "study"])
def test_every_stage_gets_every_field_and_one_diversity_count(profile, tmp_path, monkeypatch):
    """No stage runs on its notebook's demo defaults (the committed study's diversity drew the notebook's 2
    samples, not StudyConfig's 3); Table 1, the study and the ablation draw the same number of samples."""
    from colorgan.experiments.ablation import NUM_DIVERSITY_SAMPLES, AblationConfig
    from colorgan.experiments.study import StudyConfig
    from colorgan.report.table1 import Table1Config

    monkeypatch.setattr(plan, "_check_data_root", lambda *args, **kwargs: None)
    p = plan.plan(profile, METHODS, data_root="" if profile == "smoke" else str(tmp_path), results_root=tmp_path)
    for stage in p.stages:
        assert set(p.params[stage.name]) == {f.name for f in dataclasses.fields(stage.config_cls)}, stage.name
    counts = {cls.__name__: next(field_default(f) for f in dataclasses.fields(cls) if f.name == "num_diversity_samples")
              for cls in (Table1Config, StudyConfig, AblationConfig)}
    assert set(counts.values()) == {NUM_DIVERSITY_SAMPLES}, counts

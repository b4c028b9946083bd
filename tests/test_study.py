"""The study: equal budgets enforced, verdicts that follow their numbers, a tiny end-to-end study."""

import io
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from baselines.coltran import coltran_config
from colorgan.cli import METHODS
from colorgan.experiments import study, verdicts
from colorgan.experiments.study import StudyConfig
from colorgan.measures.metrics import GRAYSCALE
from colorgan.report import figures, front_page, summary, table1
from colorgan.reproduce import pipeline, plan, profiles


def test_methods_must_see_the_same_number_of_training_images():
    cfg = StudyConfig(methods={"colorgan": {}, "chromagan": {}}, num_images_seen=1000)  # ChromaGAN: batch 10
    with pytest.raises(ValueError, match=r"num_images_seen: the methods would see .*'colorgan': 992.*'chromagan': 1000"):
        study.run_configs(cfg, METHODS)
    allowed = study.run_configs(cfg.replace(allow_unequal_budget=True), METHODS)
    assert study.images_seen(allowed) == {"colorgan": 992, "chromagan": 1000}
    equal = study.run_configs(cfg.replace(num_images_seen=1040), METHODS)  # 65 x 16 = 104 x 10
    assert study.images_seen(equal) == {"colorgan": 1040, "chromagan": 1040}
    assert len(equal) == 6 and len({c.run_dir for c in equal.values()}) == 6  # a folder per (method, seed)


def test_budget_and_split_are_the_studys_not_a_methods():
    with pytest.raises(ValueError, match="num_steps: set by the study"):
        StudyConfig(methods={"colorgan": {"num_steps": 5}})
    with pytest.raises(ValueError, match="seed: set by the study"):
        StudyConfig(base={"seed": 3, "num_val_images": 10})
    with pytest.raises(ValueError, match="checkpoint: 'best_val' needs validation images"):
        StudyConfig(base={})
    different = StudyConfig(methods={"colorgan": {"image_size": 32}, "coltran": {}}, num_images_seen=1600)
    with pytest.raises(ValueError, match="image_size: the methods differ"):
        study.run_configs(different, METHODS)
    with pytest.raises(ValueError, match="methods: 'deoldify' is not a method"):
        study.run_configs(StudyConfig(methods={"deoldify": {}}), METHODS)


def test_the_study_profile_is_checked_before_any_work(tmp_path):
    p = plan.plan("study", METHODS, str(tmp_path), results_root=tmp_path / "results")
    assert [s.name for s in p.stages] == ["data", "study", "summary"]
    assert len(p.runs["study"]) == 9 and p.runs["study"][5][0] == "chromagan seed 2"  # the progress line's labels
    ablations = plan.plan("study", METHODS, str(tmp_path), results_root=tmp_path / "results", kind="ablations")
    assert len(ablations.runs["ablations"]) == 14 and ablations.runs["ablations"][0][0] == "full seed 0"
    assert Path(ablations.params["ablations"]["out_dir"]).parts[-2:] == ("study", "ablation")  # its own folder
    budgets = study.images_seen(study.run_configs(StudyConfig.from_params(p.params["study"]), METHODS))
    assert len(set(budgets.values())) == 1 and set(budgets) == {"colorgan", "chromagan", "coltran"}
    changed = plan.plan("study", METHODS, str(tmp_path), {"base.image_size": 32, "coltran.lr": 3e-3},
                        results_root=tmp_path / "results")
    assert changed.params["study"]["base"]["image_size"] == 32 and changed.params["study"]["methods"]["coltran"]["lr"] == 3e-3
    with pytest.raises(ValueError, match="num_images_seen: the methods would see"):
        plan.plan("study", METHODS, str(tmp_path), {"num_images_seen": 1001}, results_root=tmp_path / "results")
    assert not (tmp_path / "results").exists()


def synthetic(deltas: dict[str, float], num_images: int = 60, seeds: int = 3, noise: float = 0.3) -> pd.DataFrame:
    """Per-image PSNR/SSIM of methods that differ from a grayscale row by known amounts, with seed noise."""
    rng = np.random.default_rng(0)
    base = rng.normal(24, 2, num_images)
    rows = [{"method": GRAYSCALE, "seed": -1, "image": f"{i}", "psnr": b, "ssim": 0.9} for i, b in enumerate(base)]
    for method, delta in deltas.items():
        for seed in range(seeds):
            for i, b in enumerate(base):
                rows.append({"method": method, "seed": seed, "image": f"{i}", "psnr": b + delta + rng.normal(0, noise),
                             "ssim": 0.9 + delta / 100 + rng.normal(0, 0.001)})
    return pd.DataFrame(rows)


def test_each_verdict_follows_its_numbers():
    per_image = synthetic({"colorgan": 1.0, "chromagan": 0.0, "coltran": 0.02}, num_images=300, noise=0.1)
    judged = study.judge_claims(per_image).set_index("claim")
    assert judged.verdict["ColorGAN > ChromaGAN on PSNR (Table 1)"] == verdicts.SUPPORTED
    assert judged.verdict["ColorGAN > ColTran on PSNR (Table 1)"] == verdicts.SUPPORTED
    assert judged.verdict["ChromaGAN > ColTran on PSNR (Table 1)"] == verdicts.NO_DIFFERENCE  # 0.02 dB < 0.1
    assert judged.verdict["The noise branch adds diversity (§1, §2.1)"] == verdicts.NOT_TESTED  # no ablation
    assert "make ablations PROFILE=study" in judged.evidence["The noise branch adds diversity (§1, §2.1)"]
    assert judged.seeds["ColorGAN > ChromaGAN on PSNR (Table 1)"] == 3
    assert judged.per_seed["ColorGAN > ChromaGAN on PSNR (Table 1)"].count("/") == 2


def test_table_pairs_every_method_with_the_grayscale_row():
    per_image = synthetic({"colorgan": 0.5, "chromagan": -0.5}, seeds=3)
    table = study.study_table(per_image, num_resamples=500).set_index(["method", "metric"])
    assert table.loc[("colorgan", "psnr"), "delta_low"] > 0 and table.loc[("chromagan", "psnr"), "delta_high"] < 0
    assert table.loc[("colorgan", "psnr"), "seeds"] == 3 and table.loc[(GRAYSCALE, "psnr"), "seeds"] == 1
    assert abs(table.loc[("colorgan", "psnr"), "delta_gray"] - 0.5) < 0.15
    wide = study.wide_table(table.reset_index(), {"colorgan": 800, "chromagan": 800})
    assert set(wide.Method) == {GRAYSCALE, "ColorGAN", "ChromaGAN"}
    assert wide.set_index("Method").loc["ColorGAN", "Δpsnr vs gray"].endswith("*")
    front = front_page.front_page_table(study.table1_columns(table.reset_index()))  # the book's first page
    assert float(front.set_index("method").loc["ColorGAN", "Δ vs grayscale"]) == pytest.approx(0.5, abs=0.15)


@pytest.mark.slow
def test_tiny_study_end_to_end(tmp_path: Path):
    """ColorGAN and ColTran, 2 seeds each, validated during training, scored, tabled, plotted, summarised."""
    tiny_coltran = {k: v for k, v in coltran_config("tiny").to_dict().items()
                    if k in {"coarse_size", "hidden_size", "ff_size", "num_heads", "num_encoder_layers", "num_outer_layers",
                             "num_inner_layers", "upsampler_hidden_size", "upsampler_ff_size", "upsampler_heads",
                             "num_color_upsampler_layers", "num_spatial_upsampler_layers"}}
    cfg = StudyConfig(
        methods={"colorgan": dict(gen_width=8, gen_max_width=32, noise_channels=4, noise_width=16, noise_layers=2,
                                  disc_width=8, disc_layers=2), "coltran": tiny_coltran},
        base=dict(image_size=32, batch_size=4, num_sample_crops=24, num_val_images=8, val_every=2, checkpoint_every=4,
                  log_every=1, num_bootstrap=200), seeds=[0, 1], num_images_seen=16, num_diversity_samples=2,
        num_bootstrap=200, out_dir=str(tmp_path / "study"), runs_dir=str(tmp_path / "runs"))
    per_image = study.run_study(cfg, METHODS)
    assert set(per_image.method) == {"colorgan", "coltran", "coltran (+ input L)", GRAYSCALE}
    assert set(per_image[per_image.method == "colorgan"].seed) == {0, 1}
    assert (per_image.loc[per_image.method == GRAYSCALE, "seed"] == -1).all()
    configs = study.run_configs(cfg, METHODS)
    steps = per_image.groupby("run_dir").checkpoint_step.first()
    assert set(steps) <= {2, 4}  # the best validation step of each run
    table = study.study_table(per_image, 200)
    judged = study.judge_claims(per_image, num_resamples=200)
    study.save_study(table, per_image, judged, study.images_seen(configs), cfg.out_dir)
    results = study.load_results(cfg.out_dir)
    text = summary.summary_markdown(results, study.judge_claims(results))
    assert "## Scope" in text and "ColTran (+ input L)" in text and "not tested" in text
    assert "declared before the data" in text  # the runs were trained under today's claims and rule
    figures.learning_curves([c.run_dir for c in configs.values()])
    assert study.runs_of_seed(configs, 1) == [configs[("colorgan", 1)].run_dir, configs[("coltran", 1)].run_dir]
    # scoring again reuses the cached evaluation (the file is not rewritten)
    first = next(iter(configs.values())).run_dir
    cache = Path(first) / "eval" / "study-best_val.csv"
    written = cache.stat().st_mtime_ns
    cached = study.score_run(first, METHODS, "best_val", 2)
    assert len(cached) == (per_image.run_dir == first).sum() and cache.stat().st_mtime_ns == written


def test_table1_refuses_runs_of_different_image_sizes(tmp_path: Path):
    import json

    runs = []
    for name, size in (("a", 64), ("b", 32)):
        run = tmp_path / name
        run.mkdir()
        (run / "config.json").write_text(json.dumps({"method": "colorgan", "image_size": size, "seed": 0}))
        runs.append(str(run))
    with pytest.raises(ValueError, match="Table 1 compares methods at one image size"):
        table1.table1(runs, METHODS)


def test_the_diversity_finding_follows_the_numbers(tmp_path: Path):
    """Each reading of the no_ls ablation gives its own conclusion; without the ablation the page says what to run."""
    table = pd.DataFrame([{"method": "colorgan", "metric": "diversity", "mean": 0.03, "low": 0.02, "high": 0.04}])

    def finding(no_ls_mean, low, high):
        ablation = pd.DataFrame([
            {"variant": "full", "metric": "diversity", "mean": 0.03},
            {"variant": "no_ls", "metric": "diversity", "mean": no_ls_mean, "diff_vs_full": no_ls_mean - 0.03,
             "diff_low": low, "diff_high": high}])
        return summary.diversity_finding(study.StudyResults(tmp_path, table, pd.DataFrame(), [], ablation))

    assert "below a just-noticeable" in summary.diversity_finding(
        study.StudyResults(tmp_path, table, pd.DataFrame(), [], None)) and "make ablations" in summary.diversity_finding(
        study.StudyResults(tmp_path, table, pd.DataFrame(), [], None))
    assert "restores visible diversity" in finding(4.0, 3.5, 4.5)
    assert "explains part" in finding(0.5, 0.4, 0.6)
    assert "does not raise it" in finding(0.03, -0.01, 0.01)


def test_the_committed_study_its_verdicts_and_the_readme_agree():
    """results/study's tables and verdicts recompute from its per-image metrics; the README block is theirs.

    Fails when the claims, the rule or the numbers change without `make rejudge` (which regenerates all of it).
    """
    out = Path(__file__).resolve().parents[1] / "results" / "study"
    results = study.load_results(out)
    committed = pd.read_csv(out / "verdicts.csv")
    again = pd.read_csv(io.StringIO(study.judge_claims(results).to_csv(index=False)))  # as the file holds it
    # under mutmut verdicts.py is rewritten with its mutants' trampolines, so the rule's source digest differs by
    # construction (the same for every mutant); the numbers and words are still compared
    ignored = ["rule_sha256"] if "MUTANT_UNDER_TEST" in os.environ else []  # set, and empty, in its clean run
    pd.testing.assert_frame_equal(again.drop(columns=ignored).reset_index(drop=True), committed.drop(columns=ignored),
                                  check_dtype=False, rtol=1e-9)
    pd.testing.assert_frame_equal(study.study_table(results.per_image), results.table, check_dtype=False, rtol=1e-9)
    readme = (out.parents[1] / "README.md").read_text()
    assert summary.readme_block(results, committed) in readme
    # every claim is judged (Table 1's from the study, the ablation's from its committed evidence), new words only
    assert set(committed.verdict) <= set(verdicts.VERDICTS)
    assert committed.claims_sha256.nunique() == 1 and committed.claims_sha256.iloc[0] == verdicts.basis()["claims_sha256"]
    assert committed[["effect", "low", "high", "margin", "seed_signs"]].notna().all().all()
    assert len(committed) == len(verdicts.load_claims()[0]) == 15


@pytest.mark.slow
def test_the_readme_order_study_ablation_study_gives_a_correct_summary(tmp_path: Path, monkeypatch):
    """`make reproduce PROFILE=P`, `make ablations PROFILE=P`, `make reproduce PROFILE=P` on a toy profile P.

    Fails on the layout before issue 20: the ablation wrote run_metadata.json and verdicts.csv over the
    study's, the study stage was cached on the third command, and the summary described the ablation's runs.
    """
    import json

    from tests.conftest import write_images

    photos = tmp_path / "photos"
    write_images(photos, 40, size=(40, 40))
    tiny = dict(gen_width=8, gen_max_width=32, noise_channels=4, noise_width=16, noise_layers=2, disc_width=8,
                disc_layers=2)
    train = dict(data="folder", image_size=32, batch_size=4, checkpoint_every=2, log_every=1, num_bootstrap=100)
    monkeypatch.setitem(profiles.PROFILES, "toy-study", {
        "data": {"data": "folder", "image_size": 32},
        "study": {"base": {**train, "num_val_images": 4, "val_every": 2}, "methods": {"colorgan": tiny},
                  "seeds": [0, 1], "num_images_seen": 8, "num_diversity_samples": 2, "num_fig2_images": 1,
                  "num_bootstrap": 100},
        "ablations": {"base": {**train, **tiny, "num_steps": 2}, "seeds": [0, 1], "num_diversity_samples": 2,
                      "variants": {"full": {}, "no_noise": {"use_noise": False, "lambda_s": 0.0}}}})
    root = tmp_path / "results"

    def make(kind: str) -> dict[str, str]:
        return pipeline.run(plan.plan("toy-study", METHODS, str(photos), results_root=root, kind=kind), book=False)

    first, _, again = make("reproduce"), make("ablations"), make("reproduce")
    out = root / "toy-study"
    assert first["study"] == "ran" and again["study"] == "cached" and again["summary"] == "ran"
    # the ablation wrote only into its own folder, and the study's files are still the study's
    assert {"verdicts.csv", "run_metadata.json", "ablation_table.csv", "ablation_per_image.csv.gz"} <= {
        p.name for p in (out / "ablation").iterdir()}
    study_runs = json.loads((out / "run_metadata.json").read_text())["runs"]
    assert {r["config"]["num_val_images"] for r in study_runs} == {4} and len(study_runs) == 2
    assert not (out / "ablation_table.csv").exists()
    summary = json.loads((out / "notebooks" / "summary.ipynb").read_text())
    text = "".join("".join(o.get("data", {}).get("text/markdown", "")) for c in summary["cells"]
                   for o in c.get("outputs", []))
    assert "(4 more set aside for validation)" in text and "2 runs in" in text and "2 seeds per method" in text
    assert "two-level bootstrap" in text and "Holm" in text and "declared before the data" in text
    judged = pd.read_csv(out / "verdicts.csv").set_index("claim_id")
    assert judged.loc["noise_diversity", "verdict"] in verdicts.VERDICTS  # the ablation's claims were judged
    assert judged.loc["t1_colorgan_chromagan_psnr", "verdict"] == verdicts.NOT_TESTED  # one method in this toy


def test_the_summary_puts_each_deviation_beside_the_verdict_it_affects():
    out = Path(__file__).resolve().parents[1] / "results" / "study"
    results = study.load_results(out)
    judged = pd.read_csv(out / "verdicts.csv")
    table = summary.verdict_table(results, judged).set_index("claim")["deviation beside it"]
    chroma = table["ColorGAN > ChromaGAN on PSNR (Table 1)"]
    assert "class-distribution KL term is off" in chroma and "applied to all three methods" in chroma
    assert "chromagan seed 0 6,400" in chroma  # the scored weights had seen half the budget
    assert "class-distribution" not in table["ColorGAN > ColTran on PSNR (Table 1)"]
    assert "random (untrained) VGG" in table["The perceptual term improves quality (SSIM)"]
    assert "no_noise also drops Ls" in table["The noise branch adds diversity (§1, §2.1)"]
    assert table["The L1 term improves quality (PSNR)"] == "—"
    text = summary.summary_markdown(results, judged)
    assert "declared after these runs" in text and "seed sd 0.07" in text
    assert "not re-judged" not in text and "The ablation's runs:" in text  # the ablation's evidence is committed
    one_seed = study.StudyResults(out, results.table.assign(seeds=1, seed_sd=float("nan")), results.per_image,
                                  results.runs, None)
    assert "(1 seed)" in summary.summary_markdown(one_seed, judged) and "nan" not in summary.summary_markdown(one_seed, judged)

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from colorgan.experiments import ablation
from colorgan.experiments import verdicts as V
from colorgan.experiments.ablation import ABLATION_VARIANTS, AblationConfig

TINY_BASE = dict(image_size=32, batch_size=4, num_sample_crops=8, num_steps=2, checkpoint_every=2, gen_width=8,
                 gen_max_width=32, noise_channels=4, noise_width=16, noise_layers=2, disc_width=8, disc_layers=2,
                 num_bootstrap=100, log_every=1)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    out = tmp_path_factory.mktemp("ablations")
    cfg = AblationConfig(base=TINY_BASE, seeds=[0], out_dir=str(out), num_diversity_samples=2,
                         runs_dir=str(out / "runs"))  # not the repository's store: runs from an earlier `make test` would be reused
    return cfg, ablation.run_ablation(cfg)


@pytest.mark.slow
def test_every_variant_builds_and_trains(study):
    cfg, per_image = study
    assert set(per_image.variant) == set(ABLATION_VARIANTS)
    for run_cfg in ablation.variant_configs(cfg).values():
        assert (Path(run_cfg.run_dir) / "finished.json").is_file()
    assert per_image[["psnr", "ssim", "ciede2000", "colourfulness"]].notna().all().all()


@pytest.mark.slow
def test_diversity_is_zero_without_noise_and_positive_with_it(study):
    _, per_image = study
    assert (per_image[per_image.variant == "no_noise"].diversity == 0).all()
    assert (per_image[per_image.variant == "full"].diversity > 0).all()


@pytest.mark.slow
def test_changing_one_variant_reruns_only_that_variant(study):
    cfg, _ = study
    before = {k: Path(c.run_dir) for k, c in ablation.variant_configs(cfg).items()}
    stamps = {k: (p / "finished.json").stat().st_mtime_ns for k, p in before.items()}
    changed = AblationConfig(**{**cfg.__dict__, "variants": {**cfg.variants, "noise_std_0.5": {"noise_std": 0.4}}})
    after = {k: Path(c.run_dir) for k, c in ablation.variant_configs(changed).items()}
    assert [k for k in before if before[k] != after[k]] == [("noise_std_0.5", 0)]
    ablation.run_ablation(changed)
    assert all((before[k] / "finished.json").stat().st_mtime_ns == stamps[k] for k in before)
    assert (after[("noise_std_0.5", 0)] / "finished.json").is_file()


@pytest.mark.slow
def test_saved_study_names_every_run_behind_it(study, tmp_path):
    cfg, per_image = study
    judged = ablation.judge(per_image, num_resamples=200)
    paths = ablation.save_ablation(ablation.ablation_table(per_image, num_resamples=200), per_image, judged, tmp_path)
    assert {p.name for p in paths} == {"ablation_table.csv", "ablation_table.md", "ablation_per_image.csv.gz",
                                       "verdicts.csv", "run_metadata.json"}
    runs = json.loads((tmp_path / "run_metadata.json").read_text())["runs"]
    assert len(runs) == len(ablation.variant_configs(cfg))
    assert all(run["provenance"]["vgg_weights"].startswith("random") for run in runs)
    assert all(run["finished"]["step"] == TINY_BASE["num_steps"] for run in runs)
    evidence = pd.read_csv(tmp_path / "ablation_per_image.csv.gz")  # the committed evidence reads back whole
    assert len(evidence) == len(per_image) and set(evidence.variant) == set(per_image.variant)
    stamps = json.loads((Path(cfg.out_dir) / "claims_at_runs.json").read_text())
    assert all(s is not None and len(s["claims_sha256"]) == 64 for s in stamps.values())  # trained now: stamped


def synthetic_per_image(effect: float, seeds=(0, 1, 2), num_images: int = 200) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    difficulty = rng.normal(20, 3, size=num_images)
    rows = []
    for variant, shift in (("full", 0.0), ("no_noise", effect), ("no_ls", 0.0)):
        for seed in seeds:
            noise = rng.normal(0, 0.05, size=num_images)
            for i in range(num_images):
                value = difficulty[i] + shift + noise[i]
                rows.append({"variant": variant, "seed": seed, "image": f"im{i}", "psnr": value, "ssim": 0.5,
                             "ciede2000": 10.0, "colourfulness": 20.0 + shift,
                             "diversity": 0.0 if variant == "no_noise" else 3.0 + noise[i]})
    return pd.DataFrame(rows)


def test_table_and_verdicts_follow_the_numbers():
    table = ablation.ablation_table(synthetic_per_image(effect=-1.0), num_resamples=500)
    row = table[(table.variant == "no_noise") & (table.metric == "psnr")].iloc[0]
    assert row["diff_vs_full"] == pytest.approx(-1.0, abs=0.05) and row["significant"]
    flat = table[(table.variant == "no_ls") & (table.metric == "psnr")].iloc[0]
    assert not flat["significant"]
    judged = ablation.judge(synthetic_per_image(effect=-1.0), num_resamples=500).set_index("claim").verdict
    assert judged["The noise branch adds diversity (§1, §2.1)"] == V.SUPPORTED  # 3.0 ΔE, above the 2.3 margin
    assert judged["The noise branch improves quality (PSNR)"] == V.SUPPORTED
    assert judged["Ls (eq. 2) improves quality (PSNR)"] == V.NO_DIFFERENCE
    assert judged["Encoder skips improve reconstruction (SSIM)"] == V.NOT_TESTED  # no_skips was not run
    assert set(ablation.judge(synthetic_per_image(-1.0)).family) == {"ablation", "diversity"}
    reversed_judged = ablation.judge(synthetic_per_image(effect=+1.0), num_resamples=500).set_index("claim")
    assert reversed_judged.verdict["The noise branch improves quality (PSNR)"] == V.CONTRADICTED
    wide = ablation.wide_table(table)
    assert wide.set_index("variant").loc["no_noise", "Δpsnr"].endswith("*")


def test_the_literal_eq2_row_is_judged_the_other_way_round():
    """'Ls lowers diversity' is supported when no_ls is visibly more diverse than full."""
    claim = "Literal eq. 2: Ls lowers diversity (G_f never sees the image)"
    outcomes = {}
    for shift in (+3.0, -3.0, 0.0):
        per_image = synthetic_per_image(effect=0.0)
        per_image.loc[per_image.variant == "no_ls", "diversity"] += shift
        outcomes[shift] = ablation.judge(per_image, num_resamples=300).set_index("claim").loc[claim]
    assert outcomes[+3.0].verdict == V.SUPPORTED and outcomes[+3.0].effect == pytest.approx(3.0, abs=0.05)
    assert outcomes[-3.0].verdict == V.CONTRADICTED
    assert outcomes[0.0].verdict == V.NO_DIFFERENCE
    assert ablation.judge(synthetic_per_image(-1.0), num_resamples=300).set_index(
        "claim").verdict["The L1 term improves quality (PSNR)"] == V.NOT_TESTED  # no_l1 was not run


def test_an_invisible_colour_difference_is_never_supported():
    # fails on the rule before colorgan.experiments.verdicts: it called a 0.03 ΔE difference 'holds' (with a note)
    per_image = synthetic_per_image(effect=-1.0)
    claim = "The noise branch adds diversity (§1, §2.1)"
    assert ablation.judge(per_image, num_resamples=300).set_index("claim").verdict[claim] == V.SUPPORTED
    per_image["diversity"] *= 0.01  # 0.03 -> 0: significant over images, invisible
    invisible = ablation.judge(per_image, num_resamples=300).set_index("claim")
    assert invisible.verdict[claim] == V.NO_DIFFERENCE and invisible.low[claim] > 0


def test_mean_intervals_stay_inside_the_metric_range():
    # fails on the Student-t interval over 2 seeds (t = 12.7): SSIM [0.737, 1.063] in the committed study
    per_image = synthetic_per_image(effect=0.0, seeds=(0, 1))
    full = per_image.variant == "full"
    per_image.loc[full & (per_image.seed == 0), "ssim"] = 0.99
    per_image.loc[full & (per_image.seed == 1), "ssim"] = 0.80
    per_image.loc[per_image.variant == "no_noise", "diversity"] = 0.0
    table = ablation.ablation_table(per_image, num_resamples=300).set_index(["variant", "metric"])
    # two seeds that disagree this much leave a wide interval (1 degree of freedom), but never above SSIM's 1
    assert -1.0 <= table.loc[("full", "ssim"), "low"] < 0.8 and table.loc[("full", "ssim"), "high"] == 1.0
    assert table.loc[("no_noise", "diversity"), "low"] == 0.0 == table.loc[("no_noise", "diversity"), "high"]


def test_bad_variant_names_the_variant():
    with pytest.raises(ValueError, match=r"variants\['oops'\]: lambda_p: -1 is below the minimum"):
        AblationConfig(variants={"full": {}, "oops": {"lambda_p": -1}})
    with pytest.raises(ValueError, match="needs a 'full' variant"):
        AblationConfig(variants={"a": {}})


def test_seeds_that_disagree_make_a_claim_inconclusive():
    """Significant over images, but one seed says the opposite: inconclusive at this scale, the seeds shown."""
    per_image = synthetic_per_image(effect=0.0, seeds=(0, 1))
    no_noise = per_image.variant == "no_noise"
    per_image.loc[no_noise & (per_image.seed == 0), "psnr"] -= 1.0  # seed 0: much worse without noise
    per_image.loc[no_noise & (per_image.seed == 1), "psnr"] += 0.2  # seed 1: a little better
    table = ablation.ablation_table(per_image, num_resamples=300)
    row = table[(table.variant == "no_noise") & (table.metric == "psnr")].iloc[0]
    assert not row["significant"] and row["seed_diff_min"] == pytest.approx(-1.0, abs=0.05)
    verdict = ablation.judge(per_image, num_resamples=300).set_index("claim").loc[
        "The noise branch improves quality (PSNR)"]
    assert verdict.verdict == V.INCONCLUSIVE and verdict.seed_signs == "+−" and "seeds" in verdict.evidence


def test_the_wide_table_splits_into_two_that_fit_a_page():
    table = ablation.ablation_table(synthetic_per_image(effect=-1.0), num_resamples=200)
    means, deltas = ablation.wide_tables(table)
    assert list(means.variant) == ["full", "no_noise", "no_ls"] and not any(c.startswith("Δ") for c in means.columns)
    assert list(deltas.variant) == ["no_noise", "no_ls"] and deltas.columns[1:].str.startswith("Δ").all()


def test_the_front_page_reads_an_ablation_only_profiles_verdicts(tmp_path):
    """An ablation profile's verdicts live in results/<profile>/ablation/; the front page shows their gist."""
    from colorgan.report import front_page

    judged = ablation.judge(synthetic_per_image(effect=-1.0), num_resamples=200)
    (tmp_path / "ablation").mkdir()
    judged.to_csv(tmp_path / "ablation" / "verdicts.csv", index=False)
    page = front_page.front_page(tmp_path)
    assert "Verdicts on the paper" in page and "The noise branch improves quality (PSNR)" in page
    assert "claims_sha256" not in page and "margin" in page  # the gist, not the full record


def test_a_constant_metric_says_so_instead_of_a_zero_width_interval():
    """no_noise's diversity is 0 on every image and seed: the table and chart say 'equal', not '[0.00, 0.00]'."""
    per_image = synthetic_per_image(effect=-1.0)
    per_image.loc[per_image.variant == "no_noise", "diversity"] = 0.0
    table = ablation.ablation_table(per_image, num_resamples=200)
    cell = ablation.wide_table(table).set_index("variant").loc["no_noise", "diversity"]
    assert cell == "0.00 (every image and seed equal)"
    assert "[" in ablation.wide_table(table).set_index("variant").loc["full", "diversity"]
    fig = ablation.ablation_chart(table)
    labels = {ax.get_title().split()[0]: [t.get_text() for t in ax.texts] for ax in fig.axes}
    assert labels["diversity"] == ["all equal"] and labels["psnr"] == []  # psnr varies in every variant
    assert labels["ssim"] == ["all equal"] * 3  # the synthetic SSIM is 0.5 everywhere


def test_rejudge_redraws_the_ablation_from_its_evidence_alone(tmp_path):
    """make rejudge: tables, charts and verdicts recomputed from ablation_per_image.csv.gz; none without it."""
    with pytest.raises(FileNotFoundError, match="per-image evidence"):
        ablation.rejudge(tmp_path)
    per_image = synthetic_per_image(effect=-1.0)
    per_image.to_csv(tmp_path / "ablation_per_image.csv.gz", index=False)
    (tmp_path / "verdicts.csv").write_text("stale\n")
    paths = ablation.rejudge(tmp_path, num_resamples=200)
    assert all(p.is_file() and p.stat().st_size > 0 for p in paths)
    table = pd.read_csv(tmp_path / "ablation_table.csv")
    expected = ablation.ablation_table(per_image, num_resamples=200)
    pd.testing.assert_frame_equal(table, expected, check_dtype=False)
    judged = pd.read_csv(tmp_path / "verdicts.csv").set_index("claim").verdict
    assert judged["The noise branch improves quality (PSNR)"] == V.SUPPORTED
    assert "(every image and seed equal)" in (tmp_path / "ablation_table.md").read_text()

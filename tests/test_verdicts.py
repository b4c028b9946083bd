"""The verdict engine on synthetic studies with a known truth (colorgan.experiments.verdicts)."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from colorgan.experiments import verdicts as V
from colorgan.measures.metrics import paired_bootstrap


def synthetic(effect: float, seed_sd: float, image_sd: float, noise_sd: float, num_seeds: int = 3,
              num_images: int = 200, rng_seed: int = 0, seed_effects: list[float] | None = None) -> pd.DataFrame:
    """Per-image PSNR of arms 'a' and 'b' (column method): a - b = effect + seed + noise; shared image difficulty."""
    rng = np.random.default_rng(rng_seed)
    difficulty = rng.normal(24, image_sd, num_images)
    seeds = np.array(seed_effects) if seed_effects is not None else rng.normal(0, seed_sd, num_seeds)
    rows = []
    for s, shift in enumerate(seeds):
        b = difficulty + rng.normal(0, noise_sd, num_images)
        a = b + effect + shift + rng.normal(0, noise_sd, num_images)
        for arm, values in (("a", a), ("b", b)):
            rows.append(pd.DataFrame({"method": arm, "seed": s, "image": np.arange(num_images), "psnr": values}))
    return pd.concat(rows, ignore_index=True)


def claim(margin: float = 0.1, family: str = "f", claim_id: str = "c", direction: str = "higher", a: str = "a",
          b: str = "b") -> V.Claim:
    return V.Claim(claim_id, f"{a} > {b}", family, "study", a, b, "psnr", direction, margin, "test")


def old_rule(per_image: pd.DataFrame) -> str:
    """Today's rule (study.compare before this engine): image-only bootstrap of seed-averaged values."""
    by_image = per_image.groupby(["image", "method"]).psnr.mean().unstack()
    _, low, high = paired_bootstrap(by_image["a"].to_numpy(), by_image["b"].to_numpy(), 2000, 0)
    return "supported" if low > 0 else "contradicted" if high < 0 else "inconclusive at this scale"


# ------------------------------------------------------------------------------ the four words


@pytest.mark.parametrize("effect, low, high, margin, expected", [
    (0.05, -0.09, 0.09, 0.1, V.NO_DIFFERENCE),      # inside +-margin
    (0.05, -0.1, 0.09, 0.1, V.INCONCLUSIVE),        # touching -margin: not inside
    (0.05, -0.09, 0.1, 0.1, V.INCONCLUSIVE),        # touching +margin: not inside
    (0.2, 0.0, 0.4, 0.1, V.INCONCLUSIVE),           # touching 0: does not exclude it
    (0.2, 1e-9, 0.4, 0.1, V.SUPPORTED),             # just above 0, estimate above the margin
    (0.1, 0.01, 0.19, 0.1, V.SUPPORTED),            # estimate equal to the margin reaches it
    (0.0999, 0.01, 0.19, 0.1, V.INCONCLUSIVE),      # above 0 but the estimate is below the margin
    (0.06, 0.02, 0.12, 0.1, V.INCONCLUSIVE),        # real but perhaps too small to matter
    (-0.2, -0.4, 0.0, 0.1, V.INCONCLUSIVE),         # touching 0 from below
    (-0.2, -0.4, -1e-9, 0.1, V.CONTRADICTED),
    (-0.1, -0.19, -0.01, 0.1, V.CONTRADICTED),      # estimate equal to -margin
    (-0.0999, -0.19, -0.01, 0.1, V.INCONCLUSIVE),
])
def test_verdict_words_at_and_across_their_boundaries(effect, low, high, margin, expected):
    assert V.decide(effect, low, high, margin) == expected


def test_one_seed_never_decides():
    assert V.decide(5.0, 4.0, 6.0, 0.1, num_seeds=1) == V.INCONCLUSIVE
    assert V.decide(0.0, -0.01, 0.01, 0.1, num_seeds=1) == V.INCONCLUSIVE
    assert V.decide(5.0, 4.0, 6.0, 0.1, num_seeds=2) == V.SUPPORTED


# -------------------------------------------------------------------------- known truths


def test_seed_variance_makes_an_image_only_contradiction_inconclusive():
    # the seeds disagree (per-seed differences -0.35, -0.15, +0.2): averaged over seeds, 400 images call it
    per_image = synthetic(0.0, 0, 1.0, 0.1, num_images=400, seed_effects=[-0.35, -0.15, 0.2])
    assert old_rule(per_image) == "contradicted"  # today's rule is wrong here
    row = V.judge({"study": per_image}, [claim()]).iloc[0]
    assert row.verdict == V.INCONCLUSIVE
    assert row.low < 0 < row.high and row.seed_signs == "−−+"
    assert row.seeds == 3 and row.images == 400 and row.per_seed.count("/") == 2
    assert "seeds would decide" in row.evidence or "no number of seeds" in row.evidence


def test_consistent_seeds_and_a_large_effect_are_supported_and_contradicted():
    per_image = synthetic(0.5, 0.02, 1.0, 0.1)
    assert V.judge({"study": per_image}, [claim()]).iloc[0].verdict == V.SUPPORTED
    # the same numbers against the opposite claim
    assert V.judge({"study": per_image}, [claim(direction="lower")]).iloc[0].verdict == V.CONTRADICTED
    assert V.judge({"study": per_image}, [claim(a="b", b="a")]).iloc[0].verdict == V.CONTRADICTED


def test_an_effect_below_the_margin_is_no_practical_difference_not_supported():
    per_image = synthetic(0.02, 0.005, 1.0, 0.05, num_images=400)
    assert old_rule(per_image) == "supported"  # today's rule calls a 0.02 dB difference supported
    row = V.judge({"study": per_image}, [claim(margin=0.1)]).iloc[0]
    assert row.verdict == V.NO_DIFFERENCE and -0.1 < row.low and row.high < 0.1 and row.low > 0
    assert V.judge({"study": per_image}, [claim(margin=0.01)]).iloc[0].verdict == V.SUPPORTED


def test_holm_controls_a_family_of_claims():
    levels, rejects = V.holm_levels([0.04, 0.001, 0.5, 0.012])
    assert levels == pytest.approx([1 - 0.05 / 2, 1 - 0.05 / 4, 1 - 0.05, 1 - 0.05 / 3])
    assert rejects == [False, True, False, True]
    # step-down: a p-value below its own threshold is not rejected after an earlier test failed
    assert V.holm_levels([0.001, 0.03, 0.049])[1] == [True, False, False]
    assert V.holm_levels([0.02, 0.02])[1] == [True, True] and V.holm_levels([0.03, 0.03])[1] == [False, False]


def test_a_claim_significant_alone_is_inconclusive_in_a_family():
    # one small real effect among five nulls: alone it is supported, with Holm over six it is not
    frames, claims = [], []
    for k in range(6):
        effect = 0.2 if k == 0 else 0.0  # c0 alone: p = 0.016, above Holm's 0.05 / 6
        frames.append(synthetic(effect, 0.03, 1.0, 0.5, num_images=120, rng_seed=11 if k == 0 else 20 + k)
                      .replace({"method": {"a": f"a{k}", "b": f"b{k}"}}))
        claims.append(claim(claim_id=f"c{k}", a=f"a{k}", b=f"b{k}"))
    per_image = pd.concat(frames, ignore_index=True)
    alone = V.judge({"study": per_image}, claims[:1]).iloc[0]
    family = V.judge({"study": per_image}, claims).set_index("claim_id")
    assert alone.verdict == V.SUPPORTED and alone.level == pytest.approx(0.95)
    assert family.loc["c0", "verdict"] == V.INCONCLUSIVE and family.loc["c0", "family_size"] == 6
    assert family.loc["c0", "level"] > 0.95 and family.loc["c0", "high"] - family.loc["c0", "low"] > alone.high - alone.low
    # separate families are corrected separately
    split = [claim(claim_id=c.id, a=c.a, b=c.b, family=c.id) for c in claims]
    assert V.judge({"study": per_image}, split).set_index("claim_id").loc["c0", "verdict"] == V.SUPPORTED


def test_intervals_cover_the_truth_in_simulated_studies():
    """>= 200 studies with seed, image and interaction noise: the 95% interval covers the truth 93-97%."""
    rng = np.random.default_rng(2024)
    truth, num_studies, S, N = 0.2, 400, 3, 100
    covered = old_covered = 0
    for k in range(num_studies):
        D = (truth + rng.normal(0, 0.15, (S, 1)) + rng.normal(0, 0.5, (1, N)) + rng.normal(0, 0.3, (S, N)))
        interval = V.two_level_interval(D, 0.95, 300, k)
        covered += interval.low <= truth <= interval.high
        _, low, high = paired_bootstrap(D.mean(axis=0), np.zeros(N), 300, k)  # today's rule
        old_covered += low <= truth <= high
    assert 0.93 <= covered / num_studies <= 0.97
    assert old_covered / num_studies < 0.8  # image-only intervals ignore the seeds


def test_interval_respects_the_metric_range_and_one_seed_is_images_only():
    values = np.array([[0.999, 0.998, 1.0, 0.9], [0.6, 0.99, 0.97, 0.999]])
    interval = V.two_level_interval(values, bounds=V.METRIC_RANGES["ssim"])
    assert interval.high <= 1.0 and interval.low >= -1.0 and interval.high == 1.0
    one = V.two_level_interval(values[:1])
    assert one.seed_var == 0 and one.image_var > 0 and len(one.per_seed) == 1
    assert V.satterthwaite(0.0, 3, 0.0, 10) == math.inf
    assert V.satterthwaite(1.0, 3, 0.0, 10) == pytest.approx(2.0)
    assert V.satterthwaite(1.0, 3, 1.0, 11) == pytest.approx(4 / (1 / 2 + 1 / 10))


def test_the_standard_error_matches_the_variance_components():
    rng = np.random.default_rng(3)
    D = rng.normal(0, 0.2, (4, 1)) + rng.normal(0, 1.0, (1, 300))
    interval = V.two_level_interval(D, num_resamples=4000)
    assert interval.se == pytest.approx(math.sqrt(interval.seed_var + interval.image_var), rel=0.05)
    assert interval.seed_var == pytest.approx(D.mean(axis=1).var(ddof=1) / 4)


def test_power_gives_the_seeds_that_would_decide():
    per_image = synthetic(0.0, 0.1, 0.2, 0.05, num_images=400, seed_effects=[-0.1, 0.05, 0.12])
    row = V.judge({"study": per_image}, [claim(margin=0.1)]).iloc[0]
    assert row.verdict == V.INCONCLUSIVE
    needed = int(row.seeds_to_decide)
    assert 3 < needed < 200 and row.detectable_effect > 0.1
    interval = V.two_level_interval(V.paired_matrix(per_image, "method", "a", "b", "psnr").to_numpy())
    _, again = V.seeds_to_decide(interval, 0.1, 0.05)
    assert again == needed
    _, bigger_margin = V.seeds_to_decide(interval, 0.3, 0.05)
    assert bigger_margin < needed
    # test images that disagree this much: no number of seeds detects 0.1, and the row says what would
    noisy = synthetic(0.0, 0.05, 0.2, 0.1, num_images=100, seed_effects=[-0.05, 0.0, 0.05])
    arm_a = noisy.method == "a"  # each image favours one arm by its own amount, in every seed
    offsets = np.random.default_rng(5).normal(0, 1.0, 100)
    noisy.loc[arm_a, "psnr"] += (offsets - offsets.mean())[noisy.loc[arm_a, "image"]]
    row = V.judge({"study": noisy}, [claim(margin=0.1)]).iloc[0]
    assert row.verdict == V.INCONCLUSIVE and row.seeds_to_decide == f">{V.MAX_SEEDS}"
    assert "more test images are needed" in row.evidence
    floor = V.detectable_with_any_seeds(V.two_level_interval(V.paired_matrix(noisy, "method", "a", "b", "psnr")
                                                             .to_numpy()), 0.05)
    assert 0.1 < floor < row.detectable_effect


def test_the_grayscale_row_pairs_with_every_seed():
    per_image = synthetic(0.5, 0.01, 1.0, 0.1)
    gray = per_image[(per_image.method == "b") & (per_image.seed == 0)].assign(method="gray", seed=-1)
    matrix = V.paired_matrix(pd.concat([per_image, gray]), "method", "a", "gray", "psnr")
    assert matrix.shape == (3, 200)
    with pytest.raises(ValueError, match="no method 'zzz'"):
        V.paired_matrix(per_image, "method", "a", "zzz", "psnr")


# ------------------------------------------------------------------------------ claims as data


def test_the_committed_claims_file_loads_with_margins_and_reasons():
    claims, header = V.load_claims()
    assert header["sha256"] == hashlib.sha256(V.CLAIMS_PATH.read_bytes()).hexdigest()
    assert "after" in header["declared"]
    assert len({c.id for c in claims}) == len(claims) >= 15
    assert all(c.margin > 0 and c.margin_reason for c in claims)
    assert {c.family for c in claims} == {"table1", "ablation", "diversity"}
    assert next(c for c in claims if c.metric == "diversity").margin == 2.3


@pytest.mark.parametrize("body, message", [
    ('[[claims]]\nid="x"\ntext="t"\nfamily="f"\nsource="nope"\na="a"\nb="b"\nmetric="psnr"\ndirection="higher"\n'
     'margin=0.1\nmargin_reason="r"', "source 'nope'"),
    ('[[claims]]\nid="x"\ntext="t"\nfamily="f"\nsource="study"\na="a"\nb="b"\nmetric="psnr"\ndirection="up"\n'
     'margin=0.1\nmargin_reason="r"', "direction 'up'"),
    ('[[claims]]\nid="x"\ntext="t"\nfamily="f"\nsource="study"\na="a"\nb="b"\nmetric="psnr"\ndirection="higher"',
     "no margin for 'psnr'"),
    ('[[claims]]\nid="x"\nfamily="f"', "lacks"),
    ('[[claims]]\nid="x"\ntext="t"\nfamily="f"\nsource="study"\na="a"\nb="b"\nmetric="psnr"\ndirection="higher"\n'
     'margin=0\nmargin_reason="r"', "margin must be > 0"),
])
def test_a_bad_claims_file_is_named(tmp_path: Path, body: str, message: str):
    path = tmp_path / "claims.toml"
    path.write_text(body)
    with pytest.raises(ValueError, match=message):
        V.load_claims(path)


def test_verdicts_record_digests_and_say_when_claims_came_after_the_runs(tmp_path: Path):
    per_image = synthetic(0.5, 0.02, 1.0, 0.1)
    out = V.judge({"study": per_image}, [claim()])
    now = V.basis()
    assert out.claims_sha256.iloc[0] == now["claims_sha256"] and out.rule_sha256.iloc[0] == now["rule_sha256"]
    assert "declared after these runs" in V.basis_note(out, None, "today")
    assert "declared before the data" in V.basis_note(out, now)
    assert "claims file changed" in V.basis_note(out, {**now, "claims_sha256": "0" * 64})
    assert "verdict rule changed" in V.basis_note(out, {**now, "rule_sha256": "0" * 64})


def test_absent_evidence_is_not_tested_or_not_rejudged():
    per_image = synthetic(0.5, 0.02, 1.0, 0.1)
    ablation_claim = V.Claim("z", "z", "g", "ablation", "full", "no_x", "psnr", "higher", 0.1, "r")
    out = V.judge({"study": per_image}, [claim(), ablation_claim, claim(claim_id="y", b="missing")])
    assert list(out.verdict) == [V.SUPPORTED, V.NOT_TESTED, V.NOT_TESTED]
    out = V.judge({"study": per_image}, [ablation_claim], absent={"ablation": (V.NOT_REJUDGED, "evidence not committed")})
    assert out.verdict.iloc[0] == V.NOT_REJUDGED and out.evidence.iloc[0] == "evidence not committed"


# ------------------------------------------------------------- the formulas, computed independently here


def reference_interval(values: np.ndarray, level: float, num_resamples: int, seed: int,
                       bounds: tuple[float, float]) -> dict:
    """two_level_interval's definition (module docstring) written out again: rescaled main effects resampled
    with one shared image draw, Student-t with Satterthwaite's degrees of freedom, clipped to ``bounds``."""
    from scipy import stats

    S, N = values.shape
    grand = values.mean()
    seed_means, image_means = values.mean(axis=1), values.mean(axis=0)
    seed_var = np.var(seed_means, ddof=1) / S
    image_var = np.var(image_means, ddof=1) / N
    rng = np.random.default_rng(seed)
    seed_idx = rng.integers(0, S, size=(num_resamples, S))
    image_idx = rng.integers(0, N, size=(num_resamples, N))
    seed_eff = (seed_means - grand) * np.sqrt(S / (S - 1))
    image_eff = (image_means - grand) * np.sqrt(N / (N - 1))
    se = np.std(grand + seed_eff[seed_idx].mean(axis=1) + image_eff[image_idx].mean(axis=1), ddof=1)
    df = (seed_var + image_var) ** 2 / (seed_var ** 2 / (S - 1) + image_var ** 2 / (N - 1))
    half = stats.t.ppf(1 - (1 - level) / 2, df) * se
    interaction = values - seed_means[:, None] - image_means[None, :] + grand
    return {"estimate": grand, "low": max(grand - half, bounds[0]), "high": min(grand + half, bounds[1]), "se": se,
            "df": df, "seed_var": seed_var, "image_var": image_var, "per_seed": tuple(seed_means),
            "residual_var": (interaction ** 2).sum() / ((S - 1) * (N - 1)), "num_images": N}


@pytest.mark.parametrize("level, bounds", [(0.95, (-math.inf, math.inf)), (0.9, (-math.inf, 0.3)),
                                           (0.99, (-0.1, math.inf))])
def test_two_level_interval_is_its_definition_computed_independently(level, bounds):
    values = np.random.default_rng(7).normal(0.2, 1.0, (3, 11)) + np.array([[0.3], [-0.2], [0.1]])
    got = V.two_level_interval(values, level, 500, 4, bounds)
    expected = reference_interval(values, level, 500, 4, bounds)
    for name, value in expected.items():
        assert getattr(got, name) == pytest.approx(value, rel=1e-12, abs=1e-15), name
    assert got.level == level and got.bounds == bounds
    assert (got.low == bounds[0]) == (expected["low"] == bounds[0])  # the clip is at the bound, not beside it


def test_an_interval_at_another_level_keeps_estimate_and_se_and_zero_se_has_no_width():
    from scipy import stats

    interval = V.Interval(1.0, 0.0, 2.0, 0.25, 12.0, 0.95, (0.9, 1.1), 40, 0.01, 0.05, bounds=(-5.0, 1.5))
    wider = interval.at_level(0.99)
    half = stats.t.ppf(0.995, 12.0) * 0.25
    assert (wider.estimate, wider.se, wider.level) == (1.0, 0.25, 0.99)
    assert wider.low == pytest.approx(1.0 - half) and wider.high == 1.5  # clipped at the upper bound
    flat = V.Interval(0.3, 0.0, 0.0, 0.0, math.inf, 0.95, (0.3, 0.3), 5, 0.0, 0.0).at_level(0.95)
    assert (flat.low, flat.high) == (0.3, 0.3)


def test_the_p_value_is_the_two_sided_t_tail():
    from scipy import stats

    interval = V.Interval(0.3, 0.0, 0.0, 0.2, 7.0, 0.95, (0.3,), 10, 0.0, 0.0)
    assert V.p_value(interval) == pytest.approx(2 * stats.t.sf(1.5, 7.0), rel=1e-12)
    assert V.p_value(V.Interval(-0.3, 0.0, 0.0, 0.2, 7.0, 0.95, (0.3,), 10, 0.0, 0.0)) == pytest.approx(
        2 * stats.t.sf(1.5, 7.0), rel=1e-12)
    assert V.p_value(V.Interval(0.3, 0.3, 0.3, 0.0, math.inf, 0.95, (0.3,), 10, 0.0, 0.0)) == 0.0
    assert V.p_value(V.Interval(0.0, 0.0, 0.0, 0.0, math.inf, 0.95, (0.0,), 10, 0.0, 0.0)) == 1.0


def test_holm_at_its_thresholds():
    # p equal to its threshold rejects (<=); the k-th smallest is tested at alpha / (K - k)
    assert V.holm_levels([0.025, 0.05], 0.05) == ([pytest.approx(0.975), pytest.approx(0.95)], [True, True])
    assert V.holm_levels([0.0250001, 0.05], 0.05)[1] == [False, False]
    assert V.holm_levels([0.05], 0.05) == ([pytest.approx(0.95)], [True])
    assert V.holm_levels([0.01, 0.01, 0.01], 0.03)[1] == [True, True, True]
    assert V.holm_levels([], 0.05) == ([], [])


def test_a_judged_row_holds_the_claims_numbers_in_the_metrics_units_and_the_claimed_direction():
    """_verdict_row's every column, from an interval built by hand (a 'lower is better' claim: sign -1)."""
    interval = V.Interval(0.5, 0.2, 0.8, 0.1, 20.0, 0.95, (0.4, 0.6), 30, 0.004, 0.006, 0.01)
    c = V.Claim("c", "a < b", "f", "study", "a", "b", "ciede2000", "lower", 0.25, "r")
    row = V._verdict_row(c, interval, 0.001, 0.975, True, 3, -1.0)
    assert row == {"effect": 0.5, "low": 0.2, "high": 0.8, "level": 0.975, "p_value": 0.001, "family_size": 3,
                   "verdict": V.SUPPORTED, "per_seed": "-0.4 / -0.6", "seed_signs": "++", "seeds": 2, "images": 30,
                   "detectable_effect": pytest.approx(row["detectable_effect"]), "seeds_to_decide": None,
                   "evidence": "ciede2000: a − b = -0.5 per seed -0.4 / -0.6; in the claimed direction +0.5 "
                               "[+0.2, +0.8] (97.50% interval, Holm over 3), margin 0.25"}
    from scipy import stats
    z = stats.norm.ppf(V.POWER)
    assert row["detectable_effect"] == pytest.approx((stats.t.ppf(1 - 0.025 / 2, 20.0) + z) * 0.1)
    # Holm's step-down stopped before it: inconclusive, and the row says why and what would decide it
    stopped = V._verdict_row(c, interval, 0.001, 0.975, False, 3, -1.0)
    assert stopped["verdict"] == V.INCONCLUSIVE and "Holm's step-down stopped" in stopped["evidence"]
    assert stopped["seeds_to_decide"] == str(V.seeds_to_decide(interval, 0.25, 0.025)[1])
    assert "seeds would decide a 0.25 effect" in stopped["evidence"]
    # one seed: no verdict, no seed count
    one = V._verdict_row(c, dataclasses_replace(interval, per_seed=(0.5,)), 0.001, 0.95, True, 1, 1.0)
    assert one["verdict"] == V.INCONCLUSIVE and one["seeds_to_decide"] is None and one["seed_signs"] == "+"
    assert one["evidence"].endswith("1 seed: the seed-to-seed variance is unknown, so no verdict")
    zero = V._verdict_row(c, dataclasses_replace(interval, per_seed=(0.0, -0.1)), 0.5, 0.95, True, 1, 1.0)
    assert zero["seed_signs"] == "0−"


def dataclasses_replace(interval: V.Interval, **changes) -> V.Interval:
    import dataclasses

    return dataclasses.replace(interval, **changes)


def test_seeds_to_decide_is_the_first_count_whose_detectable_effect_reaches_the_margin():
    from scipy import stats

    interval = V.two_level_interval(synthetic(0.0, 0.1, 0.2, 0.05, num_images=400, seed_effects=[-0.1, 0.05, 0.12])
                                    .pipe(V.paired_matrix, "method", "a", "b", "psnr").to_numpy())
    _, needed = V.seeds_to_decide(interval, 0.1, 0.05)

    def detectable(seeds: int) -> float:  # the design's detectable effect with this many seeds, from its definition
        seed_var = interval.seed_var * 3 / seeds
        image_var = max(interval.image_var - interval.residual_var / (3 * interval.num_images), 0.0)
        df = V.satterthwaite(seed_var, seeds, image_var, interval.num_images)
        return (stats.t.ppf(0.975, df) + stats.norm.ppf(0.8)) * math.sqrt(seed_var + image_var)

    assert detectable(needed) <= 0.1 < detectable(needed - 1)
    assert V.seeds_to_decide(interval, detectable(2) + 1e-9, 0.05)[1] == 2  # two seeds already decide a big margin
    assert V.fixed_image_var(interval) == pytest.approx(max(interval.image_var - interval.residual_var / (3 * 400), 0.0))
    assert V.detectable_with_any_seeds(interval, 0.05) == pytest.approx(
        (stats.norm.ppf(0.975) + stats.norm.ppf(0.8)) * math.sqrt(V.fixed_image_var(interval)))
    assert V.seeds_to_decide(dataclasses_replace(interval, per_seed=(0.1,)), 0.1, 0.05)[1] is None


def test_runs_are_stamped_with_the_claims_in_force_only_when_trained_since_the_stage_began(tmp_path: Path):
    import json
    import os

    runs = [tmp_path / name for name in ("new", "edge", "old", "unfinished")]
    for run, mtime in zip(runs, (200.0, 100.0, 99.0, None)):
        run.mkdir()
        if mtime is not None:
            (run / "finished.json").write_text("{}")
            os.utime(run / "finished.json", (mtime, mtime))
    out = tmp_path / "out"
    path = V.stamp_runs([str(r) for r in runs], out, trained_since=100.0)
    assert path == out / V.RUNS_RECORD
    record = json.loads(path.read_text())
    now = V.basis()
    assert record == {str(runs[0]): now, str(runs[1]): now, str(runs[2]): None, str(runs[3]): None}
    assert list(record) == sorted(record)
    assert V.recorded_basis(out) is None  # a run without a stamp: nobody knows which claims it was trained under
    # a later stage keeps the stamps it finds, fills a null one if that run has since been trained, drops others
    os.utime(runs[2] / "finished.json", (300.0, 300.0))
    old_stamp = {"claims_sha256": "c" * 64, "rule_sha256": "r" * 64}
    path.write_text(json.dumps({**record, str(runs[0]): old_stamp}))
    again = json.loads(V.stamp_runs([str(r) for r in runs[:3]], out, trained_since=250.0).read_text())
    assert again == {str(runs[0]): old_stamp, str(runs[1]): now, str(runs[2]): now}
    assert V.recorded_basis(out) == again[sorted(again)[0]] == now  # the first run's (file order); basis_note reports a change
    assert V.recorded_basis(tmp_path / "nowhere") is None
    # a results folder not yet made is made with its parents; the record is one key per line, sorted (stable diffs)
    nested = V.stamp_runs([str(runs[0])], tmp_path / "a" / "b", trained_since=0.0)
    assert nested.read_text() == json.dumps({str(runs[0]): now}, indent=1, sort_keys=True) + "\n"


# --------------------------------------------- edges and defaults: what each guard and default is for


def write_claims(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "claims.toml"
    path.write_text(body)
    return path


CLAIM_BODY = 'text="t"\nfamily="f"\nsource="study"\na="a"\nb="b"\nmetric="psnr"\ndirection="higher"\n'


def test_a_claims_file_keeps_each_reason_its_header_and_refuses_duplicates(tmp_path: Path):
    # a claim's own margin and reason; the [margins] table's for another metric; the header's fields
    path = write_claims(tmp_path, 'declared = "before the runs"\n[margins]\nssim = [0.01, "one hundredth"]\n'
                        f'[[claims]]\nid="own"\n{CLAIM_BODY}margin=0.2\nmargin_reason="my reason"\n'
                        f'[[claims]]\nid="table"\n{CLAIM_BODY.replace("psnr", "ssim")}')
    claims, header = V.load_claims(path)
    assert [(c.id, c.margin, c.margin_reason) for c in claims] == [("own", 0.2, "my reason"),
                                                                   ("table", 0.01, "one hundredth")]
    assert header == {"declared": "before the runs", "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                      "path": "claims.toml"}
    # a file with no claims and no declaration: nothing to judge, declared empty
    empty = V.load_claims(write_claims(tmp_path, "[margins]\npsnr = [0.1, 'r']\n"))
    assert empty[0] == [] and empty[1]["declared"] == ""
    with pytest.raises(ValueError, match="claim id 'own' appears twice; ids must be unique"):
        V.load_claims(write_claims(tmp_path, f'[[claims]]\nid="own"\n{CLAIM_BODY}margin=0.2\nmargin_reason="r"\n' * 2))
    with pytest.raises(ValueError, match=r"claim '\?' lacks \['id'\]"):
        V.load_claims(write_claims(tmp_path, f"[[claims]]\n{CLAIM_BODY}"))
    with pytest.raises(ValueError, match=r"add it under \[margins\] or give the claim margin and margin_reason"):
        V.load_claims(write_claims(tmp_path, f'[[claims]]\nid="x"\n{CLAIM_BODY}'))
    with pytest.raises(ValueError, match="the margin must be > 0 and give its reason"):
        V.load_claims(write_claims(tmp_path, f'[[claims]]\nid="x"\n{CLAIM_BODY}margin=0.2\n'))


def test_margin_of_reads_the_margins_table_and_names_a_missing_one(tmp_path: Path):
    path = write_claims(tmp_path, "[margins]\npsnr = [0.25, 'r']\n")
    assert V.margin_of("psnr", path) == 0.25
    with pytest.raises(ValueError, match=r"no margin for 'ssim' under \[margins\]; add one with its reason"):
        V.margin_of("ssim", path)
    with pytest.raises(ValueError, match="no margin for 'psnr'"):  # a file without a [margins] table
        V.margin_of("psnr", write_claims(tmp_path, 'declared = "x"\n'))


def test_paired_matrix_names_what_is_missing_and_pairs_grayscale_with_any_seed_numbers():
    per_image = synthetic(0.5, 0.01, 1.0, 0.1, num_images=20).replace({"seed": {0: 3, 1: 5, 2: 7}})
    gray = per_image[(per_image.method == "b") & (per_image.seed == 3)].assign(method="gray", seed=-1)
    both = pd.concat([per_image, gray])
    matrix = V.paired_matrix(both, "method", "a", "gray", "psnr")
    assert list(matrix.index) == [3, 5, 7] and matrix.shape == (3, 20)
    a = per_image[per_image.method == "a"].pivot(index="seed", columns="image", values="psnr")
    assert np.allclose(matrix.to_numpy(), a.to_numpy() - gray.psnr.to_numpy()[None, :])
    with pytest.raises(ValueError, match="per-image metrics have no column 'lpips'"):
        V.paired_matrix(per_image, "method", "a", "b", "lpips")
    other_images = per_image[per_image.method == "b"].assign(image=lambda d: d.image + 1000)
    with pytest.raises(ValueError, match="'a' and 'b' share no seed or no test image; a paired comparison needs both"):
        V.paired_matrix(pd.concat([per_image[per_image.method == "a"], other_images]), "method", "a", "b", "psnr")
    other_seeds = per_image[per_image.method == "b"].assign(seed=lambda d: d.seed + 100)
    with pytest.raises(ValueError, match="share no seed or no test image"):
        V.paired_matrix(pd.concat([per_image[per_image.method == "a"], other_seeds]), "method", "a", "b", "psnr")


@pytest.mark.parametrize("shape", [(3, 2), (2, 2), (2, 5)])
def test_two_level_interval_is_its_definition_with_two_images_or_two_seeds(shape):
    values = np.random.default_rng(8).normal(0.5, 1.0, shape)
    got = V.two_level_interval(values, 0.95, 400, 2)
    expected = reference_interval(values, 0.95, 400, 2, (-math.inf, math.inf))
    for name, value in expected.items():
        assert getattr(got, name) == pytest.approx(value, rel=1e-12, abs=1e-15), name


def test_two_level_interval_with_one_seed_or_one_image_drops_that_level():
    one_image = V.two_level_interval(np.array([[1.0], [3.0]]))  # 2 seeds, 1 image: seeds only
    assert one_image.image_var == 0.0 and one_image.residual_var == 0.0 and one_image.seed_var == pytest.approx(1.0)
    assert one_image.df == pytest.approx(1.0) and one_image.low < 2.0 < one_image.high
    one_seed = V.two_level_interval(np.array([[1.0, 2.0, 4.0]]))  # 1 seed: images only
    assert one_seed.seed_var == 0.0 and one_seed.residual_var == 0.0 and one_seed.df == pytest.approx(2.0)
    assert one_seed.image_var == pytest.approx(np.var([1.0, 2.0, 4.0], ddof=1) / 3)
    single = V.two_level_interval(np.array([[0.7]]))  # one value: an interval of no width, not an error
    assert single.estimate == 0.7 and single.se == pytest.approx(0.0, abs=1e-12)
    assert single.low == pytest.approx(0.7, abs=1e-12) and single.high == pytest.approx(0.7, abs=1e-12)


def test_two_level_interval_refuses_what_is_not_a_seeds_by_images_table_and_computes_in_float64():
    for bad in (np.ones(3), np.ones((2, 0)), np.ones((2, 2, 2))):
        with pytest.raises(ValueError, match=r"needs a non-empty \(seeds, images\) array; got shape"):
            V.two_level_interval(bad)
    values = np.random.default_rng(9).normal(20.0, 3.0, (3, 50)).astype(np.float32)
    assert V.two_level_interval(values) == V.two_level_interval(values.astype(np.float64))
    # the defaults are the documented ones: 95 %, 2000 resamples, generator seed 0, no bounds
    assert V.two_level_interval(values) == V.two_level_interval(values, 0.95, 2000, 0, (-math.inf, math.inf))


def test_satterthwaite_skips_a_level_with_one_member():
    assert V.satterthwaite(1.0, 1, 2.0, 10) == pytest.approx(9.0)
    assert V.satterthwaite(1.0, 4, 2.0, 1) == pytest.approx(3.0)


def test_a_zero_standard_error_has_no_width_whatever_the_degrees_of_freedom():
    for df in (math.nan, 0.0, math.inf):
        flat = V.Interval(0.3, 0.0, 0.0, 0.0, df, 0.95, (0.3, 0.3), 5, 0.0, 0.0).at_level(0.99)
        assert (flat.low, flat.high, flat.level) == (0.3, 0.3, 0.99)


def test_a_difference_ranges_over_twice_the_metrics_range():
    assert V.difference_bounds("ssim") == (-2.0, 2.0)
    assert V.difference_bounds("psnr") == (-math.inf, math.inf)
    assert V.difference_bounds("not_a_metric") == (-math.inf, math.inf)


def test_holm_keeps_the_file_order_among_tied_p_values():
    # 36 claims in three tied groups: the earlier claim in the file gets the stricter level, whatever the sort
    p = [0.001] * 12 + [0.002] * 12 + [0.0005] * 12
    levels, rejects = V.holm_levels(p, 0.05)
    order = list(range(24, 36)) + list(range(12))+ list(range(12, 24))
    for rank, index in enumerate(order):
        assert levels[index] == pytest.approx(1 - 0.05 / (36 - rank)), (rank, index)
    assert all(rejects)


def test_seeds_to_decide_counts_up_to_and_including_max_seeds_and_reaching_the_margin_decides():
    interval = V.Interval(0.0, -1.0, 1.0, 0.2, 10.0, 0.95, (0.1, -0.1, 0.0), 50, 0.04, 0.0004, 0.0)
    from scipy import stats

    z = stats.norm.ppf(V.POWER)

    def detectable(seeds: int) -> float:  # the same arithmetic, in the same order, as seeds_to_decide
        seed_var = interval.seed_var * 3 / seeds
        image_var = V.fixed_image_var(interval)
        return (stats.t.ppf(1 - 0.05 / 2, V.satterthwaite(seed_var, seeds, image_var, 50)) + z) * math.sqrt(
            seed_var + image_var)

    assert V.seeds_to_decide(interval, detectable(7), 0.05)[1] == 7  # equal to the margin: reached
    assert V.seeds_to_decide(interval, detectable(V.MAX_SEEDS), 0.05)[1] == V.MAX_SEEDS
    assert V.seeds_to_decide(interval, detectable(V.MAX_SEEDS + 1), 0.05)[1] is None


def test_judge_defaults_alpha_and_bounds():
    per_image = synthetic(0.3, 0.05, 1.0, 0.3, num_images=60)
    assert V.judge({"study": per_image}, [claim()]).equals(
        V.judge({"study": per_image}, [claim()], alpha=0.05, num_resamples=2000, seed=0))
    loose = V.judge({"study": per_image}, [claim()], alpha=0.1).iloc[0]
    assert loose.level == pytest.approx(0.9)
    # a missing arm's row gives paired_matrix's reason
    missing = V.judge({"study": per_image}, [claim(b="missing")]).iloc[0]
    assert missing.verdict == V.NOT_TESTED and missing.evidence == "per-image metrics have no method 'missing'"
    # an SSIM difference never leaves [-2, 2]: three images, two seeds, huge spread
    rows = [{"method": m, "seed": s, "image": i, "ssim": v} for s in (0, 1)
            for i, (va, vb) in enumerate([(1.0, -0.9), (0.95, -1.0), (-1.0, 0.9)])
            for m, v in (("a", va), ("b", vb))]
    ssim_claim = V.Claim("s", "a > b", "f", "study", "a", "b", "ssim", "higher", 0.01, "r")
    row = V.judge({"study": pd.DataFrame(rows)}, [ssim_claim]).iloc[0]
    assert row.high == 2.0 and row.low == -2.0
    wide = V.difference_interval(pd.DataFrame(rows), "method", "a", "b", "ssim")
    assert (wide.low, wide.high) == (-2.0, 2.0)


def test_mean_and_difference_intervals_default_to_95_percent_and_an_unknown_metric_is_unbounded():
    per_image = synthetic(0.3, 0.05, 1.0, 0.3, num_images=40).assign(lpips=lambda d: d.psnr - 24.0)
    mean = V.mean_interval(per_image, "method", "a", "lpips")
    assert mean == V.mean_interval(per_image, "method", "a", "lpips", 0.95, 2000, 0)
    assert mean.bounds == (-math.inf, math.inf) and mean.low < mean.estimate < mean.high
    assert V.mean_interval(per_image, "method", "a", "psnr").bounds == (0.0, math.inf)
    diff = V.difference_interval(per_image, "method", "a", "b", "lpips")
    assert diff == V.difference_interval(per_image, "method", "a", "b", "lpips", 0.95, 2000, 0)
    assert diff.low < diff.estimate < diff.high and diff.level == 0.95


def test_the_evidence_keeps_its_numbers_before_the_notes_and_two_seeds_can_need_more_than_max_seeds():
    c = V.Claim("c", "a > b", "f", "study", "a", "b", "psnr", "higher", 0.01, "r")
    head = "psnr: a − b = +0.5 per seed +0.4 / +0.6; in the claimed direction +0.5 [+0.2, +0.8] "
    interval = V.Interval(0.5, 0.2, 0.8, 0.1, 20.0, 0.95, (0.4, 0.6), 30, 0.004, 0.006, 0.01)
    stopped = V._verdict_row(c, interval, 0.001, 0.975, False, 3, 1.0)
    assert stopped["evidence"].startswith(head + "(97.50% interval, Holm over 3), margin 0.01; Holm's step-down "
                                          "stopped at a claim with a smaller p-value, so this one is not decided; "
                                          "detectable at this scale: ")
    one = V._verdict_row(c, dataclasses_replace(interval, per_seed=(0.5,)), 0.001, 0.95, True, 1, 1.0)
    assert one["evidence"] == ("psnr: a − b = +0.5 per seed +0.5; in the claimed direction +0.5 [+0.2, +0.8] "
                               "(95.00% interval, Holm over 1), margin 0.01; 1 seed: the seed-to-seed variance is "
                               "unknown, so no verdict")
    # two seeds, images that keep a large spread with any number of seeds: no count up to MAX_SEEDS decides
    hard = V.Interval(0.0, -1.0, 1.0, 0.3, 20.0, 0.95, (0.1, -0.1), 30, 0.01, 0.08, 0.0)
    row = V._verdict_row(c, hard, 0.9, 0.95, False, 1, 1.0)
    assert row["verdict"] == V.INCONCLUSIVE and row["seeds_to_decide"] == f">{V.MAX_SEEDS}"


def test_the_basis_note_in_full():
    out = V.judge({"study": synthetic(0.5, 0.02, 1.0, 0.1)}, [claim()])
    now = V.basis()
    c, r = now["claims_sha256"][:12], now["rule_sha256"][:12]
    assert V.basis_note(out, None) == (
        "The claims, their margins and this rule were declared after these runs had produced their data (the runs "
        "recorded no claims digest): read the verdicts as a re-analysis, not as a pre-registered test.")
    assert "(the runs recorded no claims digest; declared today): read" in V.basis_note(out, None, "today")
    assert V.basis_note(out, now) == (f"Claims and rule are those recorded with the runs (claims {c}, rule {r}): "
                                      "declared before the data.")
    assert V.basis_note(out, {"claims_sha256": "0" * 64, "rule_sha256": "1" * 64}) == (
        "The claims file and the verdict rule changed after these runs were made (digest at the runs "
        f"000000000000, 111111111111; now {c}, {r}).")
    assert V.basis_note(out, {"claims_sha256": "0" * 64}) == (
        f"The claims file and the verdict rule changed after these runs were made (digest at the runs 000000000000, ?; "
        f"now {c}, {r}).")
    unjudged = out.assign(claims_sha256=None, rule_sha256=None)
    assert V.basis_note(unjudged, now) == ""

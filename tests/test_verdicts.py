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

"""The verdict engine: every claim of the suite (Table 1's, the ablation's, diversity) judged by one rule.

Claims are data (``claims.toml``): arms ``a`` and ``b`` of one source, a metric, the claimed direction, the
smallest effect that matters (the margin) and a family for multiplicity control. Evidence is per-image
metrics of several training seeds on one test set, so an effect varies with the seed AND with the images.

The interval of a claim's effect (a - b, paired on the same seeds and images) is a two-level bootstrap:
resample seeds, then images, one image draw shared by every seed drawn and by both arms (paired; the images
are crossed with the seeds, the "pigeonhole" bootstrap of Owen 2007, Ann. Appl. Stat. 1:386). Following
Davison & Hinkley (1997, Bootstrap Methods and their Application, §3.8, hierarchical data) the seed and
image effects are rescaled by sqrt(S/(S-1)) and sqrt(N/(N-1)) before resampling, so the bootstrap variance
matches the unbiased variance components; with two or three seeds a percentile interval would still be far
too narrow (3 seeds allow 10 distinct resamples), so the interval is the estimate +- a Student-t quantile
with Satterthwaite's (1946) degrees of freedom times the bootstrap standard error, clipped to the metric's
range. A simulation in tests/test_verdicts.py checks that 95% intervals cover the truth 93-97% of the time
(3 seeds, 100 images, seed sd 0.15, image sd 0.5, interaction sd 0.3). Limitation, measured the same way
with 400 studies each: when the seed variance dominates and there are only 2-3 seeds, Satterthwaite's
degrees of freedom are themselves noisy and coverage drops (2 seeds: 90% at seed sd 0.15, 88% at 0.4;
3 seeds: 92% at 0.4); with 5 seeds it is 95-97%. Hsu's conservative choice (seeds - 1 degrees of freedom)
would cover at least 95% (normal data) but far wider than needed when the images dominate; more seeds are
the real remedy.

Verdicts, on the effect in the claimed direction with its Holm-adjusted interval [low, high] and margin m:
- *no practical difference*: -m < low and high < m (the interval lies inside +-m);
- *supported*: low > 0 and the estimate >= m (never on an effect below the margin);
- *contradicted*: high < 0 and the estimate <= -m;
- *inconclusive at this scale*: anything else, with the effect this design could detect and the seeds
  that would decide it (power from the measured seed and image variances).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

CLAIMS_PATH = Path(__file__).with_name("claims.toml")
SUPPORTED, CONTRADICTED, NO_DIFFERENCE, INCONCLUSIVE = (
    "supported", "contradicted", "no practical difference", "inconclusive at this scale")
VERDICTS = (SUPPORTED, CONTRADICTED, NO_DIFFERENCE, INCONCLUSIVE)
NOT_TESTED = "not tested"
NOT_REJUDGED = "not re-judged"
# the column naming the arms of each source's per-image table
SOURCES = {"study": "method", "ablation": "variant"}
# metric -> (lowest, highest) value; an interval of a mean or a difference never leaves these
METRIC_RANGES = {"psnr": (0.0, math.inf), "ssim": (-1.0, 1.0), "ciede2000": (0.0, math.inf),
                 "colourfulness": (0.0, math.inf), "colourfulness_gap": (-math.inf, math.inf),
                 "diversity": (0.0, math.inf)}
# metric -> True when higher is better (charts' arrows; claims state their own direction)
HIGHER_IS_BETTER = {"psnr": True, "ssim": True, "ciede2000": False, "colourfulness": True, "diversity": True}
POWER = 0.8  # the power at which the detectable effect and the seeds needed are stated
MAX_SEEDS = 1000  # more seeds than this cannot decide a claim (the test images' variance dominates)


# ----------------------------------------------------------------------------------------- claims


@dataclass(frozen=True)
class Claim:
    """One claim: ``a`` beats ``b`` on ``metric`` by at least ``margin`` in ``direction`` (higher: a - b > 0)."""

    id: str
    text: str
    family: str
    source: str
    a: str
    b: str
    metric: str
    direction: str
    margin: float
    margin_reason: str


def load_claims(path: Path | str = CLAIMS_PATH) -> tuple[list[Claim], dict[str, Any]]:
    """Read a claims file. Returns (claims, header: 'declared', 'sha256', 'path').

    Raises:
        ValueError: a claim without a known source, direction, metric margin or a unique id (names the claim).
    """
    path = Path(path)
    raw = path.read_bytes()
    data = tomllib.loads(raw.decode())
    margins = data.get("margins", {})
    claims, seen = [], set()
    for entry in data.get("claims", []):
        name = entry.get("id", "?")
        missing = [k for k in ("id", "text", "family", "source", "a", "b", "metric", "direction") if k not in entry]
        if missing:
            raise ValueError(f"{path}: claim {name!r} lacks {missing}; every claim needs them")
        if entry["source"] not in SOURCES:
            raise ValueError(f"{path}: claim {name!r}: source {entry['source']!r}; choose one of {sorted(SOURCES)}")
        if entry["direction"] not in ("higher", "lower"):
            raise ValueError(f"{path}: claim {name!r}: direction {entry['direction']!r}; choose 'higher' or 'lower'")
        margin, reason = entry.get("margin"), entry.get("margin_reason")
        if margin is None:
            if entry["metric"] not in margins:
                raise ValueError(f"{path}: claim {name!r}: no margin for {entry['metric']!r}; add it under [margins] "
                                 "or give the claim margin and margin_reason")
            margin, reason = margins[entry["metric"]]
        if not margin > 0 or not reason:
            raise ValueError(f"{path}: claim {name!r}: the margin must be > 0 and give its reason; got {margin!r}")
        if name in seen:
            raise ValueError(f"{path}: claim id {name!r} appears twice; ids must be unique")
        seen.add(name)
        claims.append(Claim(name, entry["text"], entry["family"], entry["source"], entry["a"], entry["b"],
                            entry["metric"], entry["direction"], float(margin), str(reason)))
    return claims, {"declared": data.get("declared", ""), "sha256": hashlib.sha256(raw).hexdigest(),
                    "path": path.name}


def margin_of(metric: str, path: Path | str = CLAIMS_PATH) -> float:
    """The declared smallest effect that matters for ``metric`` (``[margins]`` of the claims file)."""
    margins = tomllib.loads(Path(path).read_text()).get("margins", {})
    if metric not in margins:
        raise ValueError(f"{path}: no margin for {metric!r} under [margins]; add one with its reason")
    return float(margins[metric][0])


def rule_digest() -> str:
    """SHA-256 of this module's source: the rule every verdict was judged with."""
    return hashlib.sha256(Path(__file__).read_bytes()).hexdigest()


def basis(claims_path: Path | str = CLAIMS_PATH) -> dict[str, str]:
    """The digests a set of verdicts (or a set of runs) records: claims file and rule."""
    return {"claims_sha256": load_claims(claims_path)[1]["sha256"], "rule_sha256": rule_digest()}


# -------------------------------------------------------------------------------------- evidence


def paired_matrix(per_image: pd.DataFrame, column: str, a: str, b: str, metric: str) -> pd.DataFrame:
    """(seed x image) table of a - b on ``metric``, on the seeds and images both arms have.

    An arm scored once without a seed (the grayscale row, seed -1) is paired with every seed of the other.
    Raises:
        ValueError: an arm or the metric is missing, or the arms share no seed or no image.
    """
    if metric not in per_image:
        raise ValueError(f"per-image metrics have no column {metric!r}")
    tables = {}
    for arm in (a, b):
        rows = per_image[per_image[column] == arm]
        if rows.empty:
            raise ValueError(f"per-image metrics have no {column} {arm!r}")
        tables[arm] = rows.pivot_table(index="seed", columns="image", values=metric, aggfunc="mean")
    ta, tb = tables[a], tables[b]
    if list(tb.index) == [-1]:
        tb = pd.DataFrame(np.repeat(tb.to_numpy(), len(ta), axis=0), index=ta.index, columns=tb.columns)
    seeds = ta.index.intersection(tb.index)
    images = ta.columns.intersection(tb.columns)
    if seeds.empty or images.empty:
        raise ValueError(f"{column} {a!r} and {b!r} share no seed or no test image; a paired comparison needs both")
    return (ta.loc[seeds, images] - tb.loc[seeds, images]).dropna(axis=1)


@dataclass(frozen=True)
class Interval:
    """A mean over seeds and images with its two-level interval.

    ``seed_var``: variance of the per-seed means / seeds; ``image_var``: of the per-image means / images
    (their sum is the squared standard error in expectation); ``df``: Satterthwaite's degrees of freedom.
    Every variance is in squared metric units.
    """

    estimate: float
    low: float
    high: float
    se: float
    df: float
    level: float
    per_seed: tuple[float, ...]
    num_images: int
    seed_var: float
    image_var: float
    residual_var: float = 0.0  # seed x image interaction (ANOVA mean square), part of image_var as 1/seeds
    bounds: tuple[float, float] = (-math.inf, math.inf)

    def at_level(self, level: float) -> Interval:
        """The same estimate and standard error at another confidence level (Holm's adjusted ones)."""
        half = stats.t.ppf(0.5 + level / 2, self.df) * self.se if self.se > 0 else 0.0
        return dataclasses.replace(self, low=max(self.estimate - half, self.bounds[0]),
                                   high=min(self.estimate + half, self.bounds[1]), level=level)


def two_level_interval(values: np.ndarray, level: float = 0.95, num_resamples: int = 2000, seed: int = 0,
                       bounds: tuple[float, float] = (-math.inf, math.inf)) -> Interval:
    """Interval of the mean of a (seeds, images) array: two-level bootstrap SE, Student-t (Satterthwaite).

    Args:
        values: (S, N) float, one row per training seed, one column per test image (the same images in
            every row). S = 1 gives an interval over images only (the seed variance is not estimable).
        bounds: the lowest and highest value the mean can take; the interval is clipped to them.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2 or values.size == 0:
        raise ValueError(f"two_level_interval needs a non-empty (seeds, images) array; got shape {values.shape}")
    S, N = values.shape
    mean = values.mean()
    per_seed, per_image = values.mean(axis=1), values.mean(axis=0)
    seed_var = per_seed.var(ddof=1) / S if S > 1 else 0.0
    image_var = per_image.var(ddof=1) / N if N > 1 else 0.0
    # Davison & Hinkley §3.8: rescaled main effects, so that resampling them is unbiased for their variance
    seed_effect = (per_seed - mean) * (math.sqrt(S / (S - 1)) if S > 1 else 0.0)
    image_effect = (per_image - mean) * (math.sqrt(N / (N - 1)) if N > 1 else 0.0)
    rng = np.random.default_rng(seed)
    seed_draws = rng.integers(0, S, size=(num_resamples, S))
    image_draws = rng.integers(0, N, size=(num_resamples, N))
    # one image draw shared by all seeds drawn: seeds and images are crossed, and both arms are paired. The
    # seed x image residual is not resampled: each per-seed and per-image mean already carries it, so the two
    # main effects' variances sum to the estimator's variance plus one residual term (slightly conservative)
    resampled = mean + seed_effect[seed_draws].mean(axis=1) + image_effect[image_draws].mean(axis=1)
    se = float(resampled.std(ddof=1))
    df = satterthwaite(seed_var, S, image_var, N)
    residual = values - per_seed[:, None] - per_image[None, :] + mean
    residual_var = float((residual ** 2).sum() / ((S - 1) * (N - 1))) if S > 1 and N > 1 else 0.0
    return Interval(float(mean), math.nan, math.nan, se, df, level, tuple(float(v) for v in per_seed), N,
                    float(seed_var), float(image_var), residual_var, bounds).at_level(level)


def satterthwaite(seed_var: float, num_seeds: int, image_var: float, num_images: int) -> float:
    """Degrees of freedom of seed_var + image_var (Satterthwaite 1946); inf when both are 0."""
    terms = [(v, n - 1) for v, n in ((seed_var, num_seeds), (image_var, num_images)) if n > 1 and v > 0]
    if not terms:
        return math.inf
    return sum(v for v, _ in terms) ** 2 / sum(v * v / dof for v, dof in terms)


def difference_bounds(metric: str) -> tuple[float, float]:
    """The range of a difference of two values of ``metric``."""
    low, high = METRIC_RANGES.get(metric, (-math.inf, math.inf))
    return low - high, high - low


def p_value(interval: Interval) -> float:
    """Two-sided p-value of 'the mean is 0' from the interval's estimate, SE and degrees of freedom."""
    if interval.se == 0:
        return 0.0 if interval.estimate != 0 else 1.0
    return float(2 * stats.t.sf(abs(interval.estimate) / interval.se, interval.df))


# --------------------------------------------------------------------------------------- verdicts


def decide(effect: float, low: float, high: float, margin: float, num_seeds: int = 2) -> str:
    """The verdict on an effect in the claimed direction (> 0: as claimed) with interval [low, high].

    Boundaries: an interval touching 0 does not exclude it; one touching +-margin is not inside it; an
    estimate equal to the margin reaches it. One seed never decides (its seed variance is unknown).
    """
    if num_seeds < 2:
        return INCONCLUSIVE
    if -margin < low and high < margin:
        return NO_DIFFERENCE
    if low > 0 and effect >= margin:
        return SUPPORTED
    if high < 0 and effect <= -margin:
        return CONTRADICTED
    return INCONCLUSIVE


def holm_levels(p_values: list[float], alpha: float = 0.05) -> tuple[list[float], list[bool]]:
    """Holm's step-down procedure: each test's confidence level and whether it rejects (family-wise alpha).

    The k-th smallest p-value (k from 0) is tested at alpha / (K - k); after the first test that does not
    reject, none does (a test kept by the step-down gets its level but cannot reject).
    """
    K = len(p_values)
    levels, rejects = [0.0] * K, [False] * K
    going = True
    for rank, index in enumerate(np.argsort(p_values, kind="stable")):
        threshold = alpha / (K - rank)
        levels[index] = 1 - threshold
        going = going and p_values[index] <= threshold
        rejects[index] = going
    return levels, rejects


def seeds_to_decide(interval: Interval, margin: float, alpha: float) -> tuple[float, int | None]:
    """(The effect this design detects with POWER at level alpha, the seeds that would detect ``margin``).

    The image variance stays (same test set) but for its seed x image part; the seed variance shrinks as
    1 / seeds. None: no number of seeds up to MAX_SEEDS would (more test images are needed), or the seed
    variance is unknown (1 seed).
    """
    z = stats.norm.ppf(POWER)
    detectable = float((stats.t.ppf(1 - alpha / 2, interval.df) + z) * interval.se)
    S = len(interval.per_seed)
    if S < 2:
        return detectable, None
    per_seed_var = interval.seed_var * S  # variance of one seed's mean (its interaction part included)
    image_var = fixed_image_var(interval)
    for seeds in range(2, MAX_SEEDS + 1):
        seed_var = per_seed_var / seeds
        se = math.sqrt(seed_var + image_var)
        df = satterthwaite(seed_var, seeds, image_var, interval.num_images)
        if (stats.t.ppf(1 - alpha / 2, df) + z) * se <= margin:
            return detectable, seeds
    return detectable, None


def fixed_image_var(interval: Interval) -> float:
    """What the per-image means keep with any number of seeds: the images' own spread, not the seed x image part."""
    S = len(interval.per_seed)
    return max(interval.image_var - interval.residual_var / (S * interval.num_images), 0.0)


def detectable_with_any_seeds(interval: Interval, alpha: float) -> float:
    """The smallest effect detectable with POWER on these test images however many seeds are trained."""
    return float((stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(POWER)) * math.sqrt(fixed_image_var(interval)))


def judge(evidence: dict[str, pd.DataFrame], claims: list[Claim] | None = None, claims_path: Path | str = CLAIMS_PATH,
          alpha: float = 0.05, num_resamples: int = 2000, seed: int = 0,
          absent: dict[str, tuple[str, str]] | None = None) -> pd.DataFrame:
    """Every claim -> effect, Holm-adjusted interval, margin, verdict, per-seed deltas, power, digests.

    Args:
        evidence: source ('study', 'ablation') -> per-image metrics (columns SOURCES[source], seed, image,
            metrics). A source that is absent gives ``absent[source]``: (verdict, evidence), by default
            ('not tested', 'no SOURCE evidence in these results').
        claims: the claims to judge (default: ``claims_path``'s).
    Returns:
        One row per claim in the file's order (columns: see ``VERDICT_COLUMNS``).
    """
    header = load_claims(claims_path)[1]
    claims = load_claims(claims_path)[0] if claims is None else claims
    digests = {"claims_sha256": header["sha256"], "rule_sha256": rule_digest()}
    measured: dict[str, tuple[Claim, Interval, float]] = {}
    rows: dict[str, dict[str, Any]] = {}
    for claim in claims:
        row: dict[str, Any] = {"claim_id": claim.id, "claim": claim.text, "family": claim.family,
                               "metric": claim.metric, "comparison": f"{claim.a} − {claim.b}",
                               "direction": claim.direction, "margin": claim.margin, **digests}
        rows[claim.id] = row
        table = evidence.get(claim.source)
        if table is None:
            verdict, reason = (absent or {}).get(claim.source, (NOT_TESTED, f"no {claim.source} evidence in these results"))
            row.update({"verdict": verdict, "evidence": reason})
            continue
        try:
            matrix = paired_matrix(table, SOURCES[claim.source], claim.a, claim.b, claim.metric)
        except ValueError as err:
            row.update({"verdict": NOT_TESTED, "evidence": str(err)})
            continue
        sign = 1.0 if claim.direction == "higher" else -1.0
        interval = two_level_interval(sign * matrix.to_numpy(), 1 - alpha, num_resamples, seed,
                                      difference_bounds(claim.metric))
        measured[claim.id] = (claim, interval, p_value(interval))
    for family in dict.fromkeys(c.family for c, _, _ in measured.values()):
        ids = [i for i, (c, _, _) in measured.items() if c.family == family]
        levels, rejects = holm_levels([measured[i][2] for i in ids], alpha)
        for claim_id, level, rejects_zero in zip(ids, levels, rejects):
            claim, interval, p = measured[claim_id]
            sign = 1.0 if claim.direction == "higher" else -1.0
            rows[claim_id].update(_verdict_row(claim, interval.at_level(level), p, level, rejects_zero, len(ids),
                                               sign))
    return pd.DataFrame(list(rows.values()), columns=VERDICT_COLUMNS)


VERDICT_COLUMNS = ["claim_id", "claim", "family", "metric", "comparison", "direction", "effect", "low", "high",
                   "level", "margin", "p_value", "family_size", "verdict", "per_seed", "seed_signs", "seeds", "images",
                   "detectable_effect", "seeds_to_decide", "evidence", "claims_sha256", "rule_sha256"]


def _verdict_row(claim: Claim, interval: Interval, p: float, level: float, rejects_zero: bool, family_size: int,
                 sign: float) -> dict[str, Any]:
    """The columns of one judged claim; effect and interval are in the claimed direction (> 0: as claimed)."""
    seeds = len(interval.per_seed)
    verdict = decide(interval.estimate, interval.low, interval.high, claim.margin, seeds)
    stopped = verdict in (SUPPORTED, CONTRADICTED) and not rejects_zero
    if stopped:
        verdict = INCONCLUSIVE  # Holm's step-down stopped before this claim
    detectable, needed = seeds_to_decide(interval, claim.margin, 1 - level)
    if verdict != INCONCLUSIVE:
        needed = None
    raw = [sign * d for d in interval.per_seed]  # a - b per seed, in the metric's units
    evidence = (f"{claim.metric}: {claim.a} − {claim.b} = {sign * interval.estimate:+.4g} per seed "
                + " / ".join(f"{d:+.3g}" for d in raw)
                + f"; in the claimed direction {interval.estimate:+.4g} [{interval.low:+.4g}, {interval.high:+.4g}] "
                f"({level:.2%} interval, Holm over {family_size}), margin {claim.margin:g}")
    if seeds < 2:
        evidence += "; 1 seed: the seed-to-seed variance is unknown, so no verdict"
    if stopped:
        evidence += "; Holm's step-down stopped at a claim with a smaller p-value, so this one is not decided"
    if verdict == INCONCLUSIVE and seeds >= 2:
        evidence += (f"; detectable at this scale: {detectable:.3g} ({POWER:.0%} power); "
                     + (f"{needed} seeds would decide a {claim.margin:g} effect" if needed else
                        f"no number of seeds up to {MAX_SEEDS} decides a {claim.margin:g} effect on these "
                        f"{interval.num_images} test images (with any number of seeds they detect "
                        f"{detectable_with_any_seeds(interval, 1 - level):.3g} at best: more test images are needed)"))
    return {"effect": interval.estimate, "low": interval.low, "high": interval.high, "level": level, "p_value": p,
            "family_size": family_size, "verdict": verdict, "per_seed": " / ".join(f"{d:+.4g}" for d in raw),
            "seed_signs": "".join("+" if d > 0 else "−" if d < 0 else "0" for d in interval.per_seed),
            "seeds": seeds, "images": interval.num_images, "detectable_effect": detectable,
            # a count, '>MAX_SEEDS' (more test images needed), or None (decided, or 1 seed: unknown)
            "seeds_to_decide": str(needed) if needed is not None else (
                f">{MAX_SEEDS}" if verdict == INCONCLUSIVE and seeds > 1 else None),
            "evidence": evidence}


def mean_interval(per_image: pd.DataFrame, column: str, arm: str, metric: str, level: float = 0.95,
                  num_resamples: int = 2000, seed: int = 0) -> Interval:
    """One arm's mean of ``metric`` over seeds and images with its two-level interval, inside the metric's range."""
    rows = per_image[per_image[column] == arm]
    table = rows.pivot_table(index="seed", columns="image", values=metric, aggfunc="mean").dropna(axis=1)
    return two_level_interval(table.to_numpy(), level, num_resamples, seed, METRIC_RANGES.get(metric, (-math.inf,
                                                                                                      math.inf)))


def difference_interval(per_image: pd.DataFrame, column: str, a: str, b: str, metric: str, level: float = 0.95,
                        num_resamples: int = 2000, seed: int = 0) -> Interval:
    """a - b on ``metric``, paired on seeds and images, with its two-level interval (tables' Δ columns)."""
    matrix = paired_matrix(per_image, column, a, b, metric)
    return two_level_interval(matrix.to_numpy(), level, num_resamples, seed, difference_bounds(metric))


# ----------------------------------------------------------------------------------- provenance

RUNS_RECORD = "claims_at_runs.json"  # in a study's or an ablation's results folder


def stamp_runs(run_dirs: list[str], out_dir: Path | str, trained_since: float) -> Path:
    """Record, per run, the claims and rule digests in force when it was trained (``claims_at_runs.json``).

    A run keeps the stamp it has; a run finished at or after ``trained_since`` (epoch s; trained by this
    call's stage) gets today's; an older run without a stamp gets none (null): nobody knows which claims
    existed when it trained, and the verdicts then say the claims came after the data.
    """
    path = Path(out_dir) / RUNS_RECORD
    record = json.loads(path.read_text()) if path.is_file() else {}
    now = basis()
    for run_dir in run_dirs:
        finished = Path(run_dir) / "finished.json"
        if run_dir not in record or record[run_dir] is None:
            fresh = finished.is_file() and finished.stat().st_mtime >= trained_since
            record[run_dir] = now if fresh else None
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({k: record[k] for k in run_dirs}, indent=1, sort_keys=True) + "\n")
    return path


def recorded_basis(out_dir: Path | str) -> dict[str, str] | None:
    """The one set of digests stamped on every run of a results folder; None when any run has none.

    Runs stamped with different digests give the first run's (the note then reports a change).
    """
    path = Path(out_dir) / RUNS_RECORD
    stamps = list(json.loads(path.read_text()).values()) if path.is_file() else []
    if not stamps or any(s is None for s in stamps):
        return None
    return stamps[0]


def basis_note(verdicts: pd.DataFrame, recorded: dict[str, str] | None, declared: str = "") -> str:
    """One sentence beside the verdicts: were claims and rule fixed before the data they judge?

    ``recorded``: the digests stored with the runs (``recorded_basis``), None when the runs stored none.
    """
    judged = verdicts[["claims_sha256", "rule_sha256"]].dropna().drop_duplicates()
    if judged.empty:
        return ""
    now = judged.iloc[0].to_dict()
    if recorded is None:
        return ("The claims, their margins and this rule were declared after these runs had produced their data "
                f"(the runs recorded no claims digest{'; declared ' + declared if declared else ''}): read the verdicts "
                "as a re-analysis, not as a pre-registered test.")
    changed = [name for key, name in (("claims_sha256", "claims file"), ("rule_sha256", "verdict rule"))
               if recorded.get(key) != now[key]]
    if changed:
        return (f"The {' and the '.join(changed)} changed after these runs were made (digest at the runs "
                f"{', '.join(recorded.get(k, '?')[:12] for k in ('claims_sha256', 'rule_sha256'))}; now "
                f"{now['claims_sha256'][:12]}, {now['rule_sha256'][:12]}).")
    return (f"Claims and rule are those recorded with the runs (claims {now['claims_sha256'][:12]}, rule "
            f"{now['rule_sha256'][:12]}): declared before the data.")

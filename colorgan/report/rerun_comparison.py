"""How two runs of the same experiment differ, image by image: did a rerun (another machine, thread count or
number of workers) reproduce the per-image metrics bit for bit, and if not, by how much?

``colorgan compare A B`` prints it for two results folders (or per-image CSV files), e.g. the study trained with
``WORKERS=1`` and with ``WORKERS=2``. The scale to read a difference against is the seed spread: two reruns
of one configuration that differ by rounding drift apart like two training seeds at most.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from colorgan.experiments.ablation import ABLATION_EVIDENCE
from colorgan.experiments.study import PER_IMAGE_FILE
from colorgan.measures.metrics import METRICS

PER_IMAGE_FILES = (PER_IMAGE_FILE, ABLATION_EVIDENCE)
# what identifies one scored image of one run; study files name the method, ablation files the variant
KEY_CANDIDATES = ("method", "variant", "seed", "image")


def read_per_image(path: Path | str) -> pd.DataFrame:
    """A results folder's per-image metrics (the study's or an ablation's), or a per-image CSV file itself."""
    path = Path(path)
    if path.is_dir():
        found = [path / name for name in PER_IMAGE_FILES if (path / name).is_file()]
        if not found:
            raise FileNotFoundError(f"{path} holds none of {', '.join(PER_IMAGE_FILES)}: pass a study's or an "
                                    "ablation's results folder, or a per-image CSV file")
        path = found[0]
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    return pd.read_csv(path)


def compare_per_image(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    """Per metric, how ``b`` differs from ``a`` on the same (method or variant, seed, image) rows.

    Returns one row per metric column both hold: rows (matched), identical (rows whose values are equal bit for
    bit), max_abs_diff, mean_diff (b - a over every row), largest_arm_shift (the largest |difference| of an arm's
    mean, over methods or variants) and seed_sd (the median over arms of a's per-arm standard deviation of the
    per-seed means: the scale a rerun's shift is read against; NaN with one seed). A row
    ``checkpoint_step`` counts the rows whose chosen checkpoint is the same.

    Raises ValueError when the two do not score the same rows: they are not two runs of one experiment.
    """
    keys = [k for k in KEY_CANDIDATES if k in a and k in b]
    if "image" not in keys:
        raise ValueError("per-image metrics need an 'image' column in both tables")
    for name, table in (("first", a), ("second", b)):
        if table.duplicated(keys).any():
            raise ValueError(f"the {name} table has repeated {keys} rows: not one experiment's per-image metrics")
    merged = a.merge(b, on=keys, how="outer", suffixes=("_a", "_b"), indicator=True)
    unmatched = merged[merged["_merge"] != "both"]
    if not unmatched.empty:
        example = unmatched.iloc[0]
        raise ValueError(f"the two tables score different rows ({len(unmatched)} unmatched, e.g. "
                         f"{dict(example[keys])} only in the {'first' if example['_merge'] == 'left_only' else 'second'}"
                         "): compare two runs of the same experiment")
    arm = keys[0] if keys[0] in ("method", "variant") else None
    rows = []
    for metric in [m for m in METRICS if f"{m}_a" in merged and f"{m}_b" in merged]:
        va, vb = merged[f"{metric}_a"].to_numpy(np.float64), merged[f"{metric}_b"].to_numpy(np.float64)
        diff = vb - va
        row = {"metric": metric, "rows": len(merged), "identical": int(np.sum((va == vb) | (np.isnan(va) & np.isnan(vb)))),
               "max_abs_diff": float(np.nanmax(np.abs(diff))), "mean_diff": float(np.nanmean(diff)),
               "largest_arm_shift": float("nan"), "seed_sd": float("nan")}
        if arm is not None:
            shifts = merged.assign(diff=diff).groupby(arm)["diff"].mean()
            row["largest_arm_shift"] = float(shifts.abs().max())
            if "seed" in keys:
                spread = a.groupby([arm, "seed"])[metric].mean().groupby(level=0).std(ddof=1)
                row["seed_sd"] = float(spread.median())
        rows.append(row)
    if "checkpoint_step_a" in merged:
        same = merged.checkpoint_step_a.to_numpy() == merged.checkpoint_step_b.to_numpy()
        rows.append({"metric": "checkpoint_step", "rows": len(merged), "identical": int(same.sum())})
    return pd.DataFrame(rows, columns=["metric", "rows", "identical", "max_abs_diff", "mean_diff",
                                       "largest_arm_shift", "seed_sd"])

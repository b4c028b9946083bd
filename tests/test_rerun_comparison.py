"""Two runs of one experiment compared image by image (colorgan.report.rerun_comparison, `colorgan compare`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from colorgan.cli import main
from colorgan.report.rerun_comparison import compare_per_image, read_per_image


def per_image(seeds: int = 3, images: int = 4) -> pd.DataFrame:
    """A study-like per-image table: two methods, seeds, images; psnr and ssim with a known seed shift."""
    rng = np.random.default_rng(0)
    rows = [{"method": method, "seed": seed, "image": f"{i}.jpg", "psnr": 20 + shift + seed + rng.normal(),
             "ssim": 0.8 + 0.01 * rng.normal(), "checkpoint_step": 100}
            for method, shift in (("colorgan", 1.0), ("chromagan", 0.0)) for seed in range(seeds)
            for i in range(images)]
    return pd.DataFrame(rows)


def test_identical_runs_are_identical_on_every_row():
    a = per_image()
    table = compare_per_image(a, a.sample(frac=1, random_state=1)).set_index("metric")  # row order does not matter
    assert table.loc["psnr", "identical"] == table.loc["psnr", "rows"] == len(a)
    assert table.loc["psnr", "max_abs_diff"] == 0 and table.loc["psnr", "largest_arm_shift"] == 0
    assert table.loc["checkpoint_step", "identical"] == len(a)


def test_a_changed_value_is_counted_measured_and_set_against_the_seed_spread():
    a = per_image()
    b = a.copy()
    b.loc[0, "psnr"] += 0.5  # colorgan, seed 0, image 0
    b.loc[len(b) - 1, "checkpoint_step"] = 200
    table = compare_per_image(a, b).set_index("metric")
    psnr = table.loc["psnr"]
    assert psnr["identical"] == len(a) - 1
    assert psnr["max_abs_diff"] == pytest.approx(0.5)
    assert psnr["mean_diff"] == pytest.approx(0.5 / len(a))
    assert psnr["largest_arm_shift"] == pytest.approx(0.5 / (len(a) / 2))  # colorgan's mean moves by 0.5 / its rows
    # the seed spread, computed here from its definition: per arm the sd over seeds of the per-seed means
    spreads = [np.std([a[(a.method == m) & (a.seed == s)].psnr.mean() for s in range(3)], ddof=1)
               for m in ("colorgan", "chromagan")]
    assert psnr["seed_sd"] == pytest.approx(np.median(spreads))
    assert table.loc["ssim", "identical"] == len(a) and table.loc["ssim", "max_abs_diff"] == 0
    assert table.loc["checkpoint_step", "identical"] == len(a) - 1


def test_tables_of_different_experiments_are_refused_with_the_row_that_differs():
    a = per_image()
    with pytest.raises(ValueError, match=r"different rows \(1 unmatched.*only in the first"):
        compare_per_image(a, a.iloc[1:])
    with pytest.raises(ValueError, match="repeated"):
        compare_per_image(pd.concat([a, a.iloc[:1]]), a)
    with pytest.raises(ValueError, match="'image' column"):
        compare_per_image(a.drop(columns="image"), a.drop(columns="image"))


def test_compare_command_reads_folders_and_files_and_writes_markdown(tmp_path: Path, capsys):
    a, b = per_image(), per_image()
    b.loc[3, "ssim"] += 0.001
    (tmp_path / "first").mkdir()
    a.to_csv(tmp_path / "first" / "per_image_metrics.csv", index=False)
    b.to_csv(tmp_path / "second.csv.gz", index=False)  # an ablation-style gzip file, named directly
    out = tmp_path / "comparison.md"
    assert main(["compare", str(tmp_path / "first"), str(tmp_path / "second.csv.gz"), "-o", str(out)]) == 0
    text = out.read_text()
    assert text.startswith("| metric | rows | identical |") and "| ssim | 24 | 23 | 0.001 |" in text
    assert "| psnr | 24 | 24 | 0 |" in capsys.readouterr().out
    assert main(["compare", str(tmp_path), str(tmp_path / "first")]) == 2
    assert "holds none of per_image_metrics.csv" in capsys.readouterr().err
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_per_image(tmp_path / "missing.csv")

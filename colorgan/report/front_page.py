"""The book's front page: the answer first (Table 1 against the grayscale row and the paper), the verdicts on
the paper's claims, and what it took on which machine, all read from a profile's results folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from colorgan.common.formatting import html_table, short_commit
from colorgan.experiments.ablation import ABLATION_DIR
from colorgan.measures.metrics import GRAYSCALE
from colorgan.report.run_pages import stage_times
from colorgan.report.table1 import PAPER_PSNR, PAPER_SSIM, TABLE1_PSNR, TABLE1_SSIM, table1_blocks
from colorgan.training.run_store import RUN_METADATA_FILE


def front_page(out_dir: Path | str) -> str:
    """The front page's answer, from whatever the profile's results folder holds (Markdown with HTML tables):
    Table 1 against the grayscale row and the paper, verdicts on claims, and what it took on which machine.
    New experiments plug in by writing ``table1.csv``, ``*verdicts*.csv``, ``stages.json`` or
    ``run_metadata.json`` there."""
    out_dir = Path(out_dir)
    parts = []
    table_path = out_dir / "table1.csv"
    if table_path.is_file():
        parts.append("## The answer: every method against the grayscale input and the paper\n\n"
                     + html_table(front_page_table(pd.read_csv(table_path))) + "\n\n"
                     "*ours*: computed here, mean of per-image values [95% interval] (a study's: over seeds and "
                     "test images); *paper*: the values printed in the paper's Table 1 (never computed here; PASCAL "
                     "VOC2012's 1,712 test images at 256 px, conventions unstated). *grayscale* colours "
                     "nothing (ab = 0): a method that does not beat it has not learnt colour yet.\n")
    # an ablation-only profile keeps its verdicts in its ablation folder (a study's summary already holds them)
    found = sorted(out_dir.glob("*verdicts*.csv")) or sorted((out_dir / ABLATION_DIR).glob("*verdicts*.csv"))
    for path in found:
        verdicts = pd.read_csv(path)
        if "claim_id" in verdicts:  # colorgan.experiments.verdicts' full record: the page shows what a reader compares
            verdicts = verdicts[["claim", "verdict", "effect", "low", "high", "margin"]].round(4)
        parts.append(f"## Verdicts on the paper's claims ({path.stem.replace('_', ' ')})\n\n"
                     + html_table(verdicts) + "\n\nComputed from the intervals, not written by hand.\n")
    parts.append(_cost_summary(out_dir))
    return "\n".join(p for p in parts if p)


def front_page_table(table: pd.DataFrame) -> pd.DataFrame:
    """Table 1 reduced to what a reader compares: method, ours with intervals, the paper's values, and the
    difference to the grayscale reference (PSNR dB / SSIM)."""
    table = table1_blocks(table)[0][1]  # rows scored on other images, sizes or protocols are not compared
    # tables written before the columns named their convention (e.g. the study's) use the short names
    psnr_col, ssim_col, paper_psnr, paper_ssim = (
        next((c for c in names if c in table), names[-1])
        for names in ((TABLE1_PSNR, "PSNR (dB)"), (TABLE1_SSIM, "SSIM"), (PAPER_PSNR, "paper PSNR (published)"),
                      (PAPER_SSIM, "paper SSIM (published)")))
    gray = table[table.Method == GRAYSCALE]
    gray_psnr = float(gray[psnr_col].iloc[0]) if len(gray) else np.nan
    gray_ssim = float(gray[ssim_col].iloc[0]) if len(gray) else np.nan
    rows = []
    for r in table.to_dict("records"):
        is_gray = r["Method"] == GRAYSCALE
        rows.append({
            "method": r["Method"],
            "PSNR (dB), ours": f"{r[psnr_col]:.2f} {_interval(r.get('PSNR 95% CI'), 2)}",
            "Δ vs grayscale": "—" if is_gray else f"{r[psnr_col] - gray_psnr:+.2f}",
            "PSNR, paper": _paper(r.get(paper_psnr), 3),
            "SSIM, ours": f"{r[ssim_col]:.3f} {_interval(r.get('SSIM 95% CI'), 3)}",
            "SSIM Δ vs grayscale": "—" if is_gray else f"{r[ssim_col] - gray_ssim:+.3f}",
            "SSIM, paper": _paper(r.get(paper_ssim), 3),
        })
    return pd.DataFrame(rows)


def _interval(text: Any, digits: int) -> str:
    if not isinstance(text, str):
        return ""
    low, high = (float(v) for v in text.strip("[]").split(","))
    return f"[{low:.{digits}f}, {high:.{digits}f}]"


def _paper(value: Any, digits: int) -> str:
    return "—" if value is None or (isinstance(value, float) and np.isnan(value)) else f"{float(value):.{digits}f}"


def _cost_summary(out_dir: Path) -> str:
    """'How long it took and on what': stage wall times and the machines, commits and data of the runs."""
    lines = []
    times = stage_times(out_dir)
    if len(times):
        total = times.seconds.sum()
        lines.append(f"- **Time:** {total / 60:.1f} min of stage wall time (last execution of each stage: "
                     + ", ".join(f"{r.stage} {r.seconds:.0f} s" for r in times.itertuples()) + ").")
    meta_path = out_dir / RUN_METADATA_FILE
    if meta_path.is_file():
        runs = json.loads(meta_path.read_text()).get("runs", [])
        provenance = [r.get("provenance") or {} for r in runs]
        devices = sorted({p.get("device_name", "?") for p in provenance})
        commits = sorted({short_commit(str(p.get("git_commit", "?"))) for p in provenance})
        versions = provenance[0].get("versions", {}) if provenance else {}
        data = sorted({f"{(p.get('data') or {}).get('source', '?')} ({(p.get('data') or {}).get('num_train', '?')} "
                       f"train / {(p.get('data') or {}).get('num_test', '?')} test, "
                       f"{(p.get('data') or {}).get('image_size', '?')} px)" for p in provenance})
        train_seconds = sum((r.get("finished") or {}).get("wall_seconds", 0) for r in runs)
        lines.append(f"- **Machine:** {', '.join(devices)}; torch {versions.get('torch', '?')}, "
                     f"Python {versions.get('python', '?')}.")
        lines.append(f"- **Runs:** {len(runs)}, {train_seconds / 60:.1f} min of training in all; data: "
                     f"{'; '.join(data)}; commit {', '.join(commits)}.")
    return ("## How long it took, and on what\n\n" + "\n".join(lines) + "\n") if lines else ""

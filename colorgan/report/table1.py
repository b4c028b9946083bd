"""The book's Table 1: every run scored on one test set (or its evaluation reused), other tools' scores
beside or below them, and the table written as CSV, Markdown and HTML; with the Table 1 notebook's config.

Every number is computed from run folders and score folders, except the paper's published values
(``published.PAPER_TABLE1``), which only ever appear in columns labelled "paper". Only light modules are
imported at the top: ``cli.py`` reads ``Table1Config`` (its test-set protocols) at start-up, and
``colorgan --help`` answers without torch or pandas; each function imports what it needs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from colorgan.common.params import Params, opt, validate_fields
from colorgan.common.published import METHOD_NAMES, PAPER_TABLE1, VARIANTS, same_protocol_as_paper

if TYPE_CHECKING:
    import pandas as pd

    from colorgan.common.formatting import Html
    from colorgan.experiments.study import Methods

# Table 1's column headers name their convention (published.VARIANTS); the paper's own are unstated
TABLE1_PSNR, TABLE1_SSIM = VARIANTS["psnr"].label, VARIANTS["ssim"].label
PAPER_PSNR, PAPER_SSIM = "paper PSNR (published), convention unstated", "paper SSIM (published), convention unstated"


@dataclass(frozen=True)
class Table1Config(Params):
    """The evaluation notebook: Table 1 and Fig. 2 from trained runs (one run folder per method)."""

    run_dirs: list = opt(None, "run folders to compare (written by the training notebooks)")
    out_dir: str = opt("results/custom", "where table1.csv/.md, fig2.png and per-image metrics go")
    num_fig2_images: int = opt(4, "test images in Fig. 2", min=1)
    # the suite's one count (experiments.ablation.NUM_DIVERSITY_SAMPLES; tests/test_book.py holds them equal)
    num_diversity_samples: int = opt(3, "noise samples of ColorGAN per image (diversity column and strip)", min=0)
    seed: int = opt(0, "seed of the noise z in evaluation and Fig. 2", min=0)
    device: str = opt("auto", "auto (CUDA when present), cpu, cuda or cuda:N")
    external_runs: list = opt([], "folders written by `colorgan score` (other tools' outputs): one Table 1 row each")
    test_root: str = opt("", "score the runs on this folder of photos instead of their own test split ('' = split)")
    protocol: str = opt("resize", "test_root: photos resized whole (the paper's) or centre-cropped, then resized "
                        "(ImageNet val5k)", choices=("resize", "center-crop"))

    def __post_init__(self) -> None:
        validate_fields(self)
        if not self.run_dirs or not all(isinstance(r, str) for r in self.run_dirs):
            raise ValueError(f"run_dirs: expected a non-empty list of folder paths; got {self.run_dirs!r}")
        if not all(isinstance(r, str) and r for r in self.external_runs):
            raise ValueError(f"external_runs: expected a list of folder paths (written by `colorgan score`); "
                             f"got {self.external_runs!r}")


def table1(run_dirs: list[str], methods: Methods, num_diversity_samples: int = 0, device: str = "auto",
           external_runs: list[str] | None = None, test_root: str = "", protocol: str = "resize",
           inception_weights: str = "auto", lpips_weights: str = "auto") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Evaluate every run (or reuse its evaluation) on the shared test split, and add external outputs.

    Args:
        test_root / protocol: score the runs on this folder of photos (``evaluate_run``'s test_root) instead
            of their own test split.
        external_runs: folders written by ``colorgan score`` (another tool's outputs scored with the same
            metric code); each becomes a row with its provenance.
        inception_weights / lpips_weights: 'auto' (torch hub cache if present), 'off', or a file path.
    Returns:
        (table, per_image): table has one row per method plus the grayscale reference, with PSNR and
        SSIM means and 95% bootstrap intervals, CIEDE2000, colourfulness and its gap to the ground
        truth (ΔCF), LPIPS and FID (or why they are n/a), our provenance (steps, VGG weights) and, in
        separate columns labelled 'paper', the published numbers.
    """
    import pandas as pd

    from colorgan.evaluation.evaluate import eval_dir, evaluate_or_reuse, test_set_name
    from colorgan.measures.metrics import GRAYSCALE
    from colorgan.training.run_store import read_run

    records = [read_run(run_dir) for run_dir in run_dirs]
    sizes = {record["run_dir"]: record["config"]["image_size"] for record in records}
    if len(set(sizes.values())) > 1:
        raise ValueError(f"Table 1 compares methods at one image size; these runs differ: {sizes}. Train them at the "
                         "same image_size")
    rows, per_image_all, test_names = [], [], None
    for run_dir, record in zip(run_dirs, records):
        method = record["config"]["method"]
        config_cls, build_step = methods[method]
        per_image, summary = evaluate_or_reuse(
            run_dir, config_cls, build_step, device,
            num_diversity_samples=num_diversity_samples if method == "colorgan" else 0,
            inception_weights=inception_weights, lpips_weights=lpips_weights,
            **({"test_root": test_root, "protocol": protocol} if test_root else {}))
        record = read_run(run_dir)
        if test_root:  # the evaluation's summary.json as just written or reused
            folder = eval_dir(run_dir, test_set_name(test_root, protocol))
            record["eval"] = json.loads((folder / "summary.json").read_text())
        names = sorted(per_image.loc[per_image.method == method, "image"])
        if test_names is not None and names != test_names:
            raise ValueError(f"{run_dir} was evaluated on other test images than {run_dirs[0]}; Table 1 needs "
                             "every method on the same split (same data settings)")
        test_names = names
        kept = per_image if not per_image_all else per_image[per_image.method != GRAYSCALE]
        per_image_all.append(kept.assign(run_dir=str(run_dir)))
        seed = record["config"]["seed"]
        num_resamples = record["config"].get("num_bootstrap", 1000)
        for name, group in kept.groupby("method", sort=False):
            rows.append(_table_row(name, group, record, seed, num_resamples, _set_entry(summary, name)))
    runs_set = _runs_scored_set(records[0]["config"]["image_size"], test_names or [], test_root, protocol)
    apart = {}  # row index -> why it is not compared with the runs
    for folder in external_runs or []:
        record, per_image, summary = read_score(folder)
        name = record["method"]
        per_image = per_image[per_image.method == name]  # a score's own grayscale row is its own reference
        why = _apart_reason(_external_scored_set(record, per_image), runs_set)
        external = {"run_dir": str(folder), "config": {}, "provenance": {"notes": record["provenance"]},
                    "finished": None, "eval": record, "external": True}
        if why:
            apart[len(rows)] = why
        else:  # only rows on the runs' images, size and protocol share the per-image figures
            per_image_all.append(per_image.assign(run_dir=str(folder)))
        rows.append(_table_row(name, per_image, external, 0, 1000, _set_entry(summary, name)))
    table = pd.DataFrame(rows)
    table[APART] = [apart.get(i, "") for i in range(len(table))]
    order = {name: i for i, name in enumerate(["ColorGAN", "ChromaGAN", "ColTran", GRAYSCALE])}
    # rows scored on other images, sizes or protocols go below the runs, never ranked among them
    table = table.sort_values("Method", key=lambda s: s.map(lambda m: order.get(m, 50))).reset_index(drop=True)
    table = pd.concat([table[table[APART] == ""], table[table[APART] != ""]], ignore_index=True)
    return table, pd.concat(per_image_all, ignore_index=True)


# Table 1's column that sets a row apart: '' for rows on the runs' images, size and protocol, else what differs
APART = "scored apart (why)"


def _runs_scored_set(image_size: int, names: list[str], test_root: str, protocol: str) -> dict[str, Any]:
    """The runs' scored set: their size, protocol, image keys and (on a test_root) the ground-truth digest."""
    from colorgan.evaluation.score import ground_truth_digest

    keys = sorted(_stem(n) for n in names)
    digest = ground_truth_digest({_stem(n): Path(test_root).expanduser() / n for n in names}) if test_root else None
    return {"image_size": [image_size, image_size], "protocol": protocol if test_root else "resize",
            "num_images": len(keys), "keys": keys, "ground_truth_digest": digest}


def _external_scored_set(record: dict[str, Any], per_image: pd.DataFrame) -> dict[str, Any]:
    """A ``colorgan score`` folder's scored set (older folders lack 'scored_set': its size and protocol then)."""
    scored = record.get("scored_set") or {"image_size": record.get("image_size"), "protocol": record.get("protocol")}
    keys = sorted(_stem(n) for n in per_image.image)
    return {**scored, "num_images": len(keys), "keys": keys, "ground_truth_digest": scored.get("ground_truth_digest")}


def _apart_reason(scored: dict[str, Any], runs: dict[str, Any]) -> str:
    """'' when ``scored`` is the runs' set (same images, size, protocol), else a heading saying what differs:
    'scored at 256² on 40 images; the runs: 64² on 40 images'."""
    digests = (scored["ground_truth_digest"], runs["ground_truth_digest"])
    # a run's own split has no files to digest: its image names are compared then
    same_images = scored["keys"] == runs["keys"] and (None in digests or digests[0] == digests[1])
    same_protocol = scored["protocol"] == runs["protocol"]
    if list(scored["image_size"] or []) == runs["image_size"] and same_protocol and same_images:
        return ""

    def described(s: dict[str, Any], other_images: bool) -> str:
        width, height = s["image_size"] or ("?", "?")
        size = f"{width}²" if width == height else f"{width}×{height}"
        protocol = "" if same_protocol else f" ({s['protocol']})"
        return f"{size}{protocol} on {s['num_images']} images" + (", not the runs'" if other_images else "")

    return f"scored at {described(scored, not same_images)}; the runs: {described(runs, False)}"


def read_score(folder: Path | str) -> tuple[dict[str, Any], pd.DataFrame, pd.DataFrame]:
    """A ``colorgan score`` results folder: (summary.json record, per-image metrics, summary)."""
    import pandas as pd

    folder = Path(folder)
    paths = [folder / "summary.json", folder / "per_image.csv", folder / "summary.csv"]
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"external_runs: {folder} lacks {missing}; give folders written by "
                                "`colorgan score PRED_DIR GT_DIR -o FOLDER`")
    return json.loads(paths[0].read_text()), pd.read_csv(paths[1]), pd.read_csv(paths[2])


def _stem(name: str) -> str:
    return name.rsplit(".", 1)[0] if "." in Path(name).name else name


def _set_entry(summary: pd.DataFrame, method: str) -> dict[str, Any]:
    """A method's FID and FID note from an evaluation summary (older summaries have neither)."""
    import pandas as pd

    rows = summary[summary.method == method]
    if rows.empty or "fid" not in rows:
        return {"fid": None, "fid_note": "n/a (evaluated before FID existed)"}
    fid, note = rows.fid.iloc[0], rows.get("fid_note", pd.Series([""])).iloc[0]
    return {"fid": None if pd.isna(fid) else float(fid), "fid_note": "" if pd.isna(note) else str(note)}


def _metric_cell(group: pd.DataFrame, column: str, digits: int, missing: str) -> Any:
    return round(float(group[column].mean()), digits) if column in group and group[column].notna().all() else missing


def _table_row(method: str, group: pd.DataFrame, record: dict, seed: int, num_resamples: int,
               set_entry: dict[str, Any] | None = None) -> dict[str, Any]:
    from colorgan.measures.metrics import GRAYSCALE, bootstrap_ci, pooled_psnr_ci

    psnr, psnr_low, psnr_high = bootstrap_ci(group.psnr.to_numpy(), num_resamples, seed)
    ssim, ssim_low, ssim_high = bootstrap_ci(group.ssim.to_numpy(), num_resamples, seed)
    is_reference = method == GRAYSCALE
    is_external = bool(record.get("external"))
    provenance = record["provenance"] or {}
    finished = record["finished"] or {}
    evaluation = record.get("eval") or {}
    # the paper's numbers stand beside ours only on the paper's test images (its protocol, §3.1)
    in_paper_protocol = (not is_external and "path" not in (evaluation.get("test_set") or {})
                         and same_protocol_as_paper(record["config"].get("data", ""),
                                                    record["config"].get("image_size", 0), len(group)))
    paper_psnr, paper_ssim = PAPER_TABLE1.get(method, (None, None)) if in_paper_protocol else (None, None)
    pooled, pooled_low, pooled_high = pooled_psnr_ci(group.psnr.to_numpy(), num_resamples, seed)
    set_entry = set_entry or {"fid": None, "fid_note": "n/a"}
    fid_note = set_entry.get("fid_note") or "n/a"
    if set_entry.get("fid") is not None:
        # a substitute feature network's distance is not FID: the label says so beside the number
        fid = round(set_entry["fid"], 2) if "pytorch-fid" in fid_note else f"{set_entry['fid']:.2f} ({fid_note})"
    else:
        fid = fid_note if fid_note.startswith("n/a") else f"n/a ({fid_note})"
    lpips_note = evaluation.get("lpips_network", "n/a (no LPIPS weights)")
    has_colour = "colourfulness_gt" in group
    steps = "—" if is_reference or is_external else finished.get("step", evaluation.get("checkpoint_step"))
    return {
        "Method": METHOD_NAMES.get(method, method),
        TABLE1_PSNR: round(psnr, 3),
        "PSNR 95% CI": f"[{psnr_low:.3f}, {psnr_high:.3f}]",
        VARIANTS["psnr_pooled"].label: round(pooled, 3),
        f"{VARIANTS['psnr_pooled'].label} 95% CI": f"[{pooled_low:.3f}, {pooled_high:.3f}]",
        TABLE1_SSIM: round(ssim, 4),
        "SSIM 95% CI": f"[{ssim_low:.4f}, {ssim_high:.4f}]",
        "CIEDE2000": _metric_cell(group, "ciede2000", 2, "n/a"),
        VARIANTS["cf"].label: _metric_cell(group, "colourfulness", 2, "n/a"),
        VARIANTS["dcf"].label: _metric_cell(group, "colourfulness_gap", 2, "n/a") if has_colour else "n/a",
        # evaluations stored before the absolute-value convention existed have no such column: n/a, never guessed
        VARIANTS["cf_abs"].label: _metric_cell(group, "colourfulness_abs", 2, "n/a (scored before cf_abs)"),
        VARIANTS["dcf_abs"].label: _metric_cell(group, "colourfulness_abs_gap", 2, "n/a (scored before cf_abs)"),
        "LPIPS": _metric_cell(group, "lpips", 4, lpips_note if lpips_note.startswith("n/a") else "n/a"),
        "FID": fid,
        "test images": len(group),
        "steps": steps,
        "VGG weights": "—" if is_reference or is_external else provenance.get("vgg_weights", "n/a"),
        "notes": "reference: input L with ab = 0" if is_reference else provenance.get("notes", ""),
        PAPER_PSNR: paper_psnr,
        PAPER_SSIM: paper_ssim,
    }


def psnr_reductions(per_image: pd.DataFrame) -> pd.DataFrame:
    """Per method: PSNR as the mean of per-image PSNR and as the PSNR of the MSE pooled over the images (each
    the mean over seeds when ``per_image`` has a 'seed' column), and their difference in dB.

    Both come from the per-image PSNR alone (``metrics.pooled_psnr``), so stored results can be re-reduced
    without the colorizations.
    """
    import numpy as np
    import pandas as pd

    from colorgan.measures.metrics import pooled_psnr

    rows = []
    for method, group in per_image.groupby("method", sort=False):
        seeds = [g for _, g in group.groupby("seed")] if "seed" in group else [group]
        mean = float(np.mean([g.psnr.mean() for g in seeds]))
        pooled = float(np.mean([pooled_psnr(g.psnr.to_numpy()) for g in seeds]))
        rows.append({"Method": METHOD_NAMES.get(method, method), "seeds": len(seeds), "images": len(seeds[0]),
                     TABLE1_PSNR: round(mean, 2), VARIANTS["psnr_pooled"].label: round(pooled, 2),
                     "pooled − per-image (dB)": round(pooled - mean, 2)})
    return pd.DataFrame(rows)


def save_table1(table: pd.DataFrame, per_image: pd.DataFrame, out_dir: Path | str) -> list[Path]:
    """Write table1.csv, table1.md and per_image_metrics.csv into ``out_dir``."""
    from colorgan.common.formatting import table_markdown

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / "table1.csv", out_dir / "table1.md", out_dir / "per_image_metrics.csv"]
    table.to_csv(paths[0], index=False)
    paths[1].write_text("\n".join(f"{_apart_heading(why)}{table_markdown(rows)}" for why, rows in table1_blocks(table)))
    per_image.to_csv(paths[2], index=False)
    return paths


def table1_blocks(table: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """Table 1 as blocks: ('', the runs and the rows on their images, size and protocol), then one
    (what differs, rows) per other scored set. The column that says why is left out of the blocks."""
    import pandas as pd

    # a table read back from CSV has an all-empty column as float NaN: as text first, then '' for the missing
    why = (table[APART].astype(object).where(table[APART].notna(), "") if APART in table
           else pd.Series([""] * len(table), index=table.index))
    rows = table.drop(columns=[APART], errors="ignore")
    blocks = [("", rows[why == ""])]
    blocks += [(reason, rows[why == reason]) for reason in dict.fromkeys(why[why != ""])]
    return blocks


def _apart_title(why: str) -> str:
    return f"Not compared with the runs (other images, size or protocol): {why}"


def _apart_heading(why: str) -> str:
    return f"\n**{_apart_title(why)}**\n\n" if why else ""


def table1_html(table: pd.DataFrame) -> Html:
    """Table 1 for the book: the compared rows, then each row scored on another set below, headed by what differs."""
    import html

    from colorgan.common.formatting import Html, html_table

    return Html("".join((f"<p><strong>{html.escape(_apart_title(why))}</strong></p>" if why else "") + html_table(rows)
                        for why, rows in table1_blocks(table)))

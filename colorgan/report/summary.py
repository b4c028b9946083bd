"""The reproducibility summary of a study: scope, method, results, diversity, deviations beside the verdicts
they affect, and the README's generated results block, every number from a study's results folder.

The numbers come from ``colorgan.experiments.study`` (tables, per-image metrics, run records) and the verdicts from
``colorgan.experiments.verdicts``; nothing here computes a statistic.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from colorgan.common.params import Params, opt
from colorgan.experiments import verdicts
from colorgan.experiments.ablation import ABLATION_DIR
from colorgan.experiments.study import WITH_INPUT_L, StudyResults, load_results
from colorgan.measures.metrics import GRAYSCALE


@dataclass(frozen=True)
class SummaryConfig(Params):
    """The reproducibility summary: verdicts on the paper's claims from a study's results folder."""

    out_dir: str = opt("results/study", "the study's results folder (study_table.csv, per_image_metrics.csv)")
    ablation_digest: str = opt("", "sha256 of the study-scale ablation's per-image evidence in out_dir/ablation "
                                   "('' = not run); the pipeline sets it, so the page is rebuilt when the ablation "
                                   "changes")


def diversity_finding(results: StudyResults) -> str:
    """What ColorGAN's noise does at this scale, and whether eq. 2 read literally explains it, from the numbers.

    Diversity is the mean ΔE*ab (CIE76) between noise samples of one image: the samples share the input L,
    so it is their Euclidean ab distance (``metrics.pairwise_ab_distance``). The study-scale ablation's
    no_ls variant tests the literal reading (Ls pulls G_f(z) towards one feature map whatever z is).
    """
    jnd = verdicts.margin_of("diversity")
    rows = results.table[(results.table.metric == "diversity") & (results.table.method == "colorgan")]
    if rows.empty:
        return "ColorGAN was not scored for diversity in this study (num_diversity_samples = 0)."
    r = rows.iloc[0]
    text = (f"ColorGAN's diversity (mean ΔE*ab between noise samples of one test image, {DIVERSITY_NOTE}) is "
            f"{r['mean']:.3f} [{r['low']:.3f}, {r['high']:.3f}], {'below' if r['high'] < jnd else 'not below'} a "
            f"just-noticeable colour difference (ΔE*ab ≈ {jnd}): "
            f"{'the noise barely changes the colours' if r['high'] < jnd else 'the noise changes the colours visibly'}.")
    ablation = results.ablation
    if ablation is None or not {"full", "no_ls"} <= set(ablation.variant):
        return text + " Whether the literal reading of eq. 2 explains it needs the study-scale ablation (make " \
                      "ablations PROFILE=study)."
    no_ls = ablation[(ablation.variant == "no_ls") & (ablation.metric == "diversity")].iloc[0]
    text += (f" Read literally, eq. 2 trains G_f on noise alone, pulling G_f(z) towards one feature map whatever z "
             f"is; without Ls (the ablation's no_ls) diversity is {no_ls['mean']:.3f}, "
             f"{no_ls['diff_vs_full']:+.3f} [{no_ls['diff_low']:+.3f}, {no_ls['diff_high']:+.3f}] against the full "
             "model on the same images" + ("" if results.ablation_per_image is not None else
                                           " (the ablation's own table, made by the earlier image-only rule: its "
                                           "per-image evidence was not kept)") + ". ")
    if no_ls["diff_low"] > 0 and no_ls["mean"] >= jnd:
        return text + "Dropping Ls restores visible diversity: the literal reading explains the collapse."
    if no_ls["diff_low"] > 0:
        return text + ("Dropping Ls raises diversity, but not to a visible level: the literal reading explains part "
                       "of it, and the generator still largely ignores z.")
    return text + ("Dropping Ls does not raise it: the generator ignores z with or without Ls, so the literal reading "
                   "alone does not explain the low diversity (a conditional GAN with an L1 term learning to ignore "
                   "its noise is what pix2pix reports, Isola et al. 2017).")


DIVERSITY_NOTE = "their Euclidean ab distance, since the samples share the input L"


def deviations(results: StudyResults) -> dict[str, list[str]]:
    """claim id -> the deviations from the paper that a reader needs beside that claim's verdict.

    Each is found in the run records (configs, provenance, the scored checkpoints), not typed in.
    """
    from colorgan.experiments.ablation import ABLATION_VARIANTS

    configs = {(r["config"]["method"], r["config"]["seed"]): r for r in results.runs}
    claims, _ = verdicts.load_claims()
    notes: dict[str, list[str]] = {c.id: [] for c in claims}
    table1 = [c for c in claims if c.source == "study"]
    chroma = [r for (m, _), r in configs.items() if m == "chromagan"]
    if chroma and all("random" in str((r.get("provenance") or {}).get("vgg_weights", r["config"].get("vgg_weights")))
                      for r in chroma):
        for c in table1:
            if "chromagan" in (c.a, c.b):
                notes[c.id].append("ChromaGAN's class-distribution KL term is off in every run (random VGG16: "
                                   "no ImageNet teacher)")
    amps = {m: r["config"].get("amp") for (m, _), r in configs.items()}
    if len(amps) > 1 and set(amps.values()) == {"bf16"}:
        for c in table1:
            notes[c.id].append("bf16 autocast was measured faster for ColorGAN's step and then applied to all "
                               "three methods; the baselines' steps were not benchmarked in bf16")
    seen = scored_images_seen(results)
    for c in table1:
        short = {f"{m} seed {s}": n for (m, s), n in seen.items() if m in (c.a, c.b) and n < seen_budget(configs, m)}
        if short:
            notes[c.id].append("the scored weights (best on validation) had seen fewer training images than the "
                               "budget: " + ", ".join(f"{k} {v:,}" for k, v in short.items()))
    colorgan_vgg = [str((r.get("provenance") or {}).get("vgg_weights", "")) for (m, _), r in configs.items()
                    if m == "colorgan"]
    if colorgan_vgg and all(v.startswith("random") for v in colorgan_vgg):
        notes.setdefault("perceptual_ssim", []).append(
            "the perceptual term is computed on random (untrained) VGG features, not the paper's ImageNet VGG")
    if ABLATION_VARIANTS["no_noise"].get("lambda_s", 1.0) == 0.0:
        for c in claims:
            if c.b == "no_noise":
                notes[c.id].append("no_noise also drops Ls (eq. 2 has no noise branch to act on): its effect is "
                                   "the noise branch and Ls together")
    return notes


def scored_images_seen(results: StudyResults) -> dict[tuple[str, int], int]:
    """(method, seed) -> training images the scored weights had seen (checkpoint step x batch size)."""
    steps = results.per_image[results.per_image.seed >= 0].groupby(["method", "seed"]).checkpoint_step.first()
    batch = {(r["config"]["method"], r["config"]["seed"]): r["config"]["batch_size"] for r in results.runs}
    return {(m, int(s)): int(step) * batch[(m, int(s))] for (m, s), step in steps.items() if (m, int(s)) in batch}


def seen_budget(configs: dict[tuple[str, int], dict[str, Any]], method: str) -> int:
    """The training images a method's runs saw in all (steps x batch size)."""
    return max(r["config"]["num_steps"] * r["config"]["batch_size"] for (m, _), r in configs.items() if m == method)


def basis_notes(results: StudyResults, judged: pd.DataFrame) -> list[str]:
    """Were claims and rule fixed before the data? One note for the study's runs, one for the ablation's."""
    declared = verdicts.load_claims()[1]["declared"]
    notes = [verdicts.basis_note(judged, verdicts.recorded_basis(results.out_dir), declared)]
    if results.ablation_per_image is not None:
        note = verdicts.basis_note(judged, verdicts.recorded_basis(results.out_dir / ABLATION_DIR), declared)
        notes.append(f"The ablation's runs: {note[0].lower()}{note[1:]}")
    return [n for n in notes if n]


def verdict_table(results: StudyResults, judged: pd.DataFrame) -> pd.DataFrame:
    """The page's verdict table: claim, verdict, effect [interval] vs margin, per-seed deltas, deviations."""
    notes = deviations(results)
    rows = []
    for r in judged.itertuples():
        measured = not pd.isna(r.effect)
        rows.append({"claim": r.claim, "verdict": r.verdict,
                     "effect (claimed direction) [Holm-adjusted interval]": (
                         f"{r.effect:+.3g} [{r.low:+.3g}, {r.high:+.3g}]" if measured else "—"),
                     "margin": f"{r.margin:g}", "per-seed a − b": r.per_seed if measured else "—",
                     "evidence": r.evidence, "deviation beside it": "; ".join(notes.get(r.claim_id, [])) or "—"})
    return pd.DataFrame(rows)


def summary_markdown(results: StudyResults, judged: pd.DataFrame) -> str:
    """Scope, claims, method and results of the reproducibility summary, every number from ``results``."""
    from colorgan.common.published import METHOD_NAMES
    from colorgan.report.paper_comparison import protocol_differences

    runs = results.runs
    config = runs[0]["config"]
    provenance = runs[0].get("provenance") or {}
    data = provenance.get("data", {})
    seeds = sorted({r["config"]["seed"] for r in runs})
    methods = list(dict.fromkeys(r["config"]["method"] for r in runs))
    budget = {r["config"]["method"]: r["config"]["num_steps"] * r["config"]["batch_size"] for r in runs}
    wall = sum((r.get("finished") or {}).get("wall_seconds", 0.0) for r in runs)
    psnr = results.table[results.table.metric == "psnr"].set_index("method")
    ssim = results.table[results.table.metric == "ssim"].set_index("method")
    _, header = verdicts.load_claims()
    lines = [
        "## Scope",
        f"Does ColorGAN's Table 1 ordering (ColorGAN > ChromaGAN > ColTran on PSNR and SSIM) hold when the three "
        f"methods are re-implemented on one harness and trained alike? Here: {data.get('num_train', '?')} training "
        f"images ({config.get('num_val_images', 0)} more set aside for validation) and {data.get('num_test', '?')} test "
        f"images from {config['data']} data at {config['image_size']}×{config['image_size']}, "
        f"{len(seeds)} seed{'s' if len(seeds) != 1 else ''} per method ({', '.join(map(str, seeds))}), VGG weights "
        f"`{provenance.get('vgg_weights', config.get('vgg_weights', 'n/a'))}`.",
        "## Claims", "1. ColorGAN outperforms ChromaGAN and ColTran on PSNR and SSIM (Table 1), ChromaGAN ahead of ColTran.",
        "2. The noise branch adds diversity (§1, §2.1).", "3. Each loss term of eq. 1 helps; the encoder skips help (§2.1).",
        f"Each claim, its smallest effect that matters and the reason, and its family are declared in "
        f"`colorgan/experiments/claims.toml` (sha256 {header['sha256'][:12]}; declared {header['declared'] or 'undated'}).",
        "## Method",
        "Each method trained for the same number of training images ("
        + ", ".join(f"{METHOD_NAMES.get(m, m)} {budget[m]:,}" for m in methods)
        + f"), {len(runs)} runs in {wall / 60:.0f} min of training on `{provenance.get('device_name', '?')}`. "
        "Every run was scored on its validation images during training; the weights chosen by one rule for every "
        "method were scored on the test split. " + METHOD_TEXT,
        "## Results",
    ]
    for method in psnr.index:
        if method == GRAYSCALE:
            continue
        r = psnr.loc[method]
        base = method.replace(WITH_INPUT_L, "")
        spread = "1 seed" if r["seeds"] == 1 or pd.isna(r["seed_sd"]) else f"seed sd {r['seed_sd']:.2f}"
        line = (f"- {METHOD_NAMES.get(base, base)}{WITH_INPUT_L if base != method else ''}: PSNR "
                f"{r['mean']:.2f} dB ({spread}), {r['delta_gray']:+.2f} dB "
                f"[{r['delta_low']:+.2f}, {r['delta_high']:+.2f}] against the grayscale row")
        if method in ssim.index:
            q = ssim.loc[method]
            line += (f"; SSIM {q['mean']:.4f}, {q['delta_gray']:+.4f} [{q['delta_low']:+.4f}, "
                     f"{q['delta_high']:+.4f}]")
        lines.append(line + ".")
    counts = judged.verdict.value_counts()
    words = (*verdicts.VERDICTS, verdicts.NOT_TESTED, verdicts.NOT_REJUDGED)
    lines.append("Verdicts: " + ", ".join(f"{counts.get(v, 0)} {v}" for v in words if counts.get(v, 0) or
                                          v in verdicts.VERDICTS) + ".")
    lines += basis_notes(results, judged)
    if (judged.verdict == verdicts.NOT_REJUDGED).any():
        lines.append("The study-scale ablation's claims are not re-judged: its per-image evidence was not committed "
                     "when it ran, so its old verdicts (another rule, another vocabulary) are not shown; "
                     "`make ablations PROFILE=study` re-runs it into results/study/ablation/, and `make rejudge` "
                     "then judges its claims.")
    lines += ["## Diversity", diversity_finding(results)]
    lines += ["## Deviations from the paper", *[f"- {d}" for d in protocol_differences(config)],
              "Deviations that bear on a particular verdict are listed beside it in the table below."]
    return "\n\n".join(lines)


METHOD_TEXT = (
    "Every difference is paired on the same test images and seeds. Its 95% interval covers both sources of "
    "variation, training seeds and test images: a two-level bootstrap (resample seeds, then one shared draw of "
    "images; Davison & Hinkley 1997, §3.8; Owen 2007 for crossed seeds x images) gives the standard error, and "
    "a Student-t quantile with Satterthwaite's degrees of freedom the interval (with 2-3 seeds a percentile "
    "interval would be far too narrow). Claims are judged against their declared margin with Holm's correction "
    "within each family: *supported* (interval above 0 and the effect reaches the margin), *contradicted* (the "
    "mirror image), *no practical difference* (interval inside ± the margin), *inconclusive at this scale* "
    "(with the effect the study could detect and the seeds that would decide it).")


# ------------------------------------------------------------------------------------- README


README_BEGIN = "<!-- study results: generated by `make rejudge` from results/study/ (do not edit by hand) -->"
README_END = "<!-- end of generated study results -->"


def readme_block(results: StudyResults, judged: pd.DataFrame) -> str:
    """The README's study table and verdict bullets, every number from the results files (Markdown)."""
    from colorgan.common.published import METHOD_NAMES

    table = results.table.set_index(["method", "metric"])
    seeds = int(table.loc[("colorgan", "psnr"), "seeds"]) if ("colorgan", "psnr") in table.index else 0
    images = int(table.iloc[0]["images"])
    lines = ["| | PSNR (dB) | paired Δ vs gray | SSIM | paired Δ vs gray | diversity (ΔE*ab) |",
             "|---|---:|---:|---:|---:|---:|"]
    for method in dict.fromkeys(results.table.method):
        base = method.replace(WITH_INPUT_L, "")
        name = METHOD_NAMES.get(base, base) + (WITH_INPUT_L if base != method else "")
        psnr, ssim = table.loc[(method, "psnr")], table.loc[(method, "ssim")]
        spread = "" if pd.isna(psnr["seed_sd"]) else f" ± {psnr['seed_sd']:.2f}"
        diversity = table.loc[(method, "diversity"), "mean"] if (method, "diversity") in table.index else float("nan")
        if method == GRAYSCALE:
            lines.append(f"| {name} | {psnr['mean']:.2f} | — | {ssim['mean']:.4f} | — | — |")
            continue
        lines.append(f"| {name} | {psnr['mean']:.2f}{spread} | {_signed(psnr['delta_gray'], psnr['delta_low'], psnr['delta_high'], 2)} "
                     f"| {ssim['mean']:.4f} | {_signed(ssim['delta_gray'], ssim['delta_low'], ssim['delta_high'], 4)} "
                     f"| {diversity:.3f} |")
    lines += ["", f"(mean over {seeds} seed{'s' if seeds != 1 else ''} ± seed SD; Δ: paired over the {images} test "
                  "images and the seeds, 95% interval over both, `colorgan.experiments.verdicts`; diversity: mean ΔE*ab between "
                  f"noise samples, {DIVERSITY_NOTE}.)", ""]
    notes = deviations(results)
    for r in judged.itertuples():
        if pd.isna(r.effect):
            lines.append(f"- {r.claim}: **{r.verdict}** ({r.evidence}).")
            continue
        decided = f"; {r.seeds_to_decide} seeds would decide it" if r.verdict == verdicts.INCONCLUSIVE and \
            not pd.isna(r.seeds_to_decide) and not str(r.seeds_to_decide).startswith(">") else (
            "; more seeds alone would not decide it on these test images" if str(r.seeds_to_decide).startswith(">")
            else "")
        effect = r.comparison if r.direction == "higher" else f"−({r.comparison})"
        line = (f"- {r.claim}: **{r.verdict}** — {effect} = {_signed(r.effect, r.low, r.high, 3)} "
                f"(margin {r.margin:g}, {r.level:.1%} Holm-adjusted interval; {r.comparison} per seed "
                f"{r.per_seed.replace('-', '−')}){decided}.")
        if notes.get(r.claim_id):
            line += " *Beside it:* " + "; ".join(notes[r.claim_id]) + "."
        lines.append(line)
    lines += [f"- {note}" for note in basis_notes(results, judged)]
    return "\n".join([README_BEGIN, *lines, README_END])


def _signed(value: float, low: float, high: float, digits: int) -> str:
    """'+0.68 [+0.35, +1.01]' with a true minus sign."""
    return f"{value:+.{digits}f} [{low:+.{digits}f}, {high:+.{digits}f}]".replace("-", "−")


def update_readme(readme: Path | str, out_dir: Path | str) -> bool:
    """Replace the README's generated study block with one computed from ``out_dir``. Returns True if changed.

    Raises:
        ValueError: the README lacks the block's markers (add README_BEGIN and README_END where it goes).
    """
    readme = Path(readme)
    text = readme.read_text()
    if README_BEGIN not in text or README_END not in text:
        raise ValueError(f"{readme}: no generated study block; put the lines {README_BEGIN!r} and {README_END!r} "
                         "where the study's results go")
    results = load_results(out_dir)
    judged = pd.read_csv(Path(out_dir) / "verdicts.csv")
    head, rest = text.split(README_BEGIN, 1)
    new = head + readme_block(results, judged) + rest.split(README_END, 1)[1]
    readme.write_text(new)
    return new != text

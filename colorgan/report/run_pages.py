"""The book's per-run pages: what a chapter ran with, what was run (data, steps, commit, device, time), the
records of each run folder behind the numbers, and the pipeline's stage times; with the report notebook's config."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from colorgan.common.formatting import Html, html_table, short_commit
from colorgan.common.params import Params, opt, validate_fields
from colorgan.common.published import METHOD_NAMES
from colorgan.training.run_store import read_run


@dataclass(frozen=True)
class ReportConfig(Params):
    """The report page: what was run and how it differs from the paper's protocol."""

    run_dirs: list = opt(None, "run folders that fed Table 1")
    profile: str = opt("custom", "name of the profile that produced the runs (smoke, voc-mini, paper, ...)")
    out_dir: str = opt("results/custom", "the profile's results folder")

    def __post_init__(self) -> None:
        validate_fields(self)
        if not self.run_dirs:
            raise ValueError(f"run_dirs: expected a non-empty list of folder paths; got {self.run_dirs!r}")


def ran_with(cfg: Any) -> Html:
    """'What this chapter ran with': the parameters that differ from the config's defaults as a small
    table, and every parameter (with its meaning) in a collapsed block, instead of the parameters code."""
    import dataclasses
    import html

    from colorgan.common.params import field_default

    rows, changed = [], []
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        row = {"parameter": f.name, "value": _short(value), "meaning": f.metadata.get("help", "")}
        rows.append(row)
        if value != field_default(f):
            changed.append(row)
    name = html.escape(type(cfg).__name__)
    shown = html_table(pd.DataFrame(changed)) if changed else Html("<p>Every parameter at its default.</p>")
    return Html(f'<div class="ran-with"><p><strong>What this chapter ran with</strong> (<code>{name}</code>, '
                f"{len(changed)} of {len(rows)} parameters changed from their defaults):</p>{shown}"
                f"<details><summary>All {len(rows)} parameters</summary>{html_table(pd.DataFrame(rows))}"
                "</details></div>")


def _short(value: Any, limit: int = 160) -> str:
    text = json.dumps(value) if isinstance(value, (dict, list)) else str(value)
    return text if len(text) <= limit else text[:limit] + " …"


def require_runs(run_dirs: list[str], notebooks: str = "book/train_*.ipynb") -> None:
    """Fail with a message that says what to run when a run folder is missing or unfinished."""
    missing = [r for r in run_dirs if not (Path(r) / "finished.json").is_file()]
    if missing:
        raise FileNotFoundError(f"run_dirs: no finished run in {missing}; run {notebooks} first (as they are, "
                                "they write exactly these folders) or set run_dirs to a profile's runs, "
                                "e.g. results/smoke/runs/* after `make reproduce`")


def run_report(run_dirs: list[str]) -> pd.DataFrame:
    """What was run: one row per run with data, size, steps, VGG weights, seed, commit, device, versions, time."""
    rows = []
    for run_dir in run_dirs:
        record = read_run(run_dir)
        config, provenance = record["config"], record["provenance"] or {}
        finished = record["finished"] or {}
        data = provenance.get("data", {})
        rows.append({
            "method": METHOD_NAMES.get(config["method"], config["method"]),
            "data": f"{data.get('source', config['data'])}: {data.get('num_train', '?')} train / "
                    f"{data.get('num_test', '?')} test",
            "image size": config["image_size"],
            "steps": f"{finished.get('step', '?')} (batch {config['batch_size']})",
            "VGG weights": provenance.get("vgg_weights", "n/a"),
            "seed": config["seed"],
            "git commit": short_commit(str(provenance.get("git_commit", "?"))),
            "device": provenance.get("device_name", "?"),
            "torch": provenance.get("versions", {}).get("torch", "?"),
            "train wall time (s)": round(finished.get("wall_seconds", float("nan")), 1),
            "run folder": run_dir,
        })
    return pd.DataFrame(rows)


def run_records(run_dir: Path | str, log_lines: int = 5) -> Html:
    """A collapsed block with a run folder's config.json, provenance.json, finished.json and the last
    lines of its metrics log: every number on the page traces back to the run that made it."""
    import html

    run_dir = Path(run_dir)
    parts = []
    for name in ("config.json", "provenance.json", "finished.json", "eval/summary.json"):
        path = run_dir / name
        if path.is_file():
            parts.append(f"<p><code>{name}</code></p><pre>{html.escape(path.read_text().strip())}</pre>")
    log_path = run_dir / "metrics.jsonl"
    if log_path.is_file():
        lines = log_path.read_text().strip().splitlines()
        parts.append(f"<p><code>metrics.jsonl</code> (last {min(log_lines, len(lines))} of {len(lines)} lines)</p>"
                     f"<pre>{html.escape(chr(10).join(lines[-log_lines:]))}</pre>")
    summary = f"Run records: <code>{html.escape(str(run_dir))}</code> (config, provenance, log)"
    return Html(f'<details class="run-records"><summary>{summary}</summary>{"".join(parts)}</details>')


def stage_times(out_dir: Path | str) -> pd.DataFrame:
    """The pipeline's stages with the wall time of their last execution (from ``stages.json``)."""
    path = Path(out_dir) / "stages.json"
    state = json.loads(path.read_text()) if path.is_file() else {}
    return pd.DataFrame([{"stage": name, "seconds": record["seconds"]} for name, record in state.items()])

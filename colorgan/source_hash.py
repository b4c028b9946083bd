"""The content hash of the suite's code: caches key on it, so a changed tree never serves old numbers.

Two hashes, both over ``.py`` files by path and content (comments count too: a cheap, safe over-approximation):
- ``code_hash``: every file of the library and the baselines. Stage keys (``plan.stage_key``) use it, so
  any edit re-runs the book's notebooks (cheap: they reuse finished runs).
- ``training_code_hash``: the same without ``PRESENTATION``, the modules that only plan, compare, tabulate or
  draw finished runs. Training run folders (``train.run_hash``) and their reuse (``train.train_or_reuse``)
  use it, so fixing a report or a verdict does not retrain a two-hour study, while an edit to anything that
  can change what a run computes (models, losses, data, the step, the loop, metrics, baselines, and any
  module not listed) does.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
CODE_PACKAGES = ("colorgan", "baselines")
# Read finished runs or build configs (which run_hash hashes themselves); never imported by training.
PRESENTATION = frozenset(f"colorgan/{name}.py" for name in (
    "__main__", "cli", "pipeline", "profiles", "plan", "progress", "book_build", "formatting", "paper_comparison",
    "table1", "figures", "run_pages", "front_page", "study", "summary", "ablation", "verdicts", "score", "bench",
    "gpu_check", "gpu_check_report", "ddp_check", "deadline", "devices", "timing", "bench_report", "bench_config",
    "gpu_check_config", "bench_check", "voc_mini", "run_store", "executor", "executor_config", "mutation"))


def code_hash(root: Path = REPO_ROOT, exclude: frozenset[str] = frozenset()) -> str:
    """16 hex digits of SHA-256 over (relative path, bytes) of each ``.py`` file of CODE_PACKAGES, sorted;
    ``exclude`` holds repository-relative paths left out."""
    digest = hashlib.sha256()
    for package in CODE_PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            name = path.relative_to(root).as_posix()
            if name not in exclude:
                digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def training_code_hash(root: Path = REPO_ROOT) -> str:
    """``code_hash`` of the code that can change what a training run computes (all but PRESENTATION)."""
    return code_hash(root, PRESENTATION)

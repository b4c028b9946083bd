"""The content hash of the suite's code: caches key on it, so a changed tree never serves old numbers.

Two hashes, both over ``.py`` files by path and content (comments count too: a cheap, safe over-approximation):
- ``code_hash``: every file of the library and the baselines. Stage keys (``reproduce.plan.stage_key``) use it,
  so any edit re-runs the book's notebooks (cheap: they reuse finished runs).
- ``training_code_hash``: the same without the presentation code (``is_presentation``): the layers that only
  run experiments over finished runs, judge, tabulate, draw, plan or measure speed (whole folders, so a module
  added, split or moved among them keeps the hash), plus the few named files below them that never compute
  what a run trains or scores. Training run folders (``training.train.run_hash``) and their reuse use it, so
  fixing a report or a verdict does not retrain a two-hour study, while an edit to anything that can change what
  a run computes (models, losses, data, the step, the loop, metrics, baselines, and any module not listed) does.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Callable

REPO_ROOT = Path(__file__).resolve().parents[2]
CODE_PACKAGES = ("colorgan", "baselines")
# colorgan's layers above evaluation: never imported by training (tests/test_cache_keys.py holds that)
PRESENTATION_LAYERS = ("experiments", "report", "reproduce", "performance", "tools")
# files of lower folders that only format, score other tools' outputs or look runs up; never imported by training
PRESENTATION_FILES = frozenset({"colorgan/__main__.py", "colorgan/cli.py", "colorgan/common/formatting.py",
                                "colorgan/evaluation/score.py", "colorgan/training/run_store.py"})


def is_presentation(name: str) -> bool:
    """Whether the repository-relative ``name`` (``colorgan/report/figures.py``) is left out of the runs' hash."""
    parts = name.split("/")
    return name in PRESENTATION_FILES or (parts[0] == "colorgan" and len(parts) > 2 and parts[1] in PRESENTATION_LAYERS)


def code_hash(root: Path = REPO_ROOT, exclude: Callable[[str], bool] = lambda name: False) -> str:
    """16 hex digits of SHA-256 over (relative path, bytes) of each ``.py`` file of CODE_PACKAGES, sorted;
    files whose repository-relative path ``exclude`` accepts are left out."""
    digest = hashlib.sha256()
    for package in CODE_PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            name = path.relative_to(root).as_posix()
            if not exclude(name):
                digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def training_code_hash(root: Path = REPO_ROOT) -> str:
    """``code_hash`` of the code that can change what a training run computes (all but the presentation code)."""
    return code_hash(root, is_presentation)


def presentation_files(root: Path = REPO_ROOT) -> list[str]:
    """The repository-relative paths of the presentation code present under ``root``."""
    return sorted(name for package in CODE_PACKAGES for path in (root / package).rglob("*.py")
                  if is_presentation(name := path.relative_to(root).as_posix()))

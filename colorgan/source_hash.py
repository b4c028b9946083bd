"""The content hash of the suite's code: caches key on it, so a changed tree never serves old numbers.

Stage keys (``pipeline.stage_key``), training run folder names (``pipeline.config_hash``) and the
reuse of finished runs (``train.train_or_reuse``) include it. It hashes every ``.py`` file of the
library and the baselines, by path and content; comments count too (a cheap, safe over-approximation).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
CODE_PACKAGES = ("colorgan", "baselines")


def code_hash(root: Path = REPO_ROOT) -> str:
    """16 hex digits of SHA-256 over (relative path, bytes) of each ``.py`` file of CODE_PACKAGES, sorted."""
    digest = hashlib.sha256()
    for package in CODE_PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]

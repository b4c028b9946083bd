"""Checkpoint files: what a checkpoint holds, writing them atomically with a digest, and loading them back.

A checkpoint (``<run_dir>/checkpoints/step_XXXXXXXX.pt``, and ``best_val.pt``) is plain data loadable with
``weights_only=True``: every module's and optimiser's state_dict, the RNG states, the config and the step.
``CheckpointDir`` keeps the newest few; ``load_checkpoint`` refuses a file whose digest does not match.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from colorgan.common import runtime
from colorgan.method.config import RunConfig
from colorgan.training.validation import BEST_CHECKPOINT

if TYPE_CHECKING:
    from colorgan.training.train import TrainStep

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = 1
KEEP_ALL = sys.maxsize  # CheckpointDir(folder, keep=KEEP_ALL) deletes no checkpoint
# Fields that may differ when resuming: they change the budget or the bookkeeping, not the training.
RESUMABLE_CHANGES = {"num_steps", "num_epochs", "max_minutes", "resume", "progress", "log_every",
                     "checkpoint_every", "keep_checkpoints", "device", "num_bootstrap",
                     "channels_last", "compile", "fused_adam", "share_vgg_targets"}  # speed only, same maths


def checkpoint_state(step_number: int, step: TrainStep, cfg: RunConfig, wall_seconds: float = 0.0
                     ) -> dict[str, Any]:
    """state_dicts, RNG states and the config: plain data only, loadable with weights_only=True."""
    return {
        "format": CHECKPOINT_FORMAT,
        "step": step_number,
        "wall_seconds": wall_seconds,  # training time summed over all sessions of this run
        "config": cfg.to_dict(),
        "modules": {name: module.state_dict() for name, module in step.modules().items()},
        "optimizers": {name: opt.state_dict() for name, opt in step.optimizers().items()},
        "step_rng": step.rng.get_state(),
        "rng": runtime.rng_state(),
    }


def restore(checkpoints: "CheckpointDir", step: TrainStep, cfg: RunConfig) -> tuple[int, float]:
    """Load the newest readable checkpoint into ``step`` and the global RNGs: (step number, wall seconds so far)."""
    state = checkpoints.load_latest()
    changed = {k for k, v in cfg.to_dict().items() if state["config"].get(k) != v} - RESUMABLE_CHANGES
    if changed:
        detail = ", ".join(f"{k}: {state['config'].get(k)!r} -> {getattr(cfg, k, None)!r}" for k in sorted(changed))
        raise ValueError(f"resume: the config differs from the checkpoint's in {detail}; resume with the same "
                         "settings or start a new run_dir")
    load_weights(step, state)
    for name, opt in step.optimizers().items():
        opt.load_state_dict(state["optimizers"][name])
    step.rng.set_state(state["step_rng"])
    runtime.set_rng_state(state["rng"])
    return int(state["step"]), float(state.get("wall_seconds", 0.0))


def load_weights(step: TrainStep, state: dict[str, Any]) -> None:
    """Copy a checkpoint's module weights into ``step``."""
    for name, module in step.modules().items():
        module.load_state_dict(state["modules"][name])


class CheckpointDir:
    """``step_XXXXXXXX.pt`` files, written atomically; the newest ``keep`` are kept."""

    def __init__(self, folder: Path, keep: int = 2):
        self.folder, self.keep = Path(folder), keep

    def paths(self) -> list[Path]:
        """Checkpoint files, oldest first."""
        return sorted(self.folder.glob("step_*.pt")) if self.folder.is_dir() else []

    def save(self, step_number: int, state: dict[str, Any]) -> Path:
        path = self.folder / f"step_{step_number:08d}.pt"
        # torch.load checks no checksums, so a flipped bit would load silently: store our own
        state = {**state, "digest": state_digest(state)}
        # the previous checkpoints stay until this one is complete on disk (temp + fsync + rename)
        runtime.atomic_write_bytes(path, lambda f: torch.save(state, f))
        for old in self.paths()[: -self.keep]:
            old.unlink()
        return path

    def load_latest(self) -> dict[str, Any]:
        """The newest checkpoint that loads; a damaged one is reported and the previous one is used."""
        errors = []
        for path in reversed(self.paths()):
            try:
                state = load_checkpoint(path)
            except ValueError as err:
                errors.append(str(err))
                log.warning("%s; trying the previous checkpoint", err)
                continue
            if errors:
                log.warning("using %s (step %d) instead of the damaged newer checkpoint(s)", path, state["step"])
            return state
        if not errors:
            raise FileNotFoundError(f"no checkpoint in {self.folder}")
        raise FileNotFoundError(f"no readable checkpoint in {self.folder}: {'; '.join(errors)}. Move the damaged "
                                "files away to start the run again, or choose another run_dir")

    def remove_partial(self) -> None:
        """Delete temp files of saves cut short by a crash (each can be as large as a checkpoint)."""
        for partial in self.folder.glob(".step_*.tmp") if self.folder.is_dir() else []:
            log.warning("removing %s, an unfinished checkpoint of an interrupted run", partial)
            partial.unlink()


def checkpoint_path(run_dir: Path | str, checkpoint: str) -> Path | None:
    """The file of a run's checkpoint: 'last' (the newest; None without one), 'best_val', or a step number."""
    run_dir = Path(run_dir)
    if checkpoint == "best_val":
        return run_dir / BEST_CHECKPOINT
    if checkpoint == "last":
        paths = CheckpointDir(run_dir / "checkpoints").paths()
        return paths[-1] if paths else None
    return run_dir / "checkpoints" / f"step_{int(checkpoint):08d}.pt"


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load one checkpoint with ``weights_only=True`` and verify its digest.

    Raises:
        ValueError: truncated, damaged, without a digest, not a colorgan checkpoint, or holding code (a
            pickle that would import or call something); the message names the file and the reason.
    """
    state = runtime.load_weights_only(path, "checkpoint")
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"checkpoint {path} is not a colorgan checkpoint (format {CHECKPOINT_FORMAT})")
    digest = state.pop("digest", None)
    # Refused rather than trusted: torch.load checks nothing, so without a digest a flipped bit or an
    # edited file would load silently. Only checkpoints from before digests existed (400867a) lack one.
    if digest is None:
        raise ValueError(f"checkpoint {path} carries no digest, so its contents cannot be verified (written "
                         "before colorgan stored digests, or not by colorgan); retrain, or re-save it with "
                         "colorgan.training.checkpoints.CheckpointDir.save if you trust the file")
    if digest != state_digest(state):
        raise ValueError(f"checkpoint {path} is damaged: its contents do not match the digest saved with them")
    return state


def state_digest(value: Any, hasher: Any = None) -> str:
    """SHA-256 over a nested checkpoint state: every tensor's dtype, shape and bytes, and every other leaf's repr."""
    top = hasher is None
    hasher = hasher or hashlib.sha256()
    if isinstance(value, dict):
        for key, item in value.items():
            hasher.update(repr(key).encode())
            state_digest(item, hasher)
    elif isinstance(value, (list, tuple)):
        hasher.update(b"[")
        for item in value:
            state_digest(item, hasher)
    elif isinstance(value, torch.Tensor):
        tensor = value.detach().cpu().contiguous()
        hasher.update(f"{tensor.dtype}{tuple(tensor.shape)}".encode())
        hasher.update(tensor.reshape(-1).view(torch.uint8).numpy())
    else:
        hasher.update(repr(value).encode())
    return hasher.hexdigest() if top else ""


def save_best(path: Path, state: dict[str, Any]) -> None:
    """The best-on-validation weights, written like a checkpoint (atomic, with a digest)."""
    state = {**state, "digest": state_digest(state)}
    runtime.atomic_write_bytes(path, lambda f: torch.save(state, f))


def estimate_checkpoint_bytes(step: TrainStep) -> int:
    """About how large one checkpoint of ``step`` is: its weights and buffers, plus Adam's two moments per weight."""
    weights = sum(p.numel() * p.element_size() for m in step.modules().values() for p in m.parameters())
    buffers = sum(b.numel() * b.element_size() for m in step.modules().values() for b in m.buffers())
    return 3 * weights + buffers


def saves_at_most(num_steps: int, checkpoint_every: int, val_every: int | None) -> int:
    """How many checkpoints a run of ``num_steps`` writes at most: every ``checkpoint_every`` steps, at the end,
    and, when it validates (``val_every`` not None; 0 = only at the end), at every validation."""
    validations = num_steps // val_every if val_every else 0
    return num_steps // checkpoint_every + validations + 1


def check_free_space(run_dir: Path, checkpoint_bytes: int, num_new: int) -> None:
    """Refuse to start when ``run_dir`` cannot hold ``num_new`` more checkpoints (a full disk mid-run loses the run's time).

    A save needs room for one checkpoint more than are kept: the old ones stay until the new one is complete.
    """
    needed = max(num_new, 1) * checkpoint_bytes + (1 << 20)  # + logs and JSON
    free = shutil.disk_usage(run_dir).free
    if free < needed:
        raise OSError(f"run_dir: {run_dir} has {free / 2**20:.1f} MiB free, but training needs about "
                      f"{needed / 2**20:.1f} MiB ({max(num_new, 1)} checkpoint(s) of {checkpoint_bytes / 2**20:.1f} MiB); "
                      "free some space, lower keep_checkpoints, or choose another run_dir")

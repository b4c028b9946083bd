"""Seeding, device choice, atomic file writes and run provenance (no imports from the package)."""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import os
import platform
import random
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

PROVENANCE_PACKAGES = ("torch", "torchvision", "numpy", "scikit-image", "piq", "pandas", "pillow", "papermill")


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices) once at the start of train/evaluate."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def select_device(name: str) -> torch.device:
    """'auto' -> CUDA when present, else CPU. An explicit CUDA request without CUDA is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device={name!r} was requested but torch sees no CUDA device; use device=auto or cpu")
    return device


def autocast_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``amp`` ('auto' | 'bf16' | 'off') on ``device``; None means full precision.

    'auto' is bf16 on CUDA and off on CPU: on CPU, bf16 autocast is slower than fp32 on most cores.
    """
    if amp == "off" or (amp == "auto" and device.type != "cuda"):
        return None
    return torch.bfloat16


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """Autocast context for the forward pass; a no-op when ``dtype`` is None."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Copy a CPU tensor to ``device``. On CUDA via page-locked memory and ``non_blocking``: a copy
    from pageable memory makes the host wait for all queued GPU work, which stalls the next step's
    kernel launches."""
    if device.type != "cuda":
        return tensor.to(device)
    return tensor.pin_memory().to(device, non_blocking=True)


def rows_of_rank(draw: torch.Tensor, rank: int, world_size: int) -> torch.Tensor:
    """This rank's rows of a tensor drawn for the global batch: (world_size·b, ...) -> (b, ...).

    Random draws (noise z, penalty mixing) are made for the whole global batch on every rank, from
    generators in the same state, so N ranks together use the same numbers as one process.
    """
    local = draw.shape[0] // world_size
    return draw[rank * local:(rank + 1) * local]


def rng_state() -> dict[str, Any]:
    """Global RNG states as plain types and tensors (loadable with ``torch.load(weights_only=True)``)."""
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "python": _tuples_to_lists(random.getstate()),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].copy()), *map(_plain, np_state[2:])],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned."""
    random.setstate(_lists_to_tuples(state["python"]))
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _umask() -> int:
    """The process umask (reading it means setting it, so set it straight back)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: Path, write: Any) -> None:
    """Write a file so that readers only ever see the old or the complete new version.

    ``write(fileobj)`` fills a temporary file in the same folder, which is flushed, fsynced and then
    renamed over ``path`` (rename is atomic on POSIX), so a crash mid-write never leaves a torn file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; results are shared, so honour the umask as open() does
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def load_weights_only(path: Path | str, what: str) -> Any:
    """``torch.load(weights_only=True)`` on CPU, with errors that name ``what`` (e.g. "checkpoint") and the file.

    weights_only unpickles tensors and plain data only, so a file from elsewhere cannot run code.

    Raises:
        ValueError: the file holds pickled code or objects (refused), or is truncated or damaged.
    """
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises UnpicklingError, RuntimeError, EOFError... depending on damage
        text = str(err)
        if "Weights only load failed" in text:
            # torch's message also suggests weights_only=False, exactly what must not be done with such a file
            detail = next((line.strip() for line in text.splitlines() if "GLOBAL" in line or "Unsupported" in line),
                          text.splitlines()[0])
            raise ValueError(f"{what} {path} was refused: it holds pickled objects other than tensors and plain "
                             f"data, which could run code when loaded ({detail}). Use only files saved as plain "
                             "state_dicts, from a source you trust") from None
        raise ValueError(f"{what} {path} is unreadable, probably truncated or damaged "
                         f"({type(err).__name__}: {text.splitlines()[0] if text else ''})") from None


def write_json(path: Path, data: Any) -> None:
    """Atomically write ``data`` as indented JSON."""
    text = json.dumps(data, indent=2, sort_keys=True, default=str) + "\n"
    atomic_write_bytes(path, lambda f: f.write(text.encode()))


def git_commit(repo: Path | None = None) -> str:
    """The current commit (with '-dirty' if tracked code has changes), or 'unknown' outside git.

    Changes under results/ do not count: a pipeline rewrites its own committed outputs while it runs.
    """
    cwd = repo or Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True,
                                check=True, timeout=10).stdout.strip()
        # pathspecs relative to the repository's top, wherever cwd is inside it
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ":/",
                                ":(top,exclude)results"], cwd=cwd,
                               capture_output=True, text=True, check=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return commit + ("-dirty" if dirty else "")


def device_name(device: torch.device) -> str:
    """A human-readable device name, e.g. 'NVIDIA H100 80GB HBM3' or 'cpu (x86_64, 2 threads)'."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.machine()}, {torch.get_num_threads()} threads)"


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in PROVENANCE_PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def provenance(seed: int, device: torch.device, **extra: Any) -> dict[str, Any]:
    """Everything needed to say where a number came from: seed, commit, device, versions, plus ``extra``."""
    return {
        "seed": seed,
        "git_commit": git_commit(),
        "device": str(device),
        "device_name": device_name(device),
        "cuda": torch.version.cuda if device.type == "cuda" else None,
        "versions": package_versions(),
        "platform": platform.platform(),
        **extra,
    }


def _plain(x: Any) -> Any:
    return x.item() if hasattr(x, "item") else x


def _tuples_to_lists(x: Any) -> Any:
    return [_tuples_to_lists(v) for v in x] if isinstance(x, tuple) else x


def _lists_to_tuples(x: Any) -> Any:
    return tuple(_lists_to_tuples(v) for v in x) if isinstance(x, list) else x

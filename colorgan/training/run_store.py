"""The run store: every training run stored once, under what it computes, for every profile, override and stage.

A run's folder is ``<runs_dir>/<method>-s<seed>-<run hash>`` (``train.run_hash``: the config without its
bookkeeping fields, and the training code's content hash), and one ``runs_dir`` (``results/runs``) serves the
study, its overrides, the ablations and the pipeline's training stages. So ``PARAMS="seeds=[0]"`` finds the
study's seed-0 runs, finished or half done, and an ablation's 'full' variant that equals a study run is that
run. The name carries no profile or variant label on purpose: two labels for one configuration would be two
folders. ``results/runs/`` is ignored by git (``runs/`` in .gitignore): runs hold checkpoints; the committed
record of a run is its results folder's ``run_metadata.json``.

Several workers or Slurm jobs may reach for the same run. ``RunLock`` makes one train it and the others wait,
then reuse it. It is a lock file holding pid, host and a heartbeat time, created with ``O_EXCL`` (atomic on
local disks and on NFSv3+, where ``flock``-based locks such as ``filelock.FileLock`` are not reliable), and
taken over when stale: its process is gone (same host), or its heartbeat is older than ``STALE_SECONDS``
(another host, or a frozen machine).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

from colorgan.common import runtime
from colorgan.method.config import RunConfig
from colorgan.training.train import FitResult, StepFactory, run_hash, train_or_reuse

log = logging.getLogger(__name__)

RUNS_DIR = "results/runs"  # relative to the repository root, where make and the notebooks run
LOCK_FILE = ".lock"
HEARTBEAT_SECONDS = 30.0  # how often a holder rewrites its heartbeat
STALE_SECONDS = 300.0  # a heartbeat this old means the holder is gone (10 missed beats: never a busy holder)


def store_dir(cfg: RunConfig, runs_dir: Path | str = RUNS_DIR) -> Path:
    """The one folder of the run ``cfg`` computes: ``<runs_dir>/<method>-s<seed>-<run_hash>``."""
    return Path(runs_dir) / f"{cfg.method}-s{cfg.seed}-{run_hash(cfg)}"


def in_store(cfg: RunConfig, runs_dir: Path | str = RUNS_DIR) -> RunConfig:
    """``cfg`` with its ``run_dir`` in the store."""
    return cfg.replace(run_dir=str(store_dir(cfg, runs_dir)))


def train_in_store(cfg: RunConfig, build_step: StepFactory, poll_seconds: float = 2.0) -> FitResult:
    """``train.train_or_reuse`` under the run's lock: a run that another process is training is waited for,
    then reused (or resumed, if that process died), never trained twice at once."""
    with RunLock(Path(cfg.run_dir), poll_seconds=poll_seconds):
        return train_or_reuse(cfg, build_step)


class RunLock:
    """``<run_dir>/.lock``: {pid, host, heartbeat}; held for a ``with`` block, kept fresh by a heartbeat thread.

    Entering waits while another live holder has it (logging who, once) and takes over a stale lock.
    """

    def __init__(self, run_dir: Path, poll_seconds: float = 2.0, heartbeat_seconds: float = HEARTBEAT_SECONDS,
                 stale_seconds: float = STALE_SECONDS):
        self.path = Path(run_dir) / LOCK_FILE
        self.poll_seconds, self.heartbeat_seconds, self.stale_seconds = poll_seconds, heartbeat_seconds, stale_seconds
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None

    def __enter__(self) -> "RunLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        told = False
        while not self._try_create():
            holder = read_lock(self.path)
            if holder is not None and self.is_stale(holder):
                log.warning("%s: taking over the stale lock of pid %s on %s (heartbeat %.0f s ago)", self.path,
                            holder.get("pid"), holder.get("host"), time.time() - holder.get("heartbeat", 0))
                self._remove_stale(holder)
                continue
            if not told and holder is not None:
                log.info("%s is being trained by pid %s on %s; waiting for it", self.path.parent, holder.get("pid"),
                         holder.get("host"))
                told = True
            time.sleep(self.poll_seconds)
        self.thread = threading.Thread(target=self._beat, name=f"lock-{self.path.parent.name}", daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join()
        holder = read_lock(self.path)
        if holder is not None and holder.get("pid") == os.getpid() and holder.get("host") == socket.gethostname():
            self.path.unlink(missing_ok=True)

    def is_stale(self, holder: dict[str, Any]) -> bool:
        """The holder's process is gone (checked on its own host), or its heartbeat stopped ``stale_seconds`` ago."""
        if holder.get("host") == socket.gethostname() and not pid_alive(int(holder.get("pid", -1))):
            return True
        return time.time() - float(holder.get("heartbeat", 0)) > self.stale_seconds

    def _record(self) -> bytes:
        return json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "heartbeat": time.time()}).encode()

    def _try_create(self) -> bool:
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "wb") as f:
            f.write(self._record())
        return True

    def _remove_stale(self, holder: dict[str, Any]) -> None:
        # rename first: of several processes that found it stale, one renames it and the others miss it, so
        # none deletes a fresh lock that a faster one has just created
        grave = self.path.with_name(f"{LOCK_FILE}.stale-{os.getpid()}-{socket.gethostname()}")
        try:
            os.rename(self.path, grave)
        except FileNotFoundError:
            return
        if read_lock(grave) != holder:  # renamed a lock created after we read the stale one: put it back
            os.rename(grave, self.path)
            return
        grave.unlink(missing_ok=True)

    def _beat(self) -> None:
        while not self.stop.wait(self.heartbeat_seconds):
            tmp = self.path.with_name(f"{LOCK_FILE}.{os.getpid()}.tmp")
            tmp.write_bytes(self._record())
            os.replace(tmp, self.path)


def read_lock(path: Path) -> dict[str, Any] | None:
    """A lock file's record; None when absent or caught mid-write."""
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this host (a zombie counts as gone)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


# ------------------------------------------------------------------------------ a run folder's records


def read_run(run_dir: Path | str) -> dict[str, Any]:
    """A run folder's records: config, provenance, finished (or None) and eval summary (or None)."""
    run_dir = Path(run_dir)

    def load(name: str) -> Any:
        path = run_dir / name
        return json.loads(path.read_text()) if path.is_file() else None

    return {"run_dir": str(run_dir), "config": load("config.json"), "provenance": load("provenance.json"),
            "finished": load("finished.json"), "eval": load("eval/summary.json")}


RUN_METADATA_FILE = "run_metadata.json"  # every run of a results folder: config, provenance, finish


def save_run_metadata(run_dirs: list[str], profile: str, out_dir: Path | str) -> Path:
    """``run_metadata.json``: every run's config, provenance and finish record, for the repository."""
    path = Path(out_dir) / RUN_METADATA_FILE
    runs = [{k: v for k, v in read_run(r).items() if k != "eval"} for r in run_dirs]
    runtime.write_json(path, {"profile": profile, "runs": runs})
    return path

"""Progress of a running stage: the Events it reports (its runs' ``progress.json``, the notebook cell now
executing, its one-line result) and their printing on a terminal or in a log.
"""

from __future__ import annotations

import json
import logging
import shutil
import threading
import time
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Event:
    """What ``run`` reports while it works; the CLI prints these (the library never prints).

    kind and info:
      'start' {}, 'cached' {}: a stage begins, or is skipped because its output is current;
      'resume' {'step', 'total_steps'}: a training stage continues from its last checkpoint;
      'train' {'step', 'total_steps', 'images_per_s', 'eta_s', 'terms'}: the run's ``progress.json``; a stage
          that trains several runs (study, ablations) adds 'run', 'runs' (1-based index and count), 'label'
          ('chromagan seed 2') and 'stage_eta_s' (this run's ETA plus every unfinished run's steps at its pace);
      'cell' {'cell', 'cells', 'source'}: the notebook cell now executing (evaluation shows up here);
      'done' {'seconds', 'headline'}: the stage finished; headline e.g. 'PSNR 22.10 dB, SSIM 0.871' or ''.
    """

    stage: str
    kind: str
    info: dict[str, Any] = field(default_factory=dict)


EventSink = Callable[[Event], None]


def run_result_line(run_dir: Path | None) -> str:
    """'PSNR 22.10 dB, SSIM 0.871 (34 test images, step 120)' from a run's evaluation; '' when there is none."""
    summary = run_dir / "eval" / "summary.json" if run_dir else None
    if summary is None or not summary.is_file() or not (run_dir / "config.json").is_file():
        return ""
    record = json.loads(summary.read_text())
    method = json.loads((run_dir / "config.json").read_text()).get("method")
    row = next((r for r in record["summary"] if r["method"] == method), None)
    if row is None:
        return ""
    return (f"PSNR {row['psnr']:.2f} dB, SSIM {row['ssim']:.3f} ({row['num_images']} test images, "
            f"step {record['checkpoint_step']})")


class StageWatcher:
    """While a stage executes, turn its runs' ``progress.json`` and the notebook papermill is filling into Events.

    A thread polls every ``poll_seconds``; records older than the stage's start (a previous session's)
    are ignored. Reading a file mid-write just skips that poll. ``runs`` ((label, run_dir) in training
    order) is for a stage that trains several: the newest record among them is the run in progress.
    """

    def __init__(self, stage: str, notebook: Path, run_dir: Path | None, emit: EventSink, poll_seconds: float,
                 runs: list[tuple[str, Path]] | None = None):
        self.stage, self.notebook, self.run_dir, self.emit = stage, notebook, run_dir, emit
        self.runs = runs or []
        self.resumed_runs: set[Path] = set()
        self.pace: float | None = None  # seconds per step of the latest run that reported one
        self.poll_seconds, self.started = poll_seconds, time.time()
        self.last_record: dict[str, Any] | None = None
        self.last_cell: int | None = None
        self.resumed = False
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, name=f"watch-{stage}", daemon=True)

    def __enter__(self) -> "StageWatcher":
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop.set()
        self.thread.join()
        self._safe_poll()  # the last record (e.g. the final step) even if the stage outran the poll

    def _loop(self) -> None:
        while not self.stop.wait(self.poll_seconds):
            self._safe_poll()

    def _safe_poll(self) -> None:
        try:
            self.poll()
        except Exception as err:  # a watcher must never stop the stage it watches
            log.warning("progress of %s: %s", self.stage, err)

    def poll(self) -> None:
        if self.runs:
            self._poll_runs()
        record = self._read(self.run_dir / "progress.json") if self.run_dir else None
        if record and record.get("time", 0) >= self.started and record != self.last_record:
            self.last_record = record
            if record["start_step"] > 0 and not self.resumed:
                self.resumed = True
                self.emit(Event(self.stage, "resume", {"step": record["start_step"],
                                                       "total_steps": record["total_steps"]}))
            self.emit(Event(self.stage, "train", {k: record[k] for k in
                                                  ("step", "total_steps", "images_per_s", "eta_s", "terms")}))
        notebook = self._read(self.notebook)
        if notebook:
            cells = [c for c in notebook.get("cells", []) if c.get("cell_type") == "code"]
            running = [i for i, c in enumerate(cells)
                       if c.get("metadata", {}).get("papermill", {}).get("status") == "running"]
            if running and running[0] != self.last_cell:
                self.last_cell = running[0]
                source = "".join(cells[running[0]].get("source", "")).strip().splitlines()
                self.emit(Event(self.stage, "cell", {"cell": running[0] + 1, "cells": len(cells),
                                                     "source": source[0] if source else ""}))

    def _poll_runs(self) -> None:
        """The newest fresh record among the stage's runs, as a 'train' Event with the run and the stage's ETA."""
        records = [(i, self._read(run_dir / "progress.json")) for i, (_, run_dir) in enumerate(self.runs)]
        fresh = [(r["time"], i, r) for i, r in records if r and r.get("time", 0) >= self.started]
        if not fresh:
            return
        _, index, record = max(fresh)
        if record == self.last_record:
            return
        self.last_record = record
        label, run_dir = self.runs[index]
        if record["start_step"] > 0 and run_dir not in self.resumed_runs:
            self.resumed_runs.add(run_dir)
            self.emit(Event(self.stage, "resume", {"step": record["start_step"], "total_steps": record["total_steps"],
                                                   "label": label}))
        # in flight: a fresh record and no finish yet (runs of parallel workers); done: finished, now or before
        done = {i for i, (_, run_dir) in enumerate(self.runs) if (run_dir / "finished.json").is_file()}
        in_flight = [(i, r) for _, i, r in sorted(fresh, key=lambda t: t[1]) if i not in done]
        info = {k: record[k] for k in ("step", "total_steps", "images_per_s", "eta_s", "terms")}
        info.update({"run": index + 1, "runs": len(self.runs), "label": label,
                     "running": len(in_flight), "done": len(done),
                     "waiting": len(self.runs) - len(done) - len(in_flight),
                     "in_flight": [{"label": self.runs[i][0], **{k: r[k] for k in
                                                                 ("step", "total_steps", "images_per_s", "eta_s")}}
                                   for i, r in in_flight],
                     "stage_eta_s": self._stage_eta(record, in_flight, done)})
        self.emit(Event(self.stage, "train", info))

    def _stage_eta(self, record: dict[str, Any], in_flight: list[tuple[int, dict[str, Any]]],
                   done: set[int]) -> float | None:
        """Seconds left in the stage: the in-flight runs' ETAs plus each waiting run's steps at the latest known
        pace, shared by as many workers as are running (runs of other methods may be faster or slower: an
        estimate that sharpens as runs finish)."""
        eta, left = record.get("eta_s"), record["total_steps"] - record["step"]
        if eta is None:
            return None
        if left > 0 and eta > 0:
            self.pace = eta / left  # seconds per step
        etas = [r.get("eta_s") or 0.0 for _, r in in_flight] or [eta]
        started = {i for i, _ in in_flight}
        waiting = [run_dir for i, (_, run_dir) in enumerate(self.runs) if i not in done | started]
        if not waiting:
            return max(etas)
        if self.pace is None:
            return None
        queued = sum(_total_steps(run_dir, record["total_steps"]) * self.pace for run_dir in waiting)
        return max(max(etas), (sum(etas) + queued) / len(etas))

    def _read(self, path: Path) -> dict[str, Any] | None:
        try:
            return json.loads(path.read_text()) if path.stat().st_mtime >= self.started - 1 else None
        except (OSError, ValueError):  # absent, or caught mid-write (papermill rewrites the notebook in place)
            return None


def _total_steps(run_dir: Path, default: int) -> int:
    """A run's planned steps from its progress record (a run not started yet: ``default``)."""
    try:
        return int(json.loads((run_dir / "progress.json").read_text())["total_steps"])
    except (OSError, ValueError, KeyError):
        return default


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(seconds)
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


class ProgressPrinter:
    """Prints the pipeline's Events. On a terminal the live line is rewritten in place (carriage
    return); in a log (not a TTY) it prints plain lines, a progress line at most every ``log_interval`` s."""

    def __init__(self, stream: typing.TextIO, log_interval: float = 60.0):
        self.stream, self.tty, self.log_interval = stream, stream.isatty(), log_interval
        self.last_line = 0.0
        self.live = False  # a carriage-return line is on screen
        self.lock = threading.Lock()  # events also come from the pipeline's watcher thread

    def __call__(self, event: Event) -> None:
        with self.lock:
            text = self.format(event)
            if event.kind in ("train", "cell"):
                if self.tty:
                    width = shutil.get_terminal_size().columns - 1
                    self.stream.write("\r" + text[:width].ljust(width))
                    self.live = True
                elif time.monotonic() - self.last_line >= self.log_interval:
                    self.stream.write(text + "\n")
                    self.last_line = time.monotonic()
            else:
                self.stream.write(("\r\033[K" if self.live else "") + text + "\n")
                self.live = False
            self.stream.flush()

    @staticmethod
    def format(event: Event) -> str:
        info, stage = event.info, event.stage
        if event.kind == "start":
            return f"stage {stage}: running"
        if event.kind == "cached":
            return f"stage {stage}: cached"
        if event.kind == "resume":
            run = f" {info['label']}" if "label" in info else ""
            return f"resuming {stage}{run} at step {info['step']} of {info['total_steps']}"
        if event.kind == "train" and "run" in info:  # a stage of several runs (study, ablations)
            runs = " | ".join(f"{r['label']} step {r['step']}/{r['total_steps']} "
                              f"{'%.0f' % r['images_per_s'] if r['images_per_s'] else '--'} img/s "
                              f"ETA {_duration(r['eta_s'])}" for r in info.get("in_flight") or [info])
            counts = (f"{info['running']} running · {info['done']} done · {info['waiting']} waiting"
                      if "running" in info else f"run {info['run']}/{info['runs']}")
            return f"  {stage} {counts} · {runs} · stage ETA {_duration(info['stage_eta_s'])}"
        if event.kind == "train":
            speed = f"{info['images_per_s']:.1f} img/s" if info["images_per_s"] else "-- img/s"
            terms = " ".join(f"{k}={v:.3g}" for k, v in list(info["terms"].items())[:6])
            return (f"  {stage} step {info['step']}/{info['total_steps']} {speed} "
                    f"ETA {_duration(info['eta_s'])} {terms}").rstrip()
        if event.kind == "cell":
            return f"  {stage} cell {info['cell']}/{info['cells']}: {info['source'][:70]}"
        if event.kind == "done":
            headline = f"; {info['headline']}" if info["headline"] else ""
            return f"stage {stage}: done in {_duration(info['seconds'])}{headline}"
        return f"stage {stage}: {event.kind} {info}"

"""``make reproduce``'s execution: run a plan's stages (``colorgan.reproduce.plan``) with papermill, then render the book.

A stage whose cache key (``plan.stage_key``) is unchanged and whose output exists is not run again; one that
runs is watched (``colorgan.reproduce.progress``) and its key recorded when it finishes. Training stages can train their
runs first on torchrun processes or through the executor (``colorgan.experiments.executor``).
"""

from __future__ import annotations

import functools
import json
import logging
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

from colorgan.common import runtime
from colorgan.experiments import verdicts
from colorgan.experiments.executor import Job, train_runs
from colorgan.experiments.executor_config import ExecutorConfig
from colorgan.reproduce.book_build import build_book
from colorgan.reproduce.plan import BOOK_SOURCES, OVERRIDES_RECORD, REPO_ROOT, Plan, job_runs, stage_key
from colorgan.reproduce.progress import Event, EventSink, StageWatcher, run_result_line

log = logging.getLogger(__name__)
STAMPED_STAGES = ("study", "ablations")  # their runs' claims_at_runs.json (experiments.verdicts.stamp_runs)


def run(p: Plan, execute: Callable[[Path, Path, dict[str, Any]], None] | None = None,
        book: bool = True, on_event: EventSink | None = None, nproc: dict[str, int] | None = None,
        poll_seconds: float = 1.0, verbose: bool = False, executor: ExecutorConfig | None = None) -> dict[str, str]:
    """Execute the stages whose key changed, then render the book. Returns {stage: 'ran'|'cached'}.

    ``on_event`` receives ``Event``s (from a watcher thread too, every ``poll_seconds``). ``nproc``
    maps a training stage to the number of torchrun processes that train its run before its notebook
    executes (the notebook then reuses the finished run); stages not named train in one process.
    ``verbose``: the notebook kernels' own warnings too (``execute_notebook``).
    ``executor`` (``colorgan.experiments.executor``) trains a stage's runs (``Plan.jobs``) before its notebook, in parallel
    workers or as Slurm jobs; the first training stage to run trains every ``train_*`` stage's run at once.
    Without it the notebooks train their runs one after another.
    """
    execute = execute or functools.partial(execute_notebook, verbose=verbose)
    emit = on_event or (lambda event: None)
    notebooks = p.out_dir / "notebooks"
    notebooks.mkdir(parents=True, exist_ok=True)
    if p.overrides:  # the folder's name is a digest of these: say what they were
        runtime.write_json(p.out_dir / OVERRIDES_RECORD, {"profile": p.profile, "overrides": p.overrides})
    state_path = p.out_dir / "stages.json"
    state = json.loads(state_path.read_text()) if state_path.is_file() else {}
    keys, outcome = {}, {}
    for stage in p.stages:
        keys[stage.name] = stage_key(stage, p.params[stage.name], keys)
        output = notebooks / f"{stage.name}.ipynb"
        if state.get(stage.name, {}).get("key") == keys[stage.name] and output.is_file():
            outcome[stage.name] = "cached"
            emit(Event(stage.name, "cached"))
            continue
        # not done until it finishes: a run that fails or is killed from here on must never leave an
        # earlier run's record beside this run's (partial) output notebook, which would read as a cache hit
        if state.pop(stage.name, None) is not None:
            runtime.write_json(state_path, state)
        started = time.monotonic()
        log.debug("stage %s: running %s", stage.name, output)
        emit(Event(stage.name, "start"))
        run_dir = REPO_ROOT / p.params[stage.name]["run_dir"] if "run_dir" in p.params[stage.name] else None
        torchrun = bool(nproc and nproc.get(stage.name, 1) > 1)
        jobs = [] if executor is None or torchrun else executor_jobs(p, stage.name, nproc or {})
        runs = [(label, REPO_ROOT / path) for label, path in (job_runs(jobs) if len(jobs) > 1 else
                                                               p.runs.get(stage.name, []))]
        with StageWatcher(stage.name, output, run_dir if len(runs) <= 1 else None, emit, poll_seconds, runs):
            if torchrun:
                train_with_torchrun(stage.name.removeprefix("train_"), p.params[stage.name], nproc[stage.name],
                                    p.out_dir / "logs" / f"{stage.name}-torchrun.log")
            if jobs:
                trained_since = time.time()
                train_runs(jobs, executor)
                if stage.name in STAMPED_STAGES and "out_dir" in p.params[stage.name]:
                    # trained here, before the notebook that judges them: the claims and rule in force now are
                    # the ones these runs were trained under (the notebook keeps a stamp a run already has)
                    verdicts.stamp_runs([job.cfg.run_dir for job in jobs], REPO_ROOT / p.params[stage.name]["out_dir"],
                                        trained_since)
            execute(BOOK_SOURCES / f"{stage.name}.ipynb", output, p.params[stage.name])
        seconds = round(time.monotonic() - started, 1)
        state[stage.name] = {"key": keys[stage.name], "seconds": seconds, "params": p.params[stage.name]}
        runtime.write_json(state_path, state)  # after each stage: a crash keeps what finished
        outcome[stage.name] = "ran"
        emit(Event(stage.name, "done", {"seconds": seconds, "headline": run_result_line(run_dir)}))
    if book:
        build_book(p)
    return outcome


def executor_jobs(p: Plan, stage: str, nproc: dict[str, int]) -> list[Job]:
    """The jobs the executor trains before ``stage``'s notebook: its own, and for a ``train_*`` stage every
    training stage's run (not those trained by torchrun), so independent methods train side by side; a run
    already finished is skipped by the executor."""
    if not stage.startswith("train_"):
        return p.jobs.get(stage, [])
    return [job for name, jobs in p.jobs.items() if name.startswith("train_") and nproc.get(name, 1) <= 1
            for job in jobs]


# The kernel's own log below ERROR: its "running over TCP without encryption" warning (a local kernel that only
# papermill talks to) would otherwise print at every stage. Errors in cells still fail the stage with their traceback.
QUIET_KERNEL = ["--IPKernelApp.log_level=ERROR"]


def execute_notebook(source: Path, output: Path, params: dict[str, Any], verbose: bool = False) -> None:
    """Run one notebook with papermill in the repository root (so relative paths match the CLI's).

    ``verbose``: keep the kernel's warnings (else ``QUIET_KERNEL``)."""
    import papermill

    papermill.execute_notebook(str(source), str(output), parameters=params, kernel_name="python3",
                               cwd=str(REPO_ROOT), progress_bar=False, log_output=False,
                               extra_arguments=[] if verbose else QUIET_KERNEL)


def train_with_torchrun(method: str, params: dict[str, Any], nproc: int, log_path: Path) -> None:
    """Train (or resume) a stage's run on ``nproc`` data-parallel ranks: ``torchrun -m colorgan train``.

    A finished run is left alone. Output goes to ``log_path``; progress shows through ``progress.json``.

    Raises:
        RuntimeError: torchrun failed; the message holds the end of its log.
    """
    run_dir = REPO_ROOT / params["run_dir"]
    if (run_dir / "finished.json").is_file():  # run folders are named by their config's hash
        return
    resume = any((run_dir / "checkpoints").glob("step_*.pt"))
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
               "-m", "colorgan", "train", "--method", method, "--params", json.dumps({**params, "resume": resume})]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log.info("training %s on %d processes: %s", method, nproc, " ".join(command))
    with open(log_path, "w") as out:
        completed = subprocess.run(command, cwd=REPO_ROOT, stdout=out, stderr=subprocess.STDOUT)
    if completed.returncode != 0:
        tail = log_path.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"torchrun ({nproc} processes) failed training {method} with exit code "
                           f"{completed.returncode}; log {log_path}:\n{tail}")

"""The executor of independent training runs: the study's, the ablations' and the pipeline's training stages.

``train_runs(jobs, ExecutorConfig)`` trains every job whose run is not finished in the run store, then returns;
the caller scores the (now finished) runs as before. Two ways, one parameter (``ExecutorConfig.executor``):

- ``local``: up to ``workers`` processes at once on this machine (spawned, so a CUDA context is never forked).
  On GPUs each worker slot is pinned to one device (``CUDA_VISIBLE_DEVICES``): one run per GPU, at the paper's
  batch, unlike DDP (``NPROC``), which splits one run's batch of 16 across GPUs and changes BatchNorm's
  statistics. On a CPU the cores are split between the workers (``torch.set_num_threads``).
- ``slurm``: one job per run through submitit, with partition, time limit, GPUs, CPUs and account; a job that is
  preempted or reaches its time limit is requeued (``max_requeues``) and resumes from its last checkpoint.

Either way a worker trains through ``run_store.train_in_store`` (the run's lock, then ``train_or_reuse``), so a
run is never trained twice at once, a finished one is reused and a half-done one resumes. A run that fails is
reported with the tail of its log (``<run_dir>/train.log``); the others still finish; ``RunsFailed`` is raised at
the end, and running the command again trains only what is missing.

Determinism (measured by tests/test_executor.py): a CPU run's weights and per-image metrics are bit-identical
in a worker and in the calling process at the same thread count, and a run repeats bit for bit. The thread
count is part of what a CPU run computes (it orders floating-point sums; provenance's ``device_name`` records
it): 1 and 2 threads differ by rounding at first (~1e-3 of the training's movement after 4 steps) and GAN
training amplifies that (0.29 after 20 steps), so ``WORKERS=2`` on 2 cores (1 thread each) and ``WORKERS=1``
(2 threads) give runs that agree statistically, not bitwise. On GPUs cuDNN's algorithm choice adds its own
nondeterminism.
"""

from __future__ import annotations

import logging
import contextlib
import multiprocessing
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from colorgan.experiments.executor_config import ExecutorConfig
from colorgan.method.config import RunConfig
from colorgan.training.run_store import LOCK_FILE, read_lock, train_in_store
from colorgan.training.train import StepFactory

log = logging.getLogger(__name__)

LOG_FILE = "train.log"  # in the run's folder: every attempt appends to it
TAIL_CHARS = 3000  # of a failed run's log, in the error


@dataclass(frozen=True)
class Job:
    """One run to train: a label for progress and errors ('chromagan seed 2'), its config (run_dir in the
    store) and its step factory (a class or module-level function: it is pickled by reference)."""

    label: str
    cfg: RunConfig
    build_step: StepFactory


@dataclass(frozen=True)
class Failure:
    label: str
    run_dir: str
    reason: str  # 'exit code 1', 'killed by signal 9', or the job's exception
    log_tail: str


class RunsFailed(RuntimeError):
    """Some runs failed (the others finished); the message lists each with the end of its log."""

    def __init__(self, failures: list[Failure], total: int):
        self.failures = failures
        parts = [f"{f.label} ({f.run_dir}): {f.reason}; end of {Path(f.run_dir) / LOG_FILE}:\n{f.log_tail}"
                 for f in failures]
        super().__init__(f"{len(failures)} of {total} run(s) failed; the others finished. Run the same command "
                         "again to retrain only what is missing.\n\n" + "\n\n".join(parts))


def is_finished(cfg: RunConfig) -> bool:
    """The run's folder holds a finished run (``train_or_reuse`` checks config and code when it reuses it)."""
    return (Path(cfg.run_dir) / "finished.json").is_file()


def train_runs(jobs: list[Job], ex: ExecutorConfig) -> list[Job]:
    """Train every job whose run is not finished; returns the jobs that trained.

    Raises:
        RunsFailed: after every run has ended, when any failed (each named, with its log's tail).
    """
    unique = {j.cfg.run_dir: j for j in jobs}  # two labels for one stored run train it once
    todo = [j for j in unique.values() if not is_finished(j.cfg)]
    log.info("%d of %d run(s) to train (%s executor)", len(todo), len(unique), ex.executor)
    if not todo:
        return []
    failures = train_slurm(todo, ex) if ex.executor == "slurm" else train_local(todo, ex)
    if failures:
        raise RunsFailed(failures, len(todo))
    return todo


# --------------------------------------------------------------------------------------- local


def local_slots(ex: ExecutorConfig, num_gpus: int, num_cores: int) -> tuple[list[int | None], int]:
    """(the GPU of each worker slot, None on a CPU; threads per worker): ``num_cores`` split between the workers.

    Default: one worker per GPU, or 1 on a CPU. More workers than GPUs share GPUs round robin.
    """
    workers = ex.workers or max(num_gpus, 1)
    devices: list[int | None] = [i % num_gpus for i in range(workers)] if num_gpus else [None] * workers
    threads = ex.threads_per_worker or max(1, num_cores // workers)
    return devices, threads


def train_local(jobs: list[Job], ex: ExecutorConfig, poll_seconds: float = 0.5) -> list[Failure]:
    """Train ``jobs`` in worker processes, at most one per slot; returns the failures."""
    # torch's own thread count here (physical cores, or OMP_NUM_THREADS): one worker then computes what this
    # process would, bit for bit (the thread count is part of what a CPU run computes)
    devices, threads = local_slots(ex, torch.cuda.device_count(), torch.get_num_threads())
    log.info("local executor: %d worker(s), %d thread(s) each%s", len(devices), threads,
             f", GPUs {devices}" if devices[0] is not None else "")
    context = multiprocessing.get_context("spawn")  # a forked child would share the parent's CUDA and thread pools
    waiting, running, failures = list(jobs), {}, []
    with sigterm_as_interrupt():
        try:
            while waiting or running:
                for slot, device in enumerate(devices):
                    if slot not in running and waiting:
                        job = waiting.pop(0)
                        process = context.Process(target=work, args=(job, threads, device),
                                                  name=f"run-{job.label}")
                        process.start()
                        running[slot] = (job, process)
                time.sleep(poll_seconds)
                for slot, (job, process) in list(running.items()):
                    if process.exitcode is None:
                        continue
                    del running[slot]
                    if process.exitcode != 0:
                        code = process.exitcode
                        reason = f"killed by signal {-code}" if code < 0 else f"exit code {code}"
                        failures.append(Failure(job.label, job.cfg.run_dir, reason, log_tail(job.cfg.run_dir)))
                        log.error("run %s failed (%s); the others go on", job.label, reason)
        finally:  # interrupted (Ctrl-C, SIGTERM): stop the workers; their runs resume from their checkpoints next time
            for job, process in running.values():
                process.terminate()
                process.join()
    return failures


@contextlib.contextmanager
def sigterm_as_interrupt():
    """SIGTERM (``kill PID``, a scheduler's or CI's time-out) raises KeyboardInterrupt here, as Ctrl-C does, so the
    workers are stopped instead of left training as orphans that hold their runs' locks. Main thread only."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def work(job: Job, threads: int, device: int | None) -> None:
    """A worker process: its output goes to the run's log; it trains (or resumes, or reuses) one run."""
    if device is not None:  # before CUDA initialises in this process
        os.environ["CUDA_VISIBLE_DEVICES"] = str(device)
    torch.set_num_threads(threads)
    run_dir = Path(job.cfg.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    log_file = open(run_dir / LOG_FILE, "a", buffering=1)
    os.dup2(log_file.fileno(), 1)  # C-level output and a crash's last words land in the log too
    os.dup2(log_file.fileno(), 2)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, force=True,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log.info("worker pid %d: %s, %d thread(s), device %s", os.getpid(), job.label, threads,
             "cpu" if device is None else f"cuda {device}")
    try:
        train_in_store(job.cfg, job.build_step)
    except BaseException:
        log.exception("run %s failed", job.label)
        raise


def log_tail(run_dir: Path | str, chars: int = TAIL_CHARS) -> str:
    """The end of a run's log ('' when it has none)."""
    path = Path(run_dir) / LOG_FILE
    return path.read_text(errors="replace")[-chars:] if path.is_file() else ""


def worker_pid(run_dir: Path | str) -> int | None:
    """The pid of the process training a run now (from its lock), or None."""
    holder = read_lock(Path(run_dir) / LOCK_FILE)
    return int(holder["pid"]) if holder else None


# --------------------------------------------------------------------------------------- slurm


class SlurmRun:
    """A submitit job that trains one run; on preemption or time-out submitit calls ``checkpoint`` and requeues it.

    Requeuing needs nothing saved here: the run resumes from its own last checkpoint. The lock is released so
    the requeued job (perhaps on another node) need not wait for it to go stale.
    """

    def __init__(self, job: Job, threads: int):
        self.job, self.threads = job, threads

    def __call__(self) -> str:
        torch.set_num_threads(self.threads)
        logging.basicConfig(level=logging.INFO, force=True, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        train_in_store(self.job.cfg, self.job.build_step)
        return self.job.cfg.run_dir

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        import submitit

        holder = read_lock(Path(self.job.cfg.run_dir) / LOCK_FILE)
        if holder and holder.get("pid") == os.getpid():
            (Path(self.job.cfg.run_dir) / LOCK_FILE).unlink(missing_ok=True)
        log.warning("run %s interrupted (preempted or out of time); requeued, it resumes from its last checkpoint",
                    self.job.label)
        return submitit.helpers.DelayedSubmission(SlurmRun(self.job, self.threads))


def slurm_executor(ex: ExecutorConfig, cluster: str | None = None) -> Any:
    """A submitit executor with ``ex``'s job parameters; ``cluster='local'`` runs the same jobs as local
    subprocesses (how the tests exercise this path without Slurm)."""
    import submitit

    executor = submitit.AutoExecutor(folder=ex.jobs_dir, cluster=cluster,
                                     slurm_max_num_timeout=ex.max_requeues)
    params: dict[str, Any] = {"timeout_min": ex.time_min, "gpus_per_node": ex.gpus_per_job,
                              "cpus_per_task": ex.cpus_per_job, "tasks_per_node": 1, "nodes": 1,
                              "name": "colorgan-run"}
    if executor.cluster == "slurm":
        params.update({k: v for k, v in {"slurm_partition": ex.partition, "slurm_account": ex.account}.items() if v})
    executor.update_parameters(**params)
    return executor


def train_slurm(jobs: list[Job], ex: ExecutorConfig, cluster: str | None = None) -> list[Failure]:
    """Submit one job per run, wait for all; returns the failures (the job's exception and its stderr's tail)."""
    executor = slurm_executor(ex, cluster)
    threads = ex.cpus_per_job
    submitted = [(job, executor.submit(SlurmRun(job, threads))) for job in jobs]
    log.info("submitted %d job(s): %s", len(submitted), ", ".join(s.job_id for _, s in submitted))
    failures = []
    for job, handle in submitted:
        error = handle.exception()  # waits for the job (requeues included)
        if error is not None:
            tail = (handle.stderr() or "")[-TAIL_CHARS:] or log_tail(job.cfg.run_dir)
            failures.append(Failure(job.label, job.cfg.run_dir, f"job {handle.job_id}: {str(error)[-500:]}", tail))
    return failures

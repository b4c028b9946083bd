"""Where a stage's training runs train: ``ExecutorConfig``, the settings of ``colorgan.experiments.executor``.

Apart from ``executor.py`` because the CLI builds its flags from these fields at start-up, and ``executor.py``
imports torch (``colorgan --help`` answers without it).
"""

from __future__ import annotations

from dataclasses import dataclass

from colorgan.common.params import Params, opt

EXECUTORS = ("local", "slurm")


@dataclass(frozen=True)
class ExecutorConfig(Params):
    """Where a stage's independent training runs train (``colorgan.experiments.executor``): worker processes here, or Slurm jobs."""

    executor: str = opt("local", "local: worker processes on this machine; slurm: one job per run (submitit)",
                        choices=EXECUTORS)
    workers: int = opt(0, "local runs at once (0 = one per GPU, or 1 on a CPU)", min=0)
    threads_per_worker: int = opt(0, "CPU threads of each local worker (0 = this process's torch threads split between the workers)",
                                  min=0)
    partition: str = opt("", "slurm: partition ('' = the cluster's default)")
    time_min: int = opt(240, "slurm: time limit per job in minutes; a job that reaches it is requeued and resumes",
                        min=1)
    gpus_per_job: int = opt(1, "slurm: GPUs per job (one run per GPU; 0 = CPU jobs)", min=0)
    cpus_per_job: int = opt(4, "slurm: CPU cores per job (data loading and the loss network's host work)", min=1)
    account: str = opt("", "slurm: account to charge ('' = your default)")
    max_requeues: int = opt(3, "slurm: how often a preempted or timed-out job is requeued", min=0)
    jobs_dir: str = opt("results/jobs", "job logs and submitit's files (ignored by git)")

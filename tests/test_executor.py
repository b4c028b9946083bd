"""The executor with real processes: a tiny study over 2 workers, a worker killed mid-run, a failing run,
submitit's job path (its local executor: real subprocesses), and what a run's numbers depend on."""

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from colorgan.cli import METHODS
from colorgan.common import runtime
from colorgan.experiments import executor, study
from colorgan.experiments.executor import Job, RunsFailed, train_runs
from colorgan.experiments.executor_config import ExecutorConfig
from colorgan.experiments.study import StudyConfig
from colorgan.method.step import ColorGANStep
from colorgan.performance.ddp_check import relative_distance, trained_keys
from colorgan.training.run_store import in_store
from colorgan.training.train import train
from tests.conftest import checkpoint_parameters, tiny_config
from tests.test_run_store import TINY_BASE, TINY_COLORGAN


def broken_step(cfg, device):
    """A step factory that fails (module level: a worker unpickles it by reference)."""
    raise RuntimeError("this step is broken on purpose")


def stored(tmp_path: Path, **changes) -> Job:
    cfg = in_store(tiny_config(tmp_path, **changes), tmp_path / "runs")
    return Job(f"colorgan seed {cfg.seed}", cfg, ColorGANStep)


def wait_for(condition, timeout: float = 120.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.mark.slow
def test_a_tiny_study_over_two_workers_equals_the_study_in_process(tmp_path):
    """Two seeds trained by 2 worker processes give the numbers of the same study trained in this process, at the
    same thread count (2, as conftest sets): bit-identical weights and per-image metrics."""

    def config(name: str) -> StudyConfig:
        return StudyConfig(methods={"colorgan": TINY_COLORGAN}, base=TINY_BASE, seeds=[0, 1], num_images_seen=16,
                           num_diversity_samples=2, num_bootstrap=200, out_dir=str(tmp_path / name),
                           runs_dir=str(tmp_path / name / "runs"))

    here = study.run_study(config("here"), METHODS)
    workers = study.run_study(config("workers"), METHODS, ExecutorConfig(workers=2, threads_per_worker=2))
    pids = set()
    for run_dir in set(workers.run_dir):
        log_text = (Path(run_dir) / executor.LOG_FILE).read_text()
        assert "2 thread(s)" in log_text
        pids.add(log_text.split("worker pid ")[1].split(":")[0])
    assert len(pids) == 2 and str(os.getpid()) not in pids  # each run in its own worker process
    assert not any((Path(d) / executor.LOG_FILE).exists() for d in set(here.run_dir))  # these trained here
    columns = [c for c in here.columns if c != "run_dir"]
    assert here[columns].equals(workers[columns])
    for a, b in zip(sorted(set(here.run_dir)), sorted(set(workers.run_dir))):
        assert Path(a).name == Path(b).name  # the same runs (hash of config and code)
        weights_a, weights_b = checkpoint_parameters(Path(a)), checkpoint_parameters(Path(b))
        assert all(torch.equal(weights_a[k], weights_b[k]) for k in weights_a)


@pytest.mark.slow
def test_a_killed_worker_fails_alone_and_rerunning_resumes_it_and_reuses_the_others(tmp_path):
    killed, other = stored(tmp_path, num_steps=40, seed=0), stored(tmp_path, num_steps=4, seed=1)
    outcome: dict = {}

    def first_attempt() -> None:
        try:
            train_runs([killed, other], ExecutorConfig(workers=2, threads_per_worker=1))
        except RunsFailed as err:
            outcome["error"] = err

    thread = threading.Thread(target=first_attempt)
    thread.start()
    run_dir = Path(killed.cfg.run_dir)
    wait_for(lambda: any((run_dir / "checkpoints").glob("step_*.pt")) and executor.worker_pid(run_dir),
             what="the first checkpoint")
    os.kill(executor.worker_pid(run_dir), signal.SIGKILL)
    thread.join(timeout=300)
    error = outcome["error"]
    assert [f.label for f in error.failures] == ["colorgan seed 0"]
    assert "killed by signal 9" in str(error) and "worker pid" in str(error)  # the reason and its log's tail
    assert not (run_dir / "finished.json").exists()
    finished_other = Path(other.cfg.run_dir) / "finished.json"
    assert finished_other.is_file()  # the other run finished
    kept = finished_other.stat().st_mtime_ns

    retrained = train_runs([killed, other], ExecutorConfig(workers=2, threads_per_worker=1))
    assert [j.label for j in retrained] == ["colorgan seed 0"]  # only what was missing
    assert finished_other.stat().st_mtime_ns == kept
    assert "resumed" in (run_dir / executor.LOG_FILE).read_text()  # from its checkpoint, after the stale lock
    assert (run_dir / "finished.json").is_file()


@pytest.mark.slow
def test_a_failing_run_is_reported_with_its_log_and_the_others_finish(tmp_path):
    broken = Job("broken", in_store(tiny_config(tmp_path, seed=5), tmp_path / "runs"), broken_step)
    good = stored(tmp_path, seed=1)
    with pytest.raises(RunsFailed, match=r"(?s)1 of 2 run\(s\) failed.*broken .*exit code 1.*broken on purpose"):
        train_runs([broken, good], ExecutorConfig(workers=2, threads_per_worker=1))
    assert (Path(good.cfg.run_dir) / "finished.json").is_file()


def test_worker_slots_pin_one_gpu_each_or_split_the_cores():
    assert executor.local_slots(ExecutorConfig(), num_gpus=0, num_cores=8) == ([None], 8)
    assert executor.local_slots(ExecutorConfig(workers=2), num_gpus=0, num_cores=2) == ([None, None], 1)
    assert executor.local_slots(ExecutorConfig(workers=3), num_gpus=0, num_cores=2) == ([None] * 3, 1)
    assert executor.local_slots(ExecutorConfig(), num_gpus=4, num_cores=32) == ([0, 1, 2, 3], 8)
    assert executor.local_slots(ExecutorConfig(workers=2, threads_per_worker=3), 8, 32) == ([0, 1], 3)


@pytest.mark.slow
def test_a_cpu_run_repeats_bit_for_bit_at_one_thread_count_and_drifts_across_counts(tmp_path):
    """What a CPU run's numbers depend on: the thread count (recorded in provenance's device_name) changes the
    order of floating-point sums, so 1 and 2 threads differ from the first steps on, by rounding: after 4 steps
    by ~1e-3 of how far training moved the weights (measured 9.5e-4; bound 1e-2). GAN training amplifies such
    differences (measured 0.29 after 20 steps), so across thread counts runs agree statistically, not bitwise."""
    runtime.seed_everything(0)
    initial = {f"{m}.{k}": v.clone() for m, module in ColorGANStep(tiny_config(tmp_path), torch.device("cpu"))
               .modules().items() for k, v in module.state_dict().items()}
    weights = {}
    before = torch.get_num_threads()
    try:
        for name, threads in (("one", 1), ("two", 2), ("two again", 2)):
            torch.set_num_threads(threads)
            train(tiny_config(tmp_path, run_dir=str(tmp_path / name)), ColorGANStep)
            weights[name] = checkpoint_parameters(tmp_path / name)
    finally:
        torch.set_num_threads(before)
    assert all(torch.equal(weights["two"][k], weights["two again"][k]) for k in weights["two"])
    apart = relative_distance(weights["one"], weights["two"], initial, trained_keys(weights["two"]))
    assert 0 < apart < 1e-2


PARENT = """
import sys
from pathlib import Path
from colorgan.experiments.executor import train_runs
from colorgan.experiments.executor_config import ExecutorConfig
from tests.test_executor import stored
train_runs([stored(Path(sys.argv[1]), num_steps=100000, seed=0)], ExecutorConfig(workers=1, threads_per_worker=1))
"""


@pytest.mark.slow
def test_sigterm_to_the_command_stops_its_workers(tmp_path):
    """``kill PID`` of the command (or a time-out's SIGTERM) stops its workers as Ctrl-C does: no orphan keeps
    training and holding the run's lock."""
    repo = Path(__file__).resolve().parents[1]
    parent = subprocess.Popen([sys.executable, "-c", PARENT, str(tmp_path)], cwd=repo,
                              env={**os.environ, "PYTHONPATH": str(repo)})
    run_dir = Path(stored(tmp_path, num_steps=100000, seed=0).cfg.run_dir)
    try:
        wait_for(lambda: executor.worker_pid(run_dir) is not None and any((run_dir / "checkpoints").glob("*.pt")),
                 timeout=300, what="the worker's first checkpoint")
        worker = executor.worker_pid(run_dir)
        parent.send_signal(signal.SIGTERM)
        parent.wait(timeout=60)
        wait_for(lambda: not pid_alive(worker), timeout=30, what=f"worker {worker} to stop")
    finally:  # whatever happened, leave no process behind
        parent.kill()
        orphan = executor.worker_pid(run_dir)
        if orphan is not None and pid_alive(orphan):
            os.kill(orphan, signal.SIGKILL)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").is_file() and Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


# ------------------------------------------------------------------------------- slurm (submitit)


@pytest.mark.slow
def test_submitit_jobs_train_the_runs_and_a_preempted_job_is_requeued_and_resumes(tmp_path):
    """submitit's local executor: the job path of EXECUTOR=slurm (pickled SlurmRun, signal, checkpoint, requeue)
    in real subprocesses. A preempted job comes back and resumes from its checkpoint."""
    pytest.importorskip("submitit")
    ex = ExecutorConfig(executor="slurm", gpus_per_job=0, cpus_per_job=1, jobs_dir=str(tmp_path / "jobs"))
    quick = stored(tmp_path, seed=1)
    assert executor.train_slurm([quick], ex, cluster="local") == []
    assert (Path(quick.cfg.run_dir) / "finished.json").is_file()

    preempted = stored(tmp_path, num_steps=100, seed=0)
    handle = executor.slurm_executor(ex, cluster="local").submit(executor.SlurmRun(preempted, 1))
    run_dir = Path(preempted.cfg.run_dir)
    wait_for(lambda: any((run_dir / "checkpoints").glob("step_*.pt")) and executor.worker_pid(run_dir),
             what="the first checkpoint")
    # what Slurm sends the job's process before preempting it or at its time limit (submitit's USR2); submitit's
    # LocalJob._interrupt signals its controller instead, which dies of it and leaves the job running
    os.kill(executor.worker_pid(run_dir), signal.SIGUSR2)
    assert handle.result() == preempted.cfg.run_dir
    assert (run_dir / "finished.json").is_file()
    assert "requeued" in handle.stderr() and "resumed" in handle.stderr()


def slurm_answers() -> str:
    """'' when a Slurm controller answers here, else why the real-Slurm test skips."""
    if shutil.which("sbatch") is None:
        return "no Slurm here (sbatch absent); .ci/slurm-one-node starts a one-node cluster as root"
    try:
        subprocess.run(["sinfo", "-h"], check=True, capture_output=True, timeout=10)
    except (subprocess.SubprocessError, OSError) as err:
        return f"sbatch is installed but no Slurm controller answers ({err}); start one with .ci/slurm-one-node"
    return ""


@pytest.mark.slow
@pytest.mark.skipif(bool(slurm_answers()), reason=slurm_answers() or "Slurm answers")
def test_a_real_slurm_trains_the_runs_and_requeues_a_preempted_job(tmp_path):
    """EXECUTOR=slurm against a real (one-node) Slurm: jobs train the runs; a job signalled as Slurm does before
    preemption (scancel --signal=USR2) is requeued by submitit through scontrol and resumes from its checkpoint."""
    ex = ExecutorConfig(executor="slurm", gpus_per_job=0, cpus_per_job=1, time_min=10, jobs_dir=str(tmp_path / "jobs"))
    quick = stored(tmp_path, seed=2)
    assert executor.train_slurm([quick], ex) == []
    assert (Path(quick.cfg.run_dir) / "finished.json").is_file()

    preempted = stored(tmp_path, num_steps=100, seed=0)
    handle = executor.slurm_executor(ex).submit(executor.SlurmRun(preempted, 1))
    run_dir = Path(preempted.cfg.run_dir)
    wait_for(lambda: any((run_dir / "checkpoints").glob("step_*.pt")), timeout=300, what="the first checkpoint")
    subprocess.run(["scancel", "--signal=USR2", handle.job_id], check=True)
    assert handle.result() == preempted.cfg.run_dir
    assert (run_dir / "finished.json").is_file()
    assert "resumed" in handle.stderr()


@pytest.mark.slow
def test_the_pipeline_trains_a_stages_runs_with_the_executor_before_its_notebook(tmp_path):
    """``pipeline.run(executor=...)``: the stage's jobs train in workers first (the notebook then only reuses
    them), and the progress events count running, done and waiting runs."""
    from colorgan.reproduce import pipeline, plan

    jobs = [stored(tmp_path, seed=seed, num_steps=6) for seed in (0, 1)]
    p = plan.Plan("toy", tmp_path / "results", {"study": {}}, [plan.Stage("study", StudyConfig)],
                  {"study": plan.job_runs(jobs)}, {"study": jobs})
    seen_by_notebook = []

    def execute(source: Path, output: Path, params: dict) -> None:
        seen_by_notebook.extend((Path(j.cfg.run_dir) / "finished.json").is_file() for j in jobs)
        output.write_text('{"cells": []}')

    events = []
    pipeline.run(p, execute, book=False, on_event=events.append, poll_seconds=0.05,
                 executor=ExecutorConfig(workers=2, threads_per_worker=1))
    assert seen_by_notebook == [True, True]
    assert all((Path(j.cfg.run_dir) / executor.LOG_FILE).is_file() for j in jobs)  # trained by workers
    progress = [e.info for e in events if e.kind == "train"]
    assert progress and all(i["running"] + i["done"] + i["waiting"] == 2 for i in progress)
    assert all(len(i["in_flight"]) == i["running"] for i in progress)


def test_runs_the_executor_trains_before_the_notebook_are_stamped_with_the_claims_in_force(tmp_path, monkeypatch):
    """The executor trains a study's runs before its notebook starts, so the notebook's own stamp found them
    older than itself and recorded none: every fresh study read as judged by claims declared after its data."""
    from colorgan.experiments import verdicts
    from colorgan.reproduce import pipeline, plan

    jobs = [stored(tmp_path, seed=seed) for seed in (0, 1)]

    def fake_train_runs(jobs, cfg):
        for job in jobs:
            Path(job.cfg.run_dir).mkdir(parents=True, exist_ok=True)
            (Path(job.cfg.run_dir) / "finished.json").write_text("{}")

    monkeypatch.setattr(pipeline, "train_runs", fake_train_runs)
    out = tmp_path / "results" / "toy"
    p = plan.Plan("toy", out, {"study": {"out_dir": str(out)}}, [plan.Stage("study", StudyConfig)],
                  {"study": plan.job_runs(jobs)}, {"study": jobs})
    pipeline.run(p, lambda source, output, params: output.write_text('{"cells": []}'), book=False,
                 executor=ExecutorConfig(workers=1))
    assert verdicts.recorded_basis(out) == verdicts.basis()


def test_the_cli_builds_the_executor_from_its_flags():
    from colorgan import cli

    args = cli.build_parser().parse_args(["reproduce", "--profile", "study", "--workers", "2", "--executor", "slurm",
                                          "--partition", "gpu", "--time-min", "120", "--gpus-per-job", "1"])
    assert (args.workers, args.executor, args.partition, args.time_min, args.gpus_per_job) == (2, "slurm", "gpu", 120, 1)
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["ablations", "--executor", "ray"])

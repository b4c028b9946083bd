"""Run one piece of work in a child process that is stopped at a hard deadline, keeping what it reported.

The GPU check runs each section this way: a section that hangs (a stuck NCCL collective, a compile
that never ends) is stopped when its time is up, one that crashes the interpreter (a segfault, a
CUDA error that poisons the context) takes only its own process down, and the results it reported
before that are kept. The child is started with ``spawn`` (a CUDA context does not survive ``fork``)
in its own process group, so stopping it also stops what it started (``torchrun``); a thread in the
child stops that group when the parent disappears (``kill -9``, the end of a lease).
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import signal
import threading
import time
import traceback
from pathlib import Path
from typing import Any, Callable

from colorgan.common import runtime

log = logging.getLogger(__name__)

GRACE_SECONDS = 5.0  # between SIGTERM (torchrun then stops its workers) and SIGKILL
# Work = fn(report, deadline, *args) -> result; report(partial) keeps partial results; deadline: time.time() epoch.
Work = Callable[..., dict[str, Any]]


def run_with_deadline(work: Work, args: tuple, seconds: float, result_path: Path, log_level: int = logging.INFO,
                      on_start: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Run ``work(report, deadline, *args)`` in a child process, stopped after ``seconds``.

    Returns: ``{"outcome": "finished" | "raised" | "deadline" | "died", "result": dict | None,
    "error": str | None, "seconds": float}``; ``result`` is the work's return value, or else the
    last dict it passed to ``report`` (None if it reported nothing). ``work`` and ``args`` must be
    picklable (module-level functions, plain data, classes). ``on_start(pid)`` is called once it runs.
    """
    result_path = Path(result_path)
    result_path.unlink(missing_ok=True)
    deadline = time.time() + seconds
    begun = time.monotonic()
    child = multiprocessing.get_context("spawn").Process(
        target=_child_main, args=(work, args, deadline, str(result_path), os.getpid(), log_level), daemon=False)
    child.start()
    if on_start is not None:
        on_start(child.pid)
    child.join(timeout=max(deadline - time.time(), 0.0))
    stopped = child.is_alive()
    if stopped:
        log.warning("deadline: stopping pid %d after %.0f s", child.pid, seconds)
        stop_group(child.pid, child)
    child.join()
    saved = json.loads(result_path.read_text()) if result_path.is_file() else {}
    outcome = ("deadline" if stopped else "finished" if saved.get("finished") else "raised" if "error" in saved
               else "died")
    error = {"deadline": f"stopped at its deadline of {seconds:.0f} s",
             "died": f"the process died (exit code {child.exitcode}) without a result"}.get(outcome, saved.get("error"))
    return {"outcome": outcome, "result": saved.get("result"), "error": error,
            "seconds": time.monotonic() - begun}


def stop_group(pid: int, child: Any = None) -> None:
    """SIGTERM to ``pid``'s process group, then SIGKILL after ``GRACE_SECONDS`` to whatever of it still runs
    (torchrun, say, that did not stop). ``child`` (its ``Process``): killed directly if it had not yet made
    its own group."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:  # the group is gone, or was never made
            if child is not None and child.is_alive():
                child.kill()
            return
        until = time.monotonic() + GRACE_SECONDS
        while time.monotonic() < until and _group_alive(pid):
            time.sleep(0.1)
            if child is not None:
                child.join(timeout=0)  # reap it, so that a dead child does not keep the group alive as a zombie


def _group_alive(pid: int) -> bool:
    try:
        os.killpg(pid, 0)
        return True
    except ProcessLookupError:
        return False


def _child_main(work: Work, args: tuple, deadline: float, result_path: str, parent: int, log_level: int) -> None:
    os.setsid()  # its own process group: the parent stops it and everything it started at once
    logging.basicConfig(level=log_level, format="%(levelname)s %(name)s: %(message)s")
    threading.Thread(target=_stop_when_orphaned, args=(parent,), daemon=True).start()
    path = Path(result_path)
    last: dict[str, Any] = {}

    def report(partial: dict[str, Any]) -> None:
        last["result"] = partial
        runtime.write_json(path, {"finished": False, "result": partial})

    try:
        result = work(report, deadline, *args)
    except BaseException as err:  # recorded for the parent, which decides what a failure means
        runtime.write_json(path, {"finished": False, "result": last.get("result"),
                                  "error": f"{type(err).__name__}: {err}",
                                  "traceback": traceback.format_exc()[-4000:]})
        raise SystemExit(1) from None
    runtime.write_json(path, {"finished": True, "result": result})


def _stop_when_orphaned(parent: int) -> None:
    """Stop this process group once the parent is gone (its children are re-parented, e.g. to init)."""
    while os.getppid() == parent:
        time.sleep(1.0)
    stop_group(os.getpid())

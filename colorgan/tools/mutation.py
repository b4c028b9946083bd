"""Mutation testing of the numbers core: run mutmut, then turn its results into ``results/mutation/``.

mutmut (configured in pyproject.toml, ``[tool.mutmut]``) changes one operator, constant or argument of a listed
module at a time and runs only the tests that call the changed function. A mutant that no test notices
*survives*: either it cannot change any result (equivalent) or the tests have a gap. The report gives the kill
rate per module, the command, the commit and the time, and every survivor with its line and the reason it is
left, read from ``results/mutation/survivors.toml`` (hand-written: mutant name -> kind and why).
"""

from __future__ import annotations

import ast
import difflib
import functools
import json
import logging
import os
import shutil
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from colorgan.common import runtime

log = logging.getLogger(__name__)

# mutmut's exit codes (mutmut.stats.status_by_exit_code); anything else is 'suspicious'
STATUS_BY_EXIT_CODE = {1: "killed", 3: "killed", 0: "survived", 5: "no tests", 33: "no tests", 34: "skipped",
                       36: "timeout", 24: "timeout", -24: "timeout", 152: "timeout", 255: "timeout",
                       37: "caught by type check", -11: "segfault", -9: "segfault", None: "not checked"}
# a mutant that hangs or crashes the test process was noticed: it counts as killed, as in mutmut's own summary
DETECTED = ("killed", "timeout", "segfault", "caught by type check")
NOTE_KINDS = ("equivalent", "gap")
GOAL = 0.9  # the kill rate every listed module should reach (issue 27)


@dataclass(frozen=True)
class Change:
    """One mutant's edit: the line number in the original module and the line before and after."""

    line: int
    before: str
    after: str


def status_of(exit_code: int | None) -> str:
    """mutmut's word for a mutant's exit code."""
    return STATUS_BY_EXIT_CODE.get(exit_code, "suspicious")


def read_results(mutants_dir: Path | str) -> pd.DataFrame:
    """Every mutant in mutmut's ``mutants/**/*.py.meta`` files: columns module, mutant, function, status.

    module is the source path ('colorgan/measures/metrics.py'); mutant is mutmut's name
    ('colorgan.measures.metrics.x_psnr_ssim__mutmut_3'); function the mutated function ('psnr_ssim', 'Scorer.add').
    """
    mutants_dir = Path(mutants_dir)
    rows = []
    for meta in sorted(mutants_dir.rglob("*.py.meta")):
        module = meta.relative_to(mutants_dir).as_posix().removesuffix(".meta")
        for mutant, code in json.loads(meta.read_text())["exit_code_by_key"].items():
            rows.append({"module": module, "mutant": mutant, "function": function_of(mutant),
                         "status": status_of(code)})
    if not rows:
        raise FileNotFoundError(f"no mutmut results under {mutants_dir}: run `make mutation` (mutmut run) first")
    return pd.DataFrame(rows)


def function_of(mutant: str) -> str:
    """'colorgan.measures.metrics.xǁScorerǁadd__mutmut_3' -> 'Scorer.add'; 'pkg.mod.x_f__mutmut_1' -> 'f'."""
    mangled = mutant.rsplit(".", 1)[-1].rsplit("__mutmut_", 1)[0]
    if mangled.startswith("xǁ"):
        return ".".join(mangled[2:].split("ǁ"))
    return mangled.removeprefix("x_")


def kill_rates(results: pd.DataFrame) -> pd.DataFrame:
    """Per module: counts per status and the kill rate (detected / checked).

    Mutants without a result (a run stopped early, or one limited to other names) are counted as 'not checked'
    and left out of the rate; a module none of whose mutants was checked is left out (its rate would be 0/0).
    """
    rows = []
    for module, group in results.groupby("module", sort=True):
        counts = group.status.value_counts()
        checked = len(group) - int(counts.get("not checked", 0))
        if not checked:
            continue
        detected = int(sum(counts.get(s, 0) for s in DETECTED))
        survived, no_tests = int(counts.get("survived", 0)), int(counts.get("no tests", 0))
        rows.append({"module": module, "mutants": len(group), "checked": checked, "killed": detected,
                     "survived": survived, "no tests": no_tests, "other": checked - detected - survived - no_tests,
                     "kill rate": detected / checked})
    return pd.DataFrame(rows, columns=["module", "mutants", "checked", "killed", "survived", "no tests", "other",
                                       "kill rate"])


def _functions(tree: ast.Module) -> dict[str, ast.FunctionDef]:
    """Module-level functions and class methods by name ('f', 'Class.method')."""
    found = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            found[node.name] = node
        elif isinstance(node, ast.ClassDef):
            found.update({f"{node.name}.{item.name}": item for item in node.body
                          if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef))})
    return found


def _body_lines(source: list[str], node: ast.FunctionDef) -> list[str]:
    """The function's lines from its ``def`` to its end (decorators excluded)."""
    return source[node.lineno - 1:node.end_lineno]


@functools.lru_cache(maxsize=8)
def _parsed(path: Path) -> tuple[list[str], dict[str, ast.FunctionDef]]:
    """A module's lines and functions, parsed once per report (mutmut's copy holds every mutant: megabytes)."""
    source = path.read_text()
    return source.splitlines(), _functions(ast.parse(source))


def mutant_change(mutant: str, module: str, mutants_dir: Path | str, source_root: Path | str) -> Change:
    """Where ``mutant`` changes ``module``: compares mutmut's copy of the original function with the mutant's."""
    mutated_source, mutated = _parsed(Path(mutants_dir) / module)
    _, original = _parsed(Path(source_root) / module)
    function = function_of(mutant)
    mangled = mutant.rsplit(".", 1)[-1]
    prefix = mangled.rsplit("__mutmut_", 1)[0]
    owner = f"{function.split('.')[0]}." if "." in function else ""  # methods keep mutmut's name in their class
    orig_node, mutant_node = mutated[f"{owner}{prefix}__mutmut_orig"], mutated[f"{owner}{mangled}"]
    before, after = _body_lines(mutated_source, orig_node), _body_lines(mutated_source, mutant_node)
    # the def lines differ only in the mangled names
    before[0], after[0] = before[0].replace(orig_node.name, "f"), after[0].replace(mutant_node.name, "f")
    start = original[function].lineno
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=before, b=after, autojunk=False).get_opcodes():
        if tag != "equal":
            return Change(start + i1, "\n".join(s.strip() for s in before[i1:i2]),
                          "\n".join(s.strip() for s in after[j1:j2]))
    raise ValueError(f"{mutant}: mutmut's copy of {function} equals the original; rerun `make mutation`")


def read_notes(path: Path | str) -> dict[str, dict[str, str]]:
    """The hand-written accounts of survivors: {mutant: {'kind': 'equivalent'|'gap', 'why': '...'}}."""
    path = Path(path)
    if not path.exists():
        return {}
    notes = tomllib.loads(path.read_text())
    for mutant, note in notes.items():
        if note.get("kind") not in NOTE_KINDS or not note.get("why"):
            raise ValueError(f"{path}: [\"{mutant}\"] needs kind = one of {NOTE_KINDS} and a non-empty why")
    return notes


def survivors(results: pd.DataFrame, notes: dict[str, dict[str, str]], mutants_dir: Path | str,
              source_root: Path | str) -> pd.DataFrame:
    """Every checked mutant that was not detected, with its line, the change, and its account (or 'UNACCOUNTED')."""
    left = results[~results.status.isin(DETECTED + ("not checked",))]
    rows = []
    for row in left.itertuples():
        change = mutant_change(row.mutant, row.module, mutants_dir, source_root)
        note = notes.get(row.mutant, {"kind": "UNACCOUNTED", "why": "no entry in survivors.toml"})
        rows.append({"module": row.module, "line": change.line, "function": row.function, "mutant": row.mutant,
                     "status": row.status, "before": change.before, "after": change.after, "kind": note["kind"],
                     "why": note["why"]})
    columns = ["module", "line", "function", "mutant", "status", "before", "after", "kind", "why"]
    return pd.DataFrame(rows, columns=columns).sort_values(["module", "line", "mutant"], ignore_index=True)


def merge_runs(previous: dict, rates: pd.DataFrame, run: dict) -> dict:
    """The summary with this run's rates for the modules it checked; other modules keep their entries.

    previous: an earlier summary.json ({'modules': {module: {..., 'runs': [...]}}}) or {}; run: {'command',
    'commit', 'seconds', 'finished', 'fresh'}. A fresh run (mutmut started without earlier results) starts a
    module's list of runs; a resumed one (e.g. the survivors rerun after new tests) is appended to it.
    """
    modules = dict(previous.get("modules", {}))
    for rate in rates.to_dict("records"):
        module = rate.pop("module")
        earlier = [] if run["fresh"] else modules.get(module, {}).get("runs", [])
        modules[module] = {**rate, "runs": [*earlier, run]}
    return {"goal": GOAL, "modules": dict(sorted(modules.items()))}


def score_line(summary: dict) -> str:
    """The README's sentence with each module's kill rate (kept equal to summary.json by a test)."""
    rates = ", ".join(f"`{module}` {m['kill rate']:.1%} ({m['killed']}/{m['checked']} checked of {m['mutants']})"
                      for module, m in summary["modules"].items())
    return (f"Mutation score (`make mutation`; every survivor and why it is left in `results/mutation/report.md`): "
            f"{rates} of mutants killed.")


def report_markdown(summary: dict, survivor_table: pd.DataFrame) -> str:
    """results/mutation/report.md: the kill rate per module with its run, then every survivor."""
    lines = ["# Mutation testing of the numbers core", "",
             f"mutmut, configured in pyproject.toml `[tool.mutmut]`; goal: >= {summary['goal']:.0%} killed per module. "
             "Killed = a test failed, hung or crashed on the mutant. Each survivor is accounted for in "
             "`survivors.toml`: *equivalent* (cannot change any result) or a named *gap*.", "",
             "| module | mutants | checked | killed | survived | no tests | kill rate | runs: command, commit, time (s) |",
             "|---|---:|---:|---:|---:|---:|---:|---|"]
    for module, m in summary["modules"].items():
        flag = "" if m["kill rate"] >= summary["goal"] else " (below goal)"
        runs = "; ".join(f"`{r['command']}` at {r['commit'][:12]}{'-dirty' * r['commit'].endswith('-dirty')}, "
                         f"{r['seconds']:.0f}" for r in m["runs"])
        lines.append(f"| {module} | {m['mutants']} | {m['checked']} | {m['killed']} | {m['survived']} | {m['no tests']} | "
                     f"{m['kill rate']:.1%}{flag} | {runs} |")
    lines += ["", f"## Survivors ({len(survivor_table)})", ""]
    if survivor_table.empty:
        lines.append("None.")
    for row in survivor_table.itertuples():
        lines += [f"- `{row.module}:{row.line}` {row.function} ({row.status}; `{row.mutant}`): **{row.kind}**: "
                  f"{row.why}", f"  - before: `{row.before}`", f"  - after: `{row.after}`"]
    unaccounted = int((survivor_table.kind == "UNACCOUNTED").sum())
    if unaccounted:
        lines += ["", f"**{unaccounted} survivor(s) not yet accounted for in survivors.toml.**"]
    return "\n".join(lines) + "\n"


def write_report(out_dir: Path | str, results: pd.DataFrame, run: dict | None, mutants_dir: Path | str,
                 source_root: Path | str) -> dict:
    """Write summary.json, survivors.csv and report.md under ``out_dir``; returns the summary.

    Survivors are listed for the modules of the summary that this run checked, and kept from earlier runs'
    survivors.csv for the others; modules whose file is no longer under ``source_root`` (moved, deleted) are
    dropped. run=None re-renders the last run's report (e.g. after editing survivors.toml).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    summary_path, table_path = out_dir / "summary.json", out_dir / "survivors.csv"
    previous = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    rates = kill_rates(results)
    if run is None and not previous:
        raise FileNotFoundError(f"no {summary_path} to re-render: run `make mutation` first")
    summary = previous if run is None else merge_runs(previous, rates, run)
    # a module moved or deleted since an earlier run is gone from the report: its rate describes no code here
    summary = {**summary, "modules": {m: v for m, v in summary["modules"].items() if (Path(source_root) / m).is_file()}}
    fresh = survivors(results[results.module.isin(rates.module)], read_notes(out_dir / "survivors.toml"),
                      mutants_dir, source_root)
    if table_path.exists():
        kept = pd.read_csv(table_path, keep_default_na=False)
        kept = kept[~kept.module.isin(rates.module) & kept.module.isin(summary["modules"])]
        fresh = pd.concat([kept, fresh], ignore_index=True).sort_values(["module", "line", "mutant"],
                                                                        ignore_index=True)
    runtime.write_json(summary_path, summary)
    fresh.to_csv(table_path, index=False)
    (out_dir / "report.md").write_text(report_markdown(summary, fresh))
    return summary


def run_mutation(out_dir: Path | str = "results/mutation", mutants: list[str] | None = None,
                 jobs: int | None = None, resume: bool = False, repo: Path | str = ".") -> dict:
    """Run mutmut from ``repo`` on the configured modules (or the mutant name globs ``mutants``, e.g.
    'colorgan.method.color.*') and write the report; returns the summary. mutmut's own progress goes to the terminal.

    Without ``resume`` mutmut's earlier results (``mutants/``) are removed first, so every mutant is checked
    against the tests of this commit; with it, only mutants without a result or named in ``mutants`` run.
    """
    repo = Path(repo).resolve()
    fresh = not resume or not (repo / "mutants").exists()
    if not resume:
        shutil.rmtree(repo / "mutants", ignore_errors=True)
    command = ["mutmut", "run", *(["--max-children", str(jobs)] if jobs else []), *(mutants or [])]
    started = time.monotonic()
    log.info("running %s in %s", " ".join(command), repo)
    # one thread per test process: forked pytest workers with torch's thread pool started share it badly
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    completed = subprocess.run([str(Path(sys.executable).parent / "mutmut"), *command[1:]], cwd=repo, env=env)
    seconds = time.monotonic() - started
    if completed.returncode != 0:
        raise RuntimeError(f"`{' '.join(command)}` exited with {completed.returncode}: see its output above "
                           "(a failing clean test run stops it before any mutant)")
    # a rerun of named survivors can list hundreds of names: the report says how many
    shown = command if len(mutants or []) <= 4 else [*command[:-len(mutants)], f"<{len(mutants)} mutant names>"]
    run = {"command": " ".join(shown), "commit": runtime.git_commit(repo), "seconds": round(seconds, 1),
           "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"), "fresh": fresh}
    return write_report(out_dir if Path(out_dir).is_absolute() else repo / out_dir, read_results(repo / "mutants"),
                        run, repo / "mutants", repo)

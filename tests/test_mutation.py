"""The mutation report (colorgan/tools/mutation.py) on a hand-made mutmut result: statuses, kill rates, each survivor's
line and change, its account, and the merge of runs over modules."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pandas as pd
import pytest

from colorgan.tools import mutation

REPO = Path(__file__).resolve().parents[1]

ORIGINAL = '''"""A module."""


def scale(x):
    """Doc."""
    y = x * 2
    return y + 1


class Box:
    @staticmethod
    def size(a):
        return a - 3
'''

# what mutmut writes under mutants/: the original and each mutant as functions with mangled names
MUTATED = '''"""A module."""


def x_scale__mutmut_orig(x):
    """Doc."""
    y = x * 2
    return y + 1


def x_scale__mutmut_1(x):
    """Doc."""
    y = x * 3
    return y + 1


def x_scale__mutmut_2(x):
    """Doc."""
    y = x * 2
    return y - 1


class Box:
    def xǁBoxǁsize__mutmut_orig(a):
        return a - 3

    def xǁBoxǁsize__mutmut_1(a):
        return a + 3
'''

EXIT_CODES = {"pkg.mod.x_scale__mutmut_1": 1, "pkg.mod.x_scale__mutmut_2": 0, "pkg.mod.xǁBoxǁsize__mutmut_1": 33}


def fake_run(tmp_path: Path, exit_codes: dict[str, int | None] = EXIT_CODES) -> tuple[Path, Path]:
    """A source tree with pkg/mod.py and mutmut's mutants/ for it; returns (source root, mutants dir)."""
    (tmp_path / "pkg").mkdir(parents=True)
    (tmp_path / "pkg" / "mod.py").write_text(ORIGINAL)
    mutants = tmp_path / "mutants"
    (mutants / "pkg").mkdir(parents=True)
    (mutants / "pkg" / "mod.py").write_text(MUTATED)
    (mutants / "pkg" / "mod.py.meta").write_text(json.dumps({"exit_code_by_key": exit_codes}))
    return tmp_path, mutants


RUN = {"command": "mutmut run", "commit": "abc123", "seconds": 12.0, "finished": "2026-01-01T00:00:00+00:00",
       "fresh": True}


def test_results_statuses_and_kill_rates(tmp_path: Path):
    _, mutants = fake_run(tmp_path)
    results = mutation.read_results(mutants)
    assert list(results.status) == ["killed", "survived", "no tests"]
    assert list(results.function) == ["scale", "scale", "Box.size"]
    rates = mutation.kill_rates(results).iloc[0]
    assert (rates.module, rates.mutants, rates.checked, rates.killed, rates.survived, rates["no tests"]) == (
        "pkg/mod.py", 3, 3, 1, 1, 1)
    assert rates["kill rate"] == pytest.approx(1 / 3)
    # timeouts count as detected; modules whose mutants were not checked in this run are left out
    codes = {**EXIT_CODES, "pkg.mod.x_scale__mutmut_2": 36}
    assert mutation.kill_rates(mutation.read_results(fake_run(tmp_path / "b", codes)[1])).iloc[0].killed == 2
    none_checked = dict.fromkeys(EXIT_CODES)
    assert mutation.kill_rates(mutation.read_results(fake_run(tmp_path / "c", none_checked)[1])).empty
    one_unchecked = {**EXIT_CODES, "pkg.mod.x_scale__mutmut_2": None}  # a run stopped early
    partial = mutation.kill_rates(mutation.read_results(fake_run(tmp_path / "d", one_unchecked)[1])).iloc[0]
    assert (partial.mutants, partial.checked, partial["kill rate"]) == (3, 2, 0.5)
    assert mutation.status_of(-7) == "suspicious" and mutation.status_of(None) == "not checked"
    with pytest.raises(FileNotFoundError, match="run `make mutation`"):
        mutation.read_results(tmp_path / "nowhere")


def test_each_survivor_has_its_line_its_change_and_its_account(tmp_path: Path):
    root, mutants = fake_run(tmp_path)
    assert mutation.mutant_change("pkg.mod.x_scale__mutmut_1", "pkg/mod.py", mutants, root) == mutation.Change(
        6, "y = x * 2", "y = x * 3")
    notes = {"pkg.mod.x_scale__mutmut_2": {"kind": "gap", "why": "nothing reads the offset"}}
    table = mutation.survivors(mutation.read_results(mutants), notes, mutants, root)
    assert list(table.mutant) == ["pkg.mod.x_scale__mutmut_2", "pkg.mod.xǁBoxǁsize__mutmut_1"]
    assert list(table.line) == [7, 13] and list(table.kind) == ["gap", "UNACCOUNTED"]
    assert (table.iloc[1].before, table.iloc[1].after) == ("return a - 3", "return a + 3")


def test_notes_need_a_kind_and_a_reason(tmp_path: Path):
    path = tmp_path / "survivors.toml"
    path.write_text('["pkg.mod.x_scale__mutmut_2"]\nkind = "fine"\nwhy = "x"\n')
    with pytest.raises(ValueError, match="needs kind = one of"):
        mutation.read_notes(path)
    assert mutation.read_notes(tmp_path / "absent.toml") == {}


def test_report_merges_runs_module_by_module(tmp_path: Path):
    root, mutants = fake_run(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    earlier = {"goal": 0.9, "modules": {"pkg/other.py": {"mutants": 10, "killed": 10, "survived": 0, "no tests": 0,
                                                         "other": 0, "kill rate": 1.0, "checked": 10,
                                                         "runs": [{**RUN, "command": "earlier"}]}}}
    # pkg/other.py is still there; pkg/moved.py was checked by an earlier run and has since moved away
    (root / "pkg" / "other.py").write_text("")
    earlier["modules"]["pkg/moved.py"] = {**earlier["modules"]["pkg/other.py"], "runs": [RUN]}
    (out / "summary.json").write_text(json.dumps(earlier))
    summary = mutation.write_report(out, mutation.read_results(mutants), RUN, mutants, root)
    assert list(summary["modules"]) == ["pkg/mod.py", "pkg/other.py"]
    assert "pkg/moved.py" not in (out / "report.md").read_text()
    assert summary["modules"]["pkg/other.py"]["runs"][0]["command"] == "earlier"
    assert summary["modules"]["pkg/mod.py"]["kill rate"] == pytest.approx(1 / 3)
    report = (out / "report.md").read_text()
    assert "| pkg/mod.py | 3 | 3 | 1 | 1 | 1 | 33.3% (below goal) | `mutmut run` at abc123, 12 |" in report
    assert "`pkg/mod.py:7` scale" in report and "2 survivor(s) not yet accounted for" in report
    assert len(pd.read_csv(out / "survivors.csv")) == 2
    # a resumed run (e.g. the survivors again after new tests) adds to the module's runs; a fresh one restarts them
    resumed = mutation.write_report(out, mutation.read_results(mutants), {**RUN, "fresh": False, "seconds": 3.0},
                                    mutants, root)
    assert [r["seconds"] for r in resumed["modules"]["pkg/mod.py"]["runs"]] == [12.0, 3.0]
    again = mutation.write_report(out, mutation.read_results(mutants), RUN, mutants, root)
    assert [r["seconds"] for r in again["modules"]["pkg/mod.py"]["runs"]] == [12.0]
    # re-rendering after accounting for a survivor keeps the runs and shows the account
    (out / "survivors.toml").write_text('["pkg.mod.x_scale__mutmut_2"]\nkind = "gap"\nwhy = "no reader"\n')
    assert mutation.write_report(out, mutation.read_results(mutants), None, mutants, root) == again
    assert "**gap**: no reader" in (out / "report.md").read_text()


def test_the_repository_accounts_for_every_survivor_of_its_committed_run():
    """The committed run covers every configured module at the goal, and each survivor has exactly one account."""
    out = REPO / "results" / "mutation"
    summary = json.loads((out / "summary.json").read_text())
    table = pd.read_csv(out / "survivors.csv", keep_default_na=False)
    notes = tomllib.loads((out / "survivors.toml").read_text())
    configured = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["mutmut"]["only_mutate"]
    assert set(summary["modules"]) == set(configured), "rerun `make mutation`: the report is of other modules"
    assert all(m["kill rate"] >= summary["goal"] for m in summary["modules"].values()), summary
    assert set(table.mutant) == set(notes), "one account per survivor in results/mutation/survivors.toml, none stale"
    assert "UNACCOUNTED" not in set(table.kind)
    assert mutation.score_line(summary) in (REPO / "README.md").read_text(), (
        "README's mutation score differs from results/mutation/summary.json: paste mutation.score_line(summary)")

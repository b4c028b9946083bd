"""Presentation helpers for every table and figure: tables as HTML and Markdown, figure finishing, a chart of
differences with their intervals, short commits, and warnings said once on a book page.

Nothing here reads a run or knows a method: the callers (``table1``, ``figures``, ``run_pages``,
``front_page``, ``study``, ``ablation``) bring the numbers.
"""

from __future__ import annotations

import logging
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

# The book shows tables in full: pandas would cut notes, evidence and run folders at 50 characters ("...").
pd.set_option("display.max_colwidth", None)


# The book is read by reviewers, not by the people who wrote the notebooks: tables without pandas' index,
# numbers right-aligned, long text wrapped, and every table in a box that scrolls on its own on a phone.

# a number, a signed difference or 'mean [low, high]' (with an optional '*' mark): right-aligned
_NUMERIC = r"^(?=.*\d)[\s\d.,+\-−\[\]()*e]+$"


class Html(str):
    """A string of HTML that Jupyter (and the book) displays as HTML."""

    def _repr_html_(self) -> str:
        return str(self)


MAX_COLUMNS = 7  # more columns than this do not fit a 1280 px page with their intervals under the numbers


def html_table(table: pd.DataFrame, caption: str = "", footnotes: tuple[str, ...] = ("notes",)) -> Html:
    """A DataFrame as a readable HTML table: no index column, numbers right-aligned with their intervals
    under them (a column 'X 95% CI' joins the column before it whose name starts with X), text in the
    ``footnotes`` columns as numbered notes below the table, other text wrapped; all inside a box that
    scrolls sideways by itself if the table is still wider than the page. A text column that says the same
    in every row becomes one note; a table of many columns and few rows is shown transposed."""
    import html
    import re

    def cell(value: Any) -> str:
        if value is None or (isinstance(value, float) and np.isnan(value)):
            return ""
        if isinstance(value, (float, np.floating)):
            return f"{round(float(value), 4):g}"  # 4 decimals at most: 19.285354 -> 19.2854
        return str(value)

    table = table.copy()
    for column in [c for c in table.columns if f"{c}_low" in table.columns and f"{c}_high" in table.columns]:
        # an evaluation summary's 'psnr', 'psnr_low', 'psnr_high' -> 'psnr' = 'mean [low, high]'
        table[column] = [f"{cell(v)} [{cell(lo)}, {cell(hi)}]" if cell(lo) else cell(v)
                         for v, lo, hi in zip(table[column], table[f"{column}_low"], table[f"{column}_high"])]
        table = table.drop(columns=[f"{column}_low", f"{column}_high"])
    for column in [c for c in table.columns if str(c).endswith(" 95% CI")]:
        base = str(column)[: -len(" 95% CI")]
        before = list(table.columns)[: list(table.columns).index(column)]
        owner = next((c for c in reversed(before) if str(c) == base or str(c).startswith(base + " ")), None)
        if owner is not None:
            table[owner] = [f"{cell(v)} {cell(ci)}".strip() for v, ci in zip(table[owner], table[column])]
            table = table.drop(columns=column)
    notes: list[str] = []
    for column in [c for c in table.columns if c not in footnotes and len(table) > 1]:
        values = set(table[column].map(cell))
        if len(values) == 1 and not re.match(_NUMERIC, next(iter(values))) and next(iter(values)) not in ("", "—"):
            # the same text in every row (e.g. 'n/a (no LPIPS weights)'): said once under the table
            notes.append(f"{column}: {next(iter(values))} (every row)")
            table = table.drop(columns=column)
    for column in [c for c in footnotes if c in table.columns]:
        marks = []
        for text in table[column].map(cell):
            if text:
                notes.append(text)
            marks.append(f"[{len(notes)}]" if text else "")
        table[column] = marks
    if len(table.columns) > MAX_COLUMNS and len(table) < len(table.columns) / 2:
        # few rows, many columns (Table 1, an evaluation summary): metrics as rows, methods as columns (the
        # paper's own Table 1 layout) reads narrower than one wide row per method
        first = table.columns[0]
        table = table.set_index(first).T.reset_index().rename(columns={"index": str(first)})
    columns = list(table.columns)
    cells = [[cell(v) for v in row] for row in table.itertuples(index=False)]
    numeric = [all(re.match(_NUMERIC, row[i]) or row[i] in ("", "—") for row in cells) and
               any(row[i] not in ("", "—") for row in cells) for i in range(len(columns))]
    head = "".join(f'<th class="{"num" if numeric[i] else "text"}">{html.escape(str(c))}</th>'
                   for i, c in enumerate(columns))

    def shown(value: str, is_number: bool) -> str:
        # 'mean [low, high]': the interval goes on its own line under its number, so columns stay narrow
        value, _, interval = value.partition(" [") if is_number else (value, "", "")
        return html.escape(value) + (f'<span class="ci">[{html.escape(interval)}</span>' if interval else "")

    def is_number(value: str, column: int) -> bool:  # per cell: a transposed table mixes numbers and text
        return numeric[column] or bool(re.match(_NUMERIC, value))

    body = "".join("<tr>" + "".join(f'<td class="{"num" if is_number(v, i) else "text"}">{shown(v, is_number(v, i))}</td>'
                                    for i, v in enumerate(row)) + "</tr>" for row in cells)
    title = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    notes_html = ("<ol class=\"table-notes\">" + "".join(f"<li>{html.escape(n)}</li>" for n in notes) + "</ol>"
                  if notes else "")
    return Html(f'<div class="report-table"><table>{title}<thead><tr>{head}</tr></thead>'
                f"<tbody>{body}</tbody></table></div>{notes_html}")


def table_markdown(table: pd.DataFrame) -> str:
    """GitHub-flavoured Markdown of a table (no tabulate dependency)."""
    columns = list(table.columns)
    cells = [[("" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v)) for v in row]
             for row in table.itertuples(index=False)]
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in cells]
    return "\n".join(lines) + "\n"


def short_commit(commit: str) -> str:
    """'240043b065ec7c10...-dirty' -> '240043b065ec-dirty': shortened, but never hiding uncommitted changes."""
    return commit[:12] + ("-dirty" if commit.endswith("-dirty") else "")


class _FirstOccurrence(logging.Filter):
    """Passes each distinct (logger, level, message) once."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[tuple[str, int, str]] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, record.levelno, record.getMessage())
        first = key not in self.seen
        self.seen.add(key)
        return first


def log_each_warning_once() -> None:
    """A chapter's warnings on stderr as Python shows them by default, but each distinct message once: a
    warning that every run of a study repeats (ChromaGAN without its ImageNet teacher) says nothing new the
    second time, and the page should not print it six times. Calling it again changes nothing."""
    root = logging.getLogger()
    if any(isinstance(f, _FirstOccurrence) for h in root.handlers for f in h.filters):
        return
    handler = logging.StreamHandler()
    handler.setLevel(logging.WARNING)
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.addFilter(_FirstOccurrence())
    root.addHandler(handler)


def finish(fig: plt.Figure) -> plt.Figure:
    """Lay out and detach a figure from pyplot: notebooks then show it once, as the value they return."""
    fig.tight_layout()
    plt.close(fig)
    return fig


def delta_chart(table: pd.DataFrame, higher_is_better: dict[str, bool] | None = None) -> plt.Figure:
    """The ablation as differences: per metric, each variant's paired Δ to the reference with its 95%
    bootstrap interval (``table``: the long ablation table with diff_vs_full, diff_low, diff_high)."""
    rows = table.dropna(subset=["diff_vs_full"])
    metrics = list(dict.fromkeys(rows.metric))
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.0 * len(metrics), 0.35 * rows.variant.nunique() + 1.6),
                             squeeze=False, sharey=True)
    for ax, metric in zip(axes[0], metrics):
        r = rows[rows.metric == metric]
        y = np.arange(len(r))
        significant = r.significant.astype(object).fillna(False).astype(bool)  # a CSV round trip gives objects
        for yi, (diff, low, high, mark) in enumerate(zip(r.diff_vs_full, r.diff_low, r.diff_high, significant)):
            colour = "tab:red" if mark else "tab:gray"
            ax.errorbar([diff], [yi], xerr=[[diff - low], [high - diff]], fmt="o", ms=4, color=colour, capsize=3)
        ax.axvline(0, color="black", lw=0.8)
        ax.set_yticks(y, r.variant, fontsize=7)
        better = (higher_is_better or {}).get(metric)
        ax.set_title(f"Δ{metric} vs full" + ("" if better is None else f" ({'↑' if better else '↓'} better)"),
                     fontsize=9)
        ax.tick_params(axis="x", labelsize=7)
    axes[0, 0].invert_yaxis()
    fig.suptitle("red: 95% interval excludes 0", fontsize=8)
    return finish(fig)

"""The summary table (from :func:`pets_core.analysis.stats.summary_table`) as Markdown and LaTeX."""

from __future__ import annotations

import math

import pandas as pd

HEADER = [
    "Env",
    "Variant",
    "Seeds",
    "Final best-so-far: mean [95% CI]",
    "IQM [95% CI]",
    "Trials to threshold (seeds reached)",
    "Wall h / run",
    "CPU h / run",
    "GPU h / run",
]


def _num(value: float, digits: int = 1) -> str:
    return (
        "–"
        if value is None or (isinstance(value, float) and math.isnan(value))
        else f"{value:.{digits}f}"
    )


def _with_ci(value: float, low: float, high: float) -> str:
    if math.isnan(low):
        return _num(value)
    return f"{_num(value)} [{_num(low)}, {_num(high)}]"


def _rows(table: pd.DataFrame) -> list[list[str]]:
    rows = []
    for row in table.itertuples(index=False):
        if math.isnan(row.threshold):
            trials = "–"
        else:
            trials = (
                f"{_num(row.trials_mean)} ({row.seeds_reached}/{row.seeds} ≥ {row.threshold:g})"
            )
        rows.append(
            [
                row.env,
                row.variant,
                str(row.seeds),
                _with_ci(row.mean, row.ci_low, row.ci_high),
                _with_ci(row.iqm, row.iqm_ci_low, row.iqm_ci_high),
                trials,
                _num(row.wall_h_per_run, 3),
                _num(row.cpu_h_per_run, 3),
                _num(row.gpu_h_per_run, 3),
            ]
        )
    return rows


def to_markdown(table: pd.DataFrame) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(cells) + " |" for cells in _rows(table)]
    return "\n".join(lines) + "\n"


def to_latex(table: pd.DataFrame) -> str:
    def escape(text: str) -> str:
        for char, repl in (("&", r"\&"), ("%", r"\%"), ("_", r"\_"), ("#", r"\#")):
            text = text.replace(char, repl)
        return text.replace("–", "--").replace("≥", r"$\geq$")

    lines = [
        r"\begin{tabular}{ll" + "r" * (len(HEADER) - 2) + "}",
        r"\toprule",
        " & ".join(escape(h) for h in HEADER) + r" \\",
        r"\midrule",
    ]
    lines += [" & ".join(escape(c) for c in cells) + r" \\" for cells in _rows(table)]
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"

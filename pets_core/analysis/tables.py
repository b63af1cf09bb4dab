"""The summary table (from :func:`pets_core.analysis.stats.summary_table`) as Markdown, LaTeX and
HTML (the report shows the HTML; Markdown and LaTeX are for papers and READMEs)."""

from __future__ import annotations

import html
import math

import pandas as pd

HEADER = [
    "Env",
    "Variant",
    "Seeds",
    "Final best-so-far: mean [95% CI]",
    "IQM [95% CI]",
    "Trials to threshold (seeds reached)",
    "Device",
    "Wall time / run",
    "CPU time / run",
    "GPU h / run",
    "Settings",
]
"""Settings: the runs' settings fingerprint (pets_core.config.fingerprint; empty for runs without a
config.yaml)."""


def _num(value: float, digits: int = 1) -> str:
    return (
        "–"
        if value is None or (isinstance(value, float) and math.isnan(value))
        else f"{value:.{digits}f}"
    )


def duration(hours: float | None) -> str:
    """0.024 -> '1.4 min', 3.25 -> '3.2 h': seconds below a minute, minutes below an hour."""
    if hours is None or not math.isfinite(hours):
        return "–"
    if hours < 1 / 60:
        return f"{hours * 3600:.0f} s"
    if hours < 1:
        minutes = hours * 60
        return f"{minutes:.1f} min" if minutes < 10 else f"{minutes:.0f} min"
    return f"{hours:.1f} h"


def with_ci(value: float, low: float, high: float) -> str:
    if math.isnan(value):
        return "–"
    if math.isnan(low):
        return _num(value)
    return f"{_num(value)} [{_num(low)}, {_num(high)}]"


def seeds_cell(seeds: int, partial: int) -> str:
    return f"{seeds} ({partial} partial)" if partial else str(seeds)


def _rows(table: pd.DataFrame) -> list[list[str]]:
    rows = []
    for row in table.itertuples(index=False):
        if math.isnan(row.threshold):
            trials = "–"
        else:
            trials = (
                f"{_num(row.trials_mean)} ({row.seeds_reached}/{row.seeds} ≥ {row.threshold:g})"
            )
        device = row.device if isinstance(row.device, str) and row.device else "–"
        rows.append(
            [
                row.env,
                row.variant,
                seeds_cell(row.seeds, getattr(row, "partial_seeds", 0)),
                with_ci(row.mean, row.ci_low, row.ci_high),
                with_ci(row.iqm, row.iqm_ci_low, row.iqm_ci_high),
                trials,
                device,
                duration(row.wall_h_per_run),
                duration(row.cpu_h_per_run),
                _num(row.gpu_h_per_run, 2),
                getattr(row, "settings", "") or "–",
            ]
        )
    return rows


def to_markdown(table: pd.DataFrame) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(cells) + " |" for cells in _rows(table)]
    return "\n".join(lines) + "\n"


def to_html(table: pd.DataFrame, caption: str = "") -> str:
    """A standalone HTML page holding the table (and a caption paragraph)."""
    body = [html_table(HEADER, _rows(table))]
    if caption:
        body.append(f"<p>{html.escape(caption)}</p>")
    return html_page(body)


def html_table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    lines = [f"<table><thead><tr>{head}</tr></thead><tbody>"]
    for cells in rows:
        lines.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
    lines.append("</tbody></table>")
    return "\n".join(lines)


def html_page(body: list[str]) -> str:
    """Body fragments -> a standalone page with a plain, readable table style."""
    return (
        "\n".join(
            [
                "<!DOCTYPE html>",
                '<html><head><meta charset="utf-8"><style>',
                "body { font-family: system-ui, sans-serif; font-size: 14px; margin: 1em; }",
                "table { border-collapse: collapse; margin: 0.4em 0 1em; }",
                "th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: left; }",
                "th { background: #f2f2f2; } td { font-variant-numeric: tabular-nums; }",
                "</style></head><body>",
                *body,
                "</body></html>",
            ]
        )
        + "\n"
    )


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

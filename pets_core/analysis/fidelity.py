"""The fidelity table: our pre-registered runs against the original's published curves.

Runs come from their directories (logs.mat, config.yaml, done.json), each checked against its
pre-registered settings (:mod:`pets_core.analysis.preregistration`; a run at other settings is
refused, never shown). They form one block per env at the paper's settings (every group that
changes only the trial count: reacher seeds 1-3 at 17 trials and 4-6 at 25) and one block per group
with its own settings (the reduced half-cheetah check).

A block reports at the env's pre-registered ``report_trials`` within its registered range, whatever
they show. A cell at trial k holds every run that reached k, partial runs (no done.json, fewer
trials than registered) included up to the trial they reached and never beyond: our mean, every
seed's best-so-far (and that trial's return), the spread (:func:`stats.spread`: the range of n
seeds below 5 seeds), the prediction interval for one new seed (:func:`stats.prediction_interval`)
and whether the original's value lies inside it.
"""

from __future__ import annotations

import dataclasses
import html
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pets_core.analysis.aggregate import RunDataError, find_run_dirs, load_run, parse_run_dir
from pets_core.analysis.preregistration import (
    TRIALS_KEY,
    Group,
    Preregistration,
    RefusedRun,
    read,
    seeds_text,
)
from pets_core.analysis.reference import ORIGINAL, X_CONVENTION, paper_task_hor
from pets_core.analysis.reference import REFERENCE_VARIANT as VARIANT
from pets_core.analysis.settings import describe, differences, paper_flat
from pets_core.analysis.stats import (
    CI_METHOD,
    MIN_SEEDS_FOR_BAND,
    PI_METHOD,
    prediction_interval,
    spread,
)
from pets_core.analysis.tables import duration, html_page, html_table
from pets_core.config import flatten
from pets_core.results.rundir import DONE_JSON


@dataclasses.dataclass(frozen=True)
class Run:
    """One committed run, accepted at its group's settings."""

    path: Path
    env: str
    seed: int
    group: Group
    registered: int
    """The MPC trials its group registered it for."""
    curve: pd.DataFrame
    """aggregate.load_run rows: iteration, return, best_so_far, ... (one per trial it ran)."""
    done: Mapping[str, Any] | None
    """done.json (device, wall_s), None while the run is partial."""

    @property
    def trials(self) -> int:
        return len(self.curve)

    @property
    def partial(self) -> bool:
        return self.done is None or self.trials < self.registered


@dataclasses.dataclass(frozen=True)
class Block:
    """One table block: an env at the paper's settings, or a group with its own settings."""

    env: str
    group: Group | None
    """None: the paper-setting groups of ``env``; else the group with its own directory."""
    groups: tuple[Group, ...]
    runs: tuple[Run, ...]
    registered: int
    """The longest registered run of the block (its report trials stop there)."""
    report_trials: tuple[int, ...]
    group_trials: Mapping[str, int]
    """Group name -> the MPC trials it registered for this env."""
    settings: str
    """The block's settings against the paper's, the trial count aside, in words."""

    @property
    def title(self) -> str:
        return self.env if self.group is None else f"{self.env}, {self.group.name}"


def load(
    config: Mapping[str, Any], source: str, fidelity_root: Path | str, envs: Sequence[str]
) -> list[Block]:
    """A fidelity config's blocks: its pre-registration read, every committed run checked
    (:class:`RefusedRun`) and sorted into blocks."""
    prereg = read(config, source)
    return blocks(prereg, collect(prereg, fidelity_root), envs)


def collect(prereg: Preregistration, fidelity_root: Path | str) -> list[Run]:
    """Every run under the groups' directories, checked; all refusals raised together
    (:class:`RefusedRun`, one line per run)."""
    runs, refused = [], []
    for own, root in prereg.roots(fidelity_root).items():
        if not Path(root).is_dir():
            continue
        for run_dir in find_run_dirs(root):
            try:
                runs.append(_accepted(prereg, run_dir, own))
            except RefusedRun as err:
                refused.append(str(err))
    if refused:
        raise RefusedRun("\n".join(refused))
    return runs


def _accepted(prereg: Preregistration, run_dir: Path, own: str | None) -> Run:
    env, variant, seed = parse_run_dir(run_dir)
    if variant != VARIANT:
        raise RefusedRun(f"refused run {run_dir}: variant {variant}, a fidelity run is {VARIANT}")
    group = prereg.group_of(env, seed, own_directory=own)
    prereg.check(run_dir, group, env, seed)
    try:
        curve = load_run(run_dir)
    except RunDataError as err:
        raise RefusedRun(f"refused run {run_dir}: {err}") from None
    done_path = run_dir / DONE_JSON
    done = json.loads(done_path.read_text()) if done_path.is_file() else None
    return Run(run_dir, env, seed, group, prereg.trials(group, env), curve, done)


def blocks(prereg: Preregistration, runs: Sequence[Run], envs: Sequence[str]) -> list[Block]:
    """Per env: its paper-setting block, then one block per own-settings group running it.

    A block's groups keep only the seeds they own (a seed registered twice belongs to the first
    group, :meth:`Preregistration.group_of`), in seed order; groups owning none are left out.
    """
    out = []
    for env in envs:
        owned = []
        for group in prereg.groups:
            seeds = tuple(
                s
                for s in group.seeds
                if prereg.group_of(env, s, own_directory=_directory(group)) == group
            )
            if env in group.envs and seeds:
                owned.append(dataclasses.replace(group, seeds=seeds))
        owned.sort(key=lambda g: (g.own_directory, min(g.seeds)))
        for key in dict.fromkeys(map(_directory, owned)):
            members = tuple(g for g in owned if _directory(g) == key)
            names = {g.name for g in members}
            group_trials = {g.name: prereg.trials(g, env) for g in members}
            registered = max(group_trials.values())
            differs = differences(
                flatten(prereg.settings(members[0], env, 1)), paper_flat(env, VARIANT)
            )
            out.append(
                Block(
                    env=env,
                    group=members[0] if key else None,
                    groups=members,
                    runs=tuple(
                        sorted(
                            (r for r in runs if r.env == env and r.group.name in names),
                            key=lambda r: r.seed,
                        )
                    ),
                    registered=registered,
                    report_trials=tuple(
                        t for t in prereg.report_trials.get(env, ()) if t <= registered
                    ),
                    group_trials=group_trials,
                    settings=describe({k: v for k, v in differs.items() if k != TRIALS_KEY}),
                )
            )
    return out


def _directory(group: Group) -> str | None:
    """The group's own directory's name, None for the paper-setting runs' directory."""
    return group.name if group.own_directory else None


@dataclasses.dataclass(frozen=True)
class Cell:
    """Our runs at one report trial of a block, beside the published values there."""

    block: Block
    trials: int
    runs: tuple[Run, ...]
    """The runs that reached ``trials``."""
    best_so_far: np.ndarray  # [n] in runs' order
    returns: np.ndarray  # [n] the trial's own return
    reference: Mapping[str, float]
    """label -> the published curve's best-so-far at this trial."""

    @property
    def mean(self) -> float:
        return float(self.best_so_far.mean()) if self.best_so_far.size else math.nan

    @property
    def spread(self) -> tuple[str, float, float]:
        return spread(self.best_so_far)

    @property
    def prediction(self) -> tuple[float, float]:
        return prediction_interval(self.best_so_far)

    @property
    def original_inside(self) -> bool | None:
        """Whether the original's value lies in the prediction interval (None: no value or PI)."""
        low, high = self.prediction
        value = self.reference.get(ORIGINAL)
        if value is None or math.isnan(low):
            return None
        return bool(low <= value <= high)


def cells(block: Block, reference: Mapping[str, Sequence[Mapping]]) -> list[Cell]:
    out = []
    for trials in block.report_trials:
        reached = tuple(r for r in block.runs if r.trials >= trials)
        at = [r.curve.iloc[trials - 1] for r in reached]
        out.append(
            Cell(
                block=block,
                trials=trials,
                runs=reached,
                best_so_far=np.array([row["best_so_far"] for row in at], dtype=float),
                returns=np.array([row["return"] for row in at], dtype=float),
                reference={
                    p["label"]: float(p["return"])
                    for p in reference.get(block.env, [])
                    if p["trials"] == trials
                },
            )
        )
    return out


def to_frame(all_cells: Sequence[Cell]) -> pd.DataFrame:
    """One row per cell (CSV): the statistics, the published values and every seed's values."""
    rows = []
    for cell in all_cells:
        name, low, high = cell.spread
        pi_low, pi_high = cell.prediction
        row = {
            "env": cell.block.env,
            "block": cell.block.title,
            "trials": cell.trials,
            "mpc_env_steps": cell.trials * paper_task_hor(cell.block.env),
            "seeds": len(cell.runs),
            "partial_seeds": sum(r.partial for r in cell.runs),
            "mean": cell.mean,
            "spread": name,
            "spread_low": low,
            "spread_high": high,
            "pi_low": pi_low,
            "pi_high": pi_high,
            **cell.reference,
            "original_inside_pi": cell.original_inside,
        }
        for run, best, ret in zip(cell.runs, cell.best_so_far, cell.returns, strict=True):
            row[f"best_so_far_seed{run.seed}"] = best
            row[f"return_seed{run.seed}"] = ret
        rows.append(row)
    return pd.DataFrame(rows)


def intro(labels: Sequence[str]) -> str:
    """What the table shows and how, in words (the methods named once)."""
    others = [label for label in labels if label != ORIGINAL]
    return (
        f"Best-so-far return of {VARIANT} at the trials pre-registered in the fidelity config "
        "(preregistered.report_trials), reported whatever they show. Ours: the mean over the seeds "
        "that reached the trial (n; a partial run counts up to the trial it reached, never "
        "beyond), every seed's value with that trial's own return in brackets, and their spread: "
        f"the range of the n seeds below {MIN_SEEDS_FOR_BAND} seeds, from {MIN_SEEDS_FOR_BAND} "
        f'seeds the {CI_METHOD}. PI: the {PI_METHOD}; "{ORIGINAL} in PI" says whether the '
        f"original's value lies inside it. The {ORIGINAL}'s"
        + (f" and the {' and '.join(others)}'s" if others else "")
        + " values are single runs, digitized trial by trial from the published PNGs "
        "(config/reference_curves.yaml, pets_core.analysis.digitize; each fit's residual is under "
        f"a pixel). {X_CONVENTION}."
    )


def header(labels: Sequence[str]) -> list[str]:
    others = [label for label in labels if label != ORIGINAL]
    return [
        "Trial (MPC steps)",
        "n",
        "Ours: mean",
        "Spread",
        "PI, one new seed",
        ORIGINAL,
        f"{ORIGINAL} in PI",
        *others,
        "Each seed: best-so-far (trial's return)",
    ]


def rows(block_cells: Sequence[Cell], labels: Sequence[str]) -> list[list[str]]:
    others = [label for label in labels if label != ORIGINAL]
    out = []
    for cell in block_cells:
        block = cell.block
        x = f"{cell.trials} ({cell.trials * paper_task_hor(block.env):,})"
        refs = [_num(cell.reference.get(ORIGINAL)), _inside(cell)]
        refs += [_num(cell.reference.get(label)) for label in others]
        if not cell.runs:
            longest = max((r.trials for r in block.runs), default=0)
            ours = (
                f"not reached yet (longest run: {longest} of {block.registered} trials)"
                if block.runs
                else "not run yet"
            )
            out.append([x, "0", ours, "–", "–", *refs, "–"])
            continue
        name, low, high = cell.spread
        pi_low, pi_high = cell.prediction
        partial = sum(r.partial for r in cell.runs)
        seeds = "; ".join(
            f"{r.seed}{' (partial)' if r.partial else ''}: {_num(best)} ({_num(ret)})"
            for r, best, ret in zip(cell.runs, cell.best_so_far, cell.returns, strict=True)
        )
        out.append(
            [
                x,
                f"{len(cell.runs)}" + (f" ({partial} partial)" if partial else ""),
                _num(cell.mean),
                f"{name} [{_num(low)}, {_num(high)}]",
                "–" if math.isnan(pi_low) else f"[{_num(pi_low)}, {_num(pi_high)}]",
                *refs,
                seeds,
            ]
        )
    return out


def block_line(block: Block, has_reference: bool) -> str:
    """The block's settings, every group's seeds and state, device and wall time; and, for an env
    without a published curve, that none exists."""
    if block.group is None:
        paper_trials = paper_flat(block.env, VARIANT)[TRIALS_KEY]
        parts = [f"{block.settings} but the trial count (the paper: {paper_trials} trials)"]
    else:
        parts = [f"{block.group.source}: {block.settings}"]
    parts += [group_state(block, group) for group in block.groups]
    if not has_reference:
        parts.append(f"no published reference curve exists for {block.env}")
    return "; ".join(parts)


def group_state(block: Block, group: Group) -> str:
    """'seeds 4, 5, 6 (preregistered.jump, 25 trials): 4 complete (device cpu, wall time 2.1 h
    per run), 5 partial (12 of 25 trials), 6 not committed yet'."""
    registered = block.group_trials[group.name]
    runs = {r.seed: r for r in block.runs if r.group.name == group.name}
    complete = [s for s in group.seeds if s in runs and not runs[s].partial]
    partial = [runs[s] for s in group.seeds if s in runs and runs[s].partial]
    missing = [s for s in group.seeds if s not in runs]
    state = []
    if complete:
        done = [runs[s].done for s in complete]
        devices = sorted({str(d.get("device") or "unknown") for d in done})
        walls = [float(d["wall_s"]) for d in done if d.get("wall_s") is not None]
        wall = duration(float(np.mean(walls)) / 3600) if walls else "unknown"
        which = "all" if len(complete) == len(group.seeds) else seeds_text(complete)
        state.append(f"{which} complete (device {', '.join(devices)}, wall time {wall} per run)")
    state += [f"{r.seed} partial ({r.trials} of {registered} trials)" for r in partial]
    if len(missing) == len(group.seeds):
        state.append("none committed yet")
    elif missing:
        state.append(f"{seeds_text(missing)} not committed yet")
    head = f"seeds {seeds_text(group.seeds)} ({group.source}, {registered} trials)"
    return f"{head}: {', '.join(state)}"


Rendered = tuple[str, str, list[str], list[list[str]]]
"""One block as text: (title, line under it, header, rows)."""


def render(
    all_blocks: Sequence[Block],
    reference: Mapping[str, Sequence[Mapping]],
) -> tuple[str, list[Rendered]]:
    """(intro, [(title, line, header, rows)]) for :func:`to_markdown` and :func:`to_html`."""
    labels = list(dict.fromkeys(p["label"] for points in reference.values() for p in points))
    if ORIGINAL not in labels:
        labels.insert(0, ORIGINAL)
    out = []
    for block in all_blocks:
        line = block_line(block, bool(reference.get(block.env)))
        out.append((block.title, line, header(labels), rows(cells(block, reference), labels)))
    return intro(labels), out


def to_markdown(intro_text: str, per_block: list[Rendered]) -> str:
    out = [intro_text, ""]
    for title, line, head, body in per_block:
        out += [f"**{title}**: {line}", "", "| " + " | ".join(head) + " |"]
        out.append("|" + "---|" * len(head))
        out += ["| " + " | ".join(cells) + " |" for cells in body]
        out.append("")
    return "\n".join(out)


def to_html(intro_text: str, per_block: list[Rendered]) -> str:
    body = [f"<p>{html.escape(intro_text)}</p>"]
    for title, line, head, rows_ in per_block:
        body += [f"<h4>{html.escape(title)}</h4>", f"<p>{html.escape(line)}</p>"]
        body.append(html_table(head, rows_))
    return html_page(body)


def _num(value: float | None) -> str:
    return "–" if value is None or math.isnan(value) else f"{value:.1f}"


def _inside(cell: Cell) -> str:
    inside = cell.original_inside
    if inside is None:
        return "–"
    if inside:
        return "yes"
    return "no: below" if cell.reference[ORIGINAL] < cell.prediction[0] else "no: above"

"""What a run shows while it runs: progress within an iteration, one line per iteration, ETAs.

* On a terminal (stderr is a tty): a tqdm bar over the iteration's env steps, with the planning
  rate (s/action), the iteration's ETA (tqdm's) and the run's ETA; above it, one summary line per
  iteration that stays in the scrollback.
* In a log file (Snakemake's per-job log, ``> log 2>&1``): no carriage returns; a plain progress
  line every ``every_s`` seconds and the same summary line per iteration.
* On ``status`` (the workflow's terminal, ``mbexp --status-fd``): one line per iteration that
  names the run, so that many runs' lines can share one terminal (:meth:`Progress.status_line`).

ETAs: the iteration's = its remaining steps x its mean seconds per step so far (+ the previous
iteration's training time, as training follows acting); the run's = that + the remaining
iterations x the last complete iteration's wall time (acting + training), which is an
underestimate when training time grows with the data.
"""

from __future__ import annotations

import math
import shlex
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any

from pets_core.results.naming import experiment_name
from pets_core.results.reader import DamagedFile
from pets_core.results.rundir import RunDir
from pets_core.results.store import runs_page

PLAIN_EVERY_S = 30.0
"""Seconds between progress lines in a log file."""


def hms(seconds: float) -> str:
    """12.3 -> '0:12', 3723 -> '1:02:03'; nan / inf -> '?'."""
    if not math.isfinite(seconds):
        return "?"
    s = round(max(seconds, 0.0))
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def _num(x: float, width: int = 8, digits: int = 2) -> str:
    return f"{'-':>{width}}" if x is None or not math.isfinite(x) else f"{x:{width}.{digits}f}"


class Progress:
    """Progress of one run's MPC iterations; see the module docstring for what it shows.

    Call ``start_iteration(i)``, ``step(act_s)`` after each env step, ``training(n)`` before the
    model trains, ``end_iteration(...)`` once the iteration is complete, ``close()`` at the end.
    """

    def __init__(
        self,
        *,
        label: str,
        ntrain_iters: int,
        steps_per_iter: int,
        loss_name: str,
        live: bool | None = None,
        enabled: bool = True,
        every_s: float = PLAIN_EVERY_S,
        out: IO[str] | None = None,
        err: IO[str] | None = None,
        status: IO[str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label, self.n, self.T = label, ntrain_iters, steps_per_iter
        self.loss_name = loss_name
        self.out, self.err, self.status = out or sys.stdout, err or sys.stderr, status
        self.live = self.err.isatty() if live is None else live
        self.enabled, self.every_s, self.clock = enabled, every_s, clock
        self.i, self.t, self.act_s = 0, 0, 0.0
        self.t0 = self.last_line = clock()
        self.last_iter_s = math.nan  # wall time of the last complete iteration
        self.last_train_s = 0.0
        self.bar: Any = None

    # ------------------------------------------------------------------ estimates
    @property
    def s_per_action(self) -> float:
        return self.act_s / self.t if self.t else math.nan

    def iteration_eta(self) -> float:
        if not self.t:
            return math.nan
        per_step = (self.clock() - self.t0) / self.t
        training = self.last_train_s if self.i < self.n else 0.0  # none after the last
        return (self.T - self.t) * per_step + training

    def run_eta(self) -> float:
        here = self.iteration_eta()
        per_iter = self.last_iter_s
        if not math.isfinite(per_iter) and self.t:  # first iteration: project this one
            per_iter = (self.clock() - self.t0) / self.t * self.T + self.last_train_s
        return here + (self.n - self.i) * per_iter

    # ------------------------------------------------------------------ events
    def start_iteration(self, i: int) -> None:
        self.i, self.t, self.act_s = i, 0, 0.0
        self.t0 = self.last_line = self.clock()
        if self.enabled and self.live:
            from tqdm import tqdm

            self.bar = tqdm(
                total=self.T,
                desc=f"{self.label} iter {i}/{self.n}",
                unit="step",
                file=self.err,
                leave=False,
                dynamic_ncols=True,
                bar_format="{desc}: {n_fmt}/{total_fmt} steps |{bar}| {elapsed}<{remaining}"
                "{postfix}",
            )

    def step(self, act_s: float) -> None:
        """One env step done; ``act_s``: the seconds the controller took to choose its action."""
        self.t += 1
        self.act_s += act_s
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.set_postfix_str(
                f"{self.s_per_action:.3f} s/action, run ETA {hms(self.run_eta())}", refresh=False
            )
            self.bar.update(1)
        elif self.clock() - self.last_line >= self.every_s:
            self.last_line = self.clock()
            print(self.progress_line(), file=self.err, flush=True)

    def progress_line(self) -> str:
        """The plain progress line (log files)."""
        return (
            f"{self.label} iter {self.i}/{self.n} step {self.t}/{self.T}: "
            f"{self.s_per_action:.3f} s/action, iteration ETA {hms(self.iteration_eta())}, "
            f"run ETA {hms(self.run_eta())}"
        )

    def training(self, n_transitions: int) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(f"training the model on {n_transitions} transitions")
        elif self.enabled and not self.live:
            print(
                f"{self.label} iter {self.i}/{self.n}: training on {n_transitions} transitions",
                file=self.err,
                flush=True,
            )

    def end_iteration(
        self,
        *,
        label: str | None = None,
        ret: float,
        best: float,
        train_loss: float,
        s_per_action: float,
        train_s: float,
    ) -> str:
        """Close the iteration's bar and print its summary line (kept in the scrollback).

        ``label``: the seed's name when the bar covers a cohort (it starts the line, and the
        status line names it instead of the bar's label); called once per seed then."""
        self.last_iter_s = self.clock() - self.t0
        self.last_train_s = train_s
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        line = f"{label}  " if label else ""
        line += (
            f"iter {self.i:>{len(str(self.n))}}/{self.n}  return {_num(ret)}  best {_num(best)}  "
            f"{self.loss_name} {_num(train_loss, 9, 4)}  {s_per_action:.3f} s/action  "
            f"{hms(self.last_iter_s)}  run ETA {hms((self.n - self.i) * self.last_iter_s)}"
        )
        print(line, file=self.out, flush=True)
        if self.status is not None:
            print(self.status_line(ret, best, s_per_action, label), file=self.status, flush=True)
        return line

    def status_line(
        self, ret: float, best: float, s_per_action: float, label: str | None = None
    ) -> str:
        """One finished iteration, naming its run (the workflow's terminal), e.g.
        ``cartpole PE-TSinf-CEM seed 2  iter 3/10  return 61.4  best 61.4  0.41 s/action  ETA 4:02``
        (ETA: the remaining iterations x this one's wall time)."""
        return (
            f"{label or self.label}  iter {self.i}/{self.n}  return {_num(ret, 0, 1)}  "
            f"best {_num(best, 0, 1)}  {s_per_action:.2f} s/action  "
            f"ETA {hms((self.n - self.i) * self.last_iter_s)}"
        )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


# ----------------------------------------------------------------------------- workflow end
def workflow_summary(
    run_dirs: Iterable[Path],
    *,
    tracking_uri: str | None,
    out: str,
    runs_root: str,
    configfiles: Iterable[str] = (),
    existing_runs: str | None = None,
) -> str:
    """The closing table of a workflow run: one row per (env, variant) from the runs' done.json,
    then where the results are and how to browse them.

    ``out``: the experiment's folder of tables, figures, logs and report (results/<name>, README
    "Layout"); ``runs_root``: where its runs are; ``existing_runs``: the workflow made figures of
    those runs (the report command then names them too)."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    damaged = []
    for run in map(RunDir, run_dirs):
        try:
            d = run.done()
        except DamagedFile as err:
            damaged.append(f"damaged:  {err}")
            continue
        if d is not None:
            groups.setdefault((d["env"], d["variant"]), []).append(d)
    n_runs = sum(len(g) for g in groups.values())
    rows = [("env", "variant", "seeds", "iterations", "best-so-far mean [min, max]", "wall (sum)")]
    for (env, variant), runs in sorted(groups.items()):
        best = [r["final_best_so_far"] for r in runs]
        iters = sorted({r["iterations"] for r in runs})
        rows.append(
            (
                env,
                variant,
                str(len(runs)),
                str(iters[0]) if len(iters) == 1 else f"{iters[0]}-{iters[-1]}",
                f"{sum(best) / len(best):.2f} [{min(best):.2f}, {max(best):.2f}]",
                hms(sum(r["wall_s"] for r in runs)),
            )
        )
    widths = [max(len(row[k]) for row in rows) for k in range(len(rows[0]))]
    right = (False, False, True, True, True, True)
    table = [
        "  ".join(
            c.rjust(w) if r else c.ljust(w) for c, w, r in zip(row, widths, right, strict=True)
        ).rstrip()
        for row in rows
    ]
    config = "".join(f" --configfile {shlex.quote(c)}" for c in configfiles)
    if existing_runs:
        config += f" --config existing_runs={shlex.quote(existing_runs)}"
    lines = [f"PETS workflow: {n_runs} complete run(s)", *table] if n_runs else []
    lines += damaged
    runs = f"{runs_root}/<env>/<variant>/seed<N>/"
    lines += [
        f"runs:     {runs} (metrics.csv, logs.mat, model.pt, "
        f"train_iter<i>/rollout<j>.mp4; logs in {out}/logs/train/)"
        if not existing_runs
        else f"runs:     {runs} (existing runs: no training)",
        f"tables:   {out}/tables/final_returns.md   figures: {out}/figures/",
    ]
    if tracking_uri:
        if not tracking_uri.startswith(("http://", "https://")):
            lines.append(
                f"MLflow:   mlflow ui --backend-store-uri {shlex.quote(tracking_uri)}, then open"
            )
        else:
            lines.append("MLflow:   open")
        names = [experiment_name(env) for env in sorted({env for env, _ in groups})]
        pages = [f"{runs_page(tracking_uri, n)}  ({n})" for n in names]
        lines += [f"          {page}" for page in pages or [runs_page(tracking_uri, "")]]
    lines.append(f"report:   snakemake --report {shlex.quote(out + '/report.html')}{config}")
    return "\n".join(lines)

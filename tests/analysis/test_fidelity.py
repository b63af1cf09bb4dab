"""The fidelity table and figure on fake committed runs with hand-computed answers, the refusal of
runs at other settings, and partial runs (pets_core.analysis.preregistration / fidelity /
fidelity_figure), read through the repository's own config/fidelity.yaml."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
import scipy.stats
import yaml
from support.runs import fake_fidelity_run

from pets_core.analysis import fidelity
from pets_core.analysis.fidelity_figure import caption, fidelity_figure
from pets_core.analysis.preregistration import PreregistrationError, RefusedRun, read
from pets_core.analysis.stats import prediction_interval, spread
from pets_core.config import build, to_dict

REPO = Path(__file__).parents[2]
CONFIG = yaml.safe_load((REPO / "config/fidelity.yaml").read_text())
SOURCE = "config/fidelity.yaml"
ENVS = ["reacher", "pusher", "halfcheetah"]


def test_prediction_interval_is_the_student_t_interval_for_one_new_seed() -> None:
    # 1, 2, 6: mean 3, sample variance (4 + 1 + 9) / 2 = 7; t(2, 0.975) = 4.3027 (t table)
    assert scipy.stats.t.ppf(0.975, 2) == pytest.approx(4.3027, abs=1e-4)
    half = scipy.stats.t.ppf(0.975, 2) * math.sqrt(7) * math.sqrt(1 + 1 / 3)
    assert prediction_interval(np.array([1.0, 2.0, 6.0])) == pytest.approx((3 - half, 3 + half))
    assert half == pytest.approx(4.30265 * 2.64575 * 1.15470, abs=1e-3)  # 13.1448
    # two seeds 0 and 2: t(1, 0.975) = 12.706, s = sqrt(2)
    assert prediction_interval(np.array([0.0, 2.0])) == pytest.approx(
        (1 - 12.7062 * math.sqrt(2) * math.sqrt(1.5), 1 + 12.7062 * math.sqrt(2) * math.sqrt(1.5)),
        abs=1e-3,
    )
    assert all(math.isnan(v) for v in prediction_interval(np.array([5.0])))


def test_the_spread_is_the_range_below_five_seeds_and_a_ci_from_five() -> None:
    assert spread(np.array([3.0, -1.0, 2.0])) == ("range of 3 seeds", -1.0, 3.0)
    assert spread(np.array([4.0])) == ("range of 1 seed", 4.0, 4.0)
    name, low, high = spread(np.arange(5.0))
    assert name == "95% CI of the mean" and 0.0 <= low < 2.0 < high <= 4.0


def _prereg():
    return read(CONFIG, SOURCE)


def _group(prereg, name):
    return next(g for g in prereg.groups if g.name == name)


def _runs(root: Path) -> Path:
    """Reacher: seeds 1-3 at 17 trials (experiments.fidelity), 4-5 at 25 (preregistered.jump),
    seed 6 partial at 12 of 25 (no done.json); trial t of seed s returns -200 + 10 t + s, except
    seed 5's trial 18 (-300: best-so-far stays at trial 17's -25). Pusher: seeds 1-3 only."""
    prereg = _prereg()
    fid, jump = _group(prereg, "fidelity"), _group(prereg, "jump")

    def returns(seed: int, trials: int) -> list[float]:
        values = [-200.0 + 10 * t + seed for t in range(1, trials + 1)]
        if seed == 5:
            values[17] = -300.0
        return values

    for seed in (1, 2, 3):
        for env in ("reacher", "pusher"):
            fake_fidelity_run(root, prereg.settings(fid, env, seed), returns(seed, 17))
    for seed in (4, 5):
        fake_fidelity_run(root, prereg.settings(jump, "reacher", seed), returns(seed, 25))
    fake_fidelity_run(root, prereg.settings(jump, "reacher", 6), returns(6, 12), done=False)
    return root


REFERENCE = {
    "reacher": [
        {"label": "original TF code", "trials": 8, "return": -100.0},
        {"label": "original TF code", "trials": 18, "return": -48.2},
        {"label": "PyTorch port", "trials": 8, "return": -44.4},
    ]
}


def test_cells_hold_the_runs_that_reached_each_trial_with_hand_computed_statistics(
    tmp_path: Path,
) -> None:
    blocks = fidelity.load(CONFIG, SOURCE, _runs(tmp_path / "fidelity"), ENVS)
    assert [b.title for b in blocks] == ["reacher", "pusher", "halfcheetah", "halfcheetah, reduced"]
    reacher = blocks[0]
    assert reacher.report_trials == (8, 16, 17, 18, 20, 25)  # pre-registered, all of them
    cells = {c.trials: c for c in fidelity.cells(reacher, REFERENCE)}
    assert {t: [r.seed for r in c.runs] for t, c in cells.items()} == {
        8: [1, 2, 3, 4, 5, 6], 16: [1, 2, 3, 4, 5], 17: [1, 2, 3, 4, 5],
        18: [4, 5], 20: [4, 5], 25: [4, 5],
    }  # fmt: skip  # the partial seed 6 (12 trials) only where it got to
    assert cells[8].best_so_far.tolist() == [-119.0, -118.0, -117.0, -116.0, -115.0, -114.0]
    assert cells[8].mean == -116.5
    half = 2.5706 * math.sqrt(3.5) * math.sqrt(1 + 1 / 6)  # t(5, 0.975) from the t table
    assert cells[8].prediction == pytest.approx((-116.5 - half, -116.5 + half), abs=1e-3)
    assert cells[8].original_inside is False  # -100 lies above [-121.7, -111.3]
    assert cells[8].spread[0] == "95% CI of the mean"  # 6 seeds
    assert cells[18].best_so_far.tolist() == [-16.0, -25.0]  # seed 5: trial 17's best
    assert cells[18].returns.tolist() == [-16.0, -300.0]
    assert cells[18].spread == ("range of 2 seeds", -25.0, -16.0)
    assert cells[18].original_inside is True
    assert cells[25].best_so_far.tolist() == [54.0, 55.0]
    frame = fidelity.to_frame([*cells.values()])
    assert frame["seeds"].tolist() == [6, 5, 5, 2, 2, 2]
    assert frame["partial_seeds"].tolist() == [1, 0, 0, 0, 0, 0]
    assert frame["return_seed6"].iloc[0] == -114.0 and np.isnan(frame["return_seed6"].iloc[1])


def test_the_markdown_names_seeds_partial_runs_and_missing_curves(tmp_path: Path) -> None:
    blocks = fidelity.load(CONFIG, SOURCE, _runs(tmp_path / "fidelity"), ENVS)
    text = fidelity.to_markdown(*fidelity.render(blocks, REFERENCE))
    assert "Student-t prediction interval for one new seed" in text
    assert (
        "**reacher**: the paper's settings but the trial count (the paper: 100 trials); "
        "seeds 1, 2, 3 (experiments.fidelity, 17 trials): all complete (device cpu, wall time "
        "1.0 h per run); seeds 4, 5, 6 (preregistered.jump, 25 trials): 4, 5 complete (device "
        "cpu, wall time 1.0 h per run), 6 partial (12 of 25 trials)\n" in text
    )
    assert "| 8 (1,200) | 6 (1 partial) | -116.5 | 95% CI of the mean [" in text
    assert "| [-121.7, -111.3] | -100.0 | no: above | -44.4 | 1: -119.0 (-119.0); " in text
    assert "; 6 (partial): -114.0 (-114.0) |" in text
    assert (
        "| 18 (2,700) | 2 | -20.5 | range of 2 seeds [-25.0, -16.0] | [-119.5, 78.5] | -48.2 | "
        "yes | – | 4: -16.0 (-16.0); 5: -25.0 (-300.0) |" in text
    )
    assert "| 18 (2,700) | 0 | not reached yet (longest run: 17 of 25 trials) |" in text  # pusher
    assert "seeds 4, 5, 6 (preregistered.jump, 25 trials): none committed yet" in text
    assert "| 5 (5,000) | 0 | not run yet |" in text
    assert "| 15 (15,000) | 0 | not run yet |" in text  # the reduced check's own row
    assert text.count("no published reference curve exists for halfcheetah") == 2
    assert "| 17 (2,550) | 3 | -28.0 | range of 3 seeds [-29.0, -27.0] |" in text  # pusher


def _write_config(run_dir: Path, **changes) -> None:
    """Rewrite a run's config.yaml with dotted-path changes (what a run at other settings has)."""
    tree = yaml.safe_load((run_dir / "config.yaml").read_text())
    for path, value in changes.items():
        node = tree
        *parents, leaf = path.split(".")
        for key in parents:
            node = node[key]
        node[leaf] = value
    (run_dir / "config.yaml").write_text(yaml.safe_dump(to_dict(build(tree))))


def _refusal(root: Path) -> str:
    with pytest.raises(RefusedRun) as err:
        fidelity.load(CONFIG, SOURCE, root, ENVS)
    return str(err.value)


def test_a_run_at_other_settings_is_refused_naming_the_run_and_the_first_key(
    tmp_path: Path,
) -> None:
    prereg, root = _prereg(), tmp_path / "fidelity"
    seed4 = fake_fidelity_run(root, prereg.settings(_group(prereg, "jump"), "reacher", 4), [-1.0])
    _write_config(seed4, **{"ctrl_cfg.opt_cfg.cfg.popsize": 50, "exp_cfg.exp_cfg.ntrain_iters": 1})
    assert _refusal(root) == (
        f"refused run {seed4}: its config.yaml differs from config/fidelity.yaml + "
        "preregistered.jump at ctrl_cfg.opt_cfg.cfg.popsize: 50 != 400 (the run's value first)"
    )  # reacher's paper popsize is 400; the key sorted first is named, one line per run
    _write_config(seed4, **{"ctrl_cfg.opt_cfg.cfg.popsize": 400})
    trials = "at exp_cfg.exp_cfg.ntrain_iters: {} != 25 (the run's value first)"
    assert _refusal(root).endswith(trials.format(1))
    (seed4 / "done.json").unlink()  # a partial run may be registered for fewer trials ...
    assert [r.seed for b in fidelity.load(CONFIG, SOURCE, root, ENVS) for r in b.runs] == [4]
    _write_config(seed4, **{"exp_cfg.exp_cfg.ntrain_iters": 30})  # ... never for more
    assert _refusal(root).endswith(trials.format(30))


def test_unregistered_misplaced_and_unreadable_runs_are_refused_one_line_each(
    tmp_path: Path,
) -> None:
    prereg, root = _prereg(), tmp_path / "fidelity"
    fid, reduced = _group(prereg, "fidelity"), _group(prereg, "reduced")
    seed7 = fake_fidelity_run(root, prereg.settings(fid, "reacher", 7), [-1.0])
    paper_in_reduced = fake_fidelity_run(
        tmp_path / "reduced", prereg.settings(fid, "halfcheetah", 1), [1.0]
    )
    reduced_in_fidelity = fake_fidelity_run(root, prereg.settings(reduced, "halfcheetah", 2), [1.0])
    no_config = fake_fidelity_run(root, prereg.settings(fid, "pusher", 1), [-1.0])
    (no_config / "config.yaml").unlink()
    other_variant = fake_fidelity_run(
        root, prereg.settings(fid, "pusher", 2), [-1.0], variant="D-E-CEM"
    )
    lines = _refusal(root).splitlines()
    assert sorted(lines) == sorted(
        [
            f"refused run {paper_in_reduced}: its config.yaml differs from config/fidelity.yaml "
            "+ preregistered.reduced at ctrl_cfg.opt_cfg.cfg.num_elites: 50 != 5 (the run's "
            "value first)",
            f"refused run {reduced_in_fidelity}: its config.yaml differs from "
            "config/fidelity.yaml + preregistered.halfcheetah at ctrl_cfg.opt_cfg.cfg.num_elites: "
            "5 != 50 (the run's value first)",
            f"refused run {seed7}: reacher seed 7 is not a pre-registered run here "
            "(config/fidelity.yaml: preregistered.jump: reacher seeds 4, 5, 6; "
            "experiments.fidelity: reacher seeds 1, 2, 3)",
            f"refused run {no_config}: no config.yaml, so its settings cannot be checked",
            f"refused run {other_variant}: variant D-E-CEM, a fidelity run is PE-TSinf-CEM",
        ]
    )


def test_a_malformed_preregistered_block_names_the_group() -> None:
    bad = {**CONFIG, "preregistered": {**CONFIG["preregistered"], "x": {"envs": ["reacher"]}}}
    bad["preregistered"]["x"]["seeds"] = [9]
    bad["preregistered"]["x"]["overrides"] = {"ctrl_cfg.opt_cfg.cfg.popsiz": 3}
    with pytest.raises(PreregistrationError, match=r"^config/fidelity.yaml: preregistered.x on "
                       r"reacher: .*'ctrl_cfg.opt_cfg.cfg.popsiz'"):  # fmt: skip
        read(bad, SOURCE)


def test_the_figure_draws_whole_reference_curves_our_runs_and_their_ends(tmp_path: Path) -> None:
    blocks = fidelity.load(CONFIG, SOURCE, _runs(tmp_path / "fidelity"), ["reacher", "halfcheetah"])
    reference = {
        "reacher": [
            {"label": "original TF code", "trials": t, "return": -100.0 + t} for t in range(1, 101)
        ]
    }
    text = caption(blocks, reference)
    fig = fidelity_figure(blocks, reference, caption_text=text)
    top_reacher, top_cheetah, low_reacher, low_cheetah = fig.axes
    for ax in (top_reacher, low_reacher):  # the same reference in both rows, all 100 trials
        black = [line for line in ax.lines if line.get_color() == "black"]
        assert [list(line.get_xdata()) for line in black] == [list(range(1, 101))]
        assert ax.get_xlim() == (0, 101)
    seeds = [line for line in top_reacher.lines if line.get_linewidth() == 0.7 and
             line.get_color() != "black"]  # fmt: skip
    assert sorted(int(line.get_xdata()[-1]) for line in seeds) == [12, 17, 17, 17, 25, 25]
    assert [line.get_linestyle() for line in seeds if line.get_xdata()[-1] == 12] == ["--"]
    ends = [line for line in top_reacher.lines if line.get_marker() == "o"]
    open_ends = [line.get_xdata()[0] for line in ends if line.get_markerfacecolor() == "white"]
    assert len(ends) == 6 and open_ends == [12]
    (mean,) = [line for line in top_reacher.lines if line.get_linewidth() == 1.8]
    (low_mean,) = [line for line in low_reacher.lines if line.get_linewidth() == 1.8]
    assert mean.get_ydata()[17] == -20.5 and low_mean.get_ydata()[17] == -158.0  # trial 18
    assert mean.get_ydata()[7] == -116.5  # trial 8: all six seeds
    (last,) = [line for line in top_reacher.lines if line.get_linestyle() == ":"]
    assert list(last.get_xdata()) == [25, 25]
    for ax in (top_cheetah, low_cheetah):
        assert [t.get_text() for t in ax.texts] == ["no runs yet\nno published reference curve"]
    fig.canvas.draw()  # the empty panel's x-label level with the others' (it sat higher)
    heights = {ax.xaxis.label.get_window_extent().y0 for ax in (low_reacher, low_cheetah)}
    assert len(heights) == 1
    shown = "".join(t.get_text() for t in fig.texts).replace("\n", " ")
    assert "a single run each, digitized trial by trial" in shown
    assert "seeds 4, 5, 6 (preregistered.jump, 25 trials): 4, 5 complete" in shown
    assert "No published reference curve exists for halfcheetah." in shown
    assert text.splitlines()[-1].startswith("halfcheetah, reduced (the paper's settings except ")
    plt.close(fig)

"""What each experiment ran: its resolved config against the paper's defaults.

The paper's defaults for an (env, variant) are ``config/pets/default.yaml`` +
``config/envs/{env}.yaml`` with the variant applied (:func:`pets_core.config.load_config`
without overrides). A run's resolved config is its ``config.yaml``. Every leaf that differs
(the seed aside) is a deviation from the paper's settings, and the report, the figure captions
and the tables say so.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from pets_core.config import ConfigError, build, flatten, load_config
from pets_core.config.variants import parse_variant

IDENTITY = ("env", "variant", "seed")
"""Leaves that name the run rather than configure it."""
KEY_SETTINGS = {
    "exp_cfg.exp_cfg.ntrain_iters": "trials",
    "exp_cfg.sim_cfg.task_hor": "task horizon",
    "ctrl_cfg.prop_cfg.model_init_cfg.hidden_dims": "hidden layers",
    "ctrl_cfg.prop_cfg.model_init_cfg.num_nets": "ensemble",
    "ctrl_cfg.prop_cfg.npart": "particles",
    "ctrl_cfg.opt_cfg.plan_hor": "plan horizon",
    "ctrl_cfg.opt_cfg.cfg.popsize": "popsize",
    "ctrl_cfg.opt_cfg.cfg.num_elites": "elites",
    "ctrl_cfg.opt_cfg.cfg.max_iters": "CEM iters",
    "ctrl_cfg.prop_cfg.model_train_cfg.epochs": "epochs",
}
"""The settings a reader checks first (short names for table headers), in this order."""


def paper_flat(env: str, variant: str) -> dict[str, Any]:
    """The paper's settings for ``env`` and ``variant`` as dotted path -> value."""
    v = parse_variant(variant)
    ca = [("model-type", v.model), ("prop-type", v.prop), ("opt-type", v.opt)]
    return flatten(load_config(env, ca))


def run_flat(run_dir: Path | str) -> dict[str, Any] | None:
    """A run's resolved config.yaml as dotted path -> value, or None when it has none.

    A config.yaml written before a setting existed lacks that leaf: it is read through the
    config tree, so the leaf takes its default (what that run did). One the tree does not accept
    (someone else's) is taken as written."""
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        return None
    tree = yaml.safe_load(path.read_text()) or {}
    try:
        return flatten(build(tree))
    except ConfigError:
        return flatten(tree)


def differences(flat: Mapping[str, Any], paper: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Dotted path -> (value, paper's value) for every setting that differs (identity aside)."""
    return {
        key: (flat.get(key), paper.get(key))
        for key in sorted(set(flat) | set(paper))
        if key not in IDENTITY and flat.get(key) != paper.get(key)
    }


def experiments(run_dirs: Iterable[Path | str]) -> list[dict[str, Any]]:
    """Per (env, variant): seeds, resolved settings and their differences from the paper.

    Seeds of one experiment are expected to share their settings; when they do not, the
    experiment is listed once per distinct config (``seeds`` says which).
    """
    from pets_core.analysis.aggregate import parse_run_dir

    groups: dict[tuple[str, str, str], dict[str, Any]] = {}
    for run_dir in run_dirs:
        env, variant, seed = parse_run_dir(run_dir)
        flat = run_flat(run_dir)
        settings = None if flat is None else {k: v for k, v in flat.items() if k not in IDENTITY}
        key = (env, variant, yaml.safe_dump(settings, sort_keys=True))
        group = groups.setdefault(
            key, {"env": env, "variant": variant, "seeds": [], "settings": settings}
        )
        group["seeds"].append(seed)
    return [
        experiment(env, variant, group["seeds"], group["settings"])
        for (env, variant, _), group in sorted(groups.items())
    ]


def experiment(
    env: str, variant: str, seeds: Iterable[int], flat: Mapping[str, Any] | None
) -> dict[str, Any]:
    """One experiment's row: its seeds, settings, the paper's and the differences."""
    paper = paper_flat(env, variant)
    settings = None if flat is None else {k: v for k, v in flat.items() if k not in IDENTITY}
    return {
        "env": env,
        "variant": variant,
        "seeds": sorted(seeds),
        "settings": settings,
        "paper": {k: v for k, v in paper.items() if k not in IDENTITY},
        "differences": None if settings is None else differences(settings, paper),
    }


def note(rows: list[dict[str, Any]]) -> str:
    """Every experiment's settings in one sentence, experiments with the same settings grouped."""
    groups: dict[tuple[str, str], list[str]] = {}
    for row in rows:
        groups.setdefault((row["env"], describe(row["differences"])), []).append(row["variant"])
    return "; ".join(
        f"{env} {', '.join(dict.fromkeys(variants))}: {text}"
        for (env, text), variants in groups.items()
    )


def describe(differs: Mapping[str, tuple[Any, Any]] | None) -> str:
    """One line: 'the paper's settings' or 'the paper's except popsize 50 (paper 400), ...'."""
    if differs is None:
        return "settings unknown (no config.yaml)"
    if not differs:
        return "the paper's settings"
    parts = [f"{_short(k)} {_plain(v)} (paper {_plain(p)})" for k, (v, p) in differs.items()]
    return "the paper's settings except " + ", ".join(parts)


def to_html(rows: list[dict[str, Any]]) -> str:
    """A standalone HTML page: one table of key settings, then every difference per experiment."""
    head = ["Env", "Variant", "Seeds", *KEY_SETTINGS.values(), "Other differences"]
    lines = [
        "<!DOCTYPE html>",
        '<html><head><meta charset="utf-8"><title>Configuration</title>',
        f"<style>{_CSS}</style></head><body>",
        "<h3>Resolved configuration of every experiment</h3>",
        "<p>Each run's own <code>config.yaml</code> against the paper's defaults "
        "(<code>config/pets/default.yaml</code> + <code>config/envs/{env}.yaml</code>, variant "
        "applied). <b>Bold</b>: differs from the paper (paper's value in brackets).</p>",
        '<div class="wide"><table><thead><tr>'
        + "".join(f"<th>{html.escape(h)}</th>" for h in head)
        + "</tr>",
        "</thead><tbody>",
    ]
    for row in rows:
        differs = row["differences"]
        settings = row["settings"] or {}
        cells = [row["env"], row["variant"], _seeds(row["seeds"])]
        out = [f"<td>{html.escape(str(c))}</td>" for c in cells]
        for path in KEY_SETTINGS:
            if row["settings"] is None:
                out.append("<td>?</td>")
            elif differs and path in differs:
                value, paper = differs[path]
                out.append(f"<td><b>{_value(value)}</b> ({_value(paper)})</td>")
            else:
                out.append(f"<td>{_value(settings.get(path))}</td>")
        if differs is None:
            note = "unknown (no config.yaml)"
        else:
            others = {k: v for k, v in differs.items() if k not in KEY_SETTINGS}
            note = "; ".join(
                f"{_short(k)} {_plain(v)} ({_plain(p)})" for k, (v, p) in others.items()
            )
        out.append(f"<td>{html.escape(note or 'none')}</td>")
        lines.append("<tr>" + "".join(out) + "</tr>")
    lines.append("</tbody></table></div>")
    for row in rows:
        lines.append(
            f"<details><summary>{html.escape(row['env'])} {html.escape(row['variant'])}, "
            f"seeds {_seeds(row['seeds'])}: every resolved setting</summary><table>"
            "<tr><th>Setting</th><th>This experiment</th><th>Paper</th></tr>"
        )
        settings, differs = row["settings"], row["differences"] or {}
        for path in sorted(set(settings or {}) | set(row["paper"])):
            value = "?" if settings is None else _value(settings.get(path))
            mark = ("<b>", "</b>") if path in differs else ("", "")
            lines.append(
                f"<tr><td><code>{html.escape(path)}</code></td><td>{mark[0]}{value}{mark[1]}</td>"
                f"<td>{_value(row['paper'].get(path))}</td></tr>"
            )
        lines.append("</table></details>")
    lines.append("</body></html>")
    return "\n".join(lines) + "\n"


def to_markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["| Env | Variant | Seeds | Settings |", "|---|---|---|---|"]
    for row in rows:
        lines.append(
            f"| {row['env']} | {row['variant']} | {_seeds(row['seeds'])} | "
            f"{describe(row['differences'])} |"
        )
    return "\n".join(lines) + "\n"


def _short(path: str) -> str:
    return KEY_SETTINGS.get(path, path.rsplit(".", 1)[-1])


def _value(value: Any) -> str:
    """A setting's value for HTML."""
    return html.escape(_plain(value))


def _plain(value: Any) -> str:
    """[500, 500, 500] -> '3 x 500', [1e-4, 2.5e-4] -> '[0.0001, 0.00025]', others as str."""
    if isinstance(value, list):
        distinct = len(set(value)) > 1
        return f"[{', '.join(map(str, value))}]" if distinct else _dims(value)
    return str(value)


def _dims(value: list) -> str:
    return f"{len(value)} x {value[0]}" if value else "none"


def _seeds(seeds: list[int]) -> str:
    return ", ".join(map(str, seeds))


_CSS = """
body { font-family: system-ui, sans-serif; font-size: 13px; margin: 0.8em; }
.wide { max-width: 100%; overflow-x: auto; }
table { border-collapse: collapse; margin: 0.5em 0 1em; }
th, td { border: 1px solid #ccc; padding: 2px 5px; text-align: left; vertical-align: top; }
th { background: #f2f2f2; }
td:nth-child(2) { white-space: nowrap; }
.wide td:last-child { overflow-wrap: anywhere; min-width: 10em; }
details { margin: 0.3em 0; }
"""

"""Markdown tables from compare_ours.py's ours.npz and compare_peer.py's peer.json (any venv).

python bench/mbrl_lib_peer/summarize.py --dir DIR
"""

import argparse
import csv
import json
import pathlib

import numpy as np


def mean_sd(values: list[float]) -> str:
    return (
        f"{np.mean(values):.2f} ± {np.std(values, ddof=1):.2f}"
        if len(values) > 1
        else (f"{values[0]:.2f}")
    )


def fit_table(ours: dict, peer: dict) -> list[str]:
    seeds = sorted({int(k.split("_")[1][1:]) for k in ours if k.startswith("fit_s")})
    lines = [
        "| holdout | training calls | metric | pets_core (5 epochs a call) | mbrl-lib aligned "
        "(5 a call) | mbrl-lib defaults (12 a call, 7 members) |",
        "|---|---|---|---|---|---|",
    ]
    for hold in ("random", "gait"):
        for call in (1, 2, 3):
            for metric in ("nll", "mse", "mse_dim0"):
                row = [float(ours[f"fit_s{s}_{5 * call}ep_{hold}_{metric}"]) for s in seeds]
                al = [peer["fit_aligned"][f"s{s}_call{call}_{hold}_{metric}"] for s in seeds]
                de = [peer["fit_defaults"][f"s{s}_call{call}_{hold}_{metric}"] for s in seeds]
                cells = " | ".join(mean_sd(v) for v in (row, al, de))
                lines.append(f"| {hold} | {call} | {metric} | {cells} |")
    return lines


def column(path: pathlib.Path, key: str) -> list[float]:
    if not path.exists():
        return []
    with path.open() as f:
        return [float(row[key]) for row in csv.DictReader(f)]


def curves_table(peer_out: pathlib.Path, ours: pathlib.Path, seeds, trials: int) -> list[str]:
    head = "| run | seed | " + " | ".join(str(t) for t in range(1, trials + 1)) + " | best |"
    lines = [head, "|---|---|" + "---|" * (trials + 1)]
    for name, folder, file, key in [
        ("pets_core", ours, "metrics.csv", "return"),
        ("mbrl-lib 0.2.0", peer_out, "results.csv", "episode_reward"),
    ]:
        for seed in seeds:
            got = column(folder / f"seed{seed}" / file, key)[:trials]
            cells = [f"{r:.0f}" for r in got] + ["…"] * (trials - len(got))
            best = f"{max(got):.0f}" if got else ""
            lines.append(f"| {name} | {seed} | " + " | ".join(cells) + f" | {best} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=pathlib.Path)
    parser.add_argument("--curves", nargs=2, type=pathlib.Path, metavar=("PEER_OUT", "OUR_RUNS"))
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    parser.add_argument("--trials", type=int, default=10)
    args = parser.parse_args()
    if args.curves:
        print("\n".join(curves_table(*args.curves, args.seeds, args.trials)))
    if not args.dir:
        return
    ours = dict(np.load(args.dir / "ours.npz"))
    peer = json.loads((args.dir / "peer.json").read_text())
    print("\n".join(fit_table(ours, peer)))
    print()
    print(
        json.dumps(
            {k: v for k, v in peer.items() if k not in ("fit_aligned", "fit_defaults")}, indent=1
        )
    )


if __name__ == "__main__":
    main()

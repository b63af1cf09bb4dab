"""Markdown tables from compare_ours.py's ours.npz and compare_peer.py's peer.json (any venv).

python bench/mbrl_lib_peer/summarize.py --dir DIR
"""

import argparse
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", required=True, type=pathlib.Path)
    args = parser.parse_args()
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

"""`python -m pets_core.render`: the original's ``scripts/render.py`` (spec sec. 6.4).

    python -m pets_core.render -env cartpole -model-dir RUN_DIR -logdir DIR [-ca ...] [-o ...]

Loads a saved model (model.pt, or the original's model.mat + model.nns) from -model-dir, then runs
the normal experiment with model_dir = DIR, load_model = True, model_pretrained = True,
ninit_rollouts = 0, ntrain_iters = 1, nrecord = 1: one MPC episode, recorded headless (EGL) to
<logdir>/<timestamp>/train_iter1/rollout0.mp4, plus logs.mat and config.txt. No training happens.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")

from pets_core import mbexp

RENDER_OVERRIDES = (
    ("ctrl_cfg.prop_cfg.model_init_cfg.load_model", "True"),
    ("ctrl_cfg.prop_cfg.model_pretrained", "True"),
    ("exp_cfg.exp_cfg.ninit_rollouts", "0"),
    ("exp_cfg.exp_cfg.ntrain_iters", "1"),
    ("exp_cfg.log_cfg.nrecord", "1"),
)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    model_dir = None
    for flag in ("-model-dir", "--model-dir"):
        if flag in argv:
            k = argv.index(flag)
            if k + 1 >= len(argv):
                print(f"render: error: {flag} needs a directory", file=sys.stderr)
                return 2
            model_dir = argv[k + 1]
            del argv[k : k + 2]
    if model_dir is None:
        print(
            "render: error: -model-dir DIR is required (with model.pt or model.mat + model.nns)",
            file=sys.stderr,
        )
        return 2
    path = Path(model_dir)
    if not ((path / "model.pt").exists() or (path / "model.mat").exists()):
        print(
            f"render: error: -model-dir {model_dir} has no model.pt or model.mat + model.nns",
            file=sys.stderr,
        )
        return 2
    if "-logdir" not in argv:
        print("render: error: -logdir DIR is required", file=sys.stderr)
        return 2
    extra = ["-o", "ctrl_cfg.prop_cfg.model_init_cfg.model_dir", str(path.resolve())]
    for key, value in RENDER_OVERRIDES:
        extra += ["-o", key, value]
    return mbexp.main([*argv, *extra, "--mlflow-uri", "none"])


if __name__ == "__main__":
    sys.exit(main())

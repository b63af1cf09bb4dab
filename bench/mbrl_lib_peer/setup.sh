#!/usr/bin/env bash
# Build mbrl-lib 0.2.0's venv for the half-cheetah comparison, outside the repository.
#   bash bench/mbrl_lib_peer/setup.sh VENV MBRL_LIB_CHECKOUT
# VENV: where the venv goes (e.g. ~/mbrl-lib-peer/.venv); created if missing.
# MBRL_LIB_CHECKOUT: a git clone of facebookresearch/mbrl-lib (any branch: the files are read from
# its v0.2.0 tag). The PyPI wheel lacks the MuJoCo XMLs (mbrl/env/assets/) and the optimizer
# configs (mbrl/examples/conf/action_optimizer/); both are copied from the tag.
set -euo pipefail
VENV=${1:?usage: setup.sh VENV MBRL_LIB_CHECKOUT}
SRC=${2:?usage: setup.sh VENV MBRL_LIB_CHECKOUT}
git -C "$SRC" rev-parse -q --verify v0.2.0 >/dev/null || {
  echo "setup.sh: $SRC has no tag v0.2.0 (git -C $SRC fetch --tags)" >&2; exit 2; }
[ -x "$VENV/bin/python" ] || python3.11 -m venv "$VENV"
PIP="$VENV/bin/python -m pip install -q"
$PIP "torch==2.13.0"                      # first, by exact version (the CPU build)
$PIP --no-deps "mbrl==0.2.0"              # its pins (hydra-core 1.0.3, omegaconf 2.0) fail on 3.11
# numpy < 2: under numpy 2.x, mbrl-lib's pets_halfcheetah reports obs[0] (forward velocity) = 0 at
# every step, so its reward loses the running term (docs/halfcheetah-vs-mbrl-lib.md)
$PIP "numpy==1.26.4" "hydra-core==1.3.2" "omegaconf==2.3.0" "gymnasium==0.26.3" "mujoco==4.0.0" \
  "termcolor==3.3.0" "tqdm==4.70.1" "imageio==2.38.2" "matplotlib==3.11.2"
PKG=$("$VENV/bin/python" -c "import mbrl, os; print(os.path.dirname(mbrl.__file__))")
mkdir -p "$PKG/env/assets" "$PKG/examples/conf/action_optimizer"
for f in cartpole half_cheetah pusher reacher3d; do
  git -C "$SRC" show "v0.2.0:mbrl/env/assets/$f.xml" > "$PKG/env/assets/$f.xml"
done
for f in cem icem mppi; do
  git -C "$SRC" show "v0.2.0:mbrl/examples/conf/action_optimizer/$f.yaml" \
    > "$PKG/examples/conf/action_optimizer/$f.yaml"
done
"$VENV/bin/python" - <<'PY'
import numpy as np
from mbrl.env.pets_halfcheetah import HalfCheetahEnv

env = HalfCheetahEnv()
env.reset(seed=0)
speeds = [env.step(np.full(6, 0.3))[0][0] for _ in range(5)]
assert any(abs(v) > 1e-6 for v in speeds), f"obs[0] stays 0 ({speeds}): numpy >= 2 in this venv?"
print("mbrl-lib 0.2.0 peer ready; pets_halfcheetah obs[0] over 5 steps:", np.round(speeds, 3))
PY

"""The experiment config: the original's tree (§cli), built from YAML layers + -ca / -o.

One concept per module:

- ``tree``: the frozen dataclass tree (``PetsConfig`` ...) and ``validate``, run when one is built;
- ``optimizers``: the ``ctrl_cfg.opt_cfg.cfg`` sections, one per opt-type (``OPT_CFGS``);
- ``variants``: MODEL-PROP-OPT names and which combinations are valid;
- ``layers``: default.yaml < envs/<env>.yaml < -ca < -o -> ``load_config``;
- ``overrides``: the -ca / -o grammar and read-only leaves;
- ``codec``: PetsConfig <-> nested dict / YAML / config.txt; ``diff``: ``first_difference``;
- ``fingerprint``: a run's settings (the leaves that change its numbers) and their short name;
- ``schema``: the declared field types both grammars read; ``errors``: ``ConfigError``.

Import the public names from here (``from pets_core.config import load_config, PetsConfig``).
"""

from pets_core.config.codec import build, flatten, from_yaml, to_dict, to_text, to_yaml
from pets_core.config.diff import first_difference
from pets_core.config.errors import ConfigError
from pets_core.config.fingerprint import NOT_SETTINGS, fingerprint, settings, settings_difference
from pets_core.config.layers import CONFIG_DIR, env_names, load_config
from pets_core.config.optimizers import OPT_CFGS, CEMCfg, ICEMCfg, MPPICfg, RandomCfg
from pets_core.config.overrides import CA_DEFAULTS, CA_KEYS, read_only_reason
from pets_core.config.tree import (
    GRAPH_MODES,
    PRECISIONS,
    CtrlCfg,
    CtrlLogCfg,
    ExpCfg,
    ExpLogCfg,
    LoopCfg,
    ModelInitCfg,
    ModelTrainCfg,
    OptCfg,
    PetsConfig,
    PropCfg,
    SimCfg,
)

__all__ = [
    "CA_DEFAULTS",
    "CA_KEYS",
    "CONFIG_DIR",
    "GRAPH_MODES",
    "NOT_SETTINGS",
    "OPT_CFGS",
    "PRECISIONS",
    "CEMCfg",
    "ConfigError",
    "CtrlCfg",
    "CtrlLogCfg",
    "ExpCfg",
    "ExpLogCfg",
    "ICEMCfg",
    "LoopCfg",
    "MPPICfg",
    "ModelInitCfg",
    "ModelTrainCfg",
    "OptCfg",
    "PetsConfig",
    "PropCfg",
    "RandomCfg",
    "SimCfg",
    "build",
    "env_names",
    "fingerprint",
    "first_difference",
    "flatten",
    "from_yaml",
    "load_config",
    "read_only_reason",
    "settings",
    "settings_difference",
    "to_dict",
    "to_text",
    "to_yaml",
]

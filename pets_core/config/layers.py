"""The YAML layers and how one experiment's config is assembled from them (§cli).

Layers, later wins: ``config/pets/default.yaml`` < ``config/envs/<env>.yaml`` < ``-ca`` choices
< ``-o DOTTED.PATH VALUE`` overrides, applied in command-line order as ``scripts/mbexp.py`` does
(the -ca / -o grammar: ``overrides``). The layers are the repository's top-level ``config/``
directory (``CONFIG_DIR``), next to this package's parent; the YAML layers keep a table per
optimiser under ``ctrl_cfg.opt_cfg.cfg`` (CEM, Random, iCEM, MPPI: ``OPT_CFGS``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pets_core.config.bounded_yaml import load_yaml_file
from pets_core.config.codec import build
from pets_core.config.errors import ConfigError
from pets_core.config.overrides import apply_override, apply_variant, variant_from_ca
from pets_core.config.tree import PetsConfig

CONFIG_DIR = Path(__file__).resolve().parents[2] / "config"
"""<repo>/config: pets/default.yaml, envs/<env>.yaml (pets_core/config/layers.py -> parents[2])."""


def env_names(config_dir: Path = CONFIG_DIR) -> tuple[str, ...]:
    """The envs with a YAML layer (config/envs/<env>.yaml), sorted."""
    return tuple(sorted(p.stem for p in (config_dir / "envs").glob("*.yaml")))


def load_config(
    env: str,
    ca: Sequence[tuple[str, str]] = (),
    overrides: Sequence[tuple[str, str]] = (),
    *,
    seed: int = 0,
    config_dir: Path = CONFIG_DIR,
) -> PetsConfig:
    """-env, -ca KEY VALUE pairs and -o PATH VALUE pairs (command-line order) -> PetsConfig."""
    valid_envs = env_names(config_dir)
    if not valid_envs:
        raise ConfigError(
            f"no YAML layers in {config_dir / 'envs'}: pets_core reads the repository's config/ "
            "directory, so run it from a source checkout installed with pip install -e ."
        )
    if env not in valid_envs:
        raise ConfigError(f"unknown env {env!r}; valid: {', '.join(valid_envs)}")
    tree: dict[str, Any] = {}
    for path in (config_dir / "pets" / "default.yaml", config_dir / "envs" / f"{env}.yaml"):
        _deep_update(tree, load_yaml_file(path) or {})
    variant = variant_from_ca(ca)
    tree = apply_variant(tree, variant)
    tree = {"env": env, "variant": variant.name, "seed": int(seed), **tree}
    for path, value in overrides:
        apply_override(tree, variant, path, value)
    return build(tree)


def _deep_update(base: dict[str, Any], new: Mapping[str, Any]) -> None:
    """Merge a later layer into base, in place: sections merge, leaves are replaced."""
    for key, value in new.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _deep_update(base[key], value)
        else:
            base[key] = value

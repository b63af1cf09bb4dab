"""PropagationSpec (pets_core.config.propagation): validation, the config, the variance rule."""

import dataclasses
import itertools

import pytest

from pets_core.config import ConfigError, load_config
from pets_core.config.variants import MODEL_TYPES, PROP_TYPES, VariantError
from pets_core.planning import PropagationSpec, PropMode


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("XX", 1, "PE", 5), "unknown prop-type 'XX'; valid: E, DS, TS1, TSinf, MM"),
        (("E", 1, "GP", 5), "unknown model-type 'GP'; valid: D, P, DE, PE"),
        (
            ("DS", 4, "D", 1),
            "model-type D needs prop-type E (got DS): a single deterministic network has no "
            "distribution to propagate",
        ),
        (("TS1", 5, "P", 1), "prop-type TS1 needs an ensemble (model-type DE or PE), got P"),
        (("E", 20, "PE", 5), "prop-type E uses exactly 1 particle (npart=20)"),
        (("DS", 0, "PE", 5), "npart must be >= 1 (got 0)"),
        (("DS", 20, "PE", 1), "model-type PE needs num_nets > 1 (got 1)"),
        (("DS", 20, "P", 5), "model-type P is one network, ensemble size 1 (got 5)"),
        (("TS1", 21, "DE", 5), "prop-type TS1 needs npart divisible by num_nets (21 % 5 != 0)"),
        (("TSinf", 12, "PE", 5), "prop-type TSinf needs npart divisible by num_nets (12 % 5 != 0)"),
    ],
)
def test_invalid_specs_name_the_culprit(args, message):
    with pytest.raises(VariantError) as err:
        PropagationSpec(*args)
    assert str(err.value) == message


def test_the_spec_is_frozen_and_its_mode_an_enum():
    spec = PropagationSpec("TSinf", 20, "PE", 5)
    assert spec.mode is PropMode.TSinf and spec.particles_per_member == 4
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.num_particles = 10  # type: ignore[misc]
    assert spec == PropagationSpec(PropMode.TSinf, 20, "PE", 5)  # hashable value, graph key
    assert hash(spec) == hash(PropagationSpec(PropMode.TSinf, 20, "PE", 5))
    assert tuple(PropMode) == PROP_TYPES


def test_built_from_the_config_with_the_forced_leaves():
    """DE + TS* forces ign_var (the original's config); E forces one particle; D / P one net."""

    def spec(model, prop, *overrides):
        ca = [("model-type", model), ("prop-type", prop), ("opt-type", "CEM")]
        cfg = load_config("cartpole", ca, list(overrides))
        return PropagationSpec.from_prop_cfg(cfg.ctrl_cfg.prop_cfg)

    assert spec("DE", "TS1") == PropagationSpec("TS1", 20, "DE", 5, ign_var=True)
    assert spec("PE", "E") == PropagationSpec("E", 1, "PE", 5)
    assert spec("P", "MM") == PropagationSpec("MM", 20, "P", 1)
    assert spec("PE", "DS", ("ctrl_cfg.prop_cfg.npart", "7")).num_particles == 7


def test_the_config_rejects_what_the_spec_rejects():
    ca = [("model-type", "PE"), ("prop-type", "TSinf"), ("opt-type", "CEM")]
    with pytest.raises(ConfigError) as err:
        load_config("cartpole", ca, [("ctrl_cfg.prop_cfg.npart", "21")])
    assert str(err.value) == "prop-type TSinf needs npart divisible by num_nets (21 % 5 != 0)"


def test_which_combinations_sample_from_the_variance():
    """From §predict / §propagation: E and ign_var never sample; TS* samples the members'
    own Gaussians (P/PE only); DS / MM sample the moment-matched one (any ensemble, or P)."""
    sampling = {"P-DS", "P-MM", "DE-DS", "DE-MM", "PE-DS", "PE-MM", "PE-TS1", "PE-TSinf"}
    for model, prop in itertools.product(MODEL_TYPES, PROP_TYPES):
        E = 5 if model.endswith("E") else 1
        P = 1 if prop == "E" else 10
        try:
            spec = PropagationSpec(prop, P, model, E)
        except VariantError:
            continue
        assert spec.uses_variance == (f"{model}-{prop}" in sampling), (model, prop)
        assert not dataclasses.replace(spec, ign_var=True).uses_variance

"""Variant names and the original's valid model x propagation pairs (§variants, §propagation)."""

import itertools

import pytest

from pets_core.config.variants import (
    MODEL_TYPES,
    OPT_TYPES,
    PROP_TYPES,
    Variant,
    VariantError,
    parse_variant,
)


def test_parse_round_trips_the_paper_name():
    variant = parse_variant("PE-TSinf-CEM")
    assert (variant.model, variant.prop, variant.opt) == ("PE", "TSinf", "CEM")
    assert variant.name == "PE-TSinf-CEM"


def test_valid_combinations_are_exactly_the_originals():
    valid = set()
    for model, prop, opt in itertools.product(MODEL_TYPES, PROP_TYPES, OPT_TYPES):
        try:
            valid.add(Variant(model, prop, opt).name)
        except VariantError:
            pass
    per_opt = {
        "D-E", "P-E", "P-DS", "P-MM",
        "DE-E", "DE-DS", "DE-TS1", "DE-TSinf", "DE-MM",
        "PE-E", "PE-DS", "PE-TS1", "PE-TSinf", "PE-MM",
    }  # fmt: skip
    assert valid == {f"{mp}-{opt}" for mp in per_opt for opt in OPT_TYPES}


@pytest.mark.parametrize(
    ("name", "culprit"),
    [
        ("GP-E-CEM", "model-type 'GP'"),
        ("PE-TS2-CEM", "prop-type 'TS2'"),
        ("PE-TSinf-PSO", "opt-type 'PSO'"),
        ("PE-TSinf-icem", "opt-type 'icem'"),
        ("D-TSinf-CEM", "needs prop-type E"),
        ("P-TS1-CEM", "needs an ensemble"),
        ("PE-TSinf", "MODEL-PROP-OPT"),
    ],
)
def test_bad_variant_names_the_culprit_and_the_choices(name, culprit):
    with pytest.raises(VariantError, match=culprit):
        parse_variant(name)


def test_unknown_model_lists_valid_models():
    with pytest.raises(VariantError, match="valid: D, P, DE, PE"):
        parse_variant("X-E-CEM")


def test_variant_names_and_propagation_specs_share_the_model_prop_rules():
    """One rule set (variants.check_model_prop): a name and a spec reject alike."""
    from pets_core.planning import PropagationSpec

    for model, prop, E in (("D", "DS", 1), ("P", "TSinf", 1)):
        with pytest.raises(VariantError) as by_name:
            Variant(model, prop, "CEM")
        with pytest.raises(VariantError) as by_spec:
            PropagationSpec(prop, 5, model, E)
        assert str(by_name.value) == str(by_spec.value)

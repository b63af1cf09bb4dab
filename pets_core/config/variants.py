"""PETS variants named as in the paper: MODEL-PROP-OPT, e.g. PE-TSinf-CEM (Chua et al. 2018).

The valid combinations are those the original's config enforces (§variants and §propagation). The
optimisers beyond the paper's CEM and Random are iCEM (Pinneri et al., CoRL 2020) and MPPI
(Williams et al., ICRA 2017); they combine with every valid model / propagation pair.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal, get_args

ModelType = Literal["D", "P", "DE", "PE"]
OptType = Literal["CEM", "Random", "iCEM", "MPPI"]


class PropMode(StrEnum):
    """The propagation modes of the paper (§propagation); pets_core.config.propagation."""

    E = "E"  # expectation: the ensemble's moment-matched mean, one particle
    DS = "DS"  # distribution sampling: each particle from the moment-matched Gaussian
    TS1 = "TS1"  # trajectory sampling, members re-drawn at every step
    TSinf = "TSinf"  # trajectory sampling, a particle's member fixed for the horizon
    MM = "MM"  # moment matching: DS, then the particles refitted to one Gaussian per step


MODEL_TYPES: tuple[str, ...] = get_args(ModelType)
PROP_TYPES: tuple[str, ...] = tuple(mode.value for mode in PropMode)
OPT_TYPES: tuple[str, ...] = get_args(OptType)


class VariantError(ValueError):
    """An invalid model / propagation / optimiser choice; the message names the valid ones."""


@dataclass(frozen=True)
class Variant:
    model: ModelType
    prop: str  # a PropMode value
    opt: OptType

    @property
    def name(self) -> str:
        return f"{self.model}-{self.prop}-{self.opt}"

    @property
    def is_ensemble(self) -> bool:
        return is_ensemble(self.model)

    @property
    def is_probabilistic_net(self) -> bool:
        """P / PE output a variance; D / DE only a mean."""
        return self.model in ("P", "PE")

    def __post_init__(self) -> None:
        _check_choice("model-type", self.model, MODEL_TYPES)
        _check_choice("prop-type", self.prop, PROP_TYPES)
        _check_choice("opt-type", self.opt, OPT_TYPES)
        check_model_prop(self.model, self.prop)


def is_ensemble(model_type: str) -> bool:
    """DE / PE: several networks; D / P: one."""
    return model_type.endswith("E")


def ensemble_size(model_type: str, num_nets: int) -> int:
    """E of a model type: ``num_nets`` for DE / PE, 1 for D / P (num_nets is then ignored)."""
    return int(num_nets) if is_ensemble(model_type) else 1


def check_model_prop(model: str, prop: str) -> None:
    """The model / propagation pairs the original rejects (§variants, §propagation)."""
    if model == "D" and prop != "E":
        raise VariantError(
            f"model-type D needs prop-type E (got {prop}): a single deterministic "
            "network has no distribution to propagate"
        )
    if prop.startswith("TS") and not is_ensemble(model):
        raise VariantError(f"prop-type {prop} needs an ensemble (model-type DE or PE), got {model}")


def _check_choice(what: str, value: str, valid: tuple[str, ...]) -> None:
    if value not in valid:
        raise VariantError(f"unknown {what} {value!r}; valid: {', '.join(valid)}")


def parse_variant(name: str) -> Variant:
    """'PE-TSinf-CEM' -> Variant('PE', 'TSinf', 'CEM'); raises VariantError naming the culprit."""
    parts = name.split("-")
    if len(parts) != 3:
        raise VariantError(
            f"variant {name!r} is not MODEL-PROP-OPT (e.g. PE-TSinf-CEM); models "
            f"{', '.join(MODEL_TYPES)}, propagations {', '.join(PROP_TYPES)}, "
            f"optimisers {', '.join(OPT_TYPES)}"
        )
    return Variant(*parts)  # type: ignore[arg-type]

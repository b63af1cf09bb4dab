"""PETS variants named as in the paper: MODEL-PROP-OPT, e.g. PE-TSinf-CEM (Chua et al. 2018).

The valid combinations are those the original's config enforces (spec sec. 3.5 and 4). The
optimisers beyond the paper's CEM and Random are iCEM (Pinneri et al., CoRL 2020) and MPPI
(Williams et al., ICRA 2017); they combine with every valid model / propagation pair.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

ModelType = Literal["D", "P", "DE", "PE"]
PropType = Literal["E", "DS", "TS1", "TSinf", "MM"]
OptType = Literal["CEM", "Random", "iCEM", "MPPI"]

MODEL_TYPES: tuple[str, ...] = get_args(ModelType)
PROP_TYPES: tuple[str, ...] = get_args(PropType)
OPT_TYPES: tuple[str, ...] = get_args(OptType)


class VariantError(ValueError):
    """An invalid model / propagation / optimiser choice; the message names the valid ones."""


@dataclass(frozen=True)
class Variant:
    model: ModelType
    prop: PropType
    opt: OptType

    @property
    def name(self) -> str:
        return f"{self.model}-{self.prop}-{self.opt}"

    @property
    def is_ensemble(self) -> bool:
        return self.model in ("DE", "PE")

    @property
    def is_probabilistic_net(self) -> bool:
        """P / PE output a variance; D / DE only a mean."""
        return self.model in ("P", "PE")

    def __post_init__(self) -> None:
        _check_choice("model-type", self.model, MODEL_TYPES)
        _check_choice("prop-type", self.prop, PROP_TYPES)
        _check_choice("opt-type", self.opt, OPT_TYPES)
        if self.model == "D" and self.prop != "E":
            raise VariantError(
                f"model-type D needs prop-type E (got {self.prop}): a single deterministic "
                "network has no distribution to propagate"
            )
        if self.prop.startswith("TS") and not self.is_ensemble:
            raise VariantError(
                f"prop-type {self.prop} needs an ensemble (model-type DE or PE), got {self.model}"
            )


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


def check_particles(variant: Variant, num_particles: int, num_nets: int) -> None:
    """E uses one particle; TS* splits each candidate's particles evenly over the members."""
    if variant.prop == "E" and num_particles != 1:
        raise VariantError(f"prop-type E uses exactly 1 particle (npart={num_particles})")
    if variant.prop != "E" and num_particles < 1:
        raise VariantError(f"npart must be >= 1 (got {num_particles})")
    if variant.is_ensemble and num_nets < 2:
        raise VariantError(f"model-type {variant.model} needs num_nets > 1 (got {num_nets})")
    if variant.prop.startswith("TS") and num_particles % num_nets != 0:
        raise VariantError(
            f"prop-type {variant.prop} needs npart divisible by num_nets "
            f"({num_particles} % {num_nets} != 0)"
        )

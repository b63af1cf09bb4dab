"""How particles are propagated (§propagation), as one typed value: ``PropagationSpec``.

Built once from the config (``PropagationSpec.from_prop_cfg``) or for a model (``for_model``),
validated once when built, and handed as one object to the MPC and down to the rollout
(pets_core.planning.rollout), which picks the mode's strategy from a table. Torch-free, so the
config can validate with it without importing the numerics.
"""

from __future__ import annotations

from dataclasses import dataclass

from pets_core.config.variants import (
    MODEL_TYPES,
    PROP_TYPES,
    PropMode,
    VariantError,
    check_model_prop,
    ensemble_size,
    is_ensemble,
)


@dataclass(frozen=True)
class PropagationSpec:
    """Mode, particles and the model facts the propagation depends on.

    ``num_particles`` P per candidate; ``model_type`` D / P / DE / PE with ``ensemble_size`` E
    members; ``ign_var`` propagates means instead of samples. Raises ``VariantError`` (a
    ValueError naming the valid choices) for the combinations the original rejects.
    """

    mode: PropMode
    num_particles: int
    model_type: str
    ensemble_size: int
    ign_var: bool = False

    def __post_init__(self) -> None:
        if self.mode not in PROP_TYPES:
            raise VariantError(f"unknown prop-type {self.mode!r}; valid: {', '.join(PROP_TYPES)}")
        if self.model_type not in MODEL_TYPES:
            raise VariantError(
                f"unknown model-type {self.model_type!r}; valid: {', '.join(MODEL_TYPES)}"
            )
        object.__setattr__(self, "mode", PropMode(self.mode))
        mode, P, E, model = self.mode, self.num_particles, self.ensemble_size, self.model_type
        check_model_prop(model, mode)
        if mode is PropMode.E and P != 1:
            raise VariantError(f"prop-type E uses exactly 1 particle (npart={P})")
        if P < 1:
            raise VariantError(f"npart must be >= 1 (got {P})")
        if is_ensemble(model) and E < 2:
            raise VariantError(f"model-type {model} needs num_nets > 1 (got {E})")
        if not is_ensemble(model) and E != 1:
            raise VariantError(f"model-type {model} is one network, ensemble size 1 (got {E})")
        if self.is_trajectory_sampling and P % E != 0:
            raise VariantError(
                f"prop-type {mode} needs npart divisible by num_nets ({P} % {E} != 0)"
            )

    @classmethod
    def from_prop_cfg(cls, prop_cfg) -> PropagationSpec:
        """From the config's ``ctrl_cfg.prop_cfg`` node (mode, npart, ign_var, model_init_cfg)."""
        init = prop_cfg.model_init_cfg
        return cls(
            mode=prop_cfg.mode,
            num_particles=int(prop_cfg.npart),
            model_type=init.model_type,
            ensemble_size=ensemble_size(init.model_type, init.num_nets),
            ign_var=bool(prop_cfg.ign_var),
        )

    @classmethod
    def for_model(
        cls, model, mode: str, num_particles: int, ign_var: bool = False
    ) -> PropagationSpec:
        """For a model with ``model_type`` and ``ensemble_size`` (pets_core.models)."""
        return cls(mode, num_particles, model.model_type, int(model.ensemble_size), ign_var)

    @property
    def is_probabilistic(self) -> bool:
        """P / PE members output a variance."""
        return self.model_type.startswith("P")

    @property
    def is_trajectory_sampling(self) -> bool:
        """TS1 / TSinf: each particle follows one member's Gaussian at each step."""
        return self.mode in (PropMode.TS1, PropMode.TSinf)

    @property
    def uses_variance(self) -> bool:
        """Whether particles are sampled (``mean + std * eps``) rather than set to the mean: not
        under E or ``ign_var``; under TS* only for probabilistic members; under DS / MM for any
        ensemble (the variance of the member means) or a probabilistic network."""
        if self.ign_var or self.mode is PropMode.E:
            return False
        if self.is_trajectory_sampling:
            return self.is_probabilistic
        return self.is_probabilistic or self.ensemble_size > 1

    @property
    def particles_per_member(self) -> int:
        """P / E, the particles each member carries under TS*."""
        return self.num_particles // self.ensemble_size

    def check_model(self, model) -> None:
        """ValueError unless ``model`` is the model this spec was built for."""
        got = (model.model_type, int(model.ensemble_size))
        if got != (self.model_type, self.ensemble_size):
            raise ValueError(
                f"propagation spec is for model-type {self.model_type} with E = "
                f"{self.ensemble_size}, got a {got[0]} model with E = {got[1]}"
            )

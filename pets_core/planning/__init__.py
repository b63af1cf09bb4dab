"""PETS planning: uncertainty propagation, CEM / iCEM / MPPI / random shooting, and the MPC.

Names load on first use (PEP 562), so ``pets_core.planning.propagation`` (the torch-free
``PropagationSpec`` the config validates with) imports without the numerics.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "MPC": "mpc",
    "tile_bounds": "mpc",
    "CEMOptimizer": "cem",
    "ICEMOptimizer": "icem",
    "colored_noise": "icem",
    "MPPIOptimizer": "mppi",
    "mppi_weights": "mppi",
    "RandomShooting": "random_shooting",
    "PropagationSpec": "propagation",
    "PropMode": "propagation",
    "NAN_COST": "rollout",
    "predicted_costs": "rollout",
    "predicted_particles": "rollout",
}
__all__ = [
    "MPC",
    "NAN_COST",
    "CEMOptimizer",
    "ICEMOptimizer",
    "MPPIOptimizer",
    "PropMode",
    "PropagationSpec",
    "RandomShooting",
    "colored_noise",
    "mppi_weights",
    "predicted_costs",
    "predicted_particles",
    "tile_bounds",
]

if TYPE_CHECKING:
    from pets_core.planning.cem import CEMOptimizer
    from pets_core.planning.icem import ICEMOptimizer, colored_noise
    from pets_core.planning.mpc import MPC, tile_bounds
    from pets_core.planning.mppi import MPPIOptimizer, mppi_weights
    from pets_core.planning.propagation import PropagationSpec, PropMode
    from pets_core.planning.random_shooting import RandomShooting
    from pets_core.planning.rollout import NAN_COST, predicted_costs, predicted_particles


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)


def __dir__() -> list[str]:
    return __all__

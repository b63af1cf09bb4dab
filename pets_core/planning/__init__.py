"""PETS planning: uncertainty propagation, CEM / iCEM / MPPI / random shooting, and the MPC."""

from pets_core.planning.cem import CEMOptimizer
from pets_core.planning.icem import ICEMOptimizer, colored_noise
from pets_core.planning.mpc import MPC, tile_bounds
from pets_core.planning.mppi import MPPIOptimizer, mppi_weights
from pets_core.planning.propagation import (
    NAN_COST,
    check_propagation,
    predicted_costs,
    predicted_particles,
)
from pets_core.planning.random_shooting import RandomShooting

__all__ = [
    "MPC",
    "NAN_COST",
    "CEMOptimizer",
    "ICEMOptimizer",
    "MPPIOptimizer",
    "RandomShooting",
    "check_propagation",
    "colored_noise",
    "mppi_weights",
    "predicted_costs",
    "predicted_particles",
    "tile_bounds",
]

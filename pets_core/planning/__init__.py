"""PETS planning: uncertainty propagation, CEM / random shooting, and the MPC controller."""

from pets_core.planning.cem import CEMOptimizer
from pets_core.planning.mpc import MPC, tile_bounds
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
    "RandomShooting",
    "check_propagation",
    "predicted_costs",
    "predicted_particles",
    "tile_bounds",
]

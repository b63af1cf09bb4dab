"""PETS planning: uncertainty propagation, CEM / iCEM / MPPI / random shooting, the MPC and cohorts.

The propagation spec itself (``PropagationSpec``, ``PropMode``) is configuration, torch-free, in
``pets_core.config.propagation``; it is re-exported here beside the code that executes it.
"""

from pets_core.config.propagation import PropagationSpec, PropMode
from pets_core.planning.cem import CEMOptimizer
from pets_core.planning.cohort import CohortMPC
from pets_core.planning.icem import ICEMOptimizer, colored_noise
from pets_core.planning.mpc import MPC, tile_bounds
from pets_core.planning.mppi import MPPIOptimizer, mppi_weights
from pets_core.planning.optimizer import Optimizer
from pets_core.planning.random_shooting import RandomShooting
from pets_core.planning.rollout import NAN_COST, predicted_costs, predicted_particles

__all__ = [
    "MPC",
    "NAN_COST",
    "CEMOptimizer",
    "CohortMPC",
    "ICEMOptimizer",
    "MPPIOptimizer",
    "Optimizer",
    "PropMode",
    "PropagationSpec",
    "RandomShooting",
    "colored_noise",
    "mppi_weights",
    "predicted_costs",
    "predicted_particles",
    "tile_bounds",
]

"""pets_core: PETS (Chua, Calandra, McAllister, Levine, NeurIPS 2018) in PyTorch on MuJoCo >= 3.

Importing the package registers the four PETS environments with gymnasium
(pets/Cartpole-v0, pets/Reacher3D-v0, pets/Pusher-v0, pets/HalfCheetah-v0).
"""

from pets_core.config.variants import Variant, VariantError, parse_variant
from pets_core.envs import ENV_NAMES, make_env

__all__ = ["ENV_NAMES", "Variant", "VariantError", "get_task", "make_env", "parse_variant"]
__version__ = "0.1.0"


def __getattr__(name: str):
    if name == "get_task":  # lazily: it imports torch
        from pets_core.envs import get_task

        return get_task
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

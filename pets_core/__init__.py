"""pets_core: PETS (Chua, Calandra, McAllister, Levine, NeurIPS 2018) in PyTorch on MuJoCo >= 3.

Importing the package registers the four PETS environments with gymnasium
(pets/Cartpole-v0, pets/Reacher3D-v0, pets/Pusher-v0, pets/HalfCheetah-v0).
"""

from pets_core.variants import Variant, VariantError, parse_variant

__all__ = ["Variant", "VariantError", "parse_variant"]
__version__ = "0.1.0"

try:  # the envs package registers itself; absent only while it is being built
    from pets_core import envs as _envs  # noqa: F401
except ModuleNotFoundError as err:  # pragma: no cover
    if err.name != "pets_core.envs":
        raise

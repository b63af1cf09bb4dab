"""The four PETS environments (§envs) as gymnasium MuJoCo envs, and their planner tasks.

Importing this package registers pets/Cartpole-v0, pets/Reacher3D-v0, pets/Pusher-v0 and
pets/HalfCheetah-v0: no TimeLimit (the experiment loop runs task_hor steps), never terminated.
Without gymnasium (a bare GPU image before ``bench gpu`` installs its wheels) the names and ids
still import; ``make_env`` then says what is missing.
"""

try:
    import gymnasium
except ModuleNotFoundError as _missing:  # only gymnasium itself may be absent
    if _missing.name != "gymnasium":
        raise
    gymnasium = None

RENDER_MODES = ("human", "rgb_array", "depth_array", "rgbd_tuple")

ENV_NAMES = ("cartpole", "reacher", "pusher", "halfcheetah")

ENV_IDS = {
    "cartpole": "pets/Cartpole-v0",
    "reacher": "pets/Reacher3D-v0",
    "pusher": "pets/Pusher-v0",
    "halfcheetah": "pets/HalfCheetah-v0",
}
_ENTRY_POINTS = {
    "cartpole": "pets_core.envs.cartpole:CartpoleEnv",
    "reacher": "pets_core.envs.reacher:Reacher3DEnv",
    "pusher": "pets_core.envs.pusher:PusherEnv",
    "halfcheetah": "pets_core.envs.halfcheetah:HalfCheetahEnv",
}
# every accepted spelling -> short name: short names, our ids, the original's ids
_ALIASES = {name: name for name in ENV_NAMES} | {
    env_id.lower(): name for name, env_id in ENV_IDS.items()
}
_ALIASES |= {
    "mbrlcartpole-v0": "cartpole",
    "mbrlreacher3d-v0": "reacher",
    "mbrlpusher-v0": "pusher",
    "mbrlhalfcheetah-v0": "halfcheetah",
}


def canonical_name(name: str) -> str:
    """Short env name for a short name or gym id (case-insensitive); ValueError if unknown."""
    try:
        return _ALIASES[name.lower()]
    except (KeyError, AttributeError):
        valid = ", ".join([*ENV_NAMES, *ENV_IDS.values()])
        raise ValueError(f"unknown env {name!r}; valid: {valid}") from None


def make_env(name: str, **kwargs) -> "gymnasium.Env":
    """gymnasium.make() a PETS env by short name or id; kwargs (render_mode, width...) pass on."""
    env_id = ENV_IDS[canonical_name(name)]
    if gymnasium is None:
        raise ModuleNotFoundError("make_env needs gymnasium (pip install -e . installs it)")
    render_mode = kwargs.get("render_mode")
    if render_mode is not None and render_mode not in RENDER_MODES:
        # before gymnasium.make, which would only warn
        raise ValueError(
            f"unknown render_mode {render_mode!r}; valid: None, {', '.join(RENDER_MODES)}"
        )
    return gymnasium.make(env_id, **kwargs)


def _register() -> None:
    if gymnasium is None:
        return
    for name in ENV_NAMES:
        if ENV_IDS[name] not in gymnasium.registry:
            # no max_episode_steps: the original registers without a TimeLimit (§env-base)
            gymnasium.register(id=ENV_IDS[name], entry_point=_ENTRY_POINTS[name])


_register()


def __getattr__(name: str):
    # tasks.py needs torch; importing it lazily keeps `import pets_core` (and the torch-free
    # analysis jobs of the workflow) from paying torch's ~2 s import
    if name in ("TaskSpec", "get_task"):
        from pets_core.envs import tasks

        return getattr(tasks, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["ENV_IDS", "ENV_NAMES", "TaskSpec", "canonical_name", "get_task", "make_env"]

"""One PETS experiment as code: config -> builders -> the loop (rollout, train, plan) -> checkpoint.

loop.py drives it; builders.py makes the model, optimiser and MPC; checkpoint.py saves and restores
the loop state; data.py holds episodes and the training set; device.py / gpu_slots.py pick the
device; progress.py shows it live."""

"""The trainer: the training loop, device and precision, distributed (DDP) training, progress
lines, and launching many runs (serial, local or SLURM executors)."""

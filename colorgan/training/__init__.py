"""Training runs: the loop, checkpoints, the run folder's files, validation during training, the run store and the code hash that keys it."""

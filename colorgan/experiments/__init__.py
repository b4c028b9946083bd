"""Experiments over many runs: the study, the ablation, the verdict engine and its declared claims, the executors that train runs in parallel."""

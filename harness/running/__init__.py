"""Running cases: one target (runner), several guests (parallel), a matrix of targets and kernels."""

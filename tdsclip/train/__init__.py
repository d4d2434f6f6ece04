"""Training: optimisation, checkpoints, distributed set-up, evaluation and the loop."""

"""Optuna studies over the paper's knobs (one module each) and python -m sweeps.run; see docs/sweeps.md."""

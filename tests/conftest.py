"""Session fixtures shared across test modules. Only the Slurm tests ask for these; nothing here
starts unless a test requests it."""

from slurm_cluster import reference, slurm_cluster  # noqa: F401

"""Beam jobs: the dataset builder (build_dataset) and tf.Transform preprocessing."""

__version__ = "0.1.0"

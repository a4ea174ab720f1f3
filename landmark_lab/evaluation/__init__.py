"""Evaluating a model on faces (metrics, CED, per-face errors) and the figures of an evaluation."""

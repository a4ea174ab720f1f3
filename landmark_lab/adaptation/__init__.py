"""Fitting a label map after training: a model's synthetic-convention output onto real labels."""

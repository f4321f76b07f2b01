"""Evaluation metrics (this package never imports the trainer)."""

"""Inference with trained runs: sliding windows, test-time augmentation, post-processing, I/O in the inputs' own geometry, export."""

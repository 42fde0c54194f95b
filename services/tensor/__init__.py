"""Tensor service: tricubic resampling of 4-D tensors in tiles."""

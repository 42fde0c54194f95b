"""Embed service: text to L2-normalised vectors with a sentence-transformers model."""

"""Metrics: feature FID, k-NN precision/recall, class statistics."""

"""collapselab: iterative retraining of generators on their own (verified) synthetic data."""

__version__ = "0.1.0"

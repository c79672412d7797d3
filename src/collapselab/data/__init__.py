"""Real data sources: the linear-regression design and MNIST."""

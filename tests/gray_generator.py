"""A generator of continuous (gray) images for the storage tests: the CVAE's decoder means, not Bernoulli draws."""
from __future__ import annotations

import torch

from collapselab.generators.vae import VAEGenerator


class GrayVAEGenerator(VAEGenerator):
    """decode() returns the decoder's probabilities in [0, 1] (a stand-in for a flow or diffusion model)."""

    def decode(self, y: torch.Tensor, rng: torch.Generator, batch: int = 5000) -> torch.Tensor:
        return self.decode_mean(y, rng, batch)

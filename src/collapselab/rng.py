"""Seed derivation: every (seed, generation, stream) gets its own independent generator."""
from __future__ import annotations

import random

import numpy as np
import torch

# Named streams keep the draws of one stage independent of how much another stage consumed.
STREAMS = {"data": 0, "init": 1, "train": 2, "sample": 3, "verify": 4, "eval": 5, "verifier_fit": 6, "center": 7,
           "policy": 8, "fresh": 9}


def derive_seed(seed: int, generation: int, stream: str) -> int:
    """A 63-bit seed from the run seed, the generation index and a stream name."""
    state = np.random.SeedSequence([int(seed), int(generation) + 1, STREAMS[stream]]).generate_state(2)
    return int((int(state[0]) << 32 | int(state[1])) & ((1 << 63) - 1))


def make_rng(seed: int, generation: int, stream: str, device: torch.device | str = "cpu") -> torch.Generator:
    """A seeded torch.Generator for one stage of one generation."""
    g = torch.Generator(device=device)
    g.manual_seed(derive_seed(seed, generation, stream))
    return g


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch globals (also for seed 0)."""
    random.seed(seed)
    np.random.seed(seed % (1 << 32))
    torch.manual_seed(seed)

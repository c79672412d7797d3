"""Tasks bind a generator, its data, its verifiers and its metrics for the generation loop."""
from __future__ import annotations

import torch

from ..errors import ConfigError


def build_task(cfg: dict, device: torch.device):
    """The task for ``generator.name``; checks that data and verifier fit it."""
    name = cfg["generator"]["name"]
    if name == "linear":
        from .linear import LinearTask

        return LinearTask(cfg, device)
    if name == "vae":
        from .mnist import MNISTTask

        return MNISTTask(cfg, device)
    raise ConfigError(f"generator={name!r} is unknown: choose generator=vae or generator=linear")

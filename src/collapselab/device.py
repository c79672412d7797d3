"""Resolve the ``device`` config key once."""
from __future__ import annotations

import re

import torch

from .errors import ConfigError


def resolve_device(spec: str) -> torch.device:
    """Map auto|cpu|cuda|cuda:N|mps to an available torch.device, or raise ConfigError."""
    spec = str(spec).strip().lower()
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if spec == "cpu":
        return torch.device("cpu")
    m = re.fullmatch(r"cuda(?::(\d+))?", spec)
    if m:
        if not torch.cuda.is_available():
            raise ConfigError(f"device={spec}: CUDA is not available on this machine; use device=cpu or device=auto")
        idx = int(m.group(1) or 0)
        if idx >= torch.cuda.device_count():
            raise ConfigError(f"device={spec}: only {torch.cuda.device_count()} CUDA device(s) present (cuda:0..)")
        return torch.device("cuda", idx)
    if spec == "mps":
        if not (getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()):
            raise ConfigError("device=mps: MPS is not available on this machine; use device=cpu or device=auto")
        return torch.device("mps")
    raise ConfigError(f"device={spec!r} is not understood; use auto, cpu, cuda, cuda:N or mps")

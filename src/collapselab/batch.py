"""The tensor container that moves between generators, verifiers and policies."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class Batch:
    """Samples ``x`` [*lead, N, *feat] with labels or targets ``y`` [*lead, N].

    ``lead`` is empty for MNIST and ``[R]`` (replicate chains) for the linear study; the sample
    axis is always the last axis of ``y``.
    """

    x: Tensor
    y: Tensor

    @property
    def sample_dim(self) -> int:
        return self.y.dim() - 1

    def __len__(self) -> int:
        """Samples per chain."""
        return int(self.y.shape[-1])

    def to(self, device: torch.device | str) -> "Batch":
        return Batch(self.x.to(device), self.y.to(device))

    def take(self, idx: Tensor) -> "Batch":
        """The samples at ``idx`` [k] along the sample axis (every chain alike)."""
        d = self.sample_dim
        return Batch(self.x.index_select(d, idx), self.y.index_select(d, idx))

    def subsample(self, k: int, rng: torch.Generator) -> "Batch":
        """k samples per chain drawn uniformly without replacement (each chain its own draw), in random order."""
        n = len(self)
        if k > n:
            raise ValueError(f"cannot subsample {k} of {n} samples without replacement")
        lead = tuple(self.y.shape[:-1])
        keys = torch.rand(*lead, n, generator=rng, device=rng.device)
        idx = keys.argsort(dim=-1)[..., :k].to(self.y.device)
        if not lead:
            return self.take(idx)
        feat = tuple(self.x.shape[len(lead) + 1:])
        idx_x = idx.view(*lead, k, *([1] * len(feat))).expand(*lead, k, *feat)
        return Batch(self.x.gather(len(lead), idx_x), self.y.gather(len(lead), idx))

    def repeat_to(self, k: int, rng: torch.Generator) -> "Batch":
        """k samples per chain: every sample k // n times, plus a uniform subsample of k % n of them."""
        whole, rest = divmod(k, len(self))
        parts = [self] * whole + ([self.subsample(rest, rng)] if rest else [])
        return Batch.cat(parts) if parts else self.take(self.y.new_zeros(0, dtype=torch.long))

    @staticmethod
    def cat(batches: list["Batch"]) -> "Batch":
        """Concatenate along the sample axis."""
        if len(batches) == 1:
            return batches[0]
        dim = batches[0].sample_dim
        return Batch(torch.cat([b.x for b in batches], dim), torch.cat([b.y for b in batches], dim))

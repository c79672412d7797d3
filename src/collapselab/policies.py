"""Data policies: how each generation's training set is built from real and synthetic data."""
from __future__ import annotations

from dataclasses import dataclass

from .batch import Batch


@dataclass(frozen=True)
class Policy:
    """``filtered``: draw until the verifier accepts enough; ``accumulate``: keep every earlier
    synthetic set; ``with_real``: include the real data in every training set."""

    name: str
    filtered: bool
    accumulate: bool
    with_real: bool

    def next_training_set(self, real: Batch, synthetic: Batch, history: list[Batch]) -> Batch:
        """The training set of this generation; ``history`` holds earlier generations' synthetic sets."""
        parts = ([real] if self.with_real else []) + (list(history) if self.accumulate else []) + [synthetic]
        return Batch.cat(parts)


POLICIES: dict[str, Policy] = {
    "replace": Policy("replace", filtered=False, accumulate=False, with_real=False),
    "accumulate": Policy("accumulate", filtered=False, accumulate=True, with_real=True),
    "verify": Policy("verify", filtered=True, accumulate=False, with_real=False),
    "verify_accumulate": Policy("verify_accumulate", filtered=True, accumulate=True, with_real=True),
}

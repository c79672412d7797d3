"""Statistics over replicate chains (the linear and Gaussian studies run R chains as one batch)."""
from __future__ import annotations

import math

from torch import Tensor


def mean_se(v: Tensor) -> tuple[float, float]:
    """Mean over chains [R] and its standard error (NaN with one chain)."""
    v = v.double()
    se = float(v.std(unbiased=True) / math.sqrt(v.numel())) if v.numel() > 1 else float("nan")
    return float(v.mean()), se

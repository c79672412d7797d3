"""GPU path: CUDA device resolution and a bf16-autocast MNIST run (skipped without CUDA)."""
import math

import pytest
import torch

from collapselab.device import resolve_device

from .conftest import run_cfg
from .test_mnist_loop import tiny

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


def test_auto_picks_cuda():
    assert resolve_device("auto").type == "cuda"
    assert resolve_device("cuda:0") == torch.device("cuda", 0)


def test_vae_run_on_cuda_with_bf16(tmp_path):
    rows = run_cfg(tiny(tmp_path / "root") + ["device=cuda", "generator.bf16=true", "verifier=oracle",
                                              "verifier.threshold=0.0", "generations=1"], tmp_path / "run")
    assert all(math.isfinite(r["test_nelbo"]) and math.isfinite(r["fid"]) for r in rows)


def test_linear_on_cuda(tmp_path):
    rows = run_cfg(["generator=linear", "device=cuda", "generations=2", "replicates=50"], tmp_path)
    assert rows[2]["param_error"] > 0

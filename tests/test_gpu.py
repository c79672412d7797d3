"""The GPU path (``-m gpu``; skipped without CUDA): the default command's path at test size on CUDA — the
discriminator with drs and top selection, the shipped networks loaded onto the GPU, every policy for one generation,
resume and regeneration equality, two identical runs equal — plus bf16 and the linear study. ``scripts/gpu_check.py``
runs these first on a machine with a GPU."""
import json
import math

import pytest
import torch

from collapselab.device import machine, native_bf16, resolve_device

from .conftest import options, read_rows, run_cfg, strip_wall
from .test_mnist_loop import permissive, tiny

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

CUDA = ["device=cuda"]


def test_auto_picks_cuda_and_the_machine_names_the_gpu():
    assert resolve_device("auto").type == "cuda"
    assert resolve_device("cuda:0") == torch.device("cuda", 0)
    m = machine("cuda")
    assert m["device"] == "cuda" and m["gpu"] and m["cuda"] == str(torch.version.cuda)
    cap = torch.cuda.get_device_capability()
    assert native_bf16(torch.device("cuda")) == (cap[0] >= 8)  # emulated bf16 (pre-Ampere) is not native


@pytest.mark.parametrize("selection", [["verifier.selection=drs"], ["verifier.selection=top",
                                                                    "verifier.conditional=false"]],
                         ids=["drs", "top"])
def test_the_default_discriminator_path_on_cuda(tmp_path, selection):
    """The default verifier (the discriminator, ranking 10% of 10x candidates per class) on CUDA, two generations."""
    rows = run_cfg(tiny(tmp_path / "root") + CUDA + permissive("discriminator") + selection + ["generations=2"],
                   tmp_path / "run")
    assert all(math.isfinite(r["test_nelbo"]) and math.isfinite(r["fid"]) for r in rows)
    assert rows[1]["accept_rate"] == pytest.approx(0.1) and rows[2]["machine"]["device"] == "cuda"
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["device"].startswith("cuda") and summary["machine"]["gpu"]
    assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark


def test_bf16_run_on_cuda(tmp_path):
    rows = run_cfg(tiny(tmp_path / "root") + CUDA + ["generator.bf16=true", "verifier=oracle",
                                                     "verifier.threshold=0.0", "generations=1"], tmp_path / "run")
    assert all(math.isfinite(r["test_nelbo"]) and math.isfinite(r["fid"]) for r in rows)


@pytest.mark.parametrize("policy", options("policy"))
def test_every_policy_runs_one_generation_on_cuda(tmp_path, policy):
    rows = run_cfg(tiny(tmp_path / "root") + CUDA + permissive("discriminator") + [f"policy={policy}", "generations=1"],
                   tmp_path / "run")
    assert [r["generation"] for r in rows] == [0, 1] and math.isfinite(rows[1]["test_nelbo"])


def test_two_runs_and_a_resumed_run_give_the_same_numbers_on_cuda(tmp_path):
    """Deterministic cuDNN and kernels: one seed, one set of numbers; a resume equals the uninterrupted run."""
    args = tiny(tmp_path / "root") + CUDA + permissive("discriminator")
    full = run_cfg(args + ["generations=2"], tmp_path / "a")
    again = run_cfg(args + ["generations=2"], tmp_path / "b")
    run_cfg(args + ["generations=1"], tmp_path / "c")
    resumed = run_cfg(args + ["generations=2"], tmp_path / "c")
    assert strip_wall(again) == strip_wall(full) and strip_wall(resumed) == strip_wall(full)


def test_regeneration_on_the_runs_own_device(tmp_path):
    from collapselab.checkpoint import load_torch
    from collapselab.data.mnist import pack_bits
    from collapselab.loop import regenerate_synthetic

    run_cfg(tiny(tmp_path / "root") + CUDA + permissive("discriminator") + ["generations=2", "keep_synthetic=true"],
            tmp_path / "run")
    for g in (1, 2):
        stored = load_torch(tmp_path / "run" / f"gen_{g:03d}" / "synthetic.pt")
        again = regenerate_synthetic(tmp_path / "run", g)  # the rows say cuda: it draws on cuda
        assert again.y.device.type == "cuda"
        assert torch.equal(again.y.to(torch.uint8).cpu(), stored["y"]) and torch.equal(pack_bits(again.x), stored["bits"])


def test_shipped_networks_load_onto_cuda_with_their_accuracy(real_root):
    """The evaluator, judge and classifier that ship with the package, on the GPU: their test accuracy there matches
    the one recorded when they were trained (within 0.2 points: the kernels differ, the weights do not)."""
    from collapselab.data.mnist import MNISTData
    from collapselab.nets import EVALUATOR, JUDGE, NetCache, accuracy, classifier_spec

    data = MNISTData(str(real_root), "auto", 500, 0, torch.device("cuda"))
    nets = NetCache(data, torch.device("cuda"), progress=False)
    for spec in (EVALUATOR, JUDGE, classifier_spec(60000)):
        net, recorded = nets.get(spec)
        assert next(net.parameters()).device.type == "cuda"
        acc = accuracy(net, data.mnist.test_x, data.mnist.test_y, torch.device("cuda"))
        assert acc == pytest.approx(recorded, abs=0.002), spec


def test_linear_on_cuda(tmp_path):
    rows = run_cfg(["generator=linear", "generations=2", "replicates=50"] + CUDA, tmp_path)
    assert rows[2]["param_error"] > 0 and read_rows(tmp_path)[0]["machine"]["device"] == "cuda"

"""scripts/benchmark_mnist.py as a user runs it (on tiny fake data): the header, the measured peak and the
roofline table with every stage, its GFLOP/s and its share of the peak, then one generation."""
import re
import subprocess
import sys

import pytest

from .conftest import ROOT

STAGES = ("CVAE fit", "propose", "verifier fit", "score candidates", "select (drs)", "judge agreement", "pack (bits)",
          "evaluate", "network trained locally")


@pytest.mark.slow
def test_benchmark_prints_the_roofline_table_and_a_generation(tmp_path):
    p = subprocess.run([sys.executable, "scripts/benchmark_mnist.py", "data.source=fake", f"data.root={tmp_path}",
                        "policy.n_synthetic=500", "data.eval_samples=200", "data.pr_samples=100"],
                       cwd=ROOT, capture_output=True, text=True, timeout=900)
    out = p.stdout + p.stderr
    assert p.returncode == 0, out[-3000:]
    assert re.search(r"CPU .+ \| ISA: .+ \| \d+ threads \| torch ", out)
    peak = re.search(r"reachable peak \(2048\^3 matmul[^)]*\): fp32 (\d+) GFLOP/s", out)
    assert peak and int(peak.group(1)) > 0
    for stage in STAGES:
        line = next((ln for ln in out.splitlines() if ln.startswith(stage)), None)
        assert line is not None, f"no row for {stage}:\n{out[-3000:]}"
        seconds, per_s = (float(v) for v in line[62:].split()[:2])
        assert seconds >= 0 and per_s > 0
    cvae = next(ln for ln in out.splitlines() if ln.startswith("CVAE fit"))
    share = float(cvae.split()[-1].rstrip("%"))
    assert 0 < share < 100  # matmul/conv FLOPs counted, and below the machine's own peak
    assert re.search(r"generation 1: +[\d.]+ s", out)  # the real generation after the table


@pytest.mark.slow
def test_benchmark_emulates_an_avx2_only_cpu(tmp_path):
    """--emulate-avx2 restarts with oneDNN, ATen and MKL limited to AVX2: the header says so, bf16 is off, no bf16 peak."""
    p = subprocess.run([sys.executable, "scripts/benchmark_mnist.py", "--emulate-avx2", "--skip-generation",
                        "data.source=fake", f"data.root={tmp_path}", "policy.n_synthetic=200",
                        "data.eval_samples=100", "data.pr_samples=50"],
                       cwd=ROOT, capture_output=True, text=True, timeout=900)
    out = p.stdout + p.stderr
    assert p.returncode == 0, out[-3000:]
    assert "(limited: ONEDNN_MAX_CPU_ISA=AVX2, ATen AVX2, MKL_ENABLE_INSTRUCTIONS=AVX2)" in out
    assert "native bf16: False" in out
    assert "-> fp32" in out and "bf16 " not in out.split("reachable peak")[1].splitlines()[0]


@pytest.mark.slow
def test_gpu_check_runs_every_part_that_needs_no_gpu(tmp_path):
    """scripts/gpu_check.py --cpu: the gpu tests (skipped here), the default command per stage, resume and regeneration
    equality, the largest pool's memory, the fit's profile and two jobs at once, at test size; one JSON report."""
    import json

    p = subprocess.run([sys.executable, "scripts/gpu_check.py", "--cpu", "--out", str(tmp_path)], cwd=ROOT,
                       capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert report["device"] == "cpu" and report["gpu tests"]["exit"] == 0
    assert report["resume and regeneration"] == {**report["resume and regeneration"], "resume_equal": True,
                                                 "regeneration_equal": True}
    assert set(report["default command"]["stages_s"]) == {"verifier_fit_s", "draw_s", "fit_s", "eval_s"}
    assert report["largest pool"]["candidates"] == 10 * report["largest pool"]["kept"]
    assert 0 < report["fit profile"]["busy_share"] and report["throughput"]["speedup"]["2_jobs"] > 0


def test_gpu_check_refuses_an_mnist_root_without_the_files_before_any_part(tmp_path):
    """--mnist names a root whose MNIST/raw lacks the four checked files: one line naming the file and the fix, exit 2,
    and no part started (no report, no runs under --out)."""
    (tmp_path / "empty").mkdir()
    out = tmp_path / "out"
    p = subprocess.run([sys.executable, "scripts/gpu_check.py", "--cpu", "--mnist", str(tmp_path / "empty"),
                        "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert p.returncode == 2, p.stdout[-2000:] + p.stderr[-2000:]
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "train-images-idx3-ubyte is missing" in lines[0] and "prepare_mnist.py" in lines[0]
    assert "== " not in p.stdout and not (out / "gpu_check.json").exists() and list(out.iterdir()) == []

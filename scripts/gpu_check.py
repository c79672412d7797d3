"""The prepared device check: one script, run once on a machine with one GPU (under 9 minutes from a bare machine
that has PyTorch), or with ``--cpu`` on any machine (every part that needs no CUDA, at test size, under 3 minutes
on 2 cores; a slow test runs it).

    python scripts/gpu_check.py --wheels WHEELS --mnist DATA --out OUT   # one GPU: install, test, time, profile
    python scripts/gpu_check.py --cpu --out /tmp/check                  # no GPU: the same parts that can run

Preparing its inputs on a machine with PyPI (the GPU machine needs no network):

    pip download --no-deps --dest WHEELS --only-binary=:all: hydra-core==1.3.2 omegaconf==2.3.0 setuptools
    pip wheel --no-deps -w WHEELS antlr4-python3-runtime==4.9.3     # PyPI has it only as a source archive
    # what a PyTorch image lacks; add tqdm tensorboard matplotlib scipy pytest the same way where it lacks them
    python scripts/prepare_mnist.py --root DATA                     # MNIST/raw with its four MD5s checked

Parts, each timed, then one report (printed, and OUT/gpu_check.json):
 1. install: ``pip install --no-index --find-links WHEELS -e .[test]`` (skipped without --wheels);
 2. the ``gpu`` tests (``python -m pytest -m gpu``: the default path at test size on CUDA; skipped on a CPU);
 3. the default command timed per stage (``python train.py generations=1``; --cpu: debug=mnist on fake data);
 4. resume and regeneration equality on the device (test size): a run stopped after generation 1 and resumed
    equals the uninterrupted one; generation 1's and 2's synthetic sets redraw bit-identically;
 5. peak device memory of the largest pool the default draws (paper scale: 20,000 kept of 200,000 candidates);
 6. the CVAE fit profiled: the GPU's busy time (kernel time) against the wall time (--cpu: the CPU's op time);
 7. throughput: 4 and 8 default jobs at once on the one GPU against one (--cpu: 2 test-size jobs against one).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# the in-process parts import the project from its source tree: an editable install made by part 1 (in a
# subprocess) is not on this process's path, which was fixed when it started
sys.path.insert(0, str(ROOT / "src"))


def sh(cmd: list[str], env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def train(args: list[str], run_dir: Path, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(ROOT / "train.py"), *args, f"hydra.run.dir={run_dir}",
                             "progress=false"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, **(env or {})})


def rows_of(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def strip(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in ("wall_s", "time")} for r in rows]


def wait_all(procs: list[subprocess.Popen], what: str) -> None:
    for p in procs:
        out, _ = p.communicate()
        if p.returncode != 0:
            raise SystemExit(f"{what} failed (exit {p.returncode}):\n{out[-3000:]}")


def part(report: dict, name: str):
    """A decorator-free timer: ``with part(report, name) as r:`` fills report[name] with its seconds."""
    class _Part:
        def __enter__(self):
            self.t = time.perf_counter()
            report[name] = {}
            print(f"== {name}", flush=True)
            return report[name]

        def __exit__(self, *exc):
            report[name]["seconds"] = round(time.perf_counter() - self.t, 1)
            print(f"   {json.dumps(report[name])}", flush=True)
            return False
    return _Part()


def compose_cfg(overrides: list[str]) -> dict:
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return OmegaConf.to_container(compose("config", overrides=overrides + ["progress=false"]), resolve=True)


def peak_pool_memory(size: list[str], device) -> dict:
    """Draw generation 1 of the default config from an untrained CVAE: the pool's peak memory on the device."""
    import resource

    import torch

    from collapselab.loop import check_config
    from collapselab.rng import make_rng
    from collapselab.sampling import draw, pool_size

    _, _, study = check_config(compose_cfg(size + [f"device={device}"]))
    study.prepare()
    model = study.new_generator(0)
    quota = study.quota(1)
    pool = int(quota.shape[1]) * pool_size(int(quota.max()), study.verifier.keep_fraction)
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.max_memory_allocated() if device == "cuda" else 0
    study.prepare_verifier(model, 1)
    batch, _ = draw(study, model, 1, make_rng(0, 1, "sample", study.device), make_rng(0, 1, "verify", study.device))
    out = {"kept": len(batch), "candidates": pool}
    if device == "cuda":
        torch.cuda.synchronize()
        out["peak_gpu_gib"] = round((torch.cuda.max_memory_allocated() - base) / 2**30, 2)
    out["peak_rss_gib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)
    return out


def profile_fit(size: list[str], device: str, n: int) -> dict:
    """Two epochs of the CVAE fit on n images: busy time of the device (sum of its kernels) against wall time."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    from collapselab.batch import Batch
    from collapselab.loop import check_config
    from collapselab.rng import make_rng

    _, _, study = check_config(compose_cfg(size + [f"device={device}", "generator.epochs=2", "generator.min_steps=0",
                                                   "generator.patience=10"]))
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(n, 1, 28, 28, generator=g) < 0.15).float().to(study.device)
    y = torch.randint(0, 10, (n,), generator=g).to(study.device)
    model = study.new_generator(1)
    model.fit(Batch(x[:256], y[:256]), make_rng(0, 1, "train", study.device))  # warm-up: kernels, allocator
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])
    model = study.new_generator(1)
    with profile(activities=acts) as prof:
        t = time.perf_counter()
        model.fit(Batch(x, y), make_rng(0, 1, "train", study.device))
        if device == "cuda":
            torch.cuda.synchronize()
        wall = time.perf_counter() - t
    events = prof.key_averages()
    if device == "cuda":
        busy = sum(getattr(e, "self_device_time_total", 0) for e in events) / 1e6
    else:
        busy = sum(e.self_cpu_time_total for e in events) / 1e6
    steps = 2 * -(-int(0.9 * n) // 128)
    return {"images": n, "steps": steps, "wall_s": round(wall, 2), "busy_s": round(busy, 2),
            "busy_share": round(busy / wall, 3), "ms_per_step": round(1000 * wall / steps, 2)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cpu", action="store_true", help="no GPU: every part that needs none, at test size")
    p.add_argument("--wheels", help="a folder of the project's dependency wheels to install from (no network)")
    p.add_argument("--mnist", help="a data root holding MNIST/raw (sets COLLAPSELAB_DATA)")
    p.add_argument("--out", default=None, help="where runs and the report go (default: a new temp folder)")
    a = p.parse_args()
    out = Path(a.out or tempfile.mkdtemp(prefix="gpu_check-")).resolve()
    out.mkdir(parents=True, exist_ok=True)
    env = {}
    if a.mnist:
        env["COLLAPSELAB_DATA"] = str(Path(a.mnist).resolve())
        # the real-MNIST gpu tests read COLLAPSELAB_TEST_DATA (they never download on a machine without network):
        # a root under OUT that links the given files, so the networks those tests cache stay out of --mnist
        from collapselab.data.mnist import FILES, check_files, raw_dir
        from collapselab.errors import DataError

        given = raw_dir(Path(a.mnist).resolve())
        try:
            check_files(given)  # before any long part: the four files there, their MD5s right
        except DataError as e:
            print(f"--mnist {a.mnist}: {e}", file=sys.stderr)
            return 2
        raw = raw_dir(out / "test_root")
        raw.mkdir(parents=True, exist_ok=True)
        for name in FILES:
            if not (raw / name).exists():
                (raw / name).symlink_to(given / name)
        env["COLLAPSELAB_TEST_DATA"] = str(raw.parents[1])
    os.environ.update(env)
    import torch

    if not a.cpu and not torch.cuda.is_available():
        print("no CUDA device here: run with --cpu for the parts that need none", file=sys.stderr)
        return 2
    device = "cpu" if a.cpu else "cuda"
    # test size on a CPU (fake MNIST, its networks cached under OUT/root); the default sizes on a GPU
    small = ["debug=mnist", f"data.root={out / 'root'}"]
    default = small if a.cpu else []
    report: dict = {"device": device, "torch": torch.__version__, "cuda": str(torch.version.cuda),
                    "gpu": torch.cuda.get_device_name() if device == "cuda" else None}
    t0 = time.perf_counter()
    if a.wheels:
        with part(report, "install") as r:
            p_ = sh([sys.executable, "-m", "pip", "install", "--no-index", "--find-links", a.wheels, "-e", ".[test]"])
            r["exit"] = p_.returncode
            if p_.returncode:
                print(p_.stdout[-3000:] + p_.stderr[-3000:], file=sys.stderr)
                return 1
    with part(report, "gpu tests") as r:
        args = ["-m", "gpu"] if device == "cuda" else ["tests/test_gpu.py", "tests/test_loop.py", "-k",
                                                       "cuda or device_type"]
        p_ = sh([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args], env=env)
        r["exit"], r["last_line"] = p_.returncode, (p_.stdout.strip().splitlines() or [""])[-1]
        if p_.returncode:
            print(p_.stdout[-5000:], file=sys.stderr)
    with part(report, "default command") as r:
        run = out / "default"
        proc = train(default + [f"device={device}", "generations=1"], run)
        wait_all([proc], "python train.py generations=1")
        rows = rows_of(run)
        r["generation_1_s"] = round(rows[1]["wall_s"], 2)
        r["stages_s"] = {k: round(v, 2) for k, v in rows[1]["time"].items()}
        r["generation_0_s"] = round(rows[0]["wall_s"], 2)
    with part(report, "resume and regeneration") as r:
        from collapselab.checkpoint import load_torch
        from collapselab.data.mnist import pack_bits
        from collapselab.loop import regenerate_synthetic

        args = small + [f"device={device}", "keep_synthetic=true"]
        wait_all([train(args + ["generations=2"], out / "full"), train(args + ["generations=1"], out / "part")], "runs")
        wait_all([train(args + ["generations=2"], out / "part")], "the resumed run")
        r["resume_equal"] = strip(rows_of(out / "part")) == strip(rows_of(out / "full"))
        same = []
        for g in (1, 2):
            stored = load_torch(out / "full" / f"gen_{g:03d}" / "synthetic.pt")
            again = regenerate_synthetic(out / "full", g)
            same.append(torch.equal(again.y.to(torch.uint8).cpu(), stored["y"])
                        and torch.equal(pack_bits(again.x), stored["bits"]))
        r["regeneration_equal"] = all(same)
    with part(report, "largest pool") as r:
        r.update(peak_pool_memory(default, device))
    with part(report, "fit profile") as r:
        r.update(profile_fit(default, device, 2000 if a.cpu else 20000))
    with part(report, "throughput") as r:
        counts = (1, 2) if a.cpu else (1, 4, 8)
        for k in counts:
            t = time.perf_counter()
            wait_all([train(default + [f"device={device}", "generations=1", f"seed={100 + i}"], out / f"jobs{k}_{i}")
                      for i in range(k)], f"{k} jobs at once")
            r[f"{k}_jobs_s"] = round(time.perf_counter() - t, 1)
        r["speedup"] = {f"{k}_jobs": round(k * r["1_jobs_s"] / r[f"{k}_jobs_s"], 2) for k in counts[1:]}
    report["total_s"] = round(time.perf_counter() - t0, 1)
    (out / "gpu_check.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    print(f"report: {out / 'gpu_check.json'}")
    ok = (report["gpu tests"]["exit"] == 0 and report["resume and regeneration"]["resume_equal"]
          and report["resume and regeneration"]["regeneration_equal"])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""Where one MNIST generation spends its time, against what this machine's cores can reach.

    python scripts/benchmark_mnist.py                          # the default config (python train.py)
    python scripts/benchmark_mnist.py verifier=classifier      # any train.py overrides
    python scripts/benchmark_mnist.py --precision both         # also the fp32 vs bf16 throughput table
    python scripts/benchmark_mnist.py --profile "CVAE fit"     # torch.profiler's top operators of one stage
    python scripts/benchmark_mnist.py --emulate-avx2           # this CPU limited to AVX2 (no AVX-512, no bf16)

Prints (1) the header: CPU model, ISA flags, threads, torch; (2) the machine's reachable peak: a large fp32
product (the best of a matmul and, on a CPU, the same product as a 1x1 convolution), and bf16 where native; (3) the roofline table: each stage of a generation at the
configured sizes (propose, score, select, judge agreement, pack, CVAE fit, verifier fit, evaluate, and a
network trained locally) with seconds, samples/s, achieved GFLOP/s (matmul and convolution FLOPs counted by
torch.utils.flop_counter) and its share of the peak at the stage's precision; (4) a real run of generation 0
and 1 of the configured study with the seconds of each stage as metrics.jsonl records them. Run it on a quiet
machine: another job on the same cores changes every figure.

``--emulate-avx2`` runs the same benchmark with oneDNN, ATen and MKL limited to AVX2 (ONEDNN_MAX_CPU_ISA=AVX2,
ATEN_CPU_CAPABILITY=avx2, MKL_ENABLE_INSTRUCTIONS=AVX2; oneDNN then reports no bf16, so ``bf16=auto`` is off): an estimate of the AVX2-only
class (e.g. AMD EPYC) on an AVX-512 machine. Its microarchitecture is still this CPU's, so time a real
AVX2 machine where you have one.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import tempfile
import time
from pathlib import Path

AVX2_ENV = {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}
if "--emulate-avx2" in sys.argv[1:] and any(os.environ.get(k) != v for k, v in AVX2_ENV.items()):
    # the ISA limits are read when torch loads: start again with them set
    os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **AVX2_ENV})

import torch  # noqa: E402  (after the re-exec above)
import torch.nn.functional as F  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from collapselab.interfaces import RankingVerifier
from collapselab.batch import Batch
from collapselab.data.mnist import binarize, class_balanced_indices
from collapselab.device import _cpu_flags, cpu_model, native_bf16, resolve_device
from collapselab.loop import run
from collapselab.nets import JUDGE, classifier_spec, train_net
from collapselab.policies import build_policy
from collapselab.sampling import pool_size, select
from collapselab.studies import build_study
from collapselab.verifiers.discriminator import DiscriminatorVerifier
from collapselab.verifiers.mnist import label_scores

ROOT = Path(__file__).resolve().parents[1]
log = logging.getLogger("benchmark")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device: torch.device) -> tuple[object, float]:
    sync(device)
    t = time.perf_counter()
    out = fn()
    sync(device)
    return out, time.perf_counter() - t


ISA = ("avx2", "fma", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8")


def cpu_header(device: torch.device) -> str:
    """CPU model, the ISA flags that decide the kernels, threads and torch (and the GPU where one is used)."""
    model = cpu_model()
    flags = _cpu_flags()
    isa = " ".join(f for f in ISA if f in flags) or "none of " + " ".join(ISA)
    gpu = f", GPU {torch.cuda.get_device_name(device)}" if device.type == "cuda" else ""
    if any(os.environ.get(k) for k in AVX2_ENV):  # an ISA limit (--emulate-avx2, or set by hand)
        isa += (f" (limited: ONEDNN_MAX_CPU_ISA={os.environ.get('ONEDNN_MAX_CPU_ISA', '-')}, "
                f"ATen {torch.backends.cpu.get_cpu_capability()}, "
                f"MKL_ENABLE_INSTRUCTIONS={os.environ.get('MKL_ENABLE_INSTRUCTIONS', '-')})")
    return (f"CPU {model} | ISA: {isa} | {torch.get_num_threads()} threads | torch {torch.__version__} | "
            f"device {device}{gpu} | native bf16: {native_bf16(device)}")


def peak_gflops(device: torch.device, dtype: torch.dtype, n: int = 2048, min_s: float = 1.0) -> float:
    """The reachable product rate: the best of repeated n x n x n products for at least ``min_s`` seconds each way.

    On a CPU the same product also runs as a 1x1 convolution (oneDNN, which runs the networks' convolutions):
    fp32 ``torch.mm`` goes to MKL, which on AMD CPUs stays on AVX2 kernels at about half of what oneDNN reaches
    with AVX-512 there (measured: 187 vs 397 GFLOP/s on a 2-core AMD EPYC with AVX-512), so the matmul alone would
    understate the peak and overstate every stage's share of it.
    """
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    products = [lambda: torch.mm(a, b)]
    if device.type == "cpu":
        # [8, n, 16, 16] x [n, n, 1, 1]: 8 * 16 * 16 = n rows, the same 2 n^3 FLOPs as the matmul
        x = torch.randn(8, n, 16, 16).to(dtype).contiguous(memory_format=torch.channels_last)
        w = torch.randn(n, n, 1, 1).to(dtype).contiguous(memory_format=torch.channels_last)
        products.append(lambda: F.conv2d(x, w))
    best = 0.0
    for product in products:
        product()  # warm-up (kernel selection, page faults)
        spent = 0.0
        while spent < min_s:
            _, dt = timed(product, device)
            best, spent = max(best, 2 * n ** 3 / dt / 1e9), spent + dt
    return best


def count_flops(fn) -> float:
    """Matmul and convolution FLOPs of one call of ``fn`` (forward and backward, as torch counts them)."""
    with FlopCounterMode(display=False) as fc:
        fn()
    return float(fc.get_total_flops())


def stage_table(task, device: torch.device, peaks: dict[str, float], profile: str | None = None) -> list[dict]:
    """Each stage of one generation at the configured sizes: seconds, samples/s, GFLOP/s, share of peak.

    FLOPs are counted on a small call of the same stage and scaled by the samples (every stage is linear in
    them). The CVAE fit runs two epochs of its schedule and is projected to the configured epochs; the
    locally trained network runs one epoch of a classifier on 10,000 images (the shipped networks are not
    trained at all)."""
    from collapselab.data.mnist import pack_images

    n = task.n_synthetic
    v = task.verifier
    kf = getattr(v, "keep_fraction", None) or 1.0
    pool = 10 * pool_size(math.ceil(n / 10), kf)
    amp = bool(task.bf16)
    rows: list[dict] = []

    def stage(name: str, fn, small, samples: int, n_small: int, precision: str, seconds_scale: float = 1.0):
        if profile and name.lower().startswith(profile.lower()):
            return profile_stage(fn, name)
        out, dt = timed(fn, device)
        flops = count_flops(small) * samples / n_small
        dt *= seconds_scale
        flops *= seconds_scale
        gf = flops / dt / 1e9 if dt > 0 else float("nan")
        peak = peaks.get(precision)
        rows.append({"stage": name, "s": dt, "samples": samples * seconds_scale, "samples_s": samples * seconds_scale / dt,
                     "gflop": flops / 1e9, "gflops": gf, "precision": precision,
                     "share": gf / peak if peak and flops else None})
        return out

    g = torch.Generator(device=device).manual_seed(0)
    idx = class_balanced_indices(task.data.mnist.train_y, n, torch.Generator().manual_seed(0))
    train = Batch(binarize(task.data.mnist.train_x[idx]).to(device), task.data.mnist.train_y[idx].to(device))
    model = task.new_generator(1)
    epochs = model.epochs
    model.epochs, model.min_steps = 2, 0
    small, tiny = Batch(train.x[:1000], train.y[:1000]), task.new_generator(1)
    tiny.epochs, tiny.min_steps = 1, 0
    stage(f"CVAE fit ({epochs} epochs, from 2)", lambda: model.fit(train, g), lambda: tiny.fit(small, g), 2 * n, len(small),
          "bf16" if amp else "fp32", seconds_scale=epochs / 2)
    cand = stage("propose (decode + Bernoulli)", lambda: model.sample(pool, g), lambda: model.sample(2000, g), pool,
                 2000, "bf16" if amp else "fp32")
    if isinstance(v, DiscriminatorVerifier):
        fit_n = min(v.fit_size, len(task.data.mnist.train_y))
        real = task.data.draw_real(fit_n, torch.Generator().manual_seed(1))
        fake = (cand.x[:fit_n], cand.y[:fit_n])
        k = min(1000, fit_n)
        sub = ((real.x[:k], real.y[:k]), (fake[0][:k], fake[1][:k]))
        stage(f"verifier fit ({v.epochs} epochs)", lambda: v.fit((real.x, real.y), fake, g),
              lambda: DiscriminatorVerifier(device, epochs=1, conditional=bool(v.n_cond), bf16=v.bf16,
                                            progress=False).fit(*sub, g),
              2 * fit_n * v.epochs, 2 * k, "bf16" if v.bf16 else "fp32")
    scores = None
    if isinstance(v, RankingVerifier):
        scores = stage("score candidates", lambda: v.score(cand.x, cand.y),
                       lambda: v.score(cand.x[:2000], cand.y[:2000]), pool, 2000,
                       "bf16" if getattr(v, "bf16", False) and not isinstance(v, DiscriminatorVerifier) else "fp32")
        quota = task.quota(1)[0]
        by_class = scores[cand.y.argsort(stable=True)].view(10, pool // 10)  # the draw ranks within each class
        stage(f"select ({v.selection})",
              lambda: select(by_class, quota, v.selection, v.temperature, g),
              lambda: None, pool, 1, "fp32")
    judge = task.nets.get(JUDGE)[0]
    kept = Batch(cand.x[:n], cand.y[:n])
    stage("judge agreement", lambda: label_scores(judge, kept.x, kept.y, task.conditional),
          lambda: label_scores(judge, kept.x[:1000], kept.y[:1000], task.conditional), n, min(n, 1000), "fp32")
    stage("pack (bits)", lambda: pack_images(kept.x), lambda: None, n, 1, "fp32")
    ev = task.evaluate_metrics
    ev.prepare()
    n_eval = ev.eval_samples + len(task.data.mnist.test_y)
    stage("evaluate", lambda: ev(model, g), lambda: _eval_small(ev, model, g), n_eval,
          1000 + len(task.data.mnist.test_y), "fp32")
    spec = classifier_spec(10000)
    spec_1 = type(spec)(**{**spec.__dict__, "epochs": 1})
    small_spec = type(spec)(**{**spec.__dict__, "epochs": 1, "train_size": 1000})
    stage("network trained locally (classifier, 10,000 images, 1 epoch)",
          lambda: train_net(spec_1, task.data.mnist, device, progress=False),
          lambda: train_net(small_spec, task.data.mnist, device, progress=False),
          10000 + len(task.data.mnist.test_y), 1000 + len(task.data.mnist.test_y), "fp32")
    return rows


def _eval_small(ev, model, g):
    """The evaluator at 1,000 generated images (for its FLOP count; the test NELBO still runs on every test image)."""
    keep = ev.eval_samples, ev.pr_samples
    ev.eval_samples, ev.pr_samples = 1000, min(ev.pr_samples, 1000)
    try:
        return ev(model, g)
    finally:
        ev.eval_samples, ev.pr_samples = keep



def print_stages(rows: list[dict], peaks: dict[str, float]) -> None:
    log.info("\n%-62s %8s %11s %9s %9s %6s %8s", "stage (one generation, configured sizes)", "seconds", "samples/s",
             "GFLOP", "GFLOP/s", "prec", "of peak")
    for r in rows:
        share = f"{100 * r['share']:7.1f}%" if r["share"] is not None else "    n/a "
        log.info("%-62s %8.2f %11.0f %9.1f %9.1f %6s %8s", r["stage"], r["s"], r["samples_s"], r["gflop"],
                 r["gflops"], r["precision"], share)
    total = sum(r["s"] for r in rows if not r["stage"].startswith("network trained"))
    log.info("%-62s %8.2f   (peaks: %s)", "sum of a generation's stages", total,
             ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in peaks.items()))


def profile_stage(fn, name: str):
    """torch.profiler's top operators (by self CPU time) of one stage; returns the stage's output."""
    from torch.profiler import ProfilerActivity, profile

    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
    with profile(activities=acts) as prof:
        out = fn()
    log.info("\ntorch.profiler, %s:\n%s", name, prof.key_averages().table(sort_by="self_cpu_time_total",
                                                                          row_limit=15))
    return out


def throughput(task, device: torch.device, bf16: bool, n_train: int, n_sample: int) -> dict[str, float]:
    """samples/s of VAE training, sampling, verifier scoring and discriminator training at one precision."""
    task.gen_node = {**task.gen_node, "bf16": bf16}
    idx = class_balanced_indices(task.data.mnist.train_y, n_train, torch.Generator().manual_seed(0))
    train = Batch(binarize(task.data.mnist.train_x[idx]).to(device), task.data.mnist.train_y[idx].to(device))
    model = task.new_generator(1)
    model.epochs, model.patience, model.min_steps = 2, 10**9, 0
    _, dt = timed(lambda: model.fit(train, torch.Generator(device=device).manual_seed(0)), device)
    out = {"VAE training": 2 * 0.9 * n_train / dt}
    g = torch.Generator(device=device).manual_seed(1)
    batch, dt = timed(lambda: model.sample(n_sample, g), device)
    out["sampling (propose)"] = n_sample / dt
    if task.verifier is not None and task.verifier.keep_fraction is not None and not isinstance(
            task.verifier, DiscriminatorVerifier):
        _, dt = timed(lambda: task.verifier.score(batch.x, batch.y), device)
        out[f"{task.verifier.__class__.__name__} scoring"] = n_sample / dt
    disc = DiscriminatorVerifier(device, epochs=1, bf16=bf16, progress=False)
    real = (train.x, train.y)
    _, dt = timed(lambda: disc.fit(real, (batch.x[:n_train], batch.y[:n_train]), g), device)
    out["discriminator training"] = 0.9 * 2 * n_train / dt
    _, dt = timed(lambda: disc.score(batch.x, batch.y), device)
    out["discriminator scoring"] = n_sample / dt
    return out


def one_generation(cfg: dict) -> list[dict]:
    with tempfile.TemporaryDirectory() as tmp:
        run({**cfg, "generations": 1}, Path(tmp))
        return [json.loads(line) for line in (Path(tmp) / "metrics.jsonl").read_text().splitlines()]


def report(rows: list[dict], label: str) -> None:
    for r in rows:
        t = r.get("time", {})
        stages = "  ".join(f"{k[:-2]} {v:6.1f}" for k, v in t.items())
        log.info("%-5s generation %d: %6.1f s  | %s  | %d VAE epochs on %d images | test NELBO %.2f, FID %.1f",
                 label, r["generation"], r["wall_s"], stages, r["epochs"], r["n_train"], r["test_nelbo"], r["fid"])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("overrides", nargs="*", help="train.py overrides, e.g. verifier=discriminator")
    p.add_argument("--precision", choices=("config", "both"), default="config",
                   help="run the generation at the configured precision, or in fp32 and in bf16")
    p.add_argument("--skip-throughput", action="store_true", help="(with --precision both) skip the fp32/bf16 table")
    p.add_argument("--skip-generation", action="store_true", help="only the peak and the stage table")
    p.add_argument("--profile", metavar="STAGE", help='profile one stage: "CVAE fit", "propose", "score", "evaluate"')
    p.add_argument("--emulate-avx2", action="store_true",
                   help="limit oneDNN, ATen and MKL to AVX2 (no AVX-512, no bf16): an estimate of an AVX2-only CPU")
    a = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for name in ("collapselab", "collapselab.studies.mnist", "collapselab.verifiers.mnist", "collapselab.nets"):
        logging.getLogger(name).setLevel(logging.WARNING)
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = OmegaConf.to_container(compose("config", overrides=a.overrides + ["progress=false"]), resolve=True)
    device = resolve_device(cfg["device"])
    task = build_study(cfg, device, build_policy(cfg))
    task.prepare()  # MNIST and the cached networks
    configured = "bf16" if task.bf16 else "fp32"
    log.info("%s", cpu_header(device))
    log.info("generator.bf16=%s -> %s", cfg["generator"]["bf16"], configured)
    peaks = {"fp32": peak_gflops(device, torch.float32)}
    if native_bf16(device):
        peaks["bf16"] = peak_gflops(device, torch.bfloat16)
    log.info("reachable peak (2048^3 matmul%s): %s", ", or as a 1x1 convolution" if device.type == "cpu" else "", ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in peaks.items()))
    rows = stage_table(task, device, peaks, a.profile)
    if a.profile:
        return
    print_stages(rows, peaks)
    if a.precision == "both" and not a.skip_throughput:
        fp32 = throughput(task, device, False, 10000, 50000)
        bf16 = throughput(task, device, True, 10000, 50000)
        log.info("\n%-26s %12s %12s %8s", "samples/s", "fp32", "bf16", "speedup")
        for k in fp32:
            log.info("%-26s %12.0f %12.0f %7.2fx", k, fp32[k], bf16[k], bf16[k] / fp32[k])
    if a.skip_generation:
        return
    log.info("\none generation of: python train.py %s", " ".join(a.overrides))
    def at(bf16: bool) -> dict:  # the generator and (where it has the key) the verifier at one precision
        verifier = {**cfg["verifier"], "bf16": bf16} if "bf16" in cfg["verifier"] else cfg["verifier"]
        return {**cfg, "generator": {**cfg["generator"], "bf16": bf16}, "verifier": verifier}

    settings = [("", cfg)] if a.precision == "config" else [("fp32", at(False)), ("bf16", at(True))]
    for label, c in settings:
        report(one_generation(c), label or configured)


if __name__ == "__main__":
    main()

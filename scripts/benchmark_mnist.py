"""Where one MNIST generation spends its time, and fp32 vs bf16 throughput side by side.

    python scripts/benchmark_mnist.py                          # the default config (python train.py)
    python scripts/benchmark_mnist.py verifier=discriminator   # any train.py overrides
    python scripts/benchmark_mnist.py --precision both         # also run the generation in fp32 and bf16

Prints (1) samples/s of each hot stage in fp32 and in bf16 autocast (VAE training, sampling, verifier
scoring, discriminator training) and (2) a real run of generation 0 and 1 of the configured study with
the seconds of each stage: verifier fit, draw (propose + score/verify), VAE fit (with its epochs) and
evaluation. Run it on a quiet machine: another job on the same cores changes every figure.
"""
from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from collapselab.batch import Batch
from collapselab.data.mnist import binarize, class_balanced_indices
from collapselab.device import native_bf16, resolve_device
from collapselab.loop import run
from collapselab.policies import build_policy
from collapselab.studies import build_study
from collapselab.verifiers.discriminator import DiscriminatorVerifier

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
    p.add_argument("--skip-throughput", action="store_true")
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
    log.info("device %s, torch %s, %d CPU threads, native bf16: %s, generator.bf16=%s -> %s", device,
             torch.__version__, torch.get_num_threads(), native_bf16(device), cfg["generator"]["bf16"],
             task.bf16)
    if not a.skip_throughput:
        fp32 = throughput(task, device, False, 10000, 50000)
        bf16 = throughput(task, device, True, 10000, 50000)
        log.info("\n%-26s %12s %12s %8s", "samples/s", "fp32", "bf16", "speedup")
        for k in fp32:
            log.info("%-26s %12.0f %12.0f %7.2fx", k, fp32[k], bf16[k], bf16[k] / fp32[k])
    log.info("\none generation of: python train.py %s", " ".join(a.overrides))
    def at(bf16: bool) -> dict:  # the generator and (where it has the key) the verifier at one precision
        verifier = {**cfg["verifier"], "bf16": bf16} if "bf16" in cfg["verifier"] else cfg["verifier"]
        return {**cfg, "generator": {**cfg["generator"], "bf16": bf16}, "verifier": verifier}

    settings = [("", cfg)] if a.precision == "config" else [("fp32", at(False)), ("bf16", at(True))]
    for label, c in settings:
        report(one_generation(c), label or configured)


if __name__ == "__main__":
    main()

"""Throughput of the MNIST study for the default config (or any overrides), printed as figures.

    python scripts/benchmark_mnist.py                       # default: CVAE, classifier verifier
    python scripts/benchmark_mnist.py verifier=discriminator device=cuda

Reports training samples/s (VAE epochs over 2,000 images), generation samples/s, verifier
samples/s, evaluation seconds, and seconds per generation of a real 1-generation run.
"""
from __future__ import annotations

import json
import logging
import sys
import tempfile
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from collapselab.batch import Batch
from collapselab.data.mnist import binarize, class_balanced_indices
from collapselab.device import resolve_device
from collapselab.loop import run
from collapselab.tasks import build_task

ROOT = Path(__file__).resolve().parents[1]
log = logging.getLogger("benchmark")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device):
    sync(device)
    t = time.perf_counter()
    out = fn()
    sync(device)
    return out, time.perf_counter() - t


def main(overrides: list[str]) -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = OmegaConf.to_container(compose("config", overrides=overrides + ["progress=false"]), resolve=True)
    device = resolve_device(cfg["device"])
    task = build_task(cfg, device)
    log.info("device %s, torch %s, %d CPU threads", device, torch.__version__, torch.get_num_threads())

    idx = class_balanced_indices(task.mnist.train_y, 2000, torch.Generator().manual_seed(0))
    train = Batch(binarize(task.mnist.train_x[idx]).to(device), task.mnist.train_y[idx].to(device))
    model = task.new_generator(1)
    model.epochs, model.patience = 5, 10**9
    _, dt = timed(lambda: model.fit(train, torch.Generator(device=device).manual_seed(0)), device)
    log.info("training:    %8.0f samples/s  (5 epochs over %d images, batch %d)", 5 * 0.9 * len(train) / dt,
             len(train), model.batch_size)
    g = torch.Generator(device=device).manual_seed(1)
    batch, dt = timed(lambda: model.sample(20000, g), device)
    log.info("generation:  %8.0f samples/s", 20000 / dt)
    if task.verifier is not None:
        task.prepare_verifier(model, 1)
        if task.verifier.keep_fraction is not None:
            _, dt = timed(lambda: task.verifier.score(batch.x, batch.y), device)
        else:
            _, dt = timed(lambda: task.verifier(batch.x, batch.y, g), device)
        log.info("verifier:    %8.0f samples/s  (%s)", 20000 / dt, task.verifier_name)
    _, dt = timed(lambda: task.evaluate(model, 1, g), device)
    log.info("evaluation:  %8.1f s  (%d generated images: FID, precision/recall, test NELBO)", dt, task.eval_samples)
    with tempfile.TemporaryDirectory() as tmp:
        row = run({**cfg, "generations": 1}, Path(tmp))
        first = [json.loads(line) for line in (Path(tmp) / "metrics.jsonl").read_text().splitlines()]
    log.info("generation 0: %6.1f s; generation 1: %6.1f s (%d VAE epochs, accept rate %s)", first[0]["wall_s"],
             row["wall_s"], row["epochs"], f"{row['accept_rate']:.3f}" if row["accept_rate"] is not None else "-")


if __name__ == "__main__":
    main(sys.argv[1:])

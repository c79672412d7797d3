"""Networks the project trains itself (no downloads): evaluator, judge and the classifier verifier.

Each is trained on binarised real MNIST and keyed by its role, architecture, training size, seed, epochs and
the data. The three fixed ones of real MNIST (the evaluator, the judge, the classifier on every training
image) ship with the package under ``collapselab/shipped`` (checksummed in its MANIFEST.json, made by
scripts/ship_networks.py), so FID and the verifier mean the same on every machine; any other (fewer training
images, fake test data) is trained once and cached under <data.root>/nets.
"""
from __future__ import annotations

import contextlib

import functools
import hashlib
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .checkpoint import cache_lock, check_writable, file_digest, load_torch, move_aside, save_torch
from .data.mnist import MNIST, N_CLASSES, binarize, class_balanced_indices
from .device import bf16_autocast
from .errors import RunError
from .training import train_minibatch

log = logging.getLogger(__name__)


class SmallCNN(nn.Module):
    """Three 3x3 conv blocks -> ``feat``-d features -> 10 logits."""

    def __init__(self, widths: tuple[int, int, int] = (16, 32, 64), feat: int = 128) -> None:
        super().__init__()
        a, b, c = widths
        self.body = nn.Sequential(
            nn.Conv2d(1, a, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(a, b, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(b, c, 3, padding=1), nn.ReLU(), nn.Flatten(),
            nn.Linear(c * 7 * 7, feat), nn.ReLU(),
        )
        self.drop = nn.Dropout(0.25)
        self.head = nn.Linear(feat, N_CLASSES)

    def features(self, x: Tensor) -> Tensor:
        """x [N, 1, 28, 28] in {0, 1} -> [N, feat]."""
        return self.body(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.drop(self.body(x)))


@dataclass(frozen=True)
class NetSpec:
    """What identifies a cached network."""

    role: str
    widths: tuple[int, int, int]
    feat: int
    train_size: int
    seed: int
    epochs: int
    lr: float = 1e-3
    batch_size: int = 128

    def key(self, data_key: str) -> str:
        blob = json.dumps({**asdict(self), "data": data_key, "v": 1}, sort_keys=True)
        return f"{self.role}-{hashlib.sha1(blob.encode()).hexdigest()[:12]}"


FAKE_EPOCH_DIVISOR = 4
EVALUATOR = NetSpec("evaluator", (16, 32, 64), 128, 60000, seed=11, epochs=4)
JUDGE = NetSpec("judge", (32, 64, 64), 256, 60000, seed=22, epochs=4)


def classifier_spec(train_size: int) -> NetSpec:
    """The classifier verifier: the evaluator's family, its own seed, ``train_size`` real images."""
    return NetSpec("classifier", (16, 32, 64), 128, train_size, seed=33, epochs=4 if train_size >= 20000 else 10)


@torch.no_grad()
def accuracy(net: SmallCNN, x: Tensor, y: Tensor, device: torch.device, batch: int = 4000) -> float:
    """Share of correct predictions; x uint8 [N, 28, 28]."""
    net.eval()
    correct = torch.zeros((), dtype=torch.long, device=device)  # summed on the device: one sync at the end
    for i in range(0, len(y), batch):
        pred = net(binarize(x[i:i + batch]).to(device)).argmax(1)
        correct += (pred == y[i:i + batch].to(device)).sum()
    return int(correct) / len(y)


def train_net(spec: NetSpec, data: MNIST, device: torch.device, progress: bool = True) -> tuple[SmallCNN, float]:
    """Train from scratch (deterministic given the spec); returns the net and its test accuracy."""
    g = torch.Generator().manual_seed(spec.seed)
    torch.manual_seed(spec.seed)
    net = SmallCNN(spec.widths, spec.feat).to(device)
    n = min(spec.train_size, len(data.train_y))
    idx = class_balanced_indices(data.train_y, n, g) if n < len(data.train_y) else torch.arange(n)
    x, y = binarize(data.train_x[idx]).to(device), data.train_y[idx].to(device)
    opt = torch.optim.Adam(net.parameters(), lr=spec.lr)
    # the tiny procedural test data (all of it) is learned in a fraction of the epochs real MNIST needs
    fake_full = data.key.startswith("fake") and n >= len(data.train_y) // 2
    epochs = max(1, spec.epochs // FAKE_EPOCH_DIVISOR) if fake_full else spec.epochs
    steps = epochs * ((n + spec.batch_size - 1) // spec.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=spec.lr * 3, total_steps=steps)
    train_minibatch(net, lambda b: F.cross_entropy(net(x[b]), y[b]), torch.arange(n, device=device), optimizer=opt,
                    epochs=epochs, batch_size=spec.batch_size, rng=g, scheduler=sched,
                    desc=f"{spec.role} network", progress=progress)
    return net, accuracy(net, data.test_x, data.test_y, device)


_MEMO: dict[str, tuple[SmallCNN, float]] = {}


@contextlib.contextmanager
def fresh_memo():
    """Within the block this process holds no network (each is read, or trained, anew); the ones it held before
    return after the block. For tests and tools that check the cache itself."""
    saved = dict(_MEMO)
    forget()
    try:
        yield
    finally:
        _MEMO.clear()
        _MEMO.update(saved)
        shipped_file.cache_clear()


def forget(key: str | None = None) -> None:
    """Drop networks held in this process (one by key, or all), so the next ``get_net`` reads (or trains) them anew;
    also forgets which shipped files passed their checksum."""
    if key is None:
        _MEMO.clear()
    else:
        _MEMO.pop(key, None)
    shipped_file.cache_clear()
SHIPPED = Path(__file__).parent / "shipped"
MANIFEST = SHIPPED / "MANIFEST.json"


@functools.lru_cache(maxsize=None)
def manifest() -> dict:
    """The shipped files' manifest ({"files": {name: {"sha256", ...}}}); empty when none ships."""
    return json.loads(MANIFEST.read_text()) if MANIFEST.exists() else {"files": {}}


def sha256(path: Path) -> str:
    return file_digest(path, "sha256")


@functools.lru_cache(maxsize=None)
def shipped_file(name: str) -> Path | None:
    """The shipped file ``name`` with its checksum verified, or None when the package ships no such file."""
    entry = manifest()["files"].get(name)
    if entry is None:
        return None
    path = SHIPPED / name
    if not path.exists():
        raise RunError(f"the shipped file {path} is missing; restore it (git checkout -- {path}) or reinstall "
                       "collapselab (pip install -e .)")
    if (digest := sha256(path)) != entry["sha256"]:
        raise RunError(f"the shipped file {path} has sha256 {digest[:16]}..., not the {entry['sha256'][:16]}... its "
                       f"MANIFEST.json records; restore it (git checkout -- {path}) or reinstall collapselab")
    return path


def _from_blob(spec: NetSpec, blob: dict) -> tuple[SmallCNN, float]:
    """(network, test accuracy) from a saved {"state", "test_accuracy"} blob."""
    net = SmallCNN(spec.widths, spec.feat)
    net.load_state_dict(blob["state"])
    return net, float(blob["test_accuracy"])


def _load_cached(spec: NetSpec, path: Path) -> tuple[SmallCNN, float] | None:
    """The cached network at ``path``, or None when there is none; an unreadable one is moved aside."""
    if not path.exists():
        return None
    try:
        net, acc = _from_blob(spec, load_torch(path))
    except Exception as e:  # noqa: BLE001 - a truncated or foreign file: keep it for its owner, train anew
        return move_aside(path, e, "training it again")
    log.info("%s network: cached %s, test accuracy %.4f", spec.role, path.name, acc)
    return net, acc


def _cached_or_trained(spec: NetSpec, data: MNIST, path: Path, device: torch.device,
                       progress: bool) -> tuple[SmallCNN, float]:
    """The network cached at ``path``, or trained now and cached there (under the cache's lock)."""
    with cache_lock(path):  # another job may be training this very network: wait, then load its file
        found = _load_cached(spec, path)
        if found is None:
            check_writable(path.parent, f"the {spec.role} network")  # before it trains, not after
            log.info("training the %s network (%d images, %d epochs); cached afterwards in %s",
                     spec.role, min(spec.train_size, len(data.train_y)), spec.epochs, path)
            found = train_net(spec, data, device, progress)
            save_torch({"state": {k: v.cpu() for k, v in found[0].state_dict().items()},
                        "test_accuracy": found[1], "spec": json.dumps(asdict(spec))}, path)
            log.info("%s network: test accuracy %.4f", spec.role, found[1])
    return found


def get_net(spec: NetSpec, data: MNIST, cache_dir: Path, device: torch.device,
            progress: bool = True) -> tuple[SmallCNN, float]:
    """The trained network for ``spec`` from memory, the package (shipped), the disk cache, or by training it
    (then cached)."""
    key = spec.key(data.key)
    if key not in _MEMO:
        if (shipped := shipped_file(f"{key}.pt")) is not None:
            found = _from_blob(spec, load_torch(shipped))
            log.info("%s network: shipped %s (checksum verified), test accuracy %.4f", spec.role, shipped.name,
                     found[1])
        else:
            found = _cached_or_trained(spec, data, Path(cache_dir) / f"{key}.pt", device, progress)
        net = found[0].eval().requires_grad_(False)
        if device.type == "cpu":  # after any save: oneDNN's channels-last convolutions are ~1.7x faster here
            net = net.to(memory_format=torch.channels_last)
        _MEMO[key] = (net, found[1])
    net, acc = _MEMO[key]
    return net.to(device), acc


class NetCache:
    """The self-trained networks of one data part, under ``<data.root>/nets``: fetched on first ``get``."""

    def __init__(self, data, device: torch.device, progress: bool = True) -> None:
        self.data, self.device, self.progress = data, device, progress

    def get(self, spec: NetSpec) -> tuple[SmallCNN, float]:
        """(network in eval mode on the device, its test accuracy) for ``spec``."""
        return get_net(spec, self.data.mnist, self.data.cache_dir, self.device, self.progress)


# Inference batch on a CPU: 256 images keep a layer's activations (<= 25 MB for the judge's first conv) in the
# cache, 3-3.5x faster than batches of 5000 on 2 cores (the logits are bit-identical: each image's arithmetic does
# not depend on the batch). A GPU wants large batches.
CPU_INFERENCE_BATCH, DEVICE_INFERENCE_BATCH = 256, 5000


def inference_batch(device: torch.device) -> int:
    """Images per forward pass for inference on ``device``: cache-sized on a CPU, large elsewhere."""
    return CPU_INFERENCE_BATCH if device.type == "cpu" else DEVICE_INFERENCE_BATCH


@torch.no_grad()
def predict_logits(net: SmallCNN, x: Tensor, batch: int | None = None,
                   bf16: bool = False) -> tuple[Tensor, Tensor]:
    """(logits [N, 10], features [N, feat]) for images x [N, 1, 28, 28]; fp32 unless ``bf16``.

    On a CPU the inputs are channels-last (get_net keeps its networks so: about 1.7x faster in fp32, the same
    logits to ~1e-7). With ``bf16`` the conv body runs under bf16 autocast (2-3x faster on CPUs with native
    bf16); the head still runs in fp32, so scores do not collapse into bf16 ties.
    """
    net.eval()
    logits, feats = [], []
    dev = next(net.parameters()).device
    batch = batch or inference_batch(dev)
    for i in range(0, len(x), batch):
        xb = x[i:i + batch].to(dev)
        if bf16 or dev.type == "cpu":
            xb = xb.contiguous(memory_format=torch.channels_last)
        with bf16_autocast(dev, bf16):
            f = net.features(xb)
        f = f.float()
        feats.append(f)
        logits.append(net.head(f))
    return torch.cat(logits), torch.cat(feats)


def predict(net: SmallCNN, x: Tensor, batch: int | None = None) -> tuple[Tensor, Tensor]:
    """(softmax probabilities [N, 10], features [N, feat]) for binary images x [N, 1, 28, 28], in fp32."""
    logits, feats = predict_logits(net, x, batch)
    return logits.softmax(1), feats

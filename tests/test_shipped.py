"""The shipped networks of real MNIST: checksums, specs, loading without training, tampering refused, and (slow)
their recorded test accuracies and the evaluator's recorded FID reproduced on this machine."""
import json
import shutil
from dataclasses import asdict
from types import SimpleNamespace

import pytest
import torch

from collapselab import nets
from collapselab.checkpoint import load_torch
from collapselab.errors import RunError

SPECS = {s.role: s for s in (nets.EVALUATOR, nets.JUDGE, nets.classifier_spec(60000))}
REAL = SimpleNamespace(key="mnist-md5")  # what get_net reads of real MNIST before it needs the images


@pytest.fixture
def fresh_memo():
    """get_net's in-process memo and the checksum memo emptied for this test, restored afterwards."""
    with nets.fresh_memo():
        yield


def test_the_manifest_names_the_three_fixed_networks_and_their_checksums_hold():
    m = nets.manifest()
    assert m["data"] == "mnist-md5" and m["threads"] >= 1 and m["cpu"] and m["torch"]
    names = {f"{s.key('mnist-md5')}.pt" for s in SPECS.values()} | {
        f"{nets.EVALUATOR.key('mnist-md5')}-test-stats.pt"}
    assert set(m["files"]) == names
    for name, entry in m["files"].items():
        assert nets.sha256(nets.SHIPPED / name) == entry["sha256"], name
        if "spec" in entry:  # a network: its spec is the project's, its key names the file
            spec = SPECS[entry["role"]]
            assert entry["spec"] == json.loads(json.dumps(asdict(spec))) and name == f"{spec.key('mnist-md5')}.pt"
            blob = load_torch(nets.SHIPPED / name)  # weights_only=True
            assert blob["test_accuracy"] == entry["test_accuracy"] >= 0.99
            nets.SmallCNN(spec.widths, spec.feat).load_state_dict(blob["state"])  # every tensor, every shape


def test_real_mnist_networks_are_loaded_from_the_package_and_nothing_is_trained_or_cached(tmp_path, fresh_memo,
                                                                                           monkeypatch):
    monkeypatch.setattr(nets, "train_net", lambda *a, **k: pytest.fail("a shipped network was trained"))
    for role, spec in SPECS.items():
        net, acc = nets.get_net(spec, REAL, tmp_path / "nets", torch.device("cpu"), progress=False)
        assert acc == nets.manifest()["files"][f"{spec.key('mnist-md5')}.pt"]["test_accuracy"]
        assert not net.training and not any(p.requires_grad for p in net.parameters())
    assert not (tmp_path / "nets").exists()


@pytest.mark.slow  # trains a network
def test_a_network_the_package_does_not_ship_is_still_trained_and_cached(tmp_path, fresh_memo):
    from collapselab.data.mnist import fake_mnist

    spec = nets.classifier_spec(500)
    assert nets.shipped_file(f"{spec.key('mnist-md5')}.pt") is None
    nets.get_net(spec, fake_mnist(), tmp_path / "nets", torch.device("cpu"), progress=False)
    assert (tmp_path / "nets" / f"{spec.key(fake_mnist().key)}.pt").exists()


@pytest.mark.parametrize("damage", ["altered", "missing"])
def test_a_damaged_shipped_file_is_one_line_naming_it_and_the_fix(tmp_path, fresh_memo, monkeypatch, damage):
    copy = tmp_path / "shipped"
    shutil.copytree(nets.SHIPPED, copy)
    name = f"{nets.EVALUATOR.key('mnist-md5')}.pt"
    if damage == "altered":
        data = bytearray((copy / name).read_bytes())
        data[-100] ^= 1
        (copy / name).write_bytes(bytes(data))
    else:
        (copy / name).unlink()
    monkeypatch.setattr(nets, "SHIPPED", copy)
    with pytest.raises(RunError) as e:
        nets.get_net(nets.EVALUATOR, REAL, tmp_path / "nets", torch.device("cpu"), progress=False)
    msg = str(e.value)
    assert "\n" not in msg and str(copy / name) in msg and "git checkout" in msg
    assert ("sha256" in msg) if damage == "altered" else ("missing" in msg)


@pytest.mark.slow
def test_shipped_networks_reproduce_their_recorded_accuracy_and_fid_on_real_mnist(real_root, fresh_memo):
    """The metric is the same on every machine: the shipped evaluator's FID of 10,000 real training images against
    the test set, computed here, equals the value recorded when it was made (to inference rounding); each
    network's test accuracy equals the recorded one to within 2 of the 10,000 test images."""
    from collapselab.data.mnist import load_mnist
    from collapselab.metrics.features import frechet_distance
    from collapselab.studies.mnist_eval import test_statistics

    mnist = load_mnist(real_root)
    files, cpu = nets.manifest()["files"], torch.device("cpu")
    for spec in SPECS.values():
        net, recorded = nets.get_net(spec, mnist, real_root / "nets", cpu, progress=False)
        assert nets.accuracy(net, mnist.test_x, mnist.test_y, cpu) == pytest.approx(recorded, abs=2e-4)
    evaluator = nets.get_net(nets.EVALUATOR, mnist, real_root / "nets", cpu, progress=False)[0]
    here = test_statistics(evaluator, mnist, cpu)
    entry = files[f"{nets.EVALUATOR.key('mnist-md5')}-test-stats.pt"]
    assert here["fid_real_floor"] == pytest.approx(entry["fid_real_floor"], rel=1e-3)
    assert here["fid_real_floor_gray"] == pytest.approx(entry["fid_real_floor_gray"], rel=1e-3)
    shipped = load_torch(nets.SHIPPED / f"{nets.EVALUATOR.key('mnist-md5')}-test-stats.pt")
    assert frechet_distance(here["mu"].numpy(), here["cov"].numpy(), shipped["mu"].numpy(),
                            shipped["cov"].numpy()) < 1e-3  # this machine's test statistics are the shipped ones
    assert 1.0 < entry["fid_real_floor"] < 5.0  # a real-vs-real FID: small, not zero

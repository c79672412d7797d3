"""Train the fixed networks of real MNIST and write them, checksummed, into src/collapselab/shipped.

The evaluator (FID, precision / recall), the judge (label agreement, the oracle verifier) and the classifier
verifier on all 60,000 training images are the same for every user, so the package ships them: FID then means
the same on every machine and a clean clone trains none of them. This script is how the shipped files were made
(the project's own training code, seeded; MANIFEST.json records the CPU and torch it ran on).

    python scripts/ship_networks.py --check     # retrain all three, compare with the shipped files (about 4 min)
    python scripts/ship_networks.py --write     # retrain and overwrite the shipped files and the manifest

Training is deterministic on one machine (fixed seeds, a fixed thread count); on another CPU the weights differ
in the last bits, which is why the trained files are shipped rather than each user training their own.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

import torch

from collapselab.checkpoint import load_torch, save_torch
from collapselab.data.mnist import load_mnist
from collapselab.device import cpu_model
from collapselab.nets import EVALUATOR, JUDGE, MANIFEST, SHIPPED, classifier_spec, sha256, train_net
from collapselab.studies.mnist_eval import test_statistics

SPECS = (EVALUATOR, JUDGE, classifier_spec(60000))
THREADS = 2  # the thread count the shipped files were trained with (training is deterministic given it)


def build(out: Path, root: str) -> dict:
    """Train the three networks into ``out``; returns the manifest."""
    torch.set_num_threads(THREADS)
    mnist = load_mnist(root)
    files = {}
    for spec in SPECS:
        key = spec.key(mnist.key)
        logging.info("training %s (%s)", key, json.dumps(asdict(spec)))
        net, acc = train_net(spec, mnist, torch.device("cpu"))
        save_torch({"state": {k: v.cpu() for k, v in net.state_dict().items()}, "test_accuracy": acc,
                    "spec": json.dumps(asdict(spec))}, out / f"{key}.pt")
        files[f"{key}.pt"] = {"role": spec.role, "spec": asdict(spec), "test_accuracy": acc}
        if spec is EVALUATOR:
            stats = test_statistics(net.eval(), mnist, torch.device("cpu"))
            save_torch(stats, out / f"{key}-test-stats.pt")
            files[f"{key}-test-stats.pt"] = {
                "role": "evaluator test statistics",
                "fid_real_floor": stats["fid_real_floor"], "fid_real_floor_gray": stats["fid_real_floor_gray"],
                "fid_check": "10,000 training images (torch.randperm(60000, seed 0)[:10000]) against the 10,000 "
                             "test images, binarised at 0.5, in the evaluator's 128-d features"}
    for name, entry in files.items():
        entry["sha256"] = sha256(out / name)
    return {"made_by": "python scripts/ship_networks.py --write", "data": mnist.key, "cpu": cpu_model(),
            "torch": torch.__version__, "threads": THREADS, "files": files}


def compare(a: Path, b: Path) -> float:
    """Largest absolute difference between two saved blobs' tensors (0.0: identical)."""
    x, y = load_torch(a), load_torch(b)
    x, y = x.get("state", x), y.get("state", y)
    return max(float((x[k].double() - y[k].double()).abs().max()) for k in x if torch.is_tensor(x[k]))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--check", action="store_true", help="retrain and compare with the shipped files")
    mode.add_argument("--write", action="store_true", help="retrain and overwrite the shipped files")
    p.add_argument("--root", default="data", help="data root holding MNIST (fetched there when missing)")
    a = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if a.write:
        SHIPPED.mkdir(exist_ok=True)
        made = build(SHIPPED, a.root)
        MANIFEST.write_text(json.dumps(made, indent=2) + "\n")
        logging.info("wrote %d files and %s", len(made["files"]), MANIFEST)
        return 0
    shipped = json.loads(MANIFEST.read_text())
    with tempfile.TemporaryDirectory() as tmp:
        made = build(Path(tmp), a.root)
        same = True
        print(f"shipped on: {shipped['cpu']}, torch {shipped['torch']}; retrained on: {made['cpu']}, "
              f"torch {made['torch']}")
        for name, entry in made["files"].items():
            old = shipped["files"].get(name)
            diff = compare(Path(tmp) / name, SHIPPED / name) if old else float("nan")
            acc = f"test accuracy {entry['test_accuracy']:.4f} vs {old['test_accuracy']:.4f}" \
                if old and "test_accuracy" in entry else ""
            print(f"{name:42s} max |weight difference| {diff:.3g}  sha256 "
                  f"{'equal' if old and old['sha256'] == entry['sha256'] else 'differs'}  {acc}")
            same &= diff == 0.0
    print("the retrained networks equal the shipped ones" if same else
          "the retrained networks differ from the shipped ones (expected on another CPU or torch)")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())

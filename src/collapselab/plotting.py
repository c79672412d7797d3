"""Figures rendered once, saved as PNG and handed to TensorBoard as an image tensor."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402


def save_figure(fig, path: Path, dpi: int = 80) -> torch.Tensor:
    """Render ``fig`` once, write it to ``path`` and return it as [3, H, W] float in [0, 1]."""
    fig.set_dpi(dpi)
    fig.canvas.draw()
    rgba = np.asarray(fig.canvas.buffer_rgba())
    plt.imsave(path, rgba)
    plt.close(fig)
    return torch.from_numpy(rgba[..., :3].copy()).permute(2, 0, 1).float() / 255.0


def save_image_grid(img: torch.Tensor, path: Path) -> None:
    """Write a [C, H, W] float image in [0, 1] as PNG."""
    arr = (img.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).cpu().numpy()
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    plt.imsave(path, arr)

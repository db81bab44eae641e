"""DetDataPreprocessor inside the graph: RGB 0-255 image batch in, normalised padded batch out."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dlu_deploy.errors import UserError

from .config import Preprocess


def check_image(image: torch.Tensor) -> None:
    """A clear error for what the detector cannot take (checked on static properties only)."""
    if image.dim() != 4 or image.shape[1] != 3:
        raise UserError(
            f"The detector takes images of shape [N, 3, H, W] (RGB), got {tuple(image.shape)}.",
            "Pass a batch of 3-channel RGB images, channels first (convert grey or RGBA images "
            "to RGB first).",
        )
    if not image.dtype.is_floating_point:
        raise UserError(
            f"The detector takes float images (pixel values 0-255), got {image.dtype}.",
            "Convert the image to float32 first, e.g. image.float().",
        )


class DetDataPreprocessor(nn.Module):
    """(image[:, order] - mean) / std, then zero padding at the bottom and right to a multiple
    of `pad_size_divisor` (mmdetection pads after normalising, so the pad value is 0 there)."""

    def __init__(self, config: Preprocess) -> None:
        super().__init__()
        self.config = config
        # The graph's input is RGB; a network trained on BGR (bgr_to_rgb=False) gets BGR.
        self.flip = not config.bgr_to_rgb
        self.mean: torch.Tensor
        self.std: torch.Tensor
        self.register_buffer("mean", torch.tensor(config.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(config.std).view(1, 3, 1, 1), persistent=False)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        check_image(image)
        if self.flip:
            image = image.flip(1)
        x = (image - self.mean) / self.std
        divisor = self.config.pad_size_divisor
        height, width = x.shape[2], x.shape[3]
        pad_h = (divisor - height % divisor) % divisor
        pad_w = (divisor - width % divisor) % divisor
        return F.pad(x, (0, pad_w, 0, pad_h))

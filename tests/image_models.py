"""Tiny image models in dlu_deploy's detector and segmenter layouts, for the image tests.

`ColourBoxDetector`: image [N, 3, H, W] (RGB 0-255) -> dets [N, 3, 5], labels [N, 3]. A fixed
1x1 conv scores how much each channel dominates (2c - others - 255 > 0: a "pure" red, green or
blue pixel); each class's box is the bounding box of its pure pixels (x2, y2 exclusive), its score
a fixed class weight times the fraction of the box that is pure; rows sorted by score, absent
classes are zero rows with label -1. `ColourSegmenter`: the same conv as logits [N, 4, H, W]
(class 3, background, is a constant 0 logit).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import onnx
import torch
from torch import nn

CLASS_NAMES = ["red", "green", "blue"]
CLASS_WEIGHTS = (0.9, 0.8, 0.7)
EXAMPLE = (1, 3, 32, 48)


def _purity_conv() -> nn.Conv2d:
    conv = nn.Conv2d(3, 3, 1)
    with torch.no_grad():
        conv.weight.copy_((3 * torch.eye(3) - torch.ones(3, 3)).view(3, 3, 1, 1))
        conv.bias.fill_(-255.0)
    return conv


class ColourBoxDetector(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.purity = _purity_conv()
        self.register_buffer("weights", torch.tensor(CLASS_WEIGHTS))

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mask = (self.purity(image) > 0).float()  # N, 3, H, W
        height, width = image.shape[2], image.shape[3]
        xs = torch.arange(width, dtype=torch.float32, device=image.device)
        ys = torch.arange(height, dtype=torch.float32, device=image.device)
        cols = mask.amax(dim=2)  # N, 3, W
        rows = mask.amax(dim=3)  # N, 3, H
        big = 1e6
        x1 = torch.where(cols > 0, xs, big).amin(-1)
        x2 = torch.where(cols > 0, xs + 1, -big).amax(-1)
        y1 = torch.where(rows > 0, ys, big).amin(-1)
        y2 = torch.where(rows > 0, ys + 1, -big).amax(-1)
        found = cols.amax(-1)  # N, 3: 1 where the class has pixels
        area = ((x2 - x1) * (y2 - y1)).clamp(min=1.0)
        score = self.weights * mask.sum(dim=(2, 3)) / area * found
        dets = torch.stack([x1, y1, x2, y2, score], dim=-1) * found.unsqueeze(-1)
        classes = torch.arange(3, device=image.device).expand_as(found)
        labels = torch.where(found > 0, classes, torch.full_like(classes, -1))
        _, order = torch.topk(score, 3, dim=1)
        dets = torch.gather(dets, 1, order.unsqueeze(-1).expand(-1, -1, 5))
        return dets, torch.gather(labels, 1, order)


class ColourSegmenter(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.purity = _purity_conv()

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        logits = self.purity(image)
        return torch.cat([logits, torch.zeros_like(logits[:, :1])], dim=1)


def export(
    model: nn.Module,
    path: Path,
    outputs: list[str],
    class_names: list[str] | None = None,
    dynamic: bool = True,
) -> Path:
    """Legacy (TorchScript) export with dynamic N, H, W, IR 10, and class names recorded under
    the metadata key dlu-export uses."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (torch.zeros(*EXAMPLE),),
            str(path),
            input_names=["image"],
            output_names=outputs,
            dynamic_axes={"image": {0: "N", 2: "H", 3: "W"}} if dynamic else None,
            opset_version=17,
            dynamo=False,
        )
    proto = onnx.load(str(path))
    proto.ir_version = 10
    if class_names is not None:
        import json

        proto.metadata_props.add(key="dlu_deploy.classes", value=json.dumps(class_names))
    onnx.save(proto, str(path))
    return path

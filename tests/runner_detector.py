"""A small real detector for the validate tests: outputs in the whole-detector format of
dlu-export (`dets` [N, K, 5] x1 y1 x2 y2 score in input pixels, `labels` [N, K] int64, sorted
by score, padding rows zero with label -1), exported with torch.onnx, and registered as a
checkpoint architecture the way the real Faster R-CNN is (registry `Built` output names).

image (0-255) -> normalise -> 3x3 stride-4 conv -> ReLU -> 1x1 convs: class logits and
DeltaXYWH box deltas per cell -> one 16x16 anchor per cell, decoded, clipped to the image ->
sigmoid scores -> top K over (cell, class) -> score threshold.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path

import onnx
import torch
from torch import nn

from dlu_deploy.checkpoints import Architecture, Built, Checkpoint
from dlu_deploy.checkpoints.registry import has_keys

STRIDE = 4
ANCHOR = 16.0
EXAMPLE_SHAPE = (1, 3, 32, 48)
SIGNATURE = ("tiny_stem.weight", "tiny_cls.weight", "tiny_reg.weight")


class TinyDetector(nn.Module):
    def __init__(self, num_classes: int = 3, max_per_img: int = 40, score_thr: float = 0.3):
        super().__init__()
        self.tiny_stem = nn.Conv2d(3, 16, 3, stride=STRIDE, padding=1)
        self.tiny_cls = nn.Conv2d(16, num_classes, 1)
        self.tiny_reg = nn.Conv2d(16, 4, 1)
        self.num_classes = num_classes
        self.max_per_img = max_per_img
        self.score_thr = score_thr  # read by validate as the detector's score threshold

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n, _, height, width = image.shape
        features = torch.relu(self.tiny_stem((image - 127.5) / 58.0))
        logits = self.tiny_cls(features).flatten(2).transpose(1, 2)  # [N, L, C]
        deltas = self.tiny_reg(features).flatten(2).transpose(1, 2)  # [N, L, 4]
        h, w = features.shape[2], features.shape[3]
        cy = (torch.arange(h).to(image.dtype) + 0.5) * STRIDE
        cx = (torch.arange(w).to(image.dtype) + 0.5) * STRIDE
        centres_y = cy.reshape(h, 1).expand(h, w).reshape(1, -1)
        centres_x = cx.reshape(1, w).expand(h, w).reshape(1, -1)
        x = centres_x + deltas[..., 0] * ANCHOR
        y = centres_y + deltas[..., 1] * ANCHOR
        half_w = 0.5 * ANCHOR * torch.exp(deltas[..., 2].clamp(-4.0, 4.0))
        half_h = 0.5 * ANCHOR * torch.exp(deltas[..., 3].clamp(-4.0, 4.0))
        right = torch.full_like(x, 1.0) * width
        bottom = torch.full_like(y, 1.0) * height
        boxes = torch.stack(
            (
                torch.minimum((x - half_w).clamp(min=0.0), right),
                torch.minimum((y - half_h).clamp(min=0.0), bottom),
                torch.minimum((x + half_w).clamp(min=0.0), right),
                torch.minimum((y + half_h).clamp(min=0.0), bottom),
            ),
            dim=-1,
        )  # [N, L, 4]
        scores, index = torch.sigmoid(logits).flatten(1).topk(self.max_per_img, dim=1)
        cell = torch.div(index, self.num_classes, rounding_mode="floor")
        label = index - cell * self.num_classes
        picked = torch.gather(boxes, 1, cell.unsqueeze(2).expand(n, self.max_per_img, 4))
        keep = scores > self.score_thr
        dets = torch.cat((picked, scores.unsqueeze(2)), dim=2) * keep.unsqueeze(2).to(image.dtype)
        labels = torch.where(keep, label, torch.full_like(label, -1))
        return dets, labels


def make_detector(seed: int = 0) -> TinyDetector:
    torch.manual_seed(seed)
    model = TinyDetector().eval()
    with torch.no_grad():
        model.tiny_reg.weight.mul_(0.5)
        # scores spread over 0.3-0.97: ~30 detections at 32x48, a full list (K = 40) at 64x48
        model.tiny_cls.weight.mul_(8.0)
        model.tiny_cls.bias.fill_(-3.0)
    return model


def export(model: nn.Module, path: Path, *, fp16: bool = False) -> Path:
    """TorchScript export (opset 17, IR 10) with dynamic N, H, W; `fp16`: a float16 copy."""
    import copy

    dtype = torch.float16 if fp16 else torch.float32
    if fp16:
        model = copy.deepcopy(model).half()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (torch.rand(*EXAMPLE_SHAPE, dtype=dtype) * 255,),
            str(path),
            input_names=["image"],
            output_names=["dets", "labels"],
            dynamic_axes={"image": {0: "N", 2: "H", 3: "W"}},
            opset_version=17,
            dynamo=False,
        )
    proto = onnx.load(str(path))
    proto.ir_version = 10
    onnx.save(proto, str(path))
    return path


class TinyDetectorArchitecture(Architecture):
    """What the real detector's architecture returns, in small: outputs dets and labels."""

    name = "test_tiny_detector"
    summary = "validate tests: a tiny detector in the whole-detector output format"

    def detect(self, checkpoint: Checkpoint) -> bool:
        return has_keys(checkpoint.state_dict, SIGNATURE)

    def build(self, checkpoint: Checkpoint, overrides: Mapping[str, object]) -> Built:
        classes = int(checkpoint.state_dict["tiny_cls.weight"].shape[0])
        return Built(
            model=TinyDetector(num_classes=classes),
            state_dict=dict(checkpoint.state_dict),
            input_names=["image"],
            output_names=["dets", "labels"],
            example_shapes=[EXAMPLE_SHAPE],
            inferred={"num_classes": classes},
        )

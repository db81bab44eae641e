"""A detector or segmenter behind any backend, one image at a time: preprocess, run, map back.

Detectors (outputs `dets` [N, K, 5] and `labels` [N, K], the layout of dlu_deploy's exported
Faster R-CNN) take RGB 0-255 pixels; normalisation and padding are inside their graph. Boxes come
back in the resized image's pixels and are mapped back as mmdetection's `rescale=True` does
(float32 boxes times float32(1 / factor)). Segmenters (one output, logits [N, C, H', W']) take
the image normalised and padded as their architecture's test pipeline does
(`SEGMENTATION_PRESETS`); the logits are cropped to the unpadded image, resized bilinearly to
the original size and arg-maxed (detectron2's `sem_seg_postprocess`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from dlu_deploy.errors import UserError
from dlu_deploy.images.reading import LoadedImage
from dlu_deploy.images.resize import (
    rescale_size,
    resize_bilinear,
    resize_pillow,
    shortest_edge_size,
)

DETECTION_OUTPUTS = ("dets", "labels")
METADATA_PREFIX = "dlu_deploy."
# Metadata keys that hold the class names as a JSON list, first found wins: what dlu-export
# writes (`dlu_deploy.classes`), and the same key unprefixed, as an engine's sidecar keeps it.
CLASS_NAMES_KEYS = ("dlu_deploy.classes", "classes")


@dataclass(frozen=True)
class Preprocessing:
    """What happens to an upright RGB uint8 image before the graph sees it."""

    scale: tuple[int, int] | None = (1333, 800)  # keep-ratio limit (long, short); None: as is
    channel_order: str = "rgb"  # the order the graph's input takes
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)  # in the graph's channel order
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    pad_divisor: int = 1  # zero padding (after normalising) at the bottom/right to a multiple
    # "mmcv": mmcv.imrescale's size rule and OpenCV's bilinear (mmdetection); "detectron2":
    # ResizeShortestEdge(short, max_size=long) and Pillow's bilinear (dl_lib, detectron2).
    resizer: str = "mmcv"

    def describe(self) -> str:
        size = (
            f"keep-ratio resize into {self.scale[0]}x{self.scale[1]} ({self.resizer})"
            if self.scale
            else "as is"
        )
        parts = [size, self.channel_order.upper()]
        if any(self.mean) or any(s != 1 for s in self.std):
            parts.append(f"mean {list(self.mean)}, std {list(self.std)}")
        if self.pad_divisor > 1:
            parts.append(f"padded to a multiple of {self.pad_divisor}")
        return ", ".join(parts)


# Detectors exported by dlu-export normalise and pad inside the graph: raw RGB in.
DETECTION_PRESET = Preprocessing()
SEGMENTATION_PRESETS = {
    # dl_lib (DynamicRouting @6a88d01) configs: BGR, PIXEL_MEAN [103.53, 116.28, 123.675],
    # PIXEL_STD 1, ImageList padding to 32, ResizeShortestEdge(MIN_SIZE_TEST 1024,
    # MAX_SIZE_TEST 2048) with Pillow's bilinear.
    "dynamic_routing": Preprocessing(
        (2048, 1024), "bgr", (103.53, 116.28, 123.675), (1.0, 1.0, 1.0), 32, "detectron2"
    ),
}


@dataclass
class Prepared:
    """One image as the graph takes it, and how to map results back."""

    tensor: np.ndarray  # [1, 3, H_pad, W_pad] float32
    resized: tuple[int, int]  # (width, height) after resizing, before padding
    original: tuple[int, int]  # (width, height) of the upright image

    @property
    def scale_factor(self) -> tuple[float, float]:
        """(w_scale, h_scale) = new / old, as mmdetection records it."""
        return self.resized[0] / self.original[0], self.resized[1] / self.original[1]


@dataclass
class Detections:
    boxes: np.ndarray  # [K, 4] x1, y1, x2, y2 in the original image's pixels (float64)
    scores: np.ndarray  # [K]
    labels: np.ndarray  # [K] int64, model class indices

    def above(self, threshold: float) -> Detections:
        keep = self.scores >= threshold
        return Detections(self.boxes[keep], self.scores[keep], self.labels[keep])

    def __len__(self) -> int:
        return len(self.scores)


@dataclass
class SegMask:
    labels: np.ndarray  # [H, W] int64 class per pixel of the original image
    num_classes: int


def preprocess(image: LoadedImage, preprocessing: Preprocessing) -> Prepared:
    rgb = image.rgb
    if preprocessing.scale is not None:
        if preprocessing.resizer == "detectron2":
            long_side, short_side = max(preprocessing.scale), min(preprocessing.scale)
            width, height = shortest_edge_size(image.width, image.height, short_side, long_side)
            rgb = resize_pillow(rgb, width, height)
        else:
            width, height = rescale_size(image.width, image.height, preprocessing.scale)
            rgb = resize_bilinear(rgb, width, height)
    pixels = rgb if preprocessing.channel_order == "rgb" else rgb[:, :, ::-1]
    x: np.ndarray = pixels.astype(np.float32)
    if any(preprocessing.mean) or any(s != 1 for s in preprocessing.std):
        mean = np.asarray(preprocessing.mean, dtype=np.float32)
        x = (x - mean) / np.asarray(preprocessing.std, dtype=np.float32)
    x = np.ascontiguousarray(x.transpose(2, 0, 1)[None])
    divisor = preprocessing.pad_divisor
    if divisor > 1:
        height, width = x.shape[2:]
        pad_h, pad_w = -height % divisor, -width % divisor
        if pad_h or pad_w:
            x = np.pad(x, ((0, 0), (0, 0), (0, pad_h), (0, pad_w)))
    return Prepared(x, (rgb.shape[1], rgb.shape[0]), (image.width, image.height))


class ImageModel:
    """A backend of dlu_deploy.validate.backends (engine, ONNX, PyTorch) fed one image at a time."""

    def __init__(
        self,
        backend: Any,
        *,
        class_names: Sequence[str] | None = None,
        arch: str | None = None,
        preprocessing: Preprocessing | None = None,
        output_names: Sequence[str] | None = None,
    ) -> None:
        self.backend = backend
        self.output_names = list(output_names or backend.output_names)
        self.class_names = list(class_names) if class_names is not None else None
        self.arch = arch
        if len(backend.inputs) != 1:
            raise UserError(
                f"The model has {len(backend.inputs)} inputs "
                f"({', '.join(s.name for s in backend.inputs)}); an image model takes one.",
                "Run it on tensors instead: dlu-deploy run MODEL --inputs inputs.npz",
            )
        self.input = backend.inputs[0]
        self.task = _task(self.output_names)
        shape = tuple(self.input.shape)
        if len(shape) == 4 and shape[1] not in (-1, 3):
            raise UserError(
                f"The model's input '{self.input.name}' takes {shape[1]} channels, not an "
                "RGB image (a head that takes backbone features, such as the DySample "
                "segmentation head, cannot run on images).",
                "Run it on tensors instead: dlu-deploy run MODEL --inputs features.npz",
            )
        self.preprocessing = preprocessing or self.default_preprocessing()

    def default_preprocessing(self) -> Preprocessing:
        if self.task == "segmentation":
            return SEGMENTATION_PRESETS.get(self.arch or "", DETECTION_PRESET)
        return DETECTION_PRESET

    def with_options(self, **changes: Any) -> None:
        """Replace fields of the preprocessing (e.g. scale=None for --no-resize)."""
        self.preprocessing = replace(self.preprocessing, **changes)

    def prepare(self, image: LoadedImage) -> Prepared:
        prepared = preprocess(image, self.preprocessing)
        self._check_shape(prepared.tensor.shape)
        return prepared

    def predict(self, image: LoadedImage) -> Detections | SegMask:
        return self.predict_prepared(self.prepare(image))

    def predict_prepared(self, prepared: Prepared) -> Detections | SegMask:
        dtype = self.input.dtype if np.dtype(self.input.dtype).kind == "f" else np.float32
        outputs = self.backend.run({self.input.name: prepared.tensor.astype(dtype, copy=False)})
        if self.task == "detection":
            return _detections(outputs, prepared)
        return _segmentation(outputs[self.output_names[0]], prepared)

    def class_name(self, label: int) -> str:
        if self.class_names is not None and 0 <= label < len(self.class_names):
            return self.class_names[label]
        return str(label)

    def _check_shape(self, shape: tuple[int, ...]) -> None:
        declared = tuple(self.input.shape)
        if not declared:
            return  # the PyTorch model: any shape
        fits = len(declared) == len(shape) and all(
            d < 0 or d == s for d, s in zip(declared, shape, strict=True)
        )
        if not fits:
            raise UserError(
                f"The model's input '{self.input.name}' has the fixed shape {list(declared)}, "
                f"but this image becomes {list(shape)} after preprocessing "
                f"({self.preprocessing.describe()}).",
                "Export the model with dynamic sizes (dlu-export --dynamic), or pick --resize / "
                "--no-resize so every image comes out at the model's size.",
            )
        profile = getattr(self.input, "profile", None)
        if profile is not None:
            low, high = profile[0], profile[2]
            if not all(lo <= s <= hi for lo, s, hi in zip(low, shape, high, strict=True)):
                raise UserError(
                    f"This image becomes {list(shape)} after preprocessing "
                    f"({self.preprocessing.describe()}), outside the engine's profile "
                    f"{list(low)} .. {list(high)}.",
                    "Rebuild the engine with a wider range (dlu-deploy build --min/--max), or "
                    "pick a --resize limit inside it.",
                )


def _task(output_names: Sequence[str]) -> str:
    if all(name in output_names for name in DETECTION_OUTPUTS):
        return "detection"
    if len(output_names) == 1:
        return "segmentation"
    raise UserError(
        f"The model's outputs ({', '.join(output_names)}) are neither a detector's "
        f"({', '.join(DETECTION_OUTPUTS)}) nor a single segmentation logits tensor.",
        "Run it on tensors instead: dlu-deploy run MODEL --inputs inputs.npz",
    )


def _detections(outputs: Mapping[str, np.ndarray], prepared: Prepared) -> Detections:
    dets = np.asarray(outputs["dets"], dtype=np.float64)
    labels = np.rint(np.asarray(outputs["labels"], dtype=np.float64)).astype(np.int64)
    if dets.ndim != 3 or dets.shape[-1] != 5 or labels.shape != dets.shape[:2]:
        raise UserError(
            f"The detector's outputs have shapes dets {list(dets.shape)}, labels "
            f"{list(labels.shape)}; expected [N, K, 5] and [N, K].",
            "Export the detector with dlu-export (its Faster R-CNN writes this layout).",
        )
    valid = labels[0] >= 0
    # mmdetection's rescale (bbox_head + scale_boxes): float32 boxes times float32(1 / factor).
    w_scale, h_scale = prepared.scale_factor
    inverse = np.array([1 / w_scale, 1 / h_scale] * 2, dtype=np.float32)
    boxes = (dets[0, valid, :4].astype(np.float32) * inverse).astype(np.float64)
    return Detections(boxes, dets[0, valid, 4].copy(), labels[0, valid])


def _segmentation(logits: np.ndarray, prepared: Prepared) -> SegMask:
    logits = np.asarray(logits, dtype=np.float32)
    if logits.ndim != 4:
        raise UserError(
            f"The segmentation model's output has shape {list(logits.shape)}, not "
            "[N, classes, H, W].",
            "Run it on tensors instead: dlu-deploy run MODEL --inputs inputs.npz",
        )
    padded_h, padded_w = prepared.tensor.shape[2:]
    out_h, out_w = logits.shape[2:]
    # The unpadded part at the output's resolution: every output cell that sees image pixels
    # (the same region when the output is at the input's resolution).
    keep_h = -(-prepared.resized[1] * out_h // padded_h)
    keep_w = -(-prepared.resized[0] * out_w // padded_w)
    cropped = logits[0, :, :keep_h, :keep_w]
    width, height = prepared.original
    resized = resize_logits(cropped, width, height)
    return SegMask(np.argmax(resized, axis=0).astype(np.int64), int(logits.shape[1]))


def resize_logits(logits: np.ndarray, width: int, height: int) -> np.ndarray:
    """Bilinear C x H x W -> C x height x width, half-pixel centres (F.interpolate,
    align_corners=False), computed in float32 as detectron2's sem_seg_postprocess does."""

    def axis(source: int, target: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        position = np.maximum((np.arange(target) + 0.5) * (source / target) - 0.5, 0.0)
        low = np.minimum(np.floor(position).astype(np.int64), source - 1)
        high = np.minimum(low + 1, source - 1)
        return low, high, (position - low).astype(np.float32)

    top, bottom, fy = axis(logits.shape[1], height)
    left, right, fx = axis(logits.shape[2], width)
    rows = logits[:, top] * (1 - fy)[None, :, None] + logits[:, bottom] * fy[None, :, None]
    return rows[:, :, left] * (1 - fx) + rows[:, :, right] * fx


def read_class_names(metadata: Mapping[str, str]) -> list[str] | None:
    """The class names recorded in a model's metadata (a JSON list), or None."""
    for key in CLASS_NAMES_KEYS:
        try:
            names = json.loads(metadata.get(key) or "null")
        except json.JSONDecodeError:
            continue
        if isinstance(names, list) and names and all(isinstance(n, str) for n in names):
            return names
    return None


def backend_metadata(backend: Any) -> dict[str, str]:
    """The ONNX metadata of an onnxruntime backend, or what an engine's sidecar recorded of it
    (keys as in the ONNX file, `dlu_deploy.` prefix included)."""
    session = getattr(backend, "session", None)
    if session is not None:
        return dict(session.get_modelmeta().custom_metadata_map)
    engine = getattr(backend, "engine", None)
    sidecar = getattr(engine, "sidecar", None) or {}
    recorded = sidecar.get("export", {}) if isinstance(sidecar, dict) else {}
    return {METADATA_PREFIX + str(k): str(v) for k, v in recorded.items()}


def open_image_model(backend: Any, **changes: Any) -> ImageModel:
    """An ImageModel over an engine or ONNX backend, with the class names and architecture its
    metadata records; `changes` replace fields of the default preprocessing."""
    metadata = backend_metadata(backend)
    model = ImageModel(
        backend,
        class_names=read_class_names(metadata),
        arch=metadata.get(METADATA_PREFIX + "arch"),
    )
    if changes:
        model.with_options(**changes)
    return model

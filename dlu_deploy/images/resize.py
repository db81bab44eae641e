"""mmdetection's test-time resize: `mmcv.imrescale` sizes and OpenCV's INTER_LINEAR pixels.

mmdetection's `Resize(scale=(1333, 800), keep_ratio=True)` calls `mmcv.imrescale`, which picks
the largest scale factor that fits the long side into max(scale) and the short side into
min(scale), rounds the new size with `int(x * factor + 0.5)`, and resizes with
`cv2.resize(..., INTER_LINEAR)` on the uint8 image. The box scale factors are then
new_w / w and new_h / h (not the chosen factor), which is what boxes are divided by.

`resize_bilinear` reproduces OpenCV's uint8 INTER_LINEAR arithmetic without OpenCV: half-pixel
centres, float32 source positions, 11-bit fixed-point weights, horizontal pass in integers, the
vertical pass as OpenCV's vectorised code does it ((row >> 4) * weight >> 16, summed, then
(+2) >> 2). Columns clamp their weights at the borders, rows keep theirs and clamp the rows
read (as OpenCV does). It equals cv2.resize bit for bit on the sizes in docs/runner.md.
"""

from __future__ import annotations

import numpy as np

from dlu_deploy.errors import UserError

COEF_BITS = 11
COEF_SCALE = 1 << COEF_BITS


def rescale_size(width: int, height: int, scale: tuple[int, int]) -> tuple[int, int]:
    """(new_width, new_height) of mmcv.rescale_size((w, h), scale) for a (long, short) limit."""
    long_edge, short_edge = max(scale), min(scale)
    factor = min(long_edge / max(height, width), short_edge / min(height, width))
    return int(width * float(factor) + 0.5), int(height * float(factor) + 0.5)


def shortest_edge_size(width: int, height: int, short: int, max_size: int) -> tuple[int, int]:
    """(new_width, new_height) of detectron2's / dl_lib's ResizeShortestEdge (test mode): the
    short side to `short`, then everything scaled down if the long side passes `max_size`
    (the original's float arithmetic, in its order)."""
    scale = short * 1.0 / min(height, width)
    if height < width:
        new_h, new_w = float(short), scale * width
    else:
        new_h, new_w = scale * height, float(short)
    if max(new_h, new_w) > max_size:
        scale = max_size * 1.0 / max(new_h, new_w)
        new_h, new_w = new_h * scale, new_w * scale
    return int(new_w + 0.5), int(new_h + 0.5)


def resize_pillow(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Pillow's BILINEAR resize of a uint8 HxWx3 image (detectron2's ResizeTransform; unlike
    OpenCV it widens its filter when shrinking)."""
    from PIL import Image

    return np.asarray(Image.fromarray(image).resize((width, height), Image.Resampling.BILINEAR))


def _columns(source: int, target: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Left/right source indices and fixed-point weights along x (weights clamped at borders)."""
    position = ((np.arange(target) + 0.5) * (source / target) - 0.5).astype(np.float32)
    left = np.floor(position).astype(np.int64)
    fraction = (position - left).astype(np.float32)
    before = left < 0
    fraction[before], left[before] = 0, 0
    after = left >= source - 1
    fraction[after], left[after] = 0, source - 1
    w0 = np.rint((np.float32(1) - fraction) * np.float32(COEF_SCALE)).astype(np.int32)
    w1 = np.rint(fraction * np.float32(COEF_SCALE)).astype(np.int32)
    return left, np.minimum(left + 1, source - 1), w0, w1


def _rows(source: int, target: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Top/bottom source rows (clamped) and fixed-point weights along y (not clamped)."""
    position = ((np.arange(target) + 0.5) * (source / target) - 0.5).astype(np.float32)
    top = np.floor(position).astype(np.int64)
    fraction = (position - top).astype(np.float32)
    w0 = np.rint((np.float32(1) - fraction) * np.float32(COEF_SCALE)).astype(np.int32)
    w1 = np.rint(fraction * np.float32(COEF_SCALE)).astype(np.int32)
    return np.clip(top, 0, source - 1), np.clip(top + 1, 0, source - 1), w0, w1


def resize_bilinear(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """`cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)` for uint8 HxWxC."""
    if image.dtype != np.uint8 or image.ndim != 3:
        raise UserError(
            f"resize_bilinear takes a uint8 HxWxC image, got {image.dtype} {image.shape}.",
            "Pass the image as read by dlu_deploy.images.load_image.",
        )
    if width < 1 or height < 1:
        raise UserError(
            f"Cannot resize an image to {width}x{height}.",
            "Pick a --resize that leaves at least one pixel on each side.",
        )
    source_h, source_w = image.shape[:2]
    left, right, a0, a1 = _columns(source_w, width)
    top, bottom, b0, b1 = _rows(source_h, height)
    # The horizontal pass only on the source rows the output reads.
    needed, where = np.unique(np.concatenate([top, bottom]), return_inverse=True)
    source = image[needed]
    rows = source[:, left].astype(np.int32) * a0[None, :, None]
    rows += source[:, right].astype(np.int32) * a1[None, :, None]
    rows >>= 4
    upper = (rows[where[:height]] * b0[:, None, None]) >> 16
    upper += (rows[where[height:]] * b1[:, None, None]) >> 16
    upper += 2
    upper >>= 2
    return np.clip(upper, 0, 255).astype(np.uint8)

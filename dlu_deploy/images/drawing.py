"""Pictures of results, drawn with Pillow: boxes with class names and scores, mask overlays.

A box [x1, y1, x2, y2] covers pixels x1 .. x2-1 and y1 .. y2-1 (COCO's convention); its outline
is drawn inside that area, `line_width(image)` pixels wide, in its class's colour, with the label
("name 0.93") on a filled strip above the box (inside it when the box touches the top edge).
"""

from __future__ import annotations

import colorsys
from collections.abc import Callable

import numpy as np

from dlu_deploy.images.model import Detections, SegMask

OVERLAY_ALPHA = 0.5


def class_colour(label: int) -> tuple[int, int, int]:
    """A distinct, stable colour per class (golden-ratio steps around the hue circle)."""
    hue = (label * 0.618033988749895) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.85, 0.95)
    return round(r * 255), round(g * 255), round(b * 255)


def line_width(width: int, height: int) -> int:
    return max(1, round(min(width, height) / 300))


def box_pixels(box: np.ndarray, width: int, height: int) -> tuple[int, int, int, int] | None:
    """The inclusive pixel rectangle (left, top, right, bottom) of a box, clipped to the
    image; None when nothing of it is inside."""
    left, top = max(0, round(float(box[0]))), max(0, round(float(box[1])))
    right, bottom = min(width, round(float(box[2]))) - 1, min(height, round(float(box[3]))) - 1
    if right < left or bottom < top:
        return None
    return left, top, right, bottom


def draw_detections(
    rgb: np.ndarray, detections: Detections, name: Callable[[int], str]
) -> np.ndarray:
    """A copy of the H x W x 3 image with `detections` drawn (lowest score first, so the
    best ends up on top)."""
    from PIL import Image, ImageDraw, ImageFont

    image = Image.fromarray(rgb)
    draw = ImageDraw.Draw(image)
    height, width = rgb.shape[:2]
    line = line_width(width, height)
    font = ImageFont.load_default(size=max(10, 6 * line + 6))
    for index in np.argsort(detections.scores, kind="stable"):
        rect = box_pixels(detections.boxes[index], width, height)
        if rect is None:
            continue
        colour = class_colour(int(detections.labels[index]))
        draw.rectangle(rect, outline=colour, width=line)
        text = f"{name(int(detections.labels[index]))} {detections.scores[index]:.2f}"
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        text_w, text_h = right - left + 2 * line, bottom - top + 2 * line
        y = rect[1] - text_h if rect[1] >= text_h else rect[1] + line
        x = rect[0]
        draw.rectangle((x, y, x + text_w - 1, y + text_h - 1), fill=colour)
        draw.text((x + line - left, y + line - top), text, fill=_ink(colour), font=font)
    return np.asarray(image)


def overlay_mask(rgb: np.ndarray, mask: SegMask, alpha: float = OVERLAY_ALPHA) -> np.ndarray:
    """The image blended with each pixel's class colour: round((1-a)*image + a*colour)."""
    palette = np.array([class_colour(c) for c in range(mask.num_classes)], dtype=np.float64)
    colours = palette[np.clip(mask.labels, 0, mask.num_classes - 1)]
    blended = (1 - alpha) * rgb.astype(np.float64) + alpha * colours
    return np.rint(blended).clip(0, 255).astype(np.uint8)


def mask_image(mask: SegMask) -> np.ndarray:
    """The class indices as a single-channel image (uint8, or uint16 past 255 classes)."""
    dtype = np.uint8 if mask.num_classes <= 256 else np.uint16
    return mask.labels.astype(dtype)


def _ink(colour: tuple[int, int, int]) -> tuple[int, int, int]:
    luminance = 0.299 * colour[0] + 0.587 * colour[1] + 0.114 * colour[2]
    return (0, 0, 0) if luminance > 140 else (255, 255, 255)

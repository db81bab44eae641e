"""Finding and reading images: files or folders in, RGB uint8 arrays out, one note per change.

Pillow reads the file; the EXIF orientation is applied (what a viewer shows is what the model
sees, as OpenCV's imread, mmcv's default, does); greyscale, palette, RGBA, CMYK and 16-bit
images become 8-bit RGB with a note saying so. A file that
cannot be read raises ImageReadError, which the commands report and skip.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dlu_deploy.errors import UserError

IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
)


class ImageReadError(UserError):
    """One image could not be read; the other images are still processed."""


@dataclass
class LoadedImage:
    path: Path
    rgb: np.ndarray  # H x W x 3, uint8, RGB, upright
    notes: list[str] = field(default_factory=list)

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])


def collect_images(paths: Iterable[str | Path]) -> list[Path]:
    """The image files named or found (not recursively) in the folders named, in order.

    A folder contributes its files with an image suffix, sorted by name; a file is taken as
    named whatever its suffix (so a wrongly named file gets a read error, not silence).
    UserError for a path that does not exist or a folder without images.
    """
    found: list[Path] = []
    for item in paths:
        path = Path(item)
        if path.is_dir():
            images = sorted(
                p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
            )
            if not images:
                raise UserError(
                    f"The folder {path} holds no images (looked for "
                    f"{', '.join(sorted(IMAGE_SUFFIXES))}).",
                    "Point --image at a folder with images, or name the image files.",
                )
            found.extend(images)
        elif path.is_file():
            found.append(path)
        else:
            raise UserError(f"{path} does not exist.", "Check the path given to --image.")
    if not found:
        raise UserError("No images were given.", "Pass --image FILE_OR_FOLDER ...")
    return found


def load_image(path: str | Path) -> LoadedImage:
    """Read `path` as upright 8-bit RGB (see the module docstring)."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = Path(path)
    notes: list[str] = []
    try:
        with Image.open(path) as opened:
            opened.load()
            image = ImageOps.exif_transpose(opened)
            orientation = opened.getexif().get(0x0112, 1)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageReadError(
            f"{path} is not a readable image ({type(exc).__name__}: {exc}).",
            "Check that the file is a complete JPEG/PNG/BMP/TIFF/WebP image; a truncated "
            "download also gives this error.",
        ) from exc
    if orientation not in (1, None):
        notes.append(f"rotated upright by its EXIF orientation ({orientation})")
    mode = image.mode
    if mode != "RGB":
        if mode.startswith("I"):
            # 16-bit greyscale: the high byte, as OpenCV's imread makes 8 bits of 16.
            values = np.asarray(image, dtype=np.int64) >> 8
            image = Image.fromarray(values.clip(0, 255).astype(np.uint8)).convert("RGB")
            notes.append(f"{mode} greyscale reduced to 8 bits (value >> 8) and converted to RGB")
        elif mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
            image = image.convert("RGB")  # the stored colours stay, as imread keeps them
            notes.append(f"{_mode_name(mode)} converted to RGB (transparency dropped)")
        else:
            image = image.convert("RGB")
            notes.append(f"{_mode_name(mode)} converted to RGB")
    rgb = np.ascontiguousarray(np.asarray(image, dtype=np.uint8))
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise ImageReadError(
            f"{path} decoded to an array of shape {rgb.shape}, not an RGB image.",
            "Convert the file to an 8-bit RGB PNG or JPEG.",
        )
    return LoadedImage(path, rgb, notes)


def _mode_name(mode: str) -> str:
    names = {"L": "greyscale", "P": "palette", "CMYK": "CMYK", "1": "1-bit", "YCbCr": "YCbCr"}
    return f"{names.get(mode, mode)} image ({mode})" if mode in names else f"{mode} image"

"""Images in, pictures and accuracy out: `dlu-deploy run --image` and `dlu-deploy eval`.

Reading (Pillow), mmdetection's test-time resize, running a detector or segmenter (ONNX file,
engine or the PyTorch model) on one image at a time, drawing, COCO results and AP
(pycocotools), mIoU. docs/runner.md describes the commands.
"""

from dlu_deploy.images.model import Detections, ImageModel, Preprocessing, SegMask
from dlu_deploy.images.reading import LoadedImage, collect_images, load_image
from dlu_deploy.images.resize import rescale_size, resize_bilinear

__all__ = [
    "Detections",
    "ImageModel",
    "LoadedImage",
    "Preprocessing",
    "SegMask",
    "collect_images",
    "load_image",
    "rescale_size",
    "resize_bilinear",
]

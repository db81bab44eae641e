"""`dlu-deploy run --image` and `dlu-deploy eval` on generated images and COCO sets.

References: mmcv's size rule and OpenCV's INTER_LINEAR arithmetic written out independently
(exact 2x2 averages, float64 bilinear within one grey level, cv2 itself where installed); AP from
the COCO definition for known IoUs; boxes and pictures from the known drawn geometry.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import onnx
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from dlu_deploy.cli import main
from dlu_deploy.errors import UserError
from dlu_deploy.images import coco, drawing
from dlu_deploy.images import model as model_module
from dlu_deploy.images.model import Detections, ImageModel, Prepared, SegMask, open_image_model
from dlu_deploy.images.reading import ImageReadError, collect_images, load_image
from dlu_deploy.images.resize import rescale_size, resize_bilinear, shortest_edge_size
from dlu_deploy.runtime.io import TensorSpec
from dlu_deploy.validate.backends import open_candidate
from tests.image_models import CLASS_NAMES, ColourBoxDetector, ColourSegmenter, export

GREY = (128, 128, 128)
RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)


def _picture(width: int, height: int, boxes: list[tuple[tuple[int, ...], tuple[int, ...]]]):
    pixels = np.full((height, width, 3), GREY, np.uint8)
    for (x1, y1, x2, y2), colour in boxes:
        pixels[y1:y2, x1:x2] = colour
    return pixels


@pytest.fixture(scope="module")
def detector_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("detector")
    return export(ColourBoxDetector().eval(), folder / "det.onnx", ["dets", "labels"], CLASS_NAMES)


# ---------------------------------------------------------------------------- resize


@pytest.mark.parametrize(
    ("size", "scale", "expected"),
    [
        # factor = min(1333/640, 800/480) = 5/3: 640*5/3 = 1066.67 -> 1067, 480 -> 800
        ((640, 480), (1333, 800), (1067, 800)),
        # portrait: min(1333/500, 800/375) = 2.1333: (800, 1066.67 -> 1067)
        ((375, 500), (1333, 800), (800, 1067)),
        # long side binds: min(1333/2000, 800/500) = 0.6665: 1333, 333.25 -> 333
        ((2000, 500), (800, 1333), (1333, 333)),
    ],
)
def test_rescale_size_follows_mmcv(size, scale, expected) -> None:
    assert rescale_size(*size, scale) == expected


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        ((2048, 1024), (2048, 1024)),  # Cityscapes: unchanged
        ((40, 30), (1365, 1024)),  # short side to 1024: 40 * 1024 / 30 = 1365.33
        ((4000, 1000), (2048, 512)),  # long side capped at 2048: 1024 * 2048 / 4096 = 512
        ((999, 1001), (1024, 1026)),  # portrait: 1001 * 1024 / 999 = 1026.05
    ],
)
def test_shortest_edge_size_follows_detectron2(size, expected) -> None:
    assert shortest_edge_size(*size, 1024, 2048) == expected


def test_resize_bilinear_exact_cases() -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    assert np.array_equal(resize_bilinear(image, 8, 6), image)  # same size: unchanged
    half = resize_bilinear(image, 4, 3)  # exact 2x: the rounded mean of each 2x2 block
    blocks = image.astype(np.int64).reshape(3, 2, 4, 2, 3).sum(axis=(1, 3))
    assert np.array_equal(half, ((blocks + 2) >> 2).astype(np.uint8))


@pytest.mark.parametrize("size", [(37, 23, 91, 50), (300, 200, 120, 77), (64, 48, 1333, 1000)])
def test_resize_bilinear_within_one_level_of_float64(size) -> None:
    w, h, new_w, new_h = size
    image = np.random.default_rng(1).integers(0, 256, (h, w, 3), dtype=np.uint8)
    exact = F.interpolate(
        torch.from_numpy(image).permute(2, 0, 1)[None].double(),
        size=(new_h, new_w),
        mode="bilinear",
        align_corners=False,
    )[0].permute(1, 2, 0)
    diff = np.abs(resize_bilinear(image, new_w, new_h).astype(np.float64) - exact.numpy())
    assert diff.max() <= 1.0


def test_resize_bilinear_equals_opencv() -> None:
    cv2 = pytest.importorskip("cv2", reason="OpenCV (the bit-exact oracle) is not installed")
    rng = np.random.default_rng(2)
    for _ in range(10):
        h, w = (int(v) for v in rng.integers(1, 300, 2))
        new_h, new_w = (int(v) for v in rng.integers(1, 600, 2))
        image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        expected = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
        assert np.array_equal(resize_bilinear(image, new_w, new_h), expected)


# ---------------------------------------------------------------------------- reading


def test_reading_converts_and_notes(tmp_path: Path) -> None:
    rgb = _picture(20, 10, [((2, 3, 6, 8), RED)])
    Image.fromarray(rgb[:, :, 0]).save(tmp_path / "grey.png")
    Image.fromarray(np.dstack([rgb, np.zeros((10, 20), np.uint8)])).save(tmp_path / "rgba.png")
    Image.fromarray(rgb).convert("P").save(tmp_path / "palette.png")
    grey = load_image(tmp_path / "grey.png")
    assert np.array_equal(grey.rgb, np.repeat(rgb[:, :, :1], 3, axis=2))
    assert "greyscale" in grey.notes[0]
    rgba = load_image(tmp_path / "rgba.png")  # colours kept, alpha dropped
    assert np.array_equal(rgba.rgb, rgb) and "transparency dropped" in rgba.notes[0]
    palette = load_image(tmp_path / "palette.png")
    assert np.array_equal(palette.rgb[4, 3], RED) and "palette" in palette.notes[0]


def test_reading_applies_exif_orientation(tmp_path: Path) -> None:
    rgb = _picture(20, 10, [((0, 0, 4, 2), RED)])
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated: a viewer turns it 90 degrees clockwise
    Image.fromarray(rgb).save(tmp_path / "turned.jpg", exif=exif, quality=100)
    loaded = load_image(tmp_path / "turned.jpg")
    assert (loaded.width, loaded.height) == (10, 20)
    assert loaded.rgb[1, 8, 0] > 200 and loaded.rgb[1, 8, 1] < 60  # top-left went top-right
    assert "EXIF orientation (6)" in loaded.notes[0]


def test_reading_errors(tmp_path: Path) -> None:
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    with pytest.raises(ImageReadError, match=r"broken\.png is not a readable image"):
        load_image(tmp_path / "broken.png")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no images here")
    with pytest.raises(UserError, match="holds no images"):
        collect_images([tmp_path / "empty"])
    with pytest.raises(UserError, match="does not exist"):
        collect_images([tmp_path / "missing.jpg"])


# ---------------------------------------------------------------------------- run --image


def test_run_image_box_and_picture(tmp_path: Path, detector_onnx: Path, capsys) -> None:
    box = (10, 12, 30, 32)
    rgb = _picture(64, 48, [(box, BLUE)])
    Image.fromarray(rgb).save(tmp_path / "one.png")
    out = tmp_path / "out"
    code = main(["run", str(detector_onnx), "--image", str(tmp_path / "one.png"), "-o", str(out),
                 "--no-resize"])  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert "blue" in printed and "10.0, 12.0, 30.0, 32.0" in printed
    records = json.loads((out / "detections.json").read_text())
    assert len(records) == 1
    assert records[0]["image_id"] == 1 and records[0]["category_id"] == 3
    assert records[0]["bbox"] == [10.0, 12.0, 20.0, 20.0]  # COCO x, y, width, height
    assert records[0]["score"] == pytest.approx(0.7)
    index = json.loads((out / "images.json").read_text())
    assert index["categories"][2] == {"id": 3, "name": "blue"}
    picture = np.asarray(Image.open(out / "one.png").convert("RGB"))
    colour = drawing.class_colour(2)
    assert drawing.line_width(64, 48) == 1
    x1, y1, x2, y2 = box
    border = np.zeros((48, 64), bool)
    border[y1:y2, [x1, x2 - 1]] = True
    border[[y1, y2 - 1], x1:x2] = True
    assert (picture[border] == colour).all()
    inside = np.zeros((48, 64), bool)
    inside[y1 + 1 : y2 - 1, x1 + 1 : x2 - 1] = True
    assert (picture[inside] == BLUE).all()
    # Everything else but the label strip above the box is the untouched image.
    strip = np.zeros((48, 64), bool)
    strip[:y1, x1:] = True
    untouched = ~(border | inside | strip)
    assert np.array_equal(picture[untouched], rgb[untouched])
    assert (picture[:y1, x1:][picture[:y1, x1:] != rgb[:y1, x1:]].size) > 0  # label drawn


def test_run_image_resizes_and_maps_back(tmp_path: Path, detector_onnx: Path) -> None:
    # 200x100 -> factor min(1333/200, 800/100) = 6.665 -> 1333x667; boxes divided back.
    rgb = _picture(200, 100, [((20, 10, 80, 40), RED), ((120, 50, 190, 90), GREEN)])
    Image.fromarray(rgb).save(tmp_path / "wide.png")
    out = tmp_path / "out"
    assert main(["run", str(detector_onnx), "--image", str(tmp_path), "-o", str(out)]) == 0
    records = json.loads((out / "detections.json").read_text())
    boxes = {r["category_id"]: r["bbox"] for r in records}
    # Resized edges blur over about one resized pixel: 1/6.665 original pixels, plus rounding.
    assert np.allclose(boxes[1], [20, 10, 60, 30], atol=0.3)
    assert np.allclose(boxes[2], [120, 50, 70, 40], atol=0.3)


def test_run_image_failures_and_conversions(tmp_path: Path, detector_onnx: Path, capsys) -> None:
    rgb = _picture(40, 30, [((5, 5, 15, 15), RED)])
    Image.fromarray(rgb[:, :, 0]).save(tmp_path / "b_grey.png")
    Image.fromarray(np.dstack([rgb, np.full((30, 40), 9, np.uint8)])).save(tmp_path / "c_rgba.png")
    (tmp_path / "a_corrupt.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    out = tmp_path / "out"
    assert main(["run", str(detector_onnx), "--image", str(tmp_path), "-o", str(out)]) == 1
    captured = capsys.readouterr()
    assert "skipped" in captured.err and "a_corrupt.jpg" in captured.err
    assert "1 of 3 images failed" in captured.err
    assert "greyscale" in captured.err and "RGBA" in captured.err
    assert sorted(p.name for p in out.glob("*.png")) == ["b_grey.png", "c_rgba.png"]
    records = json.loads((out / "detections.json").read_text())
    assert [r["image_id"] for r in records] == [3]  # the grey image has no pure colour
    (tmp_path / "empty").mkdir()
    assert main(["run", str(detector_onnx), "--image", str(tmp_path / "empty")]) == 2
    assert "holds no images" in capsys.readouterr().err
    (tmp_path / "file").write_text("")
    code = main(["run", str(detector_onnx), "--image", str(tmp_path), "-o", str(tmp_path / "file")])
    assert code == 2 and "Cannot use" in capsys.readouterr().err


def test_fixed_shapes_and_engine_profiles_are_checked(tmp_path: Path, capsys) -> None:
    fixed = export(ColourBoxDetector().eval(), tmp_path / "fixed.onnx", ["dets", "labels"],
                   dynamic=False)  # fmt: skip
    Image.fromarray(_picture(48, 32, [])).save(tmp_path / "fits.png")  # EXAMPLE is 1x3x32x48
    Image.fromarray(_picture(50, 32, [])).save(tmp_path / "wider.png")
    out = tmp_path / "out"
    code = main(["run", str(fixed), "--image", str(tmp_path), "-o", str(out), "--no-resize"])
    assert code == 1
    err = capsys.readouterr().err
    assert "wider.png" in err and "fixed shape [1, 3, 32, 48]" in err and "--dynamic" in err
    assert (out / "fits.png").is_file()
    # An engine's optimization profile is checked before TensorRT sees the shape.
    backend = SimpleNamespace(
        inputs=[TensorSpec("image", np.dtype(np.float32), (-1, 3, -1, -1),
                           ((1, 3, 64, 64), (1, 3, 512, 512), (1, 3, 768, 768)))],
        output_names=["dets", "labels"],
        label="tensorrt",
    )  # fmt: skip
    model = ImageModel(backend)
    with pytest.raises(UserError, match="outside the engine's profile"):
        model.prepare(load_image(tmp_path / "fits.png"))  # 48x32 -> 1200x800: too large
    model.with_options(scale=(768, 512))  # -> 768x512: inside
    assert model.prepare(load_image(tmp_path / "fits.png")).tensor.shape == (1, 3, 512, 768)


def test_run_image_segmentation_overlay(tmp_path: Path) -> None:
    model = export(ColourSegmenter().eval(), tmp_path / "seg.onnx", ["logits"])
    rgb = _picture(30, 20, [((3, 4, 12, 10), GREEN)])
    Image.fromarray(rgb).save(tmp_path / "seg.png")
    out = tmp_path / "out"
    assert main(["run", str(model), "--image", str(tmp_path / "seg.png"), "-o", str(out)]) == 0
    mask = np.asarray(Image.open(out / "seg_mask.png"))
    expected = np.full((20, 30), 3)
    expected[4:10, 3:12] = 1
    assert np.array_equal(mask, expected)  # resized to 1333x889 and back: still exact
    colours = np.array([drawing.class_colour(c) for c in range(4)], dtype=np.float64)
    overlay = np.rint(0.5 * rgb + 0.5 * colours[expected]).astype(np.uint8)
    assert np.array_equal(np.asarray(Image.open(out / "seg.png")), overlay)


def test_dynamic_routing_preprocessing(tmp_path: Path) -> None:
    """A segmenter recorded as dynamic_routing gets BGR minus dl_lib's mean, padded to 32."""
    path = export(ColourSegmenter().eval(), tmp_path / "dr.onnx", ["logits"])
    proto = onnx.load(str(path))
    proto.metadata_props.add(key="dlu_deploy.arch", value="dynamic_routing")
    onnx.save(proto, str(path))
    model = open_image_model(open_candidate(path))
    rgb = _picture(40, 30, [((5, 5, 25, 20), RED), ((28, 2, 38, 12), BLUE)])
    Image.fromarray(rgb).save(tmp_path / "x.png")
    # dl_lib's test resize: short side 1024 (max 2048) with Pillow's bilinear, then pad to 32.
    resized = model.prepare(load_image(tmp_path / "x.png"))
    assert resized.tensor.shape == (1, 3, 1024, 1376) and resized.resized == (1365, 1024)
    pillow = np.asarray(Image.fromarray(rgb).resize((1365, 1024), Image.Resampling.BILINEAR))
    expected_input = pillow[:, :, ::-1] - np.float32([103.53, 116.28, 123.675])
    assert np.array_equal(resized.tensor[0, :, :, :1365].transpose(1, 2, 0), expected_input)
    model.with_options(scale=None)
    prepared = model.prepare(load_image(tmp_path / "x.png"))
    assert prepared.tensor.shape == (1, 3, 32, 64)
    bgr = rgb[:, :, ::-1].astype(np.float64) - np.array([103.53, 116.28, 123.675])
    assert np.allclose(prepared.tensor[0, :, :30, :40].transpose(1, 2, 0), bgr, atol=1e-4)
    assert not prepared.tensor[0, :, 30:].any() and not prepared.tensor[0, :, :, 40:].any()
    mask = model.predict_prepared(prepared)
    assert isinstance(mask, SegMask)
    purity = 3 * bgr - bgr.sum(axis=2, keepdims=True) - 255  # the segmenter's conv, in float64
    expected = np.concatenate([purity, np.zeros((30, 40, 1))], axis=2).argmax(axis=2)
    assert np.array_equal(mask.labels, expected)


def test_segmentation_crops_padding_at_lower_resolution() -> None:
    """Logits at stride 4 of a padded input: cells that see image pixels are kept (ceil)."""
    prepared = Prepared(np.zeros((1, 3, 64, 64), np.float32), resized=(40, 30), original=(40, 30))
    logits = np.zeros((1, 2, 16, 16), np.float32)
    logits[0, 1, :8, :10] = 1.0  # 30/4 -> 8 rows, 40/4 -> 10 columns; the padding says class 0
    mask = model_module._segmentation(logits, prepared)
    assert mask.labels.shape == (30, 40) and (mask.labels == 1).all()


# ---------------------------------------------------------------------------- AP


def _coco_set(folder: Path, count: int = 3):
    """Images with one or two coloured boxes each (apart) and their COCO annotations."""
    folder.mkdir()
    images, annotations = [], []
    categories = [{"id": 7, "name": "blue"}, {"id": 3, "name": "red"}]
    rng = np.random.default_rng(3)
    for index in range(count):
        width, height = 120 + 20 * index, 90
        boxes = []
        for left, category, colour in ((0, 3, RED), (60, 7, BLUE))[: 1 + index % 2]:
            dx, y1 = (int(v) for v in rng.integers(0, 20, 2))
            x1 = left + dx
            boxes.append(((x1, y1, x1 + 30 + 5 * index, y1 + 25), colour, category))
        Image.fromarray(_picture(width, height, [(b, c) for b, c, _ in boxes])).save(
            folder / f"im{index}.png"
        )
        images.append({"id": 100 + index, "file_name": f"im{index}.png", "width": width,
                       "height": height})  # fmt: skip
        for (x1, y1, x2, y2), _, category in boxes:
            annotations.append({"id": len(annotations) + 1, "image_id": 100 + index,
                                "category_id": category, "bbox": [x1, y1, x2 - x1, y2 - y1],
                                "area": (x2 - x1) * (y2 - y1), "iscrowd": 0})  # fmt: skip
    return {"images": images, "annotations": annotations, "categories": categories}


def test_eval_detection_against_annotations(tmp_path: Path, detector_onnx: Path, capsys) -> None:
    dataset = _coco_set(tmp_path / "images")
    (tmp_path / "ann.json").write_text(json.dumps(dataset))
    checkpoint = tmp_path / "det.pth"
    torch.save(ColourBoxDetector().eval(), checkpoint)
    report = tmp_path / "report.json"
    code = main(["eval", str(checkpoint), str(detector_onnx), "--trust-pickle",
                 "--coco", str(tmp_path / "ann.json"), "--images", str(tmp_path / "images"),
                 "--json", str(report), "--no-resize"])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    result = json.loads(report.read_text())
    # At the images' own size the detections equal the ground truth: AP 1.
    assert result["pytorch"]["AP"] == pytest.approx(1.0)
    assert result["deployed"]["AP"] == pytest.approx(1.0)
    assert result["difference"]["AP"] == pytest.approx(0.0, abs=1e-9)
    assert result["evaluated"] == 3 and not result["failed"]
    printed = capsys.readouterr().out
    assert "AP50" in printed and "difference" in printed


def test_eval_self_reference_and_missing_image(tmp_path: Path, detector_onnx: Path, capsys) -> None:
    _coco_set(tmp_path / "images", count=2)
    (tmp_path / "images" / "zz_broken.png").write_bytes(b"garbage")
    checkpoint = tmp_path / "det.pth"
    torch.save(ColourBoxDetector().eval(), checkpoint)
    report = tmp_path / "report.json"
    code = main(["eval", str(checkpoint), str(detector_onnx), "--trust-pickle",
                 "--self-reference", "--images", str(tmp_path / "images"),
                 "--json", str(report)])  # fmt: skip
    assert code == 1  # one image failed, the others were evaluated
    result = json.loads(report.read_text())
    assert result["evaluated"] == 2 and "zz_broken.png" in result["failed"][0]["image"]
    assert result["pytorch"]["AP"] == pytest.approx(1.0)
    assert result["deployed"]["AP"] == pytest.approx(1.0)
    assert "ground truth: the PyTorch model's own detections" in capsys.readouterr().out


def _iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    area = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1])
    return inter / (area - inter)


@pytest.mark.parametrize("shift", [0, 10, 20, 35])
def test_ap_of_shifted_boxes(shift: int) -> None:
    """One ground-truth box per image, one detection shifted by `shift` pixels: AP at an IoU
    threshold is 1 where the IoU reaches it, else 0; COCO's AP is the mean over 0.50:0.05:0.95."""
    truth = [10.0, 10.0, 110.0, 110.0]  # 100x100: "large" (area > 96^2)
    moved = [truth[0] + shift, truth[1], truth[2] + shift, truth[3]]
    iou = _iou(truth, moved)
    dataset = {
        "images": [{"id": i, "width": 200, "height": 200} for i in (1, 2)],
        "annotations": [
            {
                "id": i,
                "image_id": i,
                "category_id": 1,
                "bbox": [10, 10, 100, 100],
                "area": 10000.0,
                "iscrowd": 0,
            }
            for i in (1, 2)
        ],
        "categories": [{"id": 1, "name": "thing"}],
    }
    found = Detections(np.array([moved]), np.array([0.9]), np.array([0]))
    records = [r for i in (1, 2) for r in coco.detection_records(i, found, {0: 1})]
    metrics = coco.evaluate_bbox(coco.quiet_coco(dataset), records, [1, 2])
    thresholds = np.linspace(0.5, 0.95, 10)
    expected = float(np.mean(iou >= thresholds - 1e-12))
    assert metrics["AP"] == pytest.approx(expected)
    assert metrics["AP50"] == (1.0 if iou >= 0.5 else 0.0)
    assert metrics["AP75"] == (1.0 if iou >= 0.75 else 0.0)
    assert metrics["AP_large"] == pytest.approx(expected)


def test_class_names_from_onnx_or_engine_metadata() -> None:
    names = json.dumps(["cat", "dog"])
    assert model_module.read_class_names({"dlu_deploy.classes": names}) == ["cat", "dog"]
    assert model_module.read_class_names({"dlu_deploy.classes": "not json"}) is None
    # An engine's sidecar keeps the ONNX file's dlu_deploy.* metadata under "export", unprefixed.
    engine = SimpleNamespace(engine=SimpleNamespace(sidecar={"export": {"classes": names}}))
    metadata = model_module.backend_metadata(engine)
    assert model_module.read_class_names(metadata) == ["cat", "dog"]


def test_category_mapping_by_names_then_order() -> None:
    categories = [{"id": 9, "name": "blue"}, {"id": 2, "name": "red"}]
    by_names = coco.category_mapping(CLASS_NAMES, categories)
    assert by_names.how == "names" and by_names.category_of == {0: 2, 2: 9}
    assert "1 of the model's 3 classes" in by_names.notes[0]
    by_order = coco.category_mapping(["a", "b"], categories)
    assert by_order.how == "order" and by_order.category_of == {0: 2, 1: 9}
    assert "mapped by order" in by_order.notes[0]
    assert coco.category_mapping(None, categories, 2).category_of == {0: 2, 1: 9}


# ---------------------------------------------------------------------------- mIoU


def test_segmentation_metrics_by_hand() -> None:
    truth = np.array([[0, 0, 1, 1], [0, 2, 2, 255]])
    predicted = np.array([[0, 1, 1, 1], [0, 2, 0, 0]])
    confusion = coco.confusion_matrix(truth, predicted, 3, 255)
    metrics = coco.segmentation_metrics(confusion)
    # class 0: tp 2, fp 1 (2->0), fn 1 (0->1): 2/4; class 1: tp 2, fp 1: 2/3; class 2: 1/2
    assert metrics["IoU"] == pytest.approx([0.5, 2 / 3, 0.5])
    assert metrics["mIoU"] == pytest.approx((0.5 + 2 / 3 + 0.5) / 3)
    assert metrics["aAcc"] == pytest.approx(5 / 7)


def test_eval_segmentation_with_masks(tmp_path: Path, capsys) -> None:
    model = export(ColourSegmenter().eval(), tmp_path / "seg.onnx", ["logits"])
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    rgb = _picture(40, 30, [((5, 5, 25, 20), RED)])
    Image.fromarray(rgb).save(tmp_path / "images" / "x.png")
    truth = np.full((30, 40), 3, np.uint8)
    truth[5:20, 5:15] = 0  # half the red area is labelled red, the rest background
    truth[0, :] = 255  # not scored
    Image.fromarray(truth).save(tmp_path / "masks" / "x.png")
    checkpoint = tmp_path / "seg.pth"
    torch.save(ColourSegmenter().eval(), checkpoint)
    report = tmp_path / "report.json"
    code = main(["eval", str(checkpoint), str(model), "--trust-pickle", "--images",
                 str(tmp_path / "images"), "--masks", str(tmp_path / "masks"),
                 "--json", str(report), "--no-resize"])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    result = json.loads(report.read_text())
    # red: tp 150, fp 150 -> 0.5; background: tp 1170-300 = 870... computed from the masks:
    predicted = np.full((30, 40), 3)
    predicted[5:20, 5:25] = 0
    expected = coco.segmentation_metrics(coco.confusion_matrix(truth, predicted, 4, 255))
    assert result["deployed"]["mIoU"] == pytest.approx(expected["mIoU"])
    assert result["pytorch"]["mIoU"] == pytest.approx(expected["mIoU"])
    assert result["per_class_iou"]["deployed"][0] == pytest.approx(0.5)

"""`dlu-deploy run --image` and `dlu-deploy eval`: loops over images, tables, files, exit codes.

Every image is read, preprocessed and run on its own (batch 1); an image that fails (unreadable,
wrong size for a fixed-shape model, ...) is reported and skipped, the others are still done, and
the command exits with EXIT_SOME_FAILED at the end.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from dlu_deploy.errors import UserError
from dlu_deploy.images import coco, drawing
from dlu_deploy.images.model import Detections, ImageModel, SegMask
from dlu_deploy.images.reading import LoadedImage, collect_images, load_image

EXIT_SOME_FAILED = 1
PROGRESS_FROM = 4  # a progress bar when there are at least this many images
SEGMENTATION_TOP_CLASSES = 3


@dataclass
class Failure:
    path: Path
    error: UserError


@dataclass
class RunSummary:
    images: int = 0
    failures: list[Failure] = field(default_factory=list)


def progress(items: Sequence[Any], console: Console, what: str) -> Iterator[Any]:
    """`items`, with a transient progress bar on `console` when there are many."""
    columns = (
        TextColumn(what),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(
        *columns, console=console, transient=True, disable=len(items) < PROGRESS_FROM
    ) as bar:
        yield from bar.track(items, total=len(items))


def report_failure(console: Console, failure: Failure) -> None:
    console.print(
        f"[bold red]skipped[/] {escape(str(failure.path))}: {escape(failure.error.problem)} "
        f"[bold]fix:[/] {escape(failure.error.fix)}",
        highlight=False,
        soft_wrap=True,
    )


def print_notes(console: Console, image: LoadedImage) -> None:
    for note in image.notes:
        console.print(f"note: {escape(str(image.path))}: {escape(note)}", highlight=False)


def unique_stems(paths: Iterable[Path]) -> list[str]:
    """File stems, numbered where two images share one (a/x.jpg, b/x.jpg -> x, x_2)."""
    seen: dict[str, int] = {}
    stems = []
    for path in paths:
        count = seen.get(path.stem, 0) + 1
        seen[path.stem] = count
        stems.append(path.stem if count == 1 else f"{path.stem}_{count}")
    return stems


# ---------------------------------------------------------------------------- run --image


def run_images(
    model: ImageModel,
    image_paths: Sequence[str],
    output: Path,
    *,
    score_threshold: float,
    out: Console,
    err: Console,
) -> int:
    paths = collect_images(image_paths)
    try:
        output.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(
            f"Cannot use {output} as the output folder ({exc.strerror or exc}).",
            "Pass -o with a folder that can be created (not an existing file).",
        ) from exc
    summary = RunSummary(images=len(paths))
    detection = model.task == "detection"
    table = Table(title=escape(f"{model.task} ({model.backend.label})"), title_justify="left")
    columns = (
        ("image", "class", "score", "box (x1, y1, x2, y2)")
        if detection
        else ("image", "size", "classes (share of pixels)")
    )
    for column in columns:
        table.add_column(column)
    records: list[dict[str, Any]] = []
    images_index: list[dict[str, Any]] = []
    stems = unique_stems(paths)
    for image_id, (path, stem) in enumerate(
        progress(list(zip(paths, stems, strict=True)), err, "images"), start=1
    ):
        try:
            image = load_image(path)
            result = model.predict(image)
        except UserError as error:
            summary.failures.append(Failure(path, error))
            report_failure(err, summary.failures[-1])
            continue
        print_notes(err, image)
        images_index.append(
            {"id": image_id, "file_name": str(path), "width": image.width, "height": image.height}
        )
        if isinstance(result, Detections):
            category_of = {label: label + 1 for label in {int(v) for v in result.labels}}
            records.extend(coco.detection_records(image_id, result, category_of))
            shown = result.above(score_threshold)
            _detection_rows(table, path, shown, model, score_threshold)
            picture = drawing.draw_detections(image.rgb, shown, model.class_name)
        else:
            _segmentation_row(table, path, result, model)
            picture = drawing.overlay_mask(image.rgb, result)
            _save_png(drawing.mask_image(result), output / f"{stem}_mask.png")
        _save_png(picture, output / f"{stem}.png")
    out.print(table)
    if detection:
        results_path = output / "detections.json"
        results_path.write_text(json.dumps(records) + "\n")
        index_path = output / "images.json"
        names = model.class_names or []
        count = max([len(names), *(r["category_id"] for r in records)], default=0)
        categories = [{"id": i + 1, "name": model.class_name(i)} for i in range(count)]
        index_path.write_text(
            json.dumps({"images": images_index, "categories": categories}, indent=1) + "\n"
        )
    done = summary.images - len(summary.failures)
    out.print(
        f"{done} of {summary.images} images done; pictures and results in {output}"
        + (f" (boxes with score >= {score_threshold:g} drawn and listed)" if detection else "")
    )
    if summary.failures:
        err.print(
            f"[bold red]{len(summary.failures)} of {summary.images} images failed[/] "
            "(listed above as skipped)",
            highlight=False,
        )
        return EXIT_SOME_FAILED
    return 0


def _detection_rows(
    table: Table, path: Path, shown: Detections, model: ImageModel, threshold: float
) -> None:
    if not len(shown):
        table.add_row(escape(path.name), "-", "-", f"no detection with score >= {threshold:g}")
        return
    for box, score, label in zip(shown.boxes, shown.scores, shown.labels, strict=True):
        table.add_row(
            escape(path.name),
            escape(model.class_name(int(label))),
            f"{score:.3f}",
            ", ".join(f"{v:.1f}" for v in box),
        )


def _segmentation_row(table: Table, path: Path, mask: SegMask, model: ImageModel) -> None:
    counts = np.bincount(mask.labels.ravel(), minlength=mask.num_classes)
    top = np.argsort(-counts, kind="stable")[:SEGMENTATION_TOP_CLASSES]
    shares = ", ".join(
        f"{model.class_name(int(c))} {100 * counts[c] / counts.sum():.0f}%"
        for c in top
        if counts[c]
    )
    height, width = mask.labels.shape
    table.add_row(escape(path.name), f"{width}x{height}", escape(shares))


def _save_png(pixels: np.ndarray, path: Path) -> None:
    from PIL import Image

    Image.fromarray(pixels).save(path, format="PNG")


# ---------------------------------------------------------------------------- eval


@dataclass
class EvalReport:
    task: str
    metrics: dict[str, dict[str, float]]  # "pytorch" / "deployed" -> metric -> value
    images: int
    failures: list[Failure]
    ground_truth: str  # "annotations", "masks" or "self-reference"
    notes: list[str]
    per_class: dict[str, list[float | None]] = field(default_factory=dict)

    @property
    def difference(self) -> dict[str, float]:
        ref, dep = self.metrics["pytorch"], self.metrics["deployed"]
        return {k: dep[k] - ref[k] for k in ref}

    def to_json(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "ground_truth": self.ground_truth,
            "images": self.images,
            "evaluated": self.images - len(self.failures),
            "failed": [{"image": str(f.path), "error": f.error.problem} for f in self.failures],
            "pytorch": self.metrics["pytorch"],
            "deployed": self.metrics["deployed"],
            "difference": self.difference,
            "per_class_iou": self.per_class,
            "notes": self.notes,
        }


def render_eval(report: EvalReport, title: str, console: Console) -> None:
    table = Table(title=escape(title), title_justify="left")
    for column in ("metric", "PyTorch", "deployed", "difference"):
        table.add_column(column, justify="right" if column != "metric" else "left")
    difference = report.difference
    for name, value in report.metrics["pytorch"].items():
        table.add_row(
            name,
            f"{value:.4f}",
            f"{report.metrics['deployed'][name]:.4f}",
            f"{difference[name]:+.4f}",
        )
    console.print(table)
    for note in report.notes:
        console.print(f"note: {escape(note)}", highlight=False)
    evaluated = report.images - len(report.failures)
    console.print(
        f"{evaluated} of {report.images} images evaluated against {report.ground_truth}",
        highlight=False,
    )


@dataclass
class _Pair:
    image_id: int
    path: Path
    image: LoadedImage | None = None


def _run_pairs(
    pairs: Sequence[_Pair],
    reference: ImageModel,
    deployed: ImageModel,
    failures: list[Failure],
    err: Console,
) -> Iterator[tuple[_Pair, Any, Any]]:
    """(pair, PyTorch result, deployed result) per image; both see the same input array."""
    for pair in progress(pairs, err, "evaluating"):
        try:
            if not pair.path.is_file():
                raise UserError(
                    f"{pair.path} does not exist.",
                    "Check --images (the annotation file's file_name is relative to it).",
                )
            pair.image = load_image(pair.path)
            prepared = deployed.prepare(pair.image)
            yield pair, reference.predict_prepared(prepared), deployed.predict_prepared(prepared)
        except UserError as error:
            failures.append(Failure(pair.path, error))
            report_failure(err, failures[-1])
            continue
        print_notes(err, pair.image)


def evaluate_detection(
    reference: ImageModel,
    deployed: ImageModel,
    images_dir: Path,
    *,
    annotations: str | None,
    gt_score_threshold: float,
    err: Console,
) -> EvalReport:
    failures: list[Failure] = []
    notes: list[str] = []
    gt: Any = None
    mapping: coco.CategoryMapping | None = None
    if annotations is not None:
        gt = coco.load_annotations(annotations)
        pairs = [
            _Pair(int(i["id"]), images_dir / str(i["file_name"])) for i in gt.dataset["images"]
        ]
        if not pairs:
            raise UserError(f"{annotations} lists no images.", "Pass a non-empty annotation file.")
        mapping = coco.category_mapping(
            deployed.class_names, gt.dataset["categories"], _num_classes(deployed)
        )
        notes.extend(mapping.notes)
    else:
        pairs = [_Pair(i, p) for i, p in enumerate(collect_images([images_dir]), start=1)]
    found: dict[str, dict[int, Detections]] = {"pytorch": {}, "deployed": {}}
    done: list[_Pair] = []
    for pair, ref, dep in _run_pairs(pairs, reference, deployed, failures, err):
        assert isinstance(ref, Detections) and isinstance(dep, Detections)
        found["pytorch"][pair.image_id], found["deployed"][pair.image_id] = ref, dep
        done.append(pair)
    if not done:
        raise UserError("No image could be evaluated (see the messages above).", "Check --images.")
    if gt is None or mapping is None:
        gt, mapping = _self_reference(done, found, deployed.class_names, gt_score_threshold)
        notes.append(
            f"ground truth: the PyTorch model's own detections with score >= "
            f"{gt_score_threshold:g} ({len(gt.dataset['annotations'])} boxes)"
        )
    ids = [p.image_id for p in done]
    metrics = {
        side: coco.evaluate_bbox(
            gt,
            [
                record
                for image_id, detections in results.items()
                for record in coco.detection_records(image_id, detections, mapping.category_of)
            ],
            ids,
        )
        for side, results in found.items()
    }
    source = "self-reference" if annotations is None else f"annotations ({annotations})"
    return EvalReport("detection", metrics, len(pairs), failures, source, notes)


def _self_reference(
    done: Sequence[_Pair],
    found: dict[str, dict[int, Detections]],
    class_names: Sequence[str] | None,
    score_threshold: float,
) -> tuple[Any, coco.CategoryMapping]:
    """Ground truth from the PyTorch detections; category id = label + 1."""
    labels = {int(v) for side in found.values() for d in side.values() for v in d.labels}
    count = max([len(class_names or ()), *(label + 1 for label in labels)])
    mapping = coco.CategoryMapping({i: i + 1 for i in range(count)}, "label + 1")
    images = [
        {
            "id": p.image_id,
            "file_name": str(p.path),
            "width": p.image.width if p.image else 0,
            "height": p.image.height if p.image else 0,
        }
        for p in done
    ]
    dataset = coco.self_reference_dataset(
        images, found["pytorch"], mapping.category_of, score_threshold
    )
    return coco.quiet_coco(dataset), mapping


def evaluate_segmentation(
    reference: ImageModel,
    deployed: ImageModel,
    images_dir: Path,
    *,
    masks_dir: Path | None,
    ignore_index: int,
    err: Console,
) -> EvalReport:
    paths = collect_images([images_dir])
    pairs = [_Pair(i, p) for i, p in enumerate(paths, start=1)]
    failures: list[Failure] = []
    confusion: dict[str, np.ndarray] = {}
    for pair, ref, dep in _run_pairs(pairs, reference, deployed, failures, err):
        assert isinstance(ref, SegMask) and isinstance(dep, SegMask)
        if masks_dir is None:
            truth = ref.labels
        else:
            try:
                truth = _read_mask(masks_dir / f"{pair.path.stem}.png", ref.labels.shape)
            except UserError as error:
                failures.append(Failure(pair.path, error))
                report_failure(err, failures[-1])
                continue
        for side, result in (("pytorch", ref), ("deployed", dep)):
            counts = coco.confusion_matrix(truth, result.labels, ref.num_classes, ignore_index)
            confusion[side] = confusion.get(side, 0) + counts
    if not confusion:
        raise UserError("No image could be evaluated (see the messages above).", "Check --images.")
    results = {side: coco.segmentation_metrics(c) for side, c in confusion.items()}
    metrics = {side: {k: r[k] for k in ("mIoU", "aAcc")} for side, r in results.items()}
    per_class = {side: r["IoU"] for side, r in results.items()}
    notes = [] if masks_dir else ["ground truth: the PyTorch model's own argmax masks"]
    source = f"masks ({masks_dir})" if masks_dir else "self-reference"
    return EvalReport("segmentation", metrics, len(pairs), failures, source, notes, per_class)


def _read_mask(path: Path, shape: tuple[int, ...]) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    if not path.is_file():
        raise UserError(
            f"No label mask {path} for this image.",
            "Put a single-channel PNG of class ids named like the image (stem.png) in --masks.",
        )
    try:
        with Image.open(path) as opened:
            labels = np.asarray(opened)
    except (UnidentifiedImageError, OSError) as exc:
        raise UserError(f"{path} is not a readable PNG ({exc}).", "Rewrite the mask.") from exc
    if labels.ndim != 2 or labels.shape != shape:
        raise UserError(
            f"The label mask {path} has shape {list(labels.shape)}, the image is "
            f"{list(shape)} (height, width).",
            "Masks must be single-channel (mode L, P or I;16) and the image's size.",
        )
    return labels.astype(np.int64)


def _num_classes(model: ImageModel) -> int | None:
    return len(model.class_names) if model.class_names else None

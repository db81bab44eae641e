"""ONNX's NonMaxSuppression and RoiAlign as torch custom ops with exact eager implementations.

`torch.ops.dlu_deploy.nms_mask` and `torch.ops.dlu_deploy.roi_align` compute, in plain PyTorch,
what the ONNX operators of the same meaning compute (opset 11 NonMaxSuppression with
`center_point_box=0`; opset 16 RoiAlign with `mode=avg`), so a model that uses them gives the
same numbers eagerly and in an exported graph. The exporter translates them into the standard
nodes (export/dlu_export/detection_ops.py); nothing here needs the compiled kernels.

- `nms_mask(boxes [B, M, 4], scores [B, C, M])` -> float mask [B, C, M], 1 where ONNX
  NonMaxSuppression selects the box. The graph form is NonMaxSuppression followed by a
  ScatterND of ones into zeros: the data-dependent index list becomes a fixed-shape mask.
  Greedy per (batch, class): candidates with score > `score_threshold`, highest score first
  (ties: lower index first), a box is dropped when its IoU with a kept box is
  > `iou_threshold`; at most `max_output_boxes_per_class` kept. IoU of boxes without area is 0.
  This is also mmcv's `nms` (offset 0, strict `>`).
- `roi_align(features [N, C, H, W], rois [R, 4], batch_indices [R])` -> [R, C, oh, ow]: ONNX
  RoiAlign (avg) = mmcv's `roi_align` (pool_mode avg). `aligned=True` is
  `coordinate_transformation_mode=half_pixel` (mmcv aligned=True): coordinates shifted by
  -0.5 and no minimum RoI size; `aligned=False` is `output_half_pixel` (size at least 1).
  `sampling_ratio=0` samples ceil(roi_size / output_size) points per bin and axis; a RoI of
  size 0 therefore has no sample and gives exact zeros (the multi-level extractor relies on it).
"""

from __future__ import annotations

import numpy as np
import torch

from dlu_deploy.errors import OpArgumentError

# Upper bound on the elements one vectorised RoiAlign chunk gathers (memory only).
_CHUNK_ELEMENTS = 1 << 24


def _check_nms_args(boxes: torch.Tensor, scores: torch.Tensor) -> None:
    if boxes.dim() != 3 or boxes.shape[2] != 4:
        raise OpArgumentError(
            f"nms_mask: boxes have shape {tuple(boxes.shape)}, expected [B, M, 4].",
            "Pass boxes as (x1, y1, x2, y2) per batch entry.",
        )
    if scores.dim() != 3 or scores.shape[0] != boxes.shape[0] or scores.shape[2] != boxes.shape[1]:
        raise OpArgumentError(
            f"nms_mask: scores have shape {tuple(scores.shape)} for boxes "
            f"{tuple(boxes.shape)}, expected [B, C, M].",
            "Give one score per batch entry, class and box.",
        )


@torch.library.custom_op("dlu_deploy::nms_mask", mutates_args=())
def nms_mask(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    max_output_boxes_per_class: int,
    iou_threshold: float,
    score_threshold: float,
) -> torch.Tensor:
    _check_nms_args(boxes, scores)
    boxes_np = boxes.detach().float().cpu().numpy()
    scores_np = scores.detach().float().cpu().numpy()
    mask = np.zeros(scores_np.shape, dtype=np.float32)
    for b in range(scores_np.shape[0]):
        for c in range(scores_np.shape[1]):
            kept = greedy_nms(
                boxes_np[b],
                scores_np[b, c],
                max_output_boxes_per_class,
                iou_threshold,
                score_threshold,
            )
            mask[b, c, kept] = 1.0
    return torch.from_numpy(mask).to(device=scores.device, dtype=scores.dtype)


@nms_mask.register_fake
def _nms_mask_fake(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    max_output_boxes_per_class: int,
    iou_threshold: float,
    score_threshold: float,
) -> torch.Tensor:
    return torch.empty_like(scores)


def greedy_nms(
    boxes: np.ndarray,
    scores: np.ndarray,
    max_output: int,
    iou_threshold: float,
    score_threshold: float,
) -> list[int]:
    """Indices kept by greedy NMS of one (batch, class), in selection order (float32 IoU)."""
    candidates = np.flatnonzero(scores > np.float32(score_threshold))
    if candidates.size == 0 or max_output <= 0:
        return []
    # Highest score first; equal scores by index (a stable sort of the negated scores).
    order = candidates[np.argsort(-scores[candidates], kind="stable")]
    b = boxes[order].astype(np.float32)
    x1 = np.minimum(b[:, 0], b[:, 2])
    x2 = np.maximum(b[:, 0], b[:, 2])
    y1 = np.minimum(b[:, 1], b[:, 3])
    y2 = np.maximum(b[:, 1], b[:, 3])
    area = (x2 - x1) * (y2 - y1)
    iw = np.clip(np.minimum(x2[:, None], x2[None]) - np.maximum(x1[:, None], x1[None]), 0, None)
    ih = np.clip(np.minimum(y2[:, None], y2[None]) - np.maximum(y1[:, None], y1[None]), 0, None)
    inter = iw * ih
    union = area[:, None] + area[None] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where((inter > 0) & (union > 0), inter / union, np.float32(0))
    overlapping = iou > np.float32(iou_threshold)
    suppressed = np.zeros(len(order), dtype=bool)
    kept: list[int] = []
    for i in range(len(order)):
        if suppressed[i]:
            continue
        kept.append(int(order[i]))
        if len(kept) == max_output:
            break
        suppressed |= overlapping[i]
    return kept


def _check_roi_args(
    features: torch.Tensor, rois: torch.Tensor, batch_indices: torch.Tensor
) -> None:
    if features.dim() != 4:
        raise OpArgumentError(
            f"roi_align: features have shape {tuple(features.shape)}, expected [N, C, H, W].",
            "Pass one feature map batch.",
        )
    if rois.dim() != 2 or rois.shape[1] != 4 or batch_indices.shape != rois.shape[:1]:
        raise OpArgumentError(
            f"roi_align: rois {tuple(rois.shape)} and batch_indices "
            f"{tuple(batch_indices.shape)} do not match, expected [R, 4] and [R].",
            "Give each RoI as (x1, y1, x2, y2) with one batch index.",
        )


@torch.library.custom_op("dlu_deploy::roi_align", mutates_args=())
def roi_align(
    features: torch.Tensor,
    rois: torch.Tensor,
    batch_indices: torch.Tensor,
    output_height: int,
    output_width: int,
    sampling_ratio: int,
    spatial_scale: float,
    aligned: bool,
) -> torch.Tensor:
    _check_roi_args(features, rois, batch_indices)
    _, c, height, width = features.shape
    num_rois = rois.shape[0]
    out = features.new_zeros((num_rois, c, output_height, output_width))
    if num_rois == 0:
        return out
    offset = 0.5 if aligned else 0.0
    r = rois.detach().float()
    start_x = r[:, 0] * spatial_scale - offset
    start_y = r[:, 1] * spatial_scale - offset
    roi_w = r[:, 2] * spatial_scale - offset - start_x
    roi_h = r[:, 3] * spatial_scale - offset - start_y
    if not aligned:
        roi_w = roi_w.clamp(min=1.0)
        roi_h = roi_h.clamp(min=1.0)
    bin_w = roi_w / output_width
    bin_h = roi_h / output_height
    if sampling_ratio > 0:
        grid_h = torch.full((num_rois,), sampling_ratio, dtype=torch.long)
        grid_w = grid_h.clone()
    else:
        grid_h = torch.ceil(roi_h / output_height).long().clamp(min=0)
        grid_w = torch.ceil(roi_w / output_width).long().clamp(min=0)
    # [N*H*W, C]: one row per pixel, so that samples are a single index_select.
    # [N*H*W, C]: one row per pixel, so that gathering samples is one index_select.
    rows = features.detach().float().permute(0, 2, 3, 1).reshape(-1, c)
    batch = batch_indices.long().to(rows.device)
    pairs = torch.stack([grid_h, grid_w], 1)
    for gh, gw in torch.unique(pairs, dim=0).tolist():
        if gh == 0 or gw == 0:
            continue  # no sample point: the bin average is 0
        members = torch.nonzero((grid_h == gh) & (grid_w == gw)).flatten()
        per_roi = c * output_height * gh * output_width * gw
        step = max(1, _CHUNK_ELEMENTS // per_roi)
        for begin in range(0, len(members), step):
            idx = members[begin : begin + step]
            ys = _sample_positions(start_y[idx], bin_h[idx], output_height, gh)
            xs = _sample_positions(start_x[idx], bin_w[idx], output_width, gw)
            values = _bilinear(rows, batch[idx], ys, xs, height, width)  # [R, Sy, Sx, C]
            pooled = values.reshape(len(idx), output_height, gh, output_width, gw, c)
            average = pooled.sum(dim=(2, 4)) / (gh * gw)
            out[idx] = average.permute(0, 3, 1, 2).to(out.dtype)
    return out


@roi_align.register_fake
def _roi_align_fake(
    features: torch.Tensor,
    rois: torch.Tensor,
    batch_indices: torch.Tensor,
    output_height: int,
    output_width: int,
    sampling_ratio: int,
    spatial_scale: float,
    aligned: bool,
) -> torch.Tensor:
    return features.new_empty((rois.shape[0], features.shape[1], output_height, output_width))


def _sample_positions(
    start: torch.Tensor, bin_size: torch.Tensor, bins: int, grid: int
) -> torch.Tensor:
    """[R, bins * grid]: start + p * bin + (i + 0.5) * bin / grid, bin-major (ONNX / mmcv order)."""
    p = torch.arange(bins, dtype=torch.float32).repeat_interleave(grid)
    i = torch.arange(grid, dtype=torch.float32).repeat(bins)
    b = bin_size[:, None]
    return start[:, None] + p[None] * b + (i[None] + 0.5) * b / grid


def _axis(
    pos: torch.Tensor, size: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One axis of mmcv's bilinear_interpolate: (low, high, weight of low, of high, inside)."""
    inside = (pos >= -1.0) & (pos <= size)
    pos = pos.clamp(min=0.0)
    low = torch.floor(pos).long()
    at_edge = low >= size - 1
    low = torch.where(at_edge, size - 1, low)
    high = torch.where(at_edge, low, low + 1)
    pos = torch.where(at_edge, low.to(pos.dtype), pos)
    frac = pos - low.to(pos.dtype)
    return low, high, 1.0 - frac, frac, inside


def _bilinear(
    rows: torch.Tensor,
    batch: torch.Tensor,
    ys: torch.Tensor,
    xs: torch.Tensor,
    height: int,
    width: int,
) -> torch.Tensor:
    """[R, Sy, Sx, C] samples of the images `batch` at the grids ys [R, Sy] x xs [R, Sx]:
    hy*hx*v1 + hy*lx*v2 + ly*hx*v3 + ly*lx*v4 (mmcv's order), 0 beyond one pixel outside."""
    yl, yh, wyl, wyh, iny = _axis(ys, height)
    xl, xh, wxl, wxh, inx = _axis(xs, width)
    base = batch[:, None] * height

    def at(y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        flat = ((base + y)[:, :, None] * width + x[:, None, :]).reshape(-1)
        return rows.index_select(0, flat).reshape(y.shape[0], y.shape[1], x.shape[1], -1)

    def weight(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return (a[:, :, None] * b[:, None, :])[..., None]

    value = (
        weight(wyl, wxl) * at(yl, xl)
        + weight(wyl, wxh) * at(yl, xh)
        + weight(wyh, wxl) * at(yh, xl)
        + weight(wyh, wxh) * at(yh, xh)
    )
    inside = (iny[:, :, None] & inx[:, None, :])[..., None]
    return torch.where(inside, value, torch.zeros((), dtype=value.dtype))

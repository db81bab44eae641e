"""Fixed-size selection around NMS: data-dependent results become K rows with a validity flag.

Candidates that must not take part (padding, boxes below a threshold) carry the score
`INVALID` (-1), below every real score (sigmoid and softmax scores lie in [0, 1]), and NMS is
run with a score threshold between the two, so they neither survive nor suppress anything.
"""

from __future__ import annotations

import torch

import dlu_deploy.ops.detection  # noqa: F401  (registers torch.ops.dlu_deploy.nms_mask)

INVALID = -1.0
NMS_SCORE_THRESHOLD = -0.5
# mmcv's batched_nms: below this many candidates, one NMS over boxes shifted per group.
SPLIT_THRESHOLD = 10000


def batched_nms_boxes(boxes: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """The boxes mmcv's batched_nms runs NMS on: boxes [N, G, M, 4] of G groups (levels,
    classes), valid [N, G, M]. With fewer than 10000 candidates (split_thr), group g is shifted
    by g * (max coordinate + 1), as mmcv does; the shift keeps groups apart and its float
    rounding is part of mmdetection's result (IoUs at the threshold tip one way or the other),
    so it is reproduced, max over the candidates included. Otherwise mmcv runs NMS per group
    on the boxes as they are."""
    n, groups = boxes.shape[0], boxes.shape[1]
    max_coordinate = torch.where(valid[..., None], boxes, 0.0).reshape(n, -1).amax(dim=1)
    count = valid.reshape(n, -1).sum(dim=1)
    step = torch.where(count < SPLIT_THRESHOLD, max_coordinate + 1, 0.0)
    group = torch.arange(groups, device=boxes.device).to(boxes.dtype)
    return boxes + (group[None, :] * step[:, None])[:, :, None, None]


def nms_keep(
    boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float, max_per_group: int
) -> torch.Tensor:
    """Greedy NMS within each group: boxes [G, M, 4], scores [G, M] (INVALID = none) -> bool
    [G, M], True where the box is kept. One ONNX NonMaxSuppression over G batch entries."""
    mask = torch.ops.dlu_deploy.nms_mask(
        boxes, scores[:, None, :], max_per_group, iou_threshold, NMS_SCORE_THRESHOLD
    )
    return (mask[:, 0, :] > 0) & (scores >= 0)


def top_k(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The k best of scores [N, M] (INVALID = none), whatever M is: (values, indices, valid).

    k INVALID entries are appended first, so TopK always has k candidates; indices of padding
    rows are clamped into range (their rows are invalid and get masked by the caller).
    """
    n, m = scores.shape
    padded = torch.cat([scores, scores.new_full((n, k), INVALID)], dim=1)
    values, indices = padded.topk(k, dim=1)
    return values, indices.clamp(max=m - 1), values >= 0


def gather_rows(x: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    """x [N, M, D], indices [N, K] -> [N, K, D]."""
    return torch.gather(x, 1, indices[:, :, None].expand(-1, -1, x.shape[2]))

"""A transcription of mmdetection 3.3's Faster R-CNN test path and of the mmcv ops it calls, for
tests only. Nothing here is shared with dlu_deploy.models.detection or dlu_deploy.ops.

Written from mmdetection 3.3.0 (`AnchorGenerator`, `delta2bbox`, `RPNHead._predict_by_feat_single`
and `_bbox_post_process`, `SingleRoIExtractor`, `BBoxHead._predict_by_feat_single`,
`multiclass_nms`, `DetDataPreprocessor`) and mmcv 2.x (`batched_nms` with its class-offset trick
and split_thr, `nms_cpu`, `roi_align_forward` CPU): image by image, with the data-dependent
shapes of the original (sort, nonzero, boolean indexing). The convolutions and linear layers of
a `dlu_deploy` FasterRCNN are reused; everything after them is recomputed here.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

# --- mmcv --------------------------------------------------------------------------------


def nms_cpu(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """mmcv/ops/csrc/pytorch/cpu/nms.cpp (offset 0): kept indices, highest score first."""
    if boxes.numel() == 0:
        return torch.empty(0, dtype=torch.long)
    x1, y1, x2, y2 = boxes.unbind(1)
    areas = (x2 - x1) * (y2 - y1)
    order = scores.sort(0, descending=True)[1]
    nboxes = boxes.shape[0]
    select = [True] * nboxes
    x1l, y1l, x2l, y2l = (t.tolist() for t in (x1, y1, x2, y2))
    areasl = areas.tolist()
    orderl = order.tolist()
    thr = float(np.float32(iou_threshold))
    for _i in range(nboxes):
        if not select[_i]:
            continue
        i = orderl[_i]
        for _j in range(_i + 1, nboxes):
            if not select[_j]:
                continue
            j = orderl[_j]
            xx1 = max(x1l[i], x1l[j])
            yy1 = max(y1l[i], y1l[j])
            xx2 = min(x2l[i], x2l[j])
            yy2 = min(y2l[i], y2l[j])
            w = max(0.0, xx2 - xx1)
            h = max(0.0, yy2 - yy1)
            inter = np.float32(w) * np.float32(h)
            ovr = inter / (np.float32(areasl[i]) + np.float32(areasl[j]) - inter)
            if ovr > thr:
                select[_j] = False
    return order[torch.tensor(select)]


def batched_nms(
    boxes: torch.Tensor, scores: torch.Tensor, idxs: torch.Tensor, iou_threshold: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """mmcv.ops.batched_nms (class_agnostic=False, split_thr=10000)."""
    if boxes.numel() == 0:
        return torch.cat([boxes, scores[:, None]], -1), torch.empty(0, dtype=torch.long)
    if boxes.shape[0] < 10000:
        max_coordinate = boxes.max()
        offsets = idxs.to(boxes) * (max_coordinate + torch.tensor(1).to(boxes))
        boxes_for_nms = boxes + offsets[:, None]
        keep = nms_cpu(boxes_for_nms, scores, iou_threshold)
        boxes = boxes[keep]
        scores = scores[keep]
    else:
        total_mask = scores.new_zeros(scores.size(), dtype=torch.bool)
        for id in torch.unique(idxs):
            mask = (idxs == id).nonzero(as_tuple=False).view(-1)
            kept = nms_cpu(boxes[mask], scores[mask], iou_threshold)
            total_mask[mask[kept]] = True
        keep = total_mask.nonzero(as_tuple=False).view(-1)
        scores, inds = scores[keep].sort(descending=True)
        keep = keep[inds]
        boxes = boxes[keep]
    return torch.cat([boxes, scores[:, None]], -1), keep


def bilinear_interpolate(
    feat: np.ndarray, height: int, width: int, y: float, x: float
) -> np.ndarray:
    """mmcv roi_align_cpu bilinear_interpolate (pre_calc) for one point, all channels."""
    if y < -1.0 or y > height or x < -1.0 or x > width:
        return np.zeros(feat.shape[0], dtype=np.float32)
    if y <= 0:
        y = 0
    if x <= 0:
        x = 0
    y_low = int(y)
    x_low = int(x)
    if y_low >= height - 1:
        y_high = y_low = height - 1
        y = float(y_low)
    else:
        y_high = y_low + 1
    if x_low >= width - 1:
        x_high = x_low = width - 1
        x = float(x_low)
    else:
        x_high = x_low + 1
    ly = np.float32(y - y_low)
    lx = np.float32(x - x_low)
    hy = np.float32(1.0) - ly
    hx = np.float32(1.0) - lx
    return (
        hy * hx * feat[:, y_low, x_low]
        + hy * lx * feat[:, y_low, x_high]
        + ly * hx * feat[:, y_high, x_low]
        + ly * lx * feat[:, y_high, x_high]
    )


def roi_align(
    feats: torch.Tensor,
    rois: torch.Tensor,
    output_size: int,
    spatial_scale: float,
    sampling_ratio: int,
    aligned: bool,
) -> torch.Tensor:
    """mmcv roi_align_forward (pool_mode avg); rois [R, 5] = (batch, x1, y1, x2, y2)."""
    out = np.zeros((rois.shape[0], feats.shape[1], output_size, output_size), dtype=np.float32)
    f = feats.detach().numpy().astype(np.float32)
    height, width = f.shape[2], f.shape[3]
    offset = 0.5 if aligned else 0.0
    for n, roi in enumerate(rois.tolist()):
        feat = f[int(roi[0])]
        roi_start_w = np.float32(roi[1] * spatial_scale - offset)
        roi_start_h = np.float32(roi[2] * spatial_scale - offset)
        roi_end_w = np.float32(roi[3] * spatial_scale - offset)
        roi_end_h = np.float32(roi[4] * spatial_scale - offset)
        roi_width = roi_end_w - roi_start_w
        roi_height = roi_end_h - roi_start_h
        if not aligned:
            roi_width = max(roi_width, np.float32(1.0))
            roi_height = max(roi_height, np.float32(1.0))
        bin_h = roi_height / np.float32(output_size)
        bin_w = roi_width / np.float32(output_size)
        grid_h = sampling_ratio if sampling_ratio > 0 else math.ceil(roi_height / output_size)
        grid_w = sampling_ratio if sampling_ratio > 0 else math.ceil(roi_width / output_size)
        count = max(grid_h * grid_w, 1)
        for ph in range(output_size):
            for pw in range(output_size):
                total = np.zeros(feat.shape[0], dtype=np.float32)
                for iy in range(grid_h):
                    y = roi_start_h + ph * bin_h + np.float32(iy + 0.5) * bin_h / np.float32(grid_h)
                    for ix in range(grid_w):
                        x = (
                            roi_start_w
                            + pw * bin_w
                            + np.float32(ix + 0.5) * bin_w / np.float32(grid_w)
                        )
                        total += bilinear_interpolate(feat, height, width, float(y), float(x))
                out[n, :, ph, pw] = total / count
    return torch.from_numpy(out)


# --- mmdetection ---------------------------------------------------------------------------


def gen_base_anchors(base_size: int, scales: list[float], ratios: list[float]) -> torch.Tensor:
    """AnchorGenerator.gen_single_level_base_anchors (center_offset 0, scale_major)."""
    w = h = base_size
    x_center, y_center = 0.0 * w, 0.0 * h
    h_ratios = torch.sqrt(torch.tensor(ratios))
    w_ratios = 1 / h_ratios
    ws = (w * w_ratios[:, None] * torch.tensor(scales)[None, :]).view(-1)
    hs = (h * h_ratios[:, None] * torch.tensor(scales)[None, :]).view(-1)
    base_anchors = [
        x_center - 0.5 * ws,
        y_center - 0.5 * hs,
        x_center + 0.5 * ws,
        y_center + 0.5 * hs,
    ]
    return torch.stack(base_anchors, dim=-1)


def grid_priors(base: torch.Tensor, featmap_size: tuple[int, int], stride: int) -> torch.Tensor:
    """AnchorGenerator.single_level_grid_priors."""
    feat_h, feat_w = featmap_size
    shift_x = torch.arange(0, feat_w) * stride
    shift_y = torch.arange(0, feat_h) * stride
    shift_xx = shift_x.repeat(shift_y.shape[0])
    shift_yy = shift_y.view(-1, 1).repeat(1, shift_x.shape[0]).view(-1)
    shifts = torch.stack([shift_xx, shift_yy, shift_xx, shift_yy], dim=-1).to(base)
    return (base[None, :, :] + shifts[:, None, :]).view(-1, 4)


def delta2bbox(
    rois: torch.Tensor,
    deltas: torch.Tensor,
    means: list[float],
    stds: list[float],
    max_shape: tuple[int, int],
    wh_ratio_clip: float = 16 / 1000,
) -> torch.Tensor:
    num_bboxes, num_classes = deltas.size(0), deltas.size(1) // 4
    if num_bboxes == 0:
        return deltas
    deltas = deltas.reshape(-1, 4)
    means_t = deltas.new_tensor(means).view(1, -1)
    stds_t = deltas.new_tensor(stds).view(1, -1)
    denorm_deltas = deltas * stds_t + means_t
    dxy = denorm_deltas[:, :2]
    dwh = denorm_deltas[:, 2:]
    rois_ = rois.repeat(1, num_classes).reshape(-1, 4)
    pxy = (rois_[:, :2] + rois_[:, 2:]) * 0.5
    pwh = rois_[:, 2:] - rois_[:, :2]
    dxy_wh = pwh * dxy
    max_ratio = np.abs(np.log(wh_ratio_clip))
    dwh = dwh.clamp(min=-max_ratio, max=max_ratio)
    gxy = pxy + dxy_wh
    gwh = pwh * dwh.exp()
    x1y1 = gxy - (gwh * 0.5)
    x2y2 = gxy + (gwh * 0.5)
    bboxes = torch.cat([x1y1, x2y2], dim=-1)
    bboxes[..., 0::2].clamp_(min=0, max=max_shape[1])
    bboxes[..., 1::2].clamp_(min=0, max=max_shape[0])
    return bboxes.reshape(num_bboxes, -1)


def preprocess(
    image: torch.Tensor, mean: list[float], std: list[float], bgr_to_rgb: bool, divisor: int
) -> torch.Tensor:
    """DetDataPreprocessor for an RGB input (mmdetection loads BGR and flips when bgr_to_rgb)."""
    x = image if bgr_to_rgb else image[:, [2, 1, 0]]
    x = (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    h, w = x.shape[2:]
    pad_h = int(np.ceil(h / divisor)) * divisor - h
    pad_w = int(np.ceil(w / divisor)) * divisor - w
    return F.pad(x, (0, pad_w, 0, pad_h), value=0)


def rpn_predict(model, features, img_shape, cfg) -> torch.Tensor:  # type: ignore[no-untyped-def]
    """RPNHead.predict_by_feat for one image (features [1, C, H, W] per level) -> proposals."""
    head = model.rpn_head
    anchors_cfg = model.config.anchors
    mlvl_bbox_preds, mlvl_valid_priors, mlvl_scores, level_ids = [], [], [], []
    for level_idx, x in enumerate(features):
        h = F.relu(head.rpn_conv(x))
        rpn_cls_score = head.rpn_cls(h)[0]
        rpn_bbox_pred = head.rpn_reg(h)[0]
        base = gen_base_anchors(
            anchors_cfg.strides[level_idx], list(anchors_cfg.scales), list(anchors_cfg.ratios)
        )
        priors = grid_priors(base, tuple(x.shape[2:]), anchors_cfg.strides[level_idx])
        rpn_cls_score = rpn_cls_score.permute(1, 2, 0)
        rpn_bbox_pred = rpn_bbox_pred.permute(1, 2, 0).reshape(-1, 4)
        scores = rpn_cls_score.reshape(-1).sigmoid()
        nms_pre = cfg.nms_pre
        if 0 < nms_pre < scores.shape[0]:
            ranked_scores, rank_inds = scores.sort(descending=True)
            topk_inds = rank_inds[:nms_pre]
            scores = ranked_scores[:nms_pre]
            rpn_bbox_pred = rpn_bbox_pred[topk_inds, :]
            priors = priors[topk_inds]
        mlvl_bbox_preds.append(rpn_bbox_pred)
        mlvl_valid_priors.append(priors)
        mlvl_scores.append(scores)
        level_ids.append(scores.new_full((scores.size(0),), level_idx, dtype=torch.long))
    bbox_pred = torch.cat(mlvl_bbox_preds)
    priors = torch.cat(mlvl_valid_priors)
    coder = model.config.rpn_coder
    bboxes = delta2bbox(priors, bbox_pred, list(coder.means), list(coder.stds), img_shape)
    scores = torch.cat(mlvl_scores)
    ids = torch.cat(level_ids)
    # _bbox_post_process
    if cfg.min_bbox_size >= 0:
        w = bboxes[:, 2] - bboxes[:, 0]
        h = bboxes[:, 3] - bboxes[:, 1]
        valid_mask = (w > cfg.min_bbox_size) & (h > cfg.min_bbox_size)
        if not valid_mask.all():
            bboxes, scores, ids = bboxes[valid_mask], scores[valid_mask], ids[valid_mask]
    if bboxes.numel() > 0:
        _, keep_idxs = batched_nms(bboxes, scores, ids, cfg.iou_threshold)
        bboxes = bboxes[keep_idxs][: cfg.max_per_img]
    return bboxes


def map_roi_levels(rois: torch.Tensor, num_levels: int, finest_scale: int) -> torch.Tensor:
    scale = torch.sqrt((rois[:, 3] - rois[:, 1]) * (rois[:, 4] - rois[:, 2]))
    target_lvls = torch.floor(torch.log2(scale / finest_scale + 1e-6))
    return target_lvls.clamp(min=0, max=num_levels - 1).long()


def roi_extract(model, feats, rois) -> torch.Tensor:  # type: ignore[no-untyped-def]
    """SingleRoIExtractor.forward with mmcv RoIAlign layers."""
    cfg = model.config
    roi_feats = feats[0].new_zeros(
        rois.size(0), feats[0].shape[1], cfg.roi_output_size, cfg.roi_output_size
    )
    target_lvls = map_roi_levels(rois, len(feats), cfg.finest_scale)
    for i in range(len(feats)):
        inds = (target_lvls == i).nonzero(as_tuple=False).squeeze(1)
        if inds.numel() > 0:
            roi_feats[inds] = roi_align(
                feats[i],
                rois[inds],
                cfg.roi_output_size,
                1.0 / cfg.featmap_strides[i],
                cfg.roi_sampling_ratio,
                cfg.roi_aligned,
            )
    return roi_feats


def multiclass_nms(multi_bboxes, multi_scores, score_thr, iou_threshold, max_num):  # type: ignore[no-untyped-def]
    num_classes = multi_scores.size(1) - 1
    if multi_bboxes.shape[1] > 4:
        bboxes = multi_bboxes.view(multi_scores.size(0), -1, 4)
    else:
        bboxes = multi_bboxes[:, None].expand(multi_scores.size(0), num_classes, 4)
    scores = multi_scores[:, :-1]
    labels = torch.arange(num_classes, dtype=torch.long).view(1, -1).expand_as(scores)
    bboxes = bboxes.reshape(-1, 4)
    scores = scores.reshape(-1)
    labels = labels.reshape(-1)
    valid_mask = scores > score_thr
    inds = valid_mask.nonzero(as_tuple=False).squeeze(1)
    bboxes, scores, labels = bboxes[inds], scores[inds], labels[inds]
    if bboxes.numel() == 0:
        return bboxes.new_zeros((0, 5)), labels
    dets, keep = batched_nms(bboxes, scores, labels, iou_threshold)
    if max_num > 0:
        dets = dets[:max_num]
        keep = keep[:max_num]
    return dets, labels[keep]


@torch.no_grad()
def predict(model, image: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:  # type: ignore[no-untyped-def]
    """FasterRCNN.predict(rescale=False) per image: [(dets [k, 5], labels [k])]."""
    cfg = model.config
    pre = cfg.preprocess
    results = []
    for b in range(image.shape[0]):
        one = image[b : b + 1]
        img_shape = (one.shape[2], one.shape[3])
        x = preprocess(one, list(pre.mean), list(pre.std), pre.bgr_to_rgb, pre.pad_size_divisor)
        feats = tuple(model.neck(model.backbone(x)))
        proposals = rpn_predict(model, feats, img_shape, cfg.rpn)
        rois = torch.cat([proposals.new_zeros(len(proposals), 1), proposals], dim=1)
        num_levels = len(cfg.featmap_strides)
        roi_feats = roi_extract(model, feats[:num_levels], rois)
        cls_score, bbox_pred = model.roi_head.bbox_head(roi_feats)
        scores = F.softmax(cls_score, dim=-1)
        coder = cfg.rcnn_coder
        num_classes = 1 if cfg.reg_class_agnostic else cfg.num_classes
        roi = rois.repeat_interleave(num_classes, dim=0)
        bboxes = delta2bbox(
            roi[..., 1:], bbox_pred.view(-1, 4), list(coder.means), list(coder.stds), img_shape
        )
        bboxes = bboxes.view(len(rois), -1)
        results.append(
            multiclass_nms(
                bboxes, scores, cfg.rcnn.score_thr, cfg.rcnn.iou_threshold, cfg.rcnn.max_per_img
            )
        )
    return results

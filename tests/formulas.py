"""docs/ops.md transcribed literally into float64 NumPy: the independent oracle for every test.

Written from the spec's formulas, not from the reference code: explicit loops over output
pixels and taps (vectorised over channels only), so small shapes keep them fast.
"""

from __future__ import annotations

import math

import numpy as np


def _at(x: np.ndarray, n: int, y: int, xx: int) -> np.ndarray:
    """x[n, :, y, xx] or zeros outside the map."""
    _, c, h, w = x.shape
    if 0 <= y < h and 0 <= xx < w:
        return x[n, :, y, xx]
    return np.zeros(c)


def carafe(x: np.ndarray, masks: np.ndarray, k: int, group: int, scale: int) -> np.ndarray:
    x, masks = x.astype(np.float64), masks.astype(np.float64)
    n_, c, h, w = x.shape
    r = (k - 1) // 2
    out = np.zeros((n_, c, h * scale, w * scale))
    group_of = np.arange(c) // (c // group)
    for n in range(n_):
        for oy in range(h * scale):
            for ox in range(w * scale):
                acc = np.zeros(c)
                for ky in range(k):
                    for kx in range(k):
                        feat = _at(x, n, oy // scale + ky - r, ox // scale + kx - r)
                        weight = masks[n, group_of * k * k + ky * k + kx, oy, ox]
                        acc += feat * weight
                out[n, :, oy, ox] = acc
    return out


def dlu_kernel_at(
    kernels: np.ndarray, offsets: np.ndarray, n: int, g: int, oy: int, ox: int, k: int, scale: int
) -> np.ndarray:
    """kappa[0..k*k-1] of output pixel (oy, ox), group g (docs/ops.md#dlu)."""
    _, _, h, w = kernels.shape
    s = scale
    py, px, j = oy // s, ox // s, (oy % s) * s + (ox % s)
    u = offsets[n, (2 * g + 0) * s * s + j, py, px]
    v = offsets[n, (2 * g + 1) * s * s + j, py, px]
    u = 0.0 if math.isnan(u) else u
    v = 0.0 if math.isnan(v) else v
    xs = min(max(px + u, 0.0), w - 1.0)
    ys = min(max(py + v, 0.0), h - 1.0)
    x0, y0 = math.floor(xs), math.floor(ys)
    x1, y1 = min(x0 + 1, w - 1), min(y0 + 1, h - 1)
    ax, ay = xs - x0, ys - y0
    kk = kernels[n, g * k * k : (g + 1) * k * k]
    return (1 - ay) * ((1 - ax) * kk[:, y0, x0] + ax * kk[:, y0, x1]) + ay * (
        (1 - ax) * kk[:, y1, x0] + ax * kk[:, y1, x1]
    )


def dlu(
    x: np.ndarray, kernels: np.ndarray, offsets: np.ndarray, k: int, group: int, scale: int
) -> np.ndarray:
    x, kernels, offsets = (a.astype(np.float64) for a in (x, kernels, offsets))
    n_, c, h, w = x.shape
    r = (k - 1) // 2
    cpg = c // group
    out = np.zeros((n_, c, h * scale, w * scale))
    for n in range(n_):
        for oy in range(h * scale):
            for ox in range(w * scale):
                py, px = oy // scale, ox // scale
                for g in range(group):
                    kappa = dlu_kernel_at(kernels, offsets, n, g, oy, ox, k, scale)
                    acc = np.zeros(cpg)
                    for ky in range(k):
                        for kx in range(k):
                            feat = _at(x, n, py + ky - r, px + kx - r)[g * cpg : (g + 1) * cpg]
                            acc += feat * kappa[ky * k + kx]
                    out[n, g * cpg : (g + 1) * cpg, oy, ox] = acc
    return out


def ddf(
    x: np.ndarray,
    channel_filter: np.ndarray,
    spatial_filter: np.ndarray,
    k: int,
    dilation: int,
    stride: int,
    combine: str,
) -> np.ndarray:
    x, cf, sf = (a.astype(np.float64) for a in (x, channel_filter, spatial_filter))
    n_, c, h, w = x.shape
    r = (k - 1) // 2
    ho, wo = h // stride, w // stride
    out = np.zeros((n_, c, ho, wo))
    for n in range(n_):
        for p in range(ho):
            for q in range(wo):
                acc = np.zeros(c)
                for ky in range(k):
                    for kx in range(k):
                        t = ky * k + kx
                        feat = _at(
                            x, n, p * stride + (ky - r) * dilation, q * stride + (kx - r) * dilation
                        )
                        if combine == "mul":
                            weight = cf[n, :, ky, kx] * sf[n, t, p, q]
                        else:
                            weight = cf[n, :, ky, kx] + sf[n, t, p, q]
                        acc += feat * weight
                out[n, :, p, q] = acc
    return out


def bilinear_border(img: np.ndarray, col: float, row: float) -> np.ndarray:
    """Bilinear read of img [C, H, W] at a position clamped into the map (border padding)."""
    _, h, w = img.shape
    xs = min(max(col, 0.0), w - 1.0)
    ys = min(max(row, 0.0), h - 1.0)
    x0, y0 = math.floor(xs), math.floor(ys)
    x1, y1 = min(x0 + 1, w - 1), min(y0 + 1, h - 1)
    ax, ay = xs - x0, ys - y0
    return (1 - ay) * ((1 - ax) * img[:, y0, x0] + ax * img[:, y0, x1]) + ay * (
        (1 - ax) * img[:, y1, x0] + ax * img[:, y1, x1]
    )


def dysample_sample(x: np.ndarray, offsets: np.ndarray, scale: int, groups: int) -> np.ndarray:
    """out[n, g*C/G + c', y*s+dy, x*s+dx] = bilinear(x, at (x + O_x, y + O_y)), border clamp."""
    x, offsets = x.astype(np.float64), offsets.astype(np.float64)
    n_, c, h, w = x.shape
    s, cpg = scale, c // groups
    out = np.zeros((n_, c, h * s, w * s))
    for n in range(n_):
        for g in range(groups):
            img = x[n, g * cpg : (g + 1) * cpg]
            for y in range(h):
                for xx in range(w):
                    for dy in range(s):
                        for dx in range(s):
                            ch = g * s * s + dy * s + dx
                            ox = offsets[n, 0 * groups * s * s + ch, y, xx]
                            oy = offsets[n, 1 * groups * s * s + ch, y, xx]
                            out[n, g * cpg : (g + 1) * cpg, y * s + dy, xx * s + dx] = (
                                bilinear_border(img, xx + ox, y + oy)
                            )
    return out

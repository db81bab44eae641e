"""DynamicRouting (Megvii-BaseDetection/DynamicRouting, CVPR 2020): the routing segmentation net.

A faithful reimplementation of `DynamicNet4Seg` (stem, gated cells, aggregation, decoder) with
the original state_dict names, so dl_lib checkpoints (`{"model": state_dict, ...}`) load
unchanged. BatchNorm2d replaces SyncBatchNorm (same keys and eval arithmetic); FLOPs
bookkeeping (CAL_FLOPS) and drop-path (training only) are left out.

The model has two forwards over the same weights:

- `forward` — the dense gated graph that exports to standard ONNX: every cell is computed and the
  eval-time whole-cell skip is applied per sample as a mask (`Where`), including the original's
  "no input" propagation (a cell whose every input was skipped is skipped too).
- `forward_original` — the original eval semantics, Python-level: a cell is skipped (not
  computed) when the gates of the whole batch sum to less than 1e-4, and skipped outputs are
  Python floats that later cells and the decoder test with `isinstance(..., float)`.

The two agree exactly at batch 1 and whenever, for every cell, either all samples of the batch
are skipped or none has a gate sum below 1e-4; samples/dynamic_routing/README.md describes what
differs in the other (mixed) batches.

Cell ("routing node") at scale i with C channels, input X:
    g = relu(tanh(gate_conv_beta(X)))            # (N, G, 1, 1); G = 1 + allow_up + allow_down
    H = SepConv3x3(X) + X
    keep = X if skipped else g_keep * relu(H)
    up   = 0 if skipped else g_up * Up2(ConvBNReLU_{C -> C/2}(relu(H)))
    down = 0 if skipped else g_down * ConvBNReLU_{C -> 2C, stride 2}(relu(H))
Gate channel order: keep, then up (if any), then down (if any) last.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from dlu_deploy.errors import UserError

# The original's threshold on a cell's gate sum (dynamic_cell.py).
SKIP_THRESHOLD = 1e-4
NUM_SCALES = 4
# The input must be divisible by the network's largest stride (the original pads to it).
SIZE_DIVISOR = 32


@dataclass(frozen=True)
class DynamicRoutingConfig:
    """The architecture knobs of the playground configs (MODEL.BACKBONE / GATE / SEM_SEG_HEAD).

    Layer16: layer_num=16; Layer33: layer_num=33. `small_gate` is SMALL_GATE (True in the
    Dynamic-A/B/C configs, False in the Raw ones); it is not visible in a state_dict.
    """

    layer_num: int = 16
    init_channel: int = 64
    num_classes: int = 19
    small_gate: bool = False
    gate_bias: float = 1.5

    def __post_init__(self) -> None:
        if self.layer_num < 3:
            raise UserError(
                f"DynamicRouting: layer_num={self.layer_num} builds fewer than {NUM_SCALES} "
                "scales, but the decoder reads layer_0..layer_3.",
                "Use layer_num >= 3 (Layer16: 16, Layer33: 33).",
            )
        if self.init_channel < 2 or self.init_channel % 2:
            raise UserError(
                f"DynamicRouting: init_channel={self.init_channel} cannot be halved by the gate "
                "and up paths.",
                "Use an even init_channel (the configs use 64).",
            )

    @property
    def cell_num_list(self) -> list[int]:
        """Cells per layer: the triangle [2, 3, 4], then 4 scales in every later layer."""
        return ([2, 3, 4] + [NUM_SCALES] * self.layer_num)[: self.layer_num]

    def min_input_size(self) -> int:
        """Smallest input side: the stride-32 map must survive SMALL_GATE's 0.25 resize."""
        return SIZE_DIVISOR * (4 if self.small_gate else 1)


class ConvNormAct(nn.Conv2d):
    """dl_lib's `Conv2d` wrapper: conv, then its BatchNorm as `.norm`, then an optional ReLU.

    Keys: `<name>.weight`, `<name>.norm.{weight,bias,running_mean,running_var,num_batches_tracked}`.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 1,
        stride: int = 1,
        padding: int = 0,
        relu: bool = True,
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, bias=False)
        self.norm = nn.BatchNorm2d(out_channels)
        self.activation = nn.ReLU() if relu else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(super().forward(x))
        return self.activation(x) if self.activation is not None else x


def depthwise3x3(channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(channels, channels, 3, stride, 1, groups=channels, bias=False)


def upsample(x: torch.Tensor, factor: float) -> torch.Tensor:
    """The original's F.interpolate(scale_factor=factor, bilinear, align_corners=False)."""
    return F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)


class DynamicStem(nn.Module):
    """SEPT_STEM: 3x3/2 conv with padding 0, then two separable stages (the last one strided)."""

    def __init__(self, out_channels: int, mid_channels: int = 64) -> None:
        super().__init__()
        self.stem_1 = ConvNormAct(3, mid_channels, 3, stride=2, padding=0)
        self.stem_2 = nn.Sequential(
            depthwise3x3(mid_channels), ConvNormAct(mid_channels, mid_channels)
        )
        self.stem_3 = nn.Sequential(
            depthwise3x3(mid_channels, 2), ConvNormAct(mid_channels, out_channels)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.stem_3(self.stem_2(self.stem_1(x)))


class SepConv(nn.Module):
    """'sep_conv_3x3': dw3x3 -> 1x1+BN+ReLU -> dw3x3 -> 1x1+BN (keys `op.0` .. `op.3`)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.op = nn.Sequential(
            depthwise3x3(channels),
            ConvNormAct(channels, channels),
            depthwise3x3(channels),
            ConvNormAct(channels, channels, relu=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class MixedOp(nn.Module):
    """Mixed_OP over CELL_TYPE ['sep_conv_3x3', 'skip_connect']: the sum of both (keys `_ops.0`)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self._ops = nn.ModuleList([SepConv(channels), nn.Identity()])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._ops[0](x) + self._ops[1](x)


@dataclass
class CellOutputs:
    """One cell's outputs towards the next layer. In the original form a skipped path is the
    Python float 0.0 (and `keep` is the float input when the input was one)."""

    up: torch.Tensor | float | None
    keep: torch.Tensor | float
    down: torch.Tensor | float | None
    skipped: bool


@dataclass
class DenseCellOutputs:
    """Dense form: skipped paths are exact zeros. `keep_alive` / `moved_alive` (bool, N x 1 x 1 x 1)
    say per sample whether `keep` / `up` and `down` carry a value (False where the original has
    a float)."""

    up: torch.Tensor | None
    keep: torch.Tensor
    down: torch.Tensor | None
    keep_alive: torch.Tensor
    moved_alive: torch.Tensor


class Cell(nn.Module):
    """A routing node: cell operation, soft conditional gate, and keep / up / down transitions."""

    def __init__(
        self,
        channels: int,
        allow_up: bool,
        allow_down: bool,
        small_gate: bool,
        gate_bias: float = 1.5,
    ) -> None:
        super().__init__()
        self.channels = channels
        self.allow_up = allow_up
        self.allow_down = allow_down
        self.small_gate = small_gate
        self.gate_num = 1 + int(allow_up) + int(allow_down)
        self.cell_ops = MixedOp(channels)
        self.res_keep = nn.ReLU()
        if allow_up:
            self.res_up = nn.Sequential(nn.ReLU(), ConvNormAct(channels, channels // 2))
        if allow_down:
            self.res_down = nn.Sequential(nn.ReLU(), ConvNormAct(channels, 2 * channels, stride=2))
        self.gate_conv_beta = nn.Sequential(
            ConvNormAct(channels, channels // 2),
            nn.AdaptiveAvgPool2d((1, 1)),
            nn.Conv2d(channels // 2, self.gate_num, 1, bias=True),
        )
        nn.init.constant_(self.gate_logits_bias, gate_bias)

    @property
    def gate_logits(self) -> nn.Conv2d:
        """The gate's last 1x1 conv (C/2 -> G, with bias): tanh of its output, clipped at 0."""
        return cast(nn.Conv2d, self.gate_conv_beta[2])

    @property
    def gate_logits_bias(self) -> torch.Tensor:
        bias = self.gate_logits.bias
        assert bias is not None
        return bias

    def gates(self, x: torch.Tensor) -> torch.Tensor:
        """Soft conditional gates max(0, tanh(.)), shape (N, G, 1, 1): keep, [up], [down]."""
        gate_input = upsample(x, 0.25) if self.small_gate else x
        return torch.relu(torch.tanh(self.gate_conv_beta(gate_input)))

    def _paths(
        self, x: torch.Tensor, g: torch.Tensor
    ) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor | None]:
        """The gated transitions of an open cell: (g_up * up, g_keep * relu(H), g_down * down)."""
        h = self.cell_ops(x)
        keep = g[:, 0:1] * self.res_keep(h)
        up = upsample(self.res_up(h), 2) * g[:, 1:2] if self.allow_up else None
        down = self.res_down(h) * g[:, -1:] if self.allow_down else None
        return up, keep, down

    def forward_original(self, x: torch.Tensor | float) -> CellOutputs:
        """The original's eval path: skip the whole cell (compute nothing more) when the input is
        a float or when the gates of the whole batch sum to less than 1e-4."""
        if isinstance(x, float):
            return CellOutputs(0.0, x, 0.0, skipped=True)
        g = self.gates(x)
        if bool(g.sum() < SKIP_THRESHOLD):
            return CellOutputs(0.0, x, 0.0, skipped=True)
        # Open for the batch: the original's tensor formula, whose per-sample mask keeps X only
        # for samples whose own gates sum below the threshold (then their g_keep is < 1e-4).
        mask = (g.sum(dim=1, keepdim=True) < SKIP_THRESHOLD).to(x.dtype)
        up, keep, down = self._paths(x, g)
        return CellOutputs(up, mask * x + keep, down, skipped=False)

    def forward_dense(self, x: torch.Tensor, alive: torch.Tensor) -> DenseCellOutputs:
        """Every path computed; per sample, a cell whose gates sum below 1e-4 or whose input is
        absent (`alive` False) passes X through and emits zeros up and down."""
        g = self.gates(x)
        skip = (g.sum(dim=1, keepdim=True) < SKIP_THRESHOLD) | ~alive
        up, keep, down = self._paths(x, g)
        return DenseCellOutputs(
            up=None if up is None else torch.where(skip, 0.0, up),
            keep=torch.where(skip, x, keep),
            down=None if down is None else torch.where(skip, 0.0, down),
            keep_alive=alive,
            moved_alive=~skip,
        )


def cell_sources(layer: int, cell: int, cells_in_layer: int) -> tuple[bool, bool, bool]:
    """Which outputs of layer-1 feed cell (layer, cell): (down from cell-1, keep from cell,
    up from cell+1), as dynamic_backbone.py aggregates them."""
    from_below = cell > 0
    from_same = not (layer <= 2 and cell == cells_in_layer - 1)
    from_above = cell < cells_in_layer - (1 if layer > 2 else 2)
    return from_below, from_same, from_above


class DynamicNetwork(nn.Module):
    """The routing backbone: stem, init_layer, then `all_cell_list[layer][scale]`.

    Outputs layer_0..layer_3: the keep outputs of the last layer (strides 4..32)."""

    def __init__(self, config: DynamicRoutingConfig) -> None:
        super().__init__()
        self.config = config
        c0 = config.init_channel
        self.stem = DynamicStem(c0)
        self.init_layer = Cell(c0, False, True, config.small_gate, config.gate_bias)
        self.all_cell_list = nn.ModuleList()
        last = config.layer_num - 1
        for layer, cells in enumerate(config.cell_num_list):
            self.all_cell_list.append(
                nn.ModuleList(
                    Cell(
                        c0 * 2**scale,
                        allow_up=not (scale == 0 or layer == last),
                        allow_down=not (scale == NUM_SCALES - 1 or layer == last),
                        small_gate=config.small_gate,
                        gate_bias=config.gate_bias,
                    )
                    for scale in range(cells)
                )
            )

    def _layers(self) -> list[list[Cell]]:
        return [[cast(Cell, c) for c in cast(nn.ModuleList, layer)] for layer in self.all_cell_list]

    def forward(self, x: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Dense form: (features layer_0..3, their per-sample alive flags)."""
        h = self.stem(x)
        prev = [
            self.init_layer.forward_dense(h, torch.ones_like(h[:, :1, :1, :1], dtype=torch.bool))
        ]
        for layer, cells in enumerate(self._layers()):
            outputs = []
            for index, cell in enumerate(cells):
                parts, alive = [], []
                below, same, above = cell_sources(layer, index, len(cells))
                if below:
                    parts.append(prev[index - 1].down)
                    alive.append(prev[index - 1].moved_alive)
                if same:
                    parts.append(prev[index].keep)
                    alive.append(prev[index].keep_alive)
                if above:
                    parts.append(prev[index + 1].up)
                    alive.append(prev[index + 1].moved_alive)
                outputs.append(cell.forward_dense(_sum(parts), _any(alive)))
            prev = outputs
        return [out.keep for out in prev], [out.keep_alive for out in prev]

    def forward_original(
        self, x: torch.Tensor, skipped: list[str] | None = None
    ) -> list[torch.Tensor | float]:
        """Original eval semantics; names of skipped cells are appended to `skipped` if given."""
        h = self.stem(x)
        prev = [self._run_original(self.init_layer, h, "init_layer", skipped)]
        for layer, cells in enumerate(self._layers()):
            outputs = []
            for index, cell in enumerate(cells):
                parts: list[torch.Tensor | float | None] = []
                below, same, above = cell_sources(layer, index, len(cells))
                if below:
                    parts.append(prev[index - 1].down)
                if same:
                    parts.append(prev[index].keep)
                if above:
                    parts.append(prev[index + 1].up)
                # sum() as the original: floats (skipped paths) add as 0.0, all-float stays float.
                cell_input = sum(p for p in parts if p is not None)
                name = f"all_cell_list.{layer}.{index}"
                outputs.append(self._run_original(cell, _as_input(cell_input), name, skipped))
            prev = outputs
        return [out.keep for out in prev]

    @staticmethod
    def _run_original(
        cell: Cell, x: torch.Tensor | float, name: str, skipped: list[str] | None
    ) -> CellOutputs:
        out = cell.forward_original(x)
        if skipped is not None and out.skipped:
            skipped.append(name)
        return out


def _as_input(value: torch.Tensor | float | int) -> torch.Tensor | float:
    # sum() of nothing but floats starts from the int 0; the original tests isinstance(x, float).
    return float(value) if isinstance(value, int | float) else value


def _sum(parts: list[torch.Tensor | None]) -> torch.Tensor:
    total = parts[0]
    for part in parts[1:]:
        total = total + part  # type: ignore[operator]
    assert total is not None
    return total


def _any(flags: list[torch.Tensor]) -> torch.Tensor:
    result = flags[0]
    for flag in flags[1:]:
        result = result | flag
    return result


class SemSegDecoderHead(nn.Module):
    """The decoder: 1x1 ConvBNReLU per level, top-down sum with bilinear x2, 3x3 predictor, x4."""

    def __init__(self, init_channel: int, num_classes: int) -> None:
        super().__init__()
        channels = [init_channel * 2**i for i in range(NUM_SCALES)]
        self.layer_decoder_list = nn.ModuleList(
            ConvNormAct(c, c if i == 0 else c // 2) for i, c in enumerate(channels)
        )
        self.predictor = nn.Conv2d(init_channel, num_classes, 3, padding=1)

    def forward(self, features: list[torch.Tensor], alive: list[torch.Tensor]) -> torch.Tensor:
        """Dense form: a level without input (alive False) contributes nothing, as the original's
        `continue` on float features does."""
        pred: torch.Tensor | None = None
        for index in reversed(range(NUM_SCALES)):
            feat = features[index] if pred is None else pred + features[index]
            out = self.layer_decoder_list[index](feat)
            if index > 0:
                out = upsample(out, 2)
            pred = torch.where(alive[index], out, 0.0)
        assert pred is not None
        return upsample(self.predictor(pred), 4)

    def forward_original(self, features: list[torch.Tensor | float]) -> torch.Tensor:
        pred: torch.Tensor | None = None
        for index in reversed(range(NUM_SCALES)):
            feat = features[index]
            if isinstance(feat, float):
                continue
            if index <= 2 and pred is not None:
                feat = pred + feat
            pred = self.layer_decoder_list[index](feat)
            if index > 0:
                pred = upsample(pred, 2)
        if pred is None or isinstance(features[0], float):
            raise UserError(
                "DynamicRouting: every cell feeding the finest decoder level was skipped; the "
                "original decoder has no output in this case (it calls the predictor on None).",
                "Check the gate weights: a checkpoint whose gates close the whole stride-4 path "
                "cannot produce a segmentation.",
            )
        return upsample(self.predictor(pred), 4)


class DynamicRoutingSeg(nn.Module):
    """`DynamicNet4Seg` without pre/post-processing: normalised, padded image -> logits.

    Input: (N, 3, H, W), BGR minus the pixel mean, H and W multiples of 32 (the original pads to
    32). Output: (N, num_classes, H, W) logits before `sem_seg_postprocess` (crop + resize).
    """

    def __init__(self, config: DynamicRoutingConfig | None = None) -> None:
        super().__init__()
        self.config = config or DynamicRoutingConfig()
        self.backbone = DynamicNetwork(self.config)
        self.sem_seg_head = SemSegDecoderHead(self.config.init_channel, self.config.num_classes)

    def check_input(self, x: torch.Tensor) -> None:
        if torch.jit.is_tracing() or torch.compiler.is_compiling():
            return
        minimum = self.config.min_input_size()
        shape = tuple(x.shape)
        if (
            len(shape) != 4
            or shape[1] != 3
            or shape[2] % SIZE_DIVISOR
            or shape[3] % SIZE_DIVISOR
            or min(shape[2:]) < minimum
        ):
            raise UserError(
                f"DynamicRouting: input of shape {shape} is not (N, 3, H, W) with H and W "
                f"multiples of {SIZE_DIVISOR} and at least {minimum}.",
                f"Pad the image at the bottom/right to a multiple of {SIZE_DIVISOR} as the "
                "original does (ImageList.from_tensors), and use at least the minimum size"
                + (
                    " (SMALL_GATE resizes the stride-32 map by 0.25)."
                    if self.config.small_gate
                    else "."
                ),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The dense gated graph (export form)."""
        self.check_input(x)
        features, alive = self.backbone(x)
        return self.sem_seg_head(features, alive)

    def forward_original(self, x: torch.Tensor, skipped: list[str] | None = None) -> torch.Tensor:
        """The original eval semantics (batch-level whole-cell skip, Python control flow)."""
        if self.training:
            raise UserError(
                "DynamicRouting: forward_original reproduces the original's eval path, but the "
                "model is in training mode.",
                "Call model.eval() first.",
            )
        self.check_input(x)
        return self.sem_seg_head.forward_original(self.backbone.forward_original(x, skipped))


def close_gates_(cell: Cell, bias: float = -10.0) -> None:
    """Close a cell's gates for every input (weights 0, bias < 0, so max(0, tanh(bias)) = 0), the
    state that budget-constrained training leaves unused cells in. Used to exercise the skip."""
    with torch.no_grad():
        cell.gate_logits.weight.zero_()
        cell.gate_logits_bias.fill_(bias)


def named_cells(model: DynamicRoutingSeg) -> dict[str, Cell]:
    """Cells by state_dict prefix under `backbone.`: 'init_layer', 'all_cell_list.3.2', ..."""
    return {
        name: module for name, module in model.backbone.named_modules() if isinstance(module, Cell)
    }

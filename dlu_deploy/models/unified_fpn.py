"""UNIFIED_FPN, the neck of the DLU repository (custom/models/necks/unified_fpn.py).

An FPN whose top-down upsampler is chosen by config: 'dlu' (DLUPack), 'carafe' (CARAFEPack),
'nearest' or 'bilinear' (interpolation by 2, align_corners=False for bilinear). Reproduced
for the configurations the repository ships (custom/config/FPN/*.py: norm_cfg=None,
act_cfg=None), with its exact state_dict names:

- `lateral_convs.{i}.conv`, `fpn_convs.{i}.conv` (mmcv ConvModule: a biased conv);
- with more outputs than inputs, every extra level adds a 3x3 stride-2 lateral conv (the
  first reads the last backbone level, e.g. C5 with 2048 channels), a 3x3 output conv and
  one more upsampler; with 4 inputs and num_outs=5 there are 5 laterals, 5 output convs and
  FOUR upsamplers `upsample_modules.0..3` (the fourth upsamples the extra level into C5's).
- Laterals are added top-down; when the upsampled map is larger than the lateral (odd
  sizes), it is cropped to the lateral's size (`tensor_add` / `slice_as`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from dlu_deploy.errors import UserError
from dlu_deploy.reference import CARAFEPack, DLUPack

UPSAMPLE_TYPES = ("dlu", "carafe", "nearest", "bilinear")
# Keys of the upsample config that DLUPack / CARAFEPack take (the repository's configs).
DYNAMIC_UPSAMPLER_KEYS = (
    "up_kernel",
    "up_group",
    "encoder_kernel",
    "encoder_dilation",
    "compressed_channels",
)


class ConvModule(nn.Module):
    """mmcv's ConvModule without norm and activation: one biased conv under the name `conv`."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
    ):
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels, out_channels, kernel_size, stride=stride, padding=padding
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def build_upsampler(upsample: str, channels: int, config: Mapping[str, object]) -> nn.Module:
    """One top-down upsampler by 2 of the given type."""
    if upsample in ("dlu", "carafe"):
        unknown = sorted(set(config) - set(DYNAMIC_UPSAMPLER_KEYS))
        if unknown:
            raise UserError(
                f"UNIFIED_FPN: upsample config keys {unknown} are not known for '{upsample}'.",
                f"Use only {', '.join(DYNAMIC_UPSAMPLER_KEYS)}.",
            )
        pack = DLUPack if upsample == "dlu" else CARAFEPack
        return pack(channels, 2, **config)  # type: ignore[arg-type]
    if upsample == "nearest":
        return nn.Upsample(scale_factor=2, mode="nearest")
    if upsample == "bilinear":
        return nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
    raise UserError(
        f"UNIFIED_FPN: upsample type {upsample!r} is not supported.",
        f"Use one of {', '.join(UPSAMPLE_TYPES)}.",
    )


class UnifiedFPN(nn.Module):
    """UNIFIED_FPN(in_channels, out_channels, num_outs, start_level, end_level, upsample_cfg).

    `upsample_cfg` is the repository's dict: {'type': 'dlu', 'up_kernel': 5, ...}.
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        out_channels: int,
        num_outs: int,
        upsample_cfg: Mapping[str, object],
        start_level: int = 0,
        end_level: int = -1,
    ) -> None:
        super().__init__()
        self.in_channels = list(in_channels)
        self.out_channels = out_channels
        self.num_outs = num_outs
        config = dict(upsample_cfg)
        self.upsample = str(config.pop("type"))
        num_ins = len(self.in_channels)
        if end_level == -1:
            self.backbone_end_level = num_ins
            valid = num_outs >= num_ins - start_level
        else:
            self.backbone_end_level = end_level
            valid = end_level <= num_ins and num_outs == end_level - start_level
        if not valid:
            raise UserError(
                f"UNIFIED_FPN: num_outs={num_outs} does not fit {num_ins} inputs with "
                f"start_level={start_level}, end_level={end_level}.",
                "Use num_outs >= inputs - start_level (end_level=-1), or end_level - start_level.",
            )
        self.start_level = start_level
        self.lateral_convs = nn.ModuleList()
        self.fpn_convs = nn.ModuleList()
        self.upsample_modules = nn.ModuleList()
        for i in range(start_level, self.backbone_end_level):
            self.lateral_convs.append(ConvModule(self.in_channels[i], out_channels, 1))
            self.fpn_convs.append(ConvModule(out_channels, out_channels, 3, padding=1))
            if i != self.backbone_end_level - 1:
                self.upsample_modules.append(build_upsampler(self.upsample, out_channels, config))
        for extra in range(num_outs - self.backbone_end_level + start_level):
            extra_in = self.in_channels[self.backbone_end_level - 1] if extra == 0 else out_channels
            self.lateral_convs.append(ConvModule(extra_in, out_channels, 3, stride=2, padding=1))
            self.upsample_modules.append(build_upsampler(self.upsample, out_channels, config))
            self.fpn_convs.append(ConvModule(out_channels, out_channels, 3, padding=1))

    def forward(self, inputs: Sequence[torch.Tensor]) -> tuple[torch.Tensor, ...]:
        laterals: list[torch.Tensor] = []
        for i, lateral_conv in enumerate(self.lateral_convs):
            if i <= self.backbone_end_level - self.start_level:
                source = inputs[min(i + self.start_level, len(inputs) - 1)]
            else:
                source = laterals[-1]
            laterals.append(lateral_conv(source))
        for i in range(len(laterals) - 1, 0, -1):
            upsampled = self.upsample_modules[i - 1](laterals[i])
            lateral = laterals[i - 1]
            # The official tensor_add crops only when sizes differ; cropping to the same size is
            # a no-op, so always cropping keeps the graph free of shape-dependent branches.
            laterals[i - 1] = lateral + upsampled[:, :, : lateral.shape[2], : lateral.shape[3]]
        return tuple(
            fpn_conv(lateral) for fpn_conv, lateral in zip(self.fpn_convs, laterals, strict=True)
        )

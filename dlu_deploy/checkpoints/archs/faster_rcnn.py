"""Faster R-CNN R50 with the DLU repository's UNIFIED_FPN neck (mmdetection checkpoints).

Exported part (`--part`): the whole detector (image in, `dets` and `labels` out, as
mmdetection's FasterRCNN.predict) when the checkpoint holds the RPN and RoI head weights,
else backbone + neck (image in, P2..P6 out); `--part backbone-neck` keeps the latter for
any checkpoint.

The neck's in/out channels and number of levels come from its convs, the upsampler type from
`neck.upsample_modules.0` (DLU or CARAFE weights). Nearest and bilinear have no weights: the
type is read from the training config saved in `meta` when present, else assumed bilinear
(the repository's baseline), and `--upsample` overrides it. The heads' sizes (classes,
class-agnostic regression) come from their weights; test_cfg, the anchors, the box coders'
stds and the input normalisation from the saved config, mmdetection's defaults otherwise.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from dlu_deploy.checkpoints.config_text import lookup, parse_config
from dlu_deploy.checkpoints.errors import HyperParameterError, StateDictMismatchError
from dlu_deploy.checkpoints.hyper import HyperParameters, weight_shape
from dlu_deploy.checkpoints.reading import Checkpoint, StateDict
from dlu_deploy.checkpoints.registry import Architecture, Built, Param, has_keys, prefixed, register
from dlu_deploy.models import UPSAMPLE_TYPES, BackboneNeck, ResNet50, UnifiedFPN
from dlu_deploy.models.resnet import RESNET50_STAGES

from .detector_heads import DETECTOR_PARAMS, PARTS, build_detector, has_heads
from .upsamplers import carafe_pack_from_weights, dlu_pack_from_weights

SIGNATURE = (
    "backbone.conv1.weight",
    "backbone.layer4.0.conv1.weight",
    "neck.lateral_convs.0.conv.weight",
)
# mmdetection's test pipeline: 1333x800 resized, padded to a multiple of 64 (coco_custom_dlu.py).
EXAMPLE_SHAPE = (1, 3, 800, 1344)
FPN_SCALE = 2
_CONFIG_UPSAMPLE = re.compile(
    r"upsample_cfg['\"]?\s*[=:]\s*(?:dict\(|\{)[^)}]*?['\"]?type['\"]?\s*[=:]\s*['\"](\w+)['\"]",
    re.S,
)


def upsample_from_config(text: str | None) -> str | None:
    """The neck's upsample type written in a saved mmdetection config, if any (a text that
    does not parse as a whole, e.g. cut short, is searched for the upsample_cfg)."""
    parsed = lookup(parse_config(text), "model.neck.upsample_cfg.type")
    if isinstance(parsed, str):
        return parsed
    match = _CONFIG_UPSAMPLE.search(text or "")
    return match.group(1) if match else None


class FasterRCNNUnifiedFPN(Architecture):
    name = "faster_rcnn_r50_unified_fpn"
    summary = (
        "mmdetection Faster R-CNN R50 + UNIFIED_FPN (DLU repository); exports image -> "
        "detections, or backbone + neck (--part backbone-neck, or no head weights)"
    )
    params = (
        Param(
            "upsample",
            str,
            "FPN upsampler (nearest/bilinear cannot be told apart by weights)",
            choices=UPSAMPLE_TYPES,
        ),
        Param(
            "encoder_dilation",
            int,
            "dilation of the DLU / CARAFE encoder convs",
            attribute="encoder_dilation",
        ),
        Param(
            "part",
            str,
            "what to export: detector (image -> dets, labels; the default when the checkpoint "
            "has head weights) or backbone-neck (image -> P2..P6)",
            choices=PARTS,
        ),
        *DETECTOR_PARAMS,
    )

    def detect(self, checkpoint: Checkpoint) -> bool:
        return has_keys(checkpoint.state_dict, SIGNATURE)

    def build(self, checkpoint: Checkpoint, overrides: Mapping[str, object]) -> Built:
        hp = HyperParameters(overrides)
        state = checkpoint.state_dict
        _check_resnet50(state)
        neck = prefixed(state, "neck.")
        in_channels, extra = _lateral_levels(neck)
        out_channels = weight_shape(neck, "lateral_convs.0.conv.weight", 4, "first lateral conv")[0]
        num_outs = len({k.split(".")[1] for k in neck if k.startswith("fpn_convs.")})
        if in_channels != list(ResNet50.out_channels):
            raise StateDictMismatchError(
                f"The neck's 1x1 laterals take {in_channels} channels; ResNet-50 gives "
                f"{list(ResNet50.out_channels)}.",
                "Only necks over all four ResNet-50 stages (start_level=0) are supported.",
            )
        hp.infer("in_channels", in_channels)
        hp.infer("out_channels", out_channels)
        hp.infer("num_outs", num_outs)
        if num_outs != len(in_channels) + extra:
            raise StateDictMismatchError(
                f"The neck has {num_outs} fpn_convs but {len(in_channels)} + {extra} lateral "
                "convs.",
                "Check that the checkpoint is complete (UNIFIED_FPN has one fpn_conv per lateral "
                "conv).",
            )
        upsample_cfg = self._upsample_config(checkpoint, neck, hp)
        fpn = UnifiedFPN(in_channels, out_channels, num_outs, upsample_cfg)
        heads = has_heads(state)
        part = hp.given.get("part") or ("detector" if heads else "backbone-neck")
        if part == "detector":
            if "part" not in hp.given:
                hp.inferred["part"] = part
            return build_detector(checkpoint, ResNet50(), fpn, hp, EXAMPLE_SHAPE)
        self._check_no_detector_overrides(hp)
        model = BackboneNeck(ResNet50(), fpn)
        wanted = set(model.state_dict())
        selected = {k: v for k, v in state.items() if k.startswith(("backbone.", "neck."))}
        left_out = sorted(
            {k.split(".")[0] for k in state if not k.startswith(("backbone.", "neck."))}
        )
        if left_out:
            hp.notes.append(f"not exported (backbone + neck only): {', '.join(left_out)}")
        unused_neck = sorted(k for k in selected if k not in wanted and k.startswith("neck."))
        if unused_neck:
            raise StateDictMismatchError(
                f"The neck has weights UNIFIED_FPN with upsample '{upsample_cfg['type']}' does "
                f"not use: {', '.join(unused_neck[:4])}{', ...' if len(unused_neck) > 4 else ''}.",
                "Check --upsample against the checkpoint (DLU and CARAFE necks carry upsampler "
                "weights).",
            )
        return Built(
            model=model,
            state_dict=selected,
            input_names=["image"],
            output_names=[f"p{level + 2}" for level in range(num_outs)],
            example_shapes=[EXAMPLE_SHAPE],
            inferred=hp.inferred,
            assumed=hp.assumed,
            given=hp.given,
            notes=hp.notes,
        )

    @staticmethod
    def _check_no_detector_overrides(hp: HyperParameters) -> None:
        given = [p.flag for p in DETECTOR_PARAMS if p.name in hp.given]
        if given:
            raise HyperParameterError(
                f"{', '.join(given)} set(s) the detector's post-processing, but backbone + neck "
                "is exported (--part backbone-neck, or the checkpoint has no head weights).",
                "Drop them, or export the whole detector from a checkpoint with rpn_head.* and "
                "roi_head.* weights.",
            )

    def _upsample_config(
        self, checkpoint: Checkpoint, neck: StateDict, hp: HyperParameters
    ) -> dict[str, object]:
        up = prefixed(neck, "upsample_modules.0.")
        if "kernel_space_generator.weight" in up:
            weights_type = "dlu"
        elif "content_encoder.weight" in up:
            weights_type = "carafe"
        else:
            weights_type = None
        configured = upsample_from_config(checkpoint.config_text)
        if weights_type is not None:
            upsample = hp.infer("upsample", weights_type)
            if configured is not None and configured != weights_type:
                hp.notes.append(
                    f"the saved config names upsample '{configured}', the weights are "
                    f"{weights_type}"
                )
            pack_from_weights = (
                dlu_pack_from_weights if weights_type == "dlu" else carafe_pack_from_weights
            )
            pack = pack_from_weights(neck, hp, prefix="upsample_modules.0.", scale=FPN_SCALE)
            hp.inferred.pop("channels", None)  # the neck's out_channels, already reported
            return {
                "type": upsample,
                "up_kernel": pack.up_kernel,
                "up_group": pack.up_group,
                "encoder_kernel": pack.encoder_kernel,
                "encoder_dilation": pack.encoder_dilation,
                "compressed_channels": pack.compressed_channels,
            }
        if "upsample" in hp.given:
            upsample = str(hp.given["upsample"])
            if upsample in ("dlu", "carafe"):
                raise HyperParameterError(
                    f"--upsample {upsample} was given, but the neck has no upsampler weights "
                    "(neck.upsample_modules.0.*).",
                    "Use --upsample nearest or bilinear for this checkpoint.",
                )
        elif configured in ("nearest", "bilinear"):
            upsample = hp.infer("upsample", configured)
            hp.notes.append(
                f"upsample '{configured}' read from the config saved in the checkpoint's meta"
            )
        else:
            upsample = hp.assume(
                "upsample",
                "bilinear",
                "the neck has no upsampler weights and no saved config says nearest or bilinear",
            )
        return {"type": upsample}


def _check_resnet50(state: StateDict) -> None:
    for index, (blocks, _) in enumerate(RESNET50_STAGES):
        layer = f"backbone.layer{index + 1}."
        found = len({k.split(".")[2] for k in state if k.startswith(layer)})
        if found != blocks:
            raise StateDictMismatchError(
                f"The backbone's layer{index + 1} has {found} blocks; ResNet-50 has {blocks}.",
                "Only ResNet-50 backbones are supported by this architecture.",
            )


def _lateral_levels(neck: StateDict) -> tuple[list[int], int]:
    """(in_channels of the 1x1 backbone laterals, number of extra 3x3 stride-2 laterals)."""
    in_channels: list[int] = []
    extra = 0
    index = 0
    while f"lateral_convs.{index}.conv.weight" in neck:
        _, in_ch, kernel, _ = weight_shape(
            neck, f"lateral_convs.{index}.conv.weight", 4, "lateral conv"
        )
        if kernel == 1 and not extra:
            in_channels.append(in_ch)
        else:
            extra += 1
        index += 1
    if not in_channels:
        raise StateDictMismatchError(
            "The neck has no 1x1 lateral convs (neck.lateral_convs.0.conv.weight).",
            "Check that the checkpoint is an mmdetection Faster R-CNN with UNIFIED_FPN.",
        )
    return in_channels, extra


register(FasterRCNNUnifiedFPN())

"""DLU (official DLUPack / light_CARAFEPack) and mmcv CARAFEPack, as bare module state_dicts.

Shape reading is shared with whole networks that contain these modules (the FPN neck).
"""

from __future__ import annotations

from collections.abc import Mapping

from dlu_deploy.checkpoints.hyper import (
    ODD_KERNEL_SIZES,
    HyperParameters,
    carafe_candidates,
    dlu_candidates,
    weight_shape,
)
from dlu_deploy.checkpoints.reading import Checkpoint, StateDict
from dlu_deploy.checkpoints.registry import Architecture, Built, Param, has_keys, register
from dlu_deploy.reference import CARAFEPack, DLUPack

DLU_KEYS = ("channel_compressor.weight", "kernel_space_generator.weight", "conv_offset.weight")
CARAFE_KEYS = ("channel_compressor.weight", "content_encoder.weight")
EXAMPLE_SIZE = 64  # H = W of the default example input of a single upsampler

PACK_PARAMS = (
    Param("scale", int, "upsampling factor", attribute="scale_factor"),
    Param(
        "up_kernel",
        int,
        "reassembly kernel size (odd)",
        choices=ODD_KERNEL_SIZES,
        attribute="up_kernel",
    ),
    Param("up_group", int, "reassembly groups", attribute="up_group"),
    Param(
        "encoder_dilation",
        int,
        "dilation of the kernel / offset encoder convs",
        attribute="encoder_dilation",
    ),
)
UP_NAMES = ("up_kernel", "up_group", "scale")


def _compressor(state: StateDict, prefix: str, hp: HyperParameters) -> tuple[int, int]:
    compressed, channels, _, _ = weight_shape(
        state, f"{prefix}channel_compressor.weight", 4, "1x1 channel compressor"
    )
    return hp.infer("channels", channels), hp.infer("compressed_channels", compressed)


def dlu_pack_from_weights(
    state: StateDict, hp: HyperParameters, prefix: str = "", scale: int | None = None
) -> DLUPack:
    """A DLUPack shaped like the weights under `prefix`; `scale` fixes the factor (FPN: 2)."""
    channels, compressed = _compressor(state, prefix, hp)
    space, _, encoder_kernel, _ = weight_shape(
        state,
        f"{prefix}kernel_space_generator.weight",
        4,
        "kernel space conv, up_group*up_kernel^2 outputs",
    )
    offsets = weight_shape(
        state, f"{prefix}conv_offset.weight", 4, "offset conv, up_group*2*scale^2 outputs"
    )[0]
    candidates = [
        c for c in dlu_candidates(channels, space, offsets) if scale is None or c["scale"] == scale
    ]
    chosen = hp.choose(
        UP_NAMES,
        candidates,
        f"{prefix}kernel_space_generator's {space} outputs (= up_group*up_kernel^2, up_kernel odd "
        f"<= 15) and {prefix}conv_offset's {offsets} (= up_group*2*scale^2, scale <= 8) with "
        f"up_group dividing {channels} channels",
    )
    dilation = hp.assume(
        "encoder_dilation", 1, "the encoders' dilation is not stored in the weights"
    )
    return DLUPack(
        channels,
        chosen["scale"],
        up_kernel=chosen["up_kernel"],
        up_group=chosen["up_group"],
        encoder_kernel=hp.infer("encoder_kernel", encoder_kernel),
        encoder_dilation=dilation,
        compressed_channels=compressed,
    )


def carafe_pack_from_weights(
    state: StateDict, hp: HyperParameters, prefix: str = "", scale: int | None = None
) -> CARAFEPack:
    channels, compressed = _compressor(state, prefix, hp)
    encoder, _, encoder_kernel, _ = weight_shape(
        state,
        f"{prefix}content_encoder.weight",
        4,
        "content encoder, up_group*up_kernel^2*scale^2 outputs",
    )
    candidates = [
        c for c in carafe_candidates(channels, encoder) if scale is None or c["scale"] == scale
    ]
    chosen = hp.choose(
        UP_NAMES,
        candidates,
        f"{prefix}content_encoder's {encoder} outputs (= up_group*up_kernel^2*scale^2, up_kernel "
        f"odd <= 15, scale <= 8) with up_group dividing {channels} channels",
    )
    dilation = hp.assume(
        "encoder_dilation", 1, "the encoder's dilation is not stored in the weights"
    )
    return CARAFEPack(
        channels,
        chosen["scale"],
        up_kernel=chosen["up_kernel"],
        up_group=chosen["up_group"],
        encoder_kernel=hp.infer("encoder_kernel", encoder_kernel),
        encoder_dilation=dilation,
        compressed_channels=compressed,
    )


def _single_module(model: DLUPack | CARAFEPack, state: StateDict, hp: HyperParameters) -> Built:
    return Built(
        model=model,
        state_dict=state,
        input_names=["features"],
        output_names=["upsampled"],
        example_shapes=[(1, model.channels, EXAMPLE_SIZE, EXAMPLE_SIZE)],
        inferred=hp.inferred,
        assumed=hp.assumed,
        given=hp.given,
        notes=hp.notes,
    )


class DLUArchitecture(Architecture):
    name = "dlu"
    summary = "DLUPack / light_CARAFEPack state_dict"
    params = PACK_PARAMS
    official_classes = ("DLUPack", "light_CARAFEPack")

    def detect(self, checkpoint: Checkpoint) -> bool:
        return has_keys(checkpoint.state_dict, DLU_KEYS)

    def build(self, checkpoint: Checkpoint, overrides: Mapping[str, object]) -> Built:
        hp = HyperParameters(overrides)
        return _single_module(
            dlu_pack_from_weights(checkpoint.state_dict, hp), checkpoint.state_dict, hp
        )


class CARAFEArchitecture(Architecture):
    name = "carafe"
    summary = "mmcv CARAFEPack state_dict"
    params = PACK_PARAMS
    official_classes = ("CARAFEPack",)

    def detect(self, checkpoint: Checkpoint) -> bool:
        return has_keys(checkpoint.state_dict, CARAFE_KEYS)

    def build(self, checkpoint: Checkpoint, overrides: Mapping[str, object]) -> Built:
        hp = HyperParameters(overrides)
        return _single_module(
            carafe_pack_from_weights(checkpoint.state_dict, hp), checkpoint.state_dict, hp
        )


register(DLUArchitecture())
register(CARAFEArchitecture())

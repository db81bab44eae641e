"""ddfnet's DDFPack and DDFUpPack state_dicts.

Weights show the channels, kernel size, heads, SE width and (DDFUpPack) the scale and the
depthwise kernel; stride, dilation, the combine mode and the nonlinearity that sets the
spatial filters' gain are not stored and are assumed (overridable).
"""

from __future__ import annotations

from collections.abc import Mapping

from dlu_deploy.checkpoints.errors import HyperParameterError
from dlu_deploy.checkpoints.hyper import HyperParameters, exact_root, weight_shape
from dlu_deploy.checkpoints.reading import Checkpoint, StateDict
from dlu_deploy.checkpoints.registry import Architecture, Built, Param, has_keys, register
from dlu_deploy.reference import DDFPack, DDFUpPack
from dlu_deploy.reference.ddf import COMBINE_MODES

EXAMPLE_SIZE = 64
NONLINEARITIES = ("linear", "relu", "leaky_relu", "tanh", "sigmoid", "selu")
DDF_KEYS = (
    "spatial_branch.0.weight",
    "channel_branch.1.weight",
    "channel_branch.3.weight",
    "channel_branch.4.std",
)
DDF_UP_KEYS = ("channel_branch.0.1.weight", "channel_branch.0.3.weight", "channel_branch.0.4.std")

COMMON_PARAMS = (
    Param("dilation", int, "DDF dilation", attribute="dilation"),
    Param(
        "combine",
        str,
        "how channel and spatial filters combine",
        choices=tuple(COMBINE_MODES),
        attribute="kernel_combine",
    ),
    Param("nonlinearity", str, "gain of the spatial FilterNorm", choices=NONLINEARITIES),
)


def _channel_branch(state: StateDict, prefix: str, hp: HyperParameters) -> tuple[int, int, float]:
    """(channels, kernel_size, se_ratio) from the SE branch `prefix` (1x1 C->mid, 1x1 "
    "mid->C*k^2)."""
    mid, channels, _, _ = weight_shape(state, f"{prefix}1.weight", 4, "channel branch squeeze conv")
    taps = weight_shape(state, f"{prefix}3.weight", 4, "channel branch conv to C*k^2 filters")[0]
    kernel = exact_root(taps // channels) if taps % channels == 0 else None
    if kernel is None or kernel % 2 == 0:
        raise HyperParameterError(
            f"'{prefix}3.weight' has {taps} outputs for {channels} channels, which is not C*k^2 "
            "for an odd k.",
            "DDF kernels must be odd (the window is centred on a pixel); check the checkpoint.",
        )
    hp.infer("channels", channels)
    hp.infer("kernel_size", kernel)
    hp.infer("se_ratio", round(mid / channels, 4))
    # int(C * se_ratio) must give back `mid`; the half-unit margin survives float rounding.
    return channels, kernel, (mid + 0.5) / channels


def _heads(state: StateDict, key: str, kernel: int, hp: HyperParameters) -> int:
    outputs = weight_shape(state, key, 4, "spatial filter conv, head*k^2 outputs")[0]
    if outputs % (kernel * kernel):
        raise HyperParameterError(
            f"'{key}' has {outputs} outputs, not a multiple of kernel_size^2 = {kernel * kernel}.",
            "Check that the checkpoint is a DDF module of this kind.",
        )
    return hp.infer("head", outputs // (kernel * kernel))


def _built(model: object, state: StateDict, channels: int, size: int, hp: HyperParameters) -> Built:
    return Built(
        model=model,  # type: ignore[arg-type]
        state_dict=state,
        input_names=["features"],
        output_names=["output"],
        example_shapes=[(1, channels, size, size)],
        inferred=hp.inferred,
        assumed=hp.assumed,
        given=hp.given,
        notes=hp.notes,
    )


class DDFArchitecture(Architecture):
    name = "ddf"
    summary = "ddfnet DDFPack state_dict"
    params = (Param("stride", int, "DDF stride", attribute="stride"), *COMMON_PARAMS)
    official_classes = ("DDFPack",)

    def detect(self, checkpoint: Checkpoint) -> bool:
        return has_keys(checkpoint.state_dict, DDF_KEYS)

    def build(self, checkpoint: Checkpoint, overrides: Mapping[str, object]) -> Built:
        hp = HyperParameters(overrides)
        state = checkpoint.state_dict
        channels, kernel, se_ratio = _channel_branch(state, "channel_branch.", hp)
        head = _heads(state, "spatial_branch.0.weight", kernel, hp)
        stride = hp.assume("stride", 1, "the spatial conv's stride is not stored in the weights")
        model = DDFPack(
            channels,
            kernel,
            stride=stride,
            dilation=hp.assume("dilation", 1, "the dilation is not stored in the weights"),
            head=head,
            se_ratio=se_ratio,
            nonlinearity=hp.assume(
                "nonlinearity", "relu", "the spatial filters' gain (DDFPack default) is not stored"
            ),
            kernel_combine=hp.assume(
                "combine", "mul", "the combine mode is not stored in the weights"
            ),
        )
        size = -(-EXAMPLE_SIZE // stride) * stride  # a multiple of the stride, as DDFPack requires
        return _built(model, state, channels, size, hp)


class DDFUpArchitecture(Architecture):
    name = "ddf_up"
    summary = "ddfnet DDFUpPack state_dict"
    params = (Param("scale", int, "upsampling factor", attribute="scale_factor"), *COMMON_PARAMS)
    official_classes = ("DDFUpPack",)

    def detect(self, checkpoint: Checkpoint) -> bool:
        return has_keys(checkpoint.state_dict, DDF_UP_KEYS)

    def build(self, checkpoint: Checkpoint, overrides: Mapping[str, object]) -> Built:
        hp = HyperParameters(overrides)
        state = checkpoint.state_dict
        branches = len({k.split(".")[1] for k in state if k.startswith("channel_branch.")})
        scale = exact_root(branches)
        if scale is None:
            raise HyperParameterError(
                f"The checkpoint has {branches} DDF branches; DDFUpPack has scale^2 of them.",
                "Check that no channel_branch.* entries are missing.",
            )
        hp.infer("scale", scale)
        channels, kernel, se_ratio = _channel_branch(state, "channel_branch.0.", hp)
        depthwise = "spatial_branch.0.1.0.weight" in state
        hp.infer("depthwise_guidance", depthwise)
        if depthwise:
            dw_kernel = weight_shape(
                state, "spatial_branch.0.0.weight", 4, "depthwise conv of the guidance"
            )[-1]
            head = _heads(state, "spatial_branch.0.1.0.weight", kernel, hp)
        else:
            dw_kernel = 3
            head = _heads(state, "spatial_branch.0.0.weight", kernel, hp)
        model = DDFUpPack(
            channels,
            kernel,
            scale_factor=scale,
            dilation=hp.assume("dilation", 1, "the dilation is not stored in the weights"),
            head=head,
            se_ratio=se_ratio,
            nonlinearity=hp.assume(
                "nonlinearity",
                "linear",
                "the spatial filters' gain (DDFUpPack default) is not stored",
            ),
            dw_kernel_size=hp.infer("dw_kernel_size", dw_kernel) if depthwise else 3,
            joint_channels=-1 if depthwise else 1,
            kernel_combine=hp.assume(
                "combine", "mul", "the combine mode is not stored in the weights"
            ),
        )
        return _built(model, state, channels, EXAMPLE_SIZE, hp)


register(DDFArchitecture())
register(DDFUpArchitecture())

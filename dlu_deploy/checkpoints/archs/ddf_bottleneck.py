"""ddfnet's DDF ResNet bottleneck (`DDFMulBottleneck` / `DDFAddBottleneck`), one block's
state_dict: timm's Bottleneck keys with conv2 a DDFPack (dlu_deploy.models.ddf_resnet).

The weights give the widths and the SE width. Neither the stride nor the combine mode is
stored: the stride is assumed from the ResNet layout (2 exactly in the first block of stages
2-4, whose shortcut doubles the width), the combine mode 'mul'; both are overridable.
"""

from __future__ import annotations

from collections.abc import Mapping

from dlu_deploy.checkpoints.errors import StateDictMismatchError
from dlu_deploy.checkpoints.hyper import HyperParameters, weight_shape
from dlu_deploy.checkpoints.reading import Checkpoint
from dlu_deploy.checkpoints.registry import Architecture, Built, Param, has_keys, register
from dlu_deploy.models.ddf_resnet import EXPANSION, DDFBottleneck, DDFBottleneckConfig
from dlu_deploy.reference.ddf import COMBINE_MODES

KEYS = (
    "conv1.weight",
    "conv2.spatial_branch.0.weight",
    "conv2.channel_branch.4.std",
    "conv3.weight",
)
KERNEL_TAPS = 9  # ddf_resnet.py builds DDFPack(width, kernel_size=3), one head
EXAMPLE_SIZE = 56  # the input of ResNet-50's layer2 at 224 x 224


class DDFBottleneckArchitecture(Architecture):
    name = "ddf_bottleneck"
    summary = "ddfnet DDF ResNet bottleneck block (timm Bottleneck with a DDFPack conv2)"
    params = (
        Param("stride", int, "stride of the block (its DDF and its shortcut)", choices=(1, 2)),
        Param(
            "combine",
            str,
            "how channel and spatial filters combine",
            choices=tuple(COMBINE_MODES),
        ),
    )

    def detect(self, checkpoint: Checkpoint) -> bool:
        return has_keys(checkpoint.state_dict, KEYS)

    def build(self, checkpoint: Checkpoint, overrides: Mapping[str, object]) -> Built:
        hp = HyperParameters(overrides)
        state = checkpoint.state_dict
        width, inplanes, _, _ = weight_shape(state, "conv1.weight", 4, "1x1 reduction conv")
        outplanes = weight_shape(state, "conv3.weight", 4, "1x1 expansion conv")[0]
        hidden = weight_shape(state, "conv2.channel_branch.1.weight", 4, "DDF SE squeeze")[0]
        taps = weight_shape(state, "conv2.spatial_branch.0.weight", 4, "DDF spatial filters")[0]
        if outplanes != EXPANSION * width or taps != KERNEL_TAPS:
            raise StateDictMismatchError(
                f"conv3 has {outplanes} outputs for a width of {width} and the DDF spatial branch "
                f"{taps} filters; a ddfnet Bottleneck has {EXPANSION} x width and one 3x3 head.",
                "Check that the checkpoint is one ddfnet Bottleneck (base width 64, 1 group).",
            )
        downsample = "downsample.0.weight" in state
        stride = hp.assume(
            "stride",
            2 if downsample and 2 * inplanes == outplanes else 1,
            "the stride is not stored; ResNet-50 strides exactly the blocks whose shortcut "
            "doubles the width",
        )
        config = DDFBottleneckConfig(
            inplanes=hp.infer("inplanes", inplanes),
            planes=hp.infer("planes", width),
            stride=stride,
            kernel_combine=hp.assume(
                "combine",
                "mul",
                "the combine mode is not stored (ddf_mul_resnet vs ddf_add_resnet)",
            ),
            # int(width * se_ratio) must give back the hidden width exactly.
            se_ratio=(hidden + 0.5) / width,
        )
        hp.infer("se_ratio", round(hidden / width, 4))
        return Built(
            model=DDFBottleneck(config),
            state_dict=state,
            input_names=["features"],
            output_names=["output"],
            example_shapes=[(1, inplanes, EXAMPLE_SIZE, EXAMPLE_SIZE)],
            inferred=hp.inferred,
            assumed=hp.assumed,
            given=hp.given,
            notes=hp.notes,
        )


register(DDFBottleneckArchitecture())

"""The DySample segmentation head of the samples (dlu_deploy.models.dysample_seg).

Keys `conv.*`, `upsample.*` (an official DySample state_dict) and `conv_seg.*`. The upsampler's
settings are read by the `dysample` architecture from the `upsample.` entries; the head's
widths and class count from its convs.
"""

from __future__ import annotations

from collections.abc import Mapping

from dlu_deploy.checkpoints.archs.dysample import DySampleArchitecture
from dlu_deploy.checkpoints.hyper import HyperParameters, weight_shape
from dlu_deploy.checkpoints.reading import Checkpoint
from dlu_deploy.checkpoints.registry import Architecture, Built, has_keys, prefixed, register
from dlu_deploy.models.dysample_seg import DySampleSegConfig, DySampleSegHead
from dlu_deploy.reference import DySample

KEYS = ("conv.0.weight", "upsample.offset.weight", "conv_seg.weight")
EXAMPLE_SIZE = 64
UPSAMPLER = DySampleArchitecture()  # reads the `upsample.` entries; not registered twice


class DySampleSegArchitecture(Architecture):
    name = "dysample_seg_head"
    summary = "segmentation head: conv 3x3 + BN + ReLU, DySample, 1x1 classifier"
    params = DySampleArchitecture.params  # --scale, --groups, --style of the upsampler

    def detect(self, checkpoint: Checkpoint) -> bool:
        return has_keys(checkpoint.state_dict, KEYS)

    def build(self, checkpoint: Checkpoint, overrides: Mapping[str, object]) -> Built:
        state = checkpoint.state_dict
        upsampler = UPSAMPLER.build(
            Checkpoint(checkpoint.path, prefixed(state, "upsample."), checkpoint.meta), overrides
        )
        dysample = upsampler.model
        assert isinstance(dysample, DySample)
        hp = HyperParameters(overrides)
        hp.inferred.update(upsampler.inferred)
        channels, in_channels, _, _ = weight_shape(state, "conv.0.weight", 4, "3x3 input conv")
        classes = weight_shape(state, "conv_seg.weight", 4, "1x1 classifier")[0]
        config = DySampleSegConfig(
            in_channels=hp.infer("head_in_channels", in_channels),
            channels=channels,
            num_classes=hp.infer("num_classes", classes),
            scale=dysample.scale,
            style=dysample.style,
            groups=dysample.groups,
            dyscope=dysample.dyscope,
        )
        return Built(
            model=DySampleSegHead(config),
            state_dict={
                **{k: v for k, v in state.items() if not k.startswith("upsample.")},
                **{f"upsample.{k}": v for k, v in upsampler.state_dict.items()},
            },
            input_names=["features"],
            output_names=["logits"],
            example_shapes=[(1, in_channels, EXAMPLE_SIZE, EXAMPLE_SIZE)],
            inferred=hp.inferred,
            assumed=upsampler.assumed,
            given=hp.given,
            notes=upsampler.notes,
        )


register(DySampleSegArchitecture())

"""DynamicRouting (Megvii-BaseDetection/DynamicRouting) semantic segmentation checkpoints.

dl_lib saves `{"model": state_dict, "iteration": ..., ...}` with `backbone.*` and
`sem_seg_head.*` keys. The weights give LAYER_NUM (Layer16, Layer33), INIT_CHANNEL and the
class count; SMALL_GATE (on in the Dynamic-A/B/C configs, off in the Raw ones) only changes
the forward pass and is assumed off unless overridden.
"""

from __future__ import annotations

from collections.abc import Mapping

from dlu_deploy.checkpoints.errors import HyperParameterError
from dlu_deploy.checkpoints.hyper import HyperParameters, weight_shape
from dlu_deploy.checkpoints.reading import Checkpoint
from dlu_deploy.checkpoints.registry import Architecture, Built, Param, has_keys, register
from dlu_deploy.models.dynamic_routing import DynamicRoutingConfig, DynamicRoutingSeg

KEYS = (
    "backbone.stem.stem_1.weight",
    "backbone.init_layer.gate_conv_beta.2.weight",
    "sem_seg_head.predictor.weight",
)
CELLS = "backbone.all_cell_list."
# Cityscapes at half resolution: small enough for CPU validation, a multiple of 32.
EXAMPLE_SHAPE = (1, 3, 256, 512)


class DynamicRoutingArchitecture(Architecture):
    name = "dynamic_routing"
    summary = "DynamicRouting segmentation net (dl_lib DynamicNet4Seg, Layer16/Layer33)"
    params = (
        Param(
            "small_gate",
            int,
            "SMALL_GATE of the config: 1 for Dynamic-A/B/C, 0 for Raw",
            choices=(0, 1),
        ),
    )

    def detect(self, checkpoint: Checkpoint) -> bool:
        return has_keys(checkpoint.state_dict, KEYS)

    def build(self, checkpoint: Checkpoint, overrides: Mapping[str, object]) -> Built:
        hp = HyperParameters(overrides)
        state = checkpoint.state_dict
        layers = {int(k[len(CELLS) :].split(".")[0]) for k in state if k.startswith(CELLS)}
        if not layers or layers != set(range(max(layers) + 1)):
            raise HyperParameterError(
                f"The checkpoint's cells cover layers {sorted(layers)}; a DynamicRouting network "
                "numbers its layers 0..LAYER_NUM-1.",
                "Check that the checkpoint is complete (backbone.all_cell_list.* entries).",
            )
        layer_num = hp.infer("layer_num", max(layers) + 1)
        init_channel = weight_shape(state, "backbone.stem.stem_3.1.weight", 4, "stem's last conv")[
            0
        ]
        classes = weight_shape(state, "sem_seg_head.predictor.weight", 4, "classifier")[0]
        small_gate = hp.assume(
            "small_gate",
            0,
            "SMALL_GATE (the gates read the input resized by 0.25) is not stored in the weights; "
            "the Dynamic-A/B/C configs set it",
        )
        config = DynamicRoutingConfig(
            layer_num=layer_num,
            init_channel=hp.infer("init_channel", init_channel),
            num_classes=hp.infer("num_classes", classes),
            small_gate=bool(small_gate),
        )
        height = max(EXAMPLE_SHAPE[2], config.min_input_size())
        return Built(
            model=DynamicRoutingSeg(config),
            state_dict=state,
            input_names=["image"],
            output_names=["logits"],
            example_shapes=[(1, 3, height, 2 * height)],
            inferred=hp.inferred,
            assumed=hp.assumed,
            given=hp.given,
            notes=[
                *hp.notes,
                "exported as the dense gated graph: every cell computed, the whole-cell skip "
                "applied per sample as a mask (samples/dynamic_routing/README.md)",
            ],
        )


register(DynamicRoutingArchitecture())

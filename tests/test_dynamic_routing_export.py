"""The exported dense DynamicRouting graph decides the whole-cell skip at run time, per sample.

One ONNX file (dlu-export, portable, dynamic shapes) is run in onnxruntime on inputs for which
init_layer's gates open and on inputs for which they close exactly, and compared with the
original's eval forward (Python-level skip) on each.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from dlu_export import ExportOptions, export_model

from dlu_deploy.checkpoints import load_model
from dlu_deploy.models.dynamic_routing import DynamicRoutingConfig, DynamicRoutingSeg
from dlu_deploy.models.seeded import build_seeded
from dlu_deploy.validate import OrtBackend

FP32_ATOL = 1e-4


def _input_gated_model() -> tuple[DynamicRoutingSeg, torch.Tensor]:
    """init_layer's gates open for `x` and close exactly (tanh < 0) for 0.1 * x.

    With zero BN biases and means, the stem and the gate branch are positively homogeneous, so
    the pooled gate feature p scales with the input; gate logits -1 + c * mean(p) with
    c = 3 / mean(p(x)) are +2 at x and -0.7 at 0.1 * x."""
    config = DynamicRoutingConfig(layer_num=3, init_channel=8, num_classes=3)
    model = build_seeded(lambda: DynamicRoutingSeg(config), 5)
    gate = model.backbone.init_layer.gate_conv_beta
    norms = [m.norm for m in (model.backbone.stem.stem_1, model.backbone.stem.stem_2[1])]
    norms += [model.backbone.stem.stem_3[1].norm, gate[0].norm]
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        for norm in norms:
            norm.bias.zero_()
            norm.running_mean.zero_()
        pooled = gate[1](gate[0](model.backbone.stem(x))).mean()
        logits = model.backbone.init_layer.gate_logits
        logits.weight.fill_(3.0 / float(pooled) / logits.weight.shape[1])
        model.backbone.init_layer.gate_logits_bias.fill_(-1.0)
    return model, x


@pytest.mark.slow
def test_one_graph_skips_init_layer_only_for_the_inputs_that_close_it(tmp_path: Path) -> None:
    model, x = _input_gated_model()
    torch.save({"model": model.state_dict(), "iteration": 0}, tmp_path / "dr.pth")
    loaded = load_model(tmp_path / "dr.pth")
    onnx_path = tmp_path / "dr.onnx"
    options = ExportOptions(mode="portable", dynamic=True, input_shapes=[(1, 3, 64, 64)])
    export_model(loaded, onnx_path, options)
    session = OrtBackend(onnx_path)

    dark = 0.1 * x
    wide = torch.nn.functional.interpolate(x, size=(64, 96))  # another size, same graph
    for image, closes in ((x, False), (dark, True), (wide, False), (0.1 * wide, True)):
        skipped: list[str] = []
        with torch.no_grad():
            want = model.forward_original(image, skipped)
        assert ("init_layer" in skipped) == closes
        got = session.run({"image": image.numpy()})["logits"]
        assert np.abs(got - want.numpy()).max() <= FP32_ATOL

    # A batch mixing both: the graph decides per sample and gives each image what the original
    # gives it alone (batch 1, the original's test setting).
    batch = torch.cat([x, dark])
    got = session.run({"image": batch.numpy()})["logits"]
    with torch.no_grad():
        alone = torch.cat([model.forward_original(x), model.forward_original(dark)])
        together = model.forward_original(batch)
    assert np.abs(got - alone.numpy()).max() <= FP32_ATOL
    # The documented gap: run as one batch, the original does not skip init_layer (the bright
    # image keeps it open), so the dark image's closed down path is a zero tensor instead of
    # "no input" and the cells fed only by it are computed on zeros instead of skipped. The
    # bright image is unaffected.
    assert np.abs(got[0] - together[0].numpy()).max() <= FP32_ATOL
    assert np.abs(got[1] - together[1].numpy()).max() > 100 * FP32_ATOL

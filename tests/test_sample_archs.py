"""The samples' architectures in the checkpoint registry: detection, inference, overrides.

Each checkpoint is written the way its original repository saves it and read back through
`load_model`, the loader dlu-export and dlu-deploy validate use.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from dlu_deploy.checkpoints import StateDictMismatchError, load_model
from dlu_deploy.checkpoints.errors import CheckpointError
from dlu_deploy.models.ddf_resnet import DDFBottleneck, DDFBottleneckConfig
from dlu_deploy.models.dynamic_routing import DynamicRoutingConfig, DynamicRoutingSeg
from dlu_deploy.models.dysample_seg import DySampleSegConfig, DySampleSegHead
from dlu_deploy.models.seeded import build_seeded


def _same_outputs(a: torch.nn.Module, b: torch.nn.Module, x: torch.Tensor) -> bool:
    with torch.no_grad():
        return bool(torch.equal(a.eval()(x), b.eval()(x)))


def test_dynamic_routing_dl_lib_checkpoint(tmp_path: Path) -> None:
    config = DynamicRoutingConfig(layer_num=3, init_channel=8, num_classes=5)
    model = build_seeded(lambda: DynamicRoutingSeg(config), 0)
    path = tmp_path / "model_final.pth"
    # dl_lib's Checkpointer: {"model": ..., "iteration": ...}; DataParallel adds "module.".
    state = {f"module.{k}": v for k, v in model.state_dict().items()}
    torch.save({"model": state, "iteration": 185999}, path)
    loaded = load_model(path)
    assert loaded.arch == "dynamic_routing"
    assert loaded.inferred == {"layer_num": 3, "init_channel": 8, "num_classes": 5}
    assert loaded.assumed == {"small_gate": 0}
    assert loaded.input_names == ["image"] and loaded.output_names == ["logits"]
    x = torch.randn(1, 3, 64, 96)
    assert _same_outputs(loaded.model, model, x)

    gated = load_model(path, overrides={"small_gate": 1})
    assert gated.given == {"small_gate": 1} and "small_gate" not in gated.assumed
    reference = build_seeded(lambda: DynamicRoutingSeg(DynamicRoutingConfig(3, 8, 5, True)), 0)
    x = torch.randn(1, 3, 128, 128)
    assert _same_outputs(gated.model, reference, x)
    assert not _same_outputs(gated.model, loaded.model, x)


def test_dynamic_routing_with_a_missing_layer_is_refused(tmp_path: Path) -> None:
    state = DynamicRoutingSeg(DynamicRoutingConfig(layer_num=4, init_channel=8)).state_dict()
    state = {k: v for k, v in state.items() if ".all_cell_list.2." not in k}
    torch.save({"model": state}, tmp_path / "broken.pth")
    with pytest.raises(CheckpointError, match=r"layers \[0, 1, 3\]"):
        load_model(tmp_path / "broken.pth")


@pytest.mark.parametrize(
    ("style", "dyscope"), [("lp", False), ("lp", True), ("pl", False), ("pl", True)]
)
@pytest.mark.parametrize("scale", [2, 4])
def test_dysample_seg_head_round_trip(
    tmp_path: Path, style: str, dyscope: bool, scale: int
) -> None:
    config = DySampleSegConfig(24, 32, 7, scale, style, 2, dyscope)
    head = build_seeded(lambda: DySampleSegHead(config), scale)
    torch.save(head.state_dict(), tmp_path / "head.pth")
    loaded = load_model(tmp_path / "head.pth")
    assert loaded.arch == "dysample_seg_head"
    assert isinstance(loaded.model, DySampleSegHead) and loaded.model.config == config
    assert loaded.example_shapes == [(1, 24, 64, 64)]
    assert _same_outputs(loaded.model, head, torch.randn(2, 24, 5, 6))


@pytest.mark.parametrize(
    ("inplanes", "planes", "downsample", "stride"),
    [(64, 64, True, 1), (256, 128, True, 2), (1024, 256, False, 1), (1024, 512, True, 2)],
)
def test_ddf_bottleneck_stride_follows_the_resnet_layout(
    tmp_path: Path, inplanes: int, planes: int, downsample: bool, stride: int
) -> None:
    block = DDFBottleneck(DDFBottleneckConfig(inplanes, planes, stride, "mul"))
    assert (block.downsample is not None) == downsample
    torch.save(block.state_dict(), tmp_path / "block.pth")
    loaded = load_model(tmp_path / "block.pth")
    assert loaded.arch == "ddf_bottleneck"
    assert loaded.assumed == {"stride": stride, "combine": "mul"}
    assert loaded.inferred["inplanes"] == inplanes and loaded.inferred["planes"] == planes


def test_ddf_bottleneck_overrides_and_outputs(tmp_path: Path) -> None:
    block = build_seeded(lambda: DDFBottleneck(DDFBottleneckConfig(256, 128, 2, "add")), 1)
    torch.save(block.state_dict(), tmp_path / "block.pth")
    x = torch.randn(1, 256, 8, 8)
    assumed = load_model(tmp_path / "block.pth")
    assert assumed.assumed["combine"] == "mul"
    assert not _same_outputs(assumed.model, block, x)
    given = load_model(tmp_path / "block.pth", overrides={"combine": "add"})
    assert given.given == {"combine": "add"}
    assert _same_outputs(given.model, block, x)


def test_ddf_bottleneck_with_a_5x5_ddf_is_refused(tmp_path: Path) -> None:
    state = DDFBottleneck(DDFBottleneckConfig(64, 16, 1)).state_dict()
    state["conv2.spatial_branch.0.weight"] = torch.zeros(25, 16, 1, 1)
    torch.save(state, tmp_path / "block.pth")
    with pytest.raises(StateDictMismatchError, match="one 3x3 head"):
        load_model(tmp_path / "block.pth")

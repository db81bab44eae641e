"""Checkpoint loading: layouts, architecture detection, inferred hyper-parameters, errors."""

from __future__ import annotations

import sys
import types
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch import nn

from dlu_deploy import reference
from dlu_deploy.checkpoints import (
    PICKLED_MODULE_ARCH,
    CheckpointNotFoundError,
    CorruptCheckpointError,
    HyperParameterError,
    StateDictMismatchError,
    UnknownArchitectureError,
    UnsafeCheckpointError,
    load_model,
    read_checkpoint,
)
from tests import official
from tests.conftest import fpn_model, mmdet_checkpoint
from tests.helpers import randomize, save

X_SEED = 11


def _input(channels: int, h: int = 6, w: int = 5) -> torch.Tensor:
    return torch.randn(2, channels, h, w, generator=torch.Generator().manual_seed(X_SEED))


def _same_function(a: nn.Module, b: nn.Module, x: torch.Tensor) -> bool:
    with torch.no_grad():
        out_a, out_b = a(x), b(x)
    pairs = zip(out_a, out_b, strict=True) if isinstance(out_a, tuple) else [(out_a, out_b)]
    return all(torch.equal(p, q) for p, q in pairs)


MODULE_CASES: list[tuple[str, Callable[[], nn.Module], dict[str, object], dict[str, object]]] = [
    (
        "dlu",
        lambda: reference.DLUPack(32, 2, compressed_channels=16),
        {
            "channels": 32,
            "compressed_channels": 16,
            "up_kernel": 5,
            "up_group": 1,
            "scale": 2,
            "encoder_kernel": 3,
        },
        {"encoder_dilation": 1},
    ),
    (
        "dlu",
        lambda: reference.DLUPack(
            24, 3, up_kernel=3, up_group=2, encoder_kernel=5, compressed_channels=8
        ),
        {"up_kernel": 3, "up_group": 2, "scale": 3, "encoder_kernel": 5},
        {"encoder_dilation": 1},
    ),
    (
        "carafe",
        lambda: reference.CARAFEPack(32, 2, compressed_channels=16),
        {"channels": 32, "up_kernel": 5, "up_group": 1, "scale": 2, "encoder_kernel": 3},
        {"encoder_dilation": 1},
    ),
    (
        "dysample",
        lambda: reference.DySample(32, 2, "lp", 4),
        {"in_channels": 32, "scale": 2, "style": "lp", "groups": 4, "dyscope": False},
        {},
    ),
    (
        "dysample",
        lambda: reference.DySample(36, 3, "pl", 2, dyscope=True),
        {"in_channels": 36, "scale": 3, "style": "pl", "groups": 2, "dyscope": True},
        {},
    ),
    (
        "ddf",
        lambda: reference.DDFPack(20, 5, head=2, se_ratio=0.25),
        {"channels": 20, "kernel_size": 5, "head": 2, "se_ratio": 0.25},
        {"stride": 1, "dilation": 1, "combine": "mul", "nonlinearity": "relu"},
    ),
    (
        "ddf_up",
        lambda: reference.DDFUpPack(16, 3, scale_factor=3, head=2),
        {
            "channels": 16,
            "kernel_size": 3,
            "scale": 3,
            "head": 2,
            "depthwise_guidance": True,
            "dw_kernel_size": 3,
        },
        {"dilation": 1, "combine": "mul", "nonlinearity": "linear"},
    ),
    (
        "ddf_up",
        lambda: reference.DDFUpPack(16, 3, joint_channels=1),
        {"channels": 16, "scale": 2, "depthwise_guidance": False},
        {"dilation": 1, "combine": "mul", "nonlinearity": "linear"},
    ),
]


@pytest.mark.parametrize(("arch", "factory", "inferred", "assumed"), MODULE_CASES)
def test_module_state_dicts_are_detected_with_their_hyper_parameters(
    tmp_path: Path,
    arch: str,
    factory: Callable[[], nn.Module],
    inferred: dict[str, object],
    assumed: dict[str, object],
) -> None:
    module = randomize(factory(), seed=5)
    loaded = load_model(save(module.state_dict(), tmp_path / "m.pth"))
    assert loaded.arch == arch
    assert {k: loaded.inferred[k] for k in inferred} == inferred
    assert loaded.assumed == assumed
    assert loaded.given == {}
    channels = loaded.example_shapes[0][1]
    assert _same_function(loaded.model, module, _input(channels))
    assert not loaded.model.training


@pytest.mark.parametrize(
    "wrap",
    [
        lambda sd: {f"module.{k}": v for k, v in sd.items()},
        lambda sd: {"model": {f"model.{k}": v for k, v in sd.items()}},
        lambda sd: {"state_dict": sd, "meta": {"epoch": 3}, "optimizer": {"state": {}}},
    ],
    ids=["dataparallel-prefix", "model-entry", "mmengine-container"],
)
def test_containers_and_prefixes_are_unwrapped(
    tmp_path: Path, wrap: Callable[[dict], object]
) -> None:
    module = randomize(reference.DLUPack(16, 2, compressed_channels=8), seed=6)
    loaded = load_model(save(wrap(module.state_dict()), tmp_path / "m.pth"))
    assert loaded.arch == "dlu"
    assert _same_function(loaded.model, module, _input(16))


def test_override_of_what_weights_cannot_show(tmp_path: Path) -> None:
    module = randomize(reference.DLUPack(16, 2, encoder_dilation=2, compressed_channels=8), seed=7)
    path = save(module.state_dict(), tmp_path / "m.pth")
    loaded = load_model(path, overrides={"encoder_dilation": 2})
    assert loaded.given == {"encoder_dilation": 2} and "encoder_dilation" not in loaded.assumed
    assert _same_function(loaded.model, module, _input(16, 9, 8))
    assert not _same_function(load_model(path).model, module, _input(16, 9, 8))


def test_ambiguous_shapes_prefer_defaults_and_accept_an_override(tmp_path: Path) -> None:
    # 100 encoder channels: k=5, s=2, G=1 (chosen) or k=5, s=1, G=4, ...
    path = save(
        randomize(reference.CARAFEPack(16, 2, compressed_channels=8), 8).state_dict(),
        tmp_path / "c.pth",
    )
    loaded = load_model(path)
    assert (loaded.inferred["scale"], loaded.inferred["up_group"]) == (2, 1)
    assert any("also fit" in note and "--scale" in note for note in loaded.notes)
    other = load_model(path, overrides={"scale": 1})
    assert (other.inferred["up_kernel"], other.inferred["up_group"], other.given) == (
        5,
        4,
        {"scale": 1},
    )


def test_override_contradicting_the_weights_is_refused(tmp_path: Path) -> None:
    path = save(reference.DLUPack(16, 2, compressed_channels=8).state_dict(), tmp_path / "m.pth")
    with pytest.raises(HyperParameterError, match="--scale 3"):
        load_model(path, overrides={"scale": 3})


@pytest.mark.parametrize(
    ("upsample", "with_config", "overrides", "expected", "how"),
    [
        ("dlu", True, {}, "dlu", "inferred"),
        ("carafe", True, {}, "carafe", "inferred"),
        ("nearest", True, {}, "nearest", "inferred"),  # read from meta's config text
        ("bilinear", True, {}, "bilinear", "inferred"),
        ("bilinear", False, {}, "bilinear", "assumed"),  # no config: the documented default
        ("nearest", False, {"upsample": "nearest"}, "nearest", "given"),
    ],
)
def test_faster_rcnn_unified_fpn(
    tmp_path: Path,
    upsample: str,
    with_config: bool,
    overrides: dict[str, object],
    expected: str,
    how: str,
) -> None:
    path = save(mmdet_checkpoint(upsample, with_config), tmp_path / "detector.pth")
    loaded = load_model(path, overrides={**overrides, "part": "backbone-neck"})
    assert loaded.arch == "faster_rcnn_r50_unified_fpn"
    assert {"inferred": loaded.inferred, "assumed": loaded.assumed, "given": loaded.given}[how][
        "upsample"
    ] == expected
    assert loaded.inferred["in_channels"] == [256, 512, 1024, 2048]
    assert (loaded.inferred["out_channels"], loaded.inferred["num_outs"]) == (256, 5)
    assert loaded.input_names == ["image"]
    assert loaded.output_names == ["p2", "p3", "p4", "p5", "p6"]
    assert any("rpn_head" in note and "roi_head" in note for note in loaded.notes)
    fpn = loaded.model.neck
    assert len(fpn.lateral_convs) == 5 and len(fpn.upsample_modules) == 4
    assert fpn.lateral_convs[4].conv.in_channels == 2048 and fpn.lateral_convs[4].conv.stride == (
        2,
        2,
    )
    if upsample == "dlu":
        assert (loaded.inferred["up_kernel"], loaded.inferred["compressed_channels"]) == (5, 64)
    image = torch.randn(
        1, 3, 70, 90, generator=torch.Generator().manual_seed(1)
    )  # odd sizes: the crops
    if how != "assumed" or upsample == "bilinear":
        assert _same_function(loaded.model, fpn_model(upsample), image)


def test_fpn_upsample_override_must_match_weights(tmp_path: Path) -> None:
    path = save(mmdet_checkpoint("nearest", with_config=False), tmp_path / "detector.pth")
    with pytest.raises(HyperParameterError, match="no upsampler weights"):
        load_model(path, overrides={"upsample": "dlu"})
    dlu_path = save(mmdet_checkpoint("dlu"), tmp_path / "dlu.pth")
    with pytest.raises(HyperParameterError, match="contradicts the weights"):
        load_model(dlu_path, overrides={"upsample": "bilinear"})


# --- errors -----------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CheckpointNotFoundError, match="does not exist"):
        load_model(tmp_path / "nope.pth")
    with pytest.raises(CheckpointNotFoundError, match="not a file"):
        load_model(tmp_path)


def test_corrupt_and_truncated_files(tmp_path: Path) -> None:
    good = save(reference.DLUPack(16, 2, compressed_channels=8).state_dict(), tmp_path / "good.pth")
    data = good.read_bytes()
    (tmp_path / "truncated.pth").write_bytes(data[: len(data) // 2])
    (tmp_path / "garbage.pth").write_bytes(bytes(range(256)) * 64)
    (tmp_path / "empty.pth").write_bytes(b"")
    for name in ("truncated.pth", "garbage.pth", "empty.pth"):
        with pytest.raises(CorruptCheckpointError, match="truncated, corrupt") as info:
            load_model(tmp_path / name)
        assert name in info.value.problem


def test_not_a_state_dict(tmp_path: Path) -> None:
    with pytest.raises(CorruptCheckpointError, match="without weights"):
        load_model(save({"epoch": 3, "note": "x"}, tmp_path / "m.pth"))
    with pytest.raises(CorruptCheckpointError, match="holds a list"):
        load_model(save([torch.zeros(3)], tmp_path / "l.pth"))


def test_unknown_architecture_lists_the_known_ones(tmp_path: Path) -> None:
    path = save(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()).state_dict(), tmp_path / "m.pth")
    with pytest.raises(UnknownArchitectureError, match="matches no known architecture") as info:
        load_model(path)
    for name in ("dlu", "carafe", "dysample", "ddf", "ddf_up", "faster_rcnn_r50_unified_fpn"):
        assert name in info.value.fix
    with pytest.raises(UnknownArchitectureError, match="'resnet' is not known"):
        load_model(path, arch="resnet")


def test_forced_arch_reports_missing_keys(tmp_path: Path) -> None:
    path = save(reference.CARAFEPack(16, 2, compressed_channels=8).state_dict(), tmp_path / "m.pth")
    with pytest.raises(StateDictMismatchError, match=r"kernel_space_generator\.weight"):
        load_model(path, arch="dlu")


def test_missing_and_misshaped_keys(tmp_path: Path) -> None:
    state = reference.DLUPack(16, 2, compressed_channels=8).state_dict()
    missing = {k: v for k, v in state.items() if k != "conv_offset.bias"}
    with pytest.raises(StateDictMismatchError, match=r"lacks 1 weights.*conv_offset\.bias"):
        load_model(save(missing, tmp_path / "missing.pth"))
    misshaped = dict(state, **{"kernel_space_generator.weight": torch.zeros(25, 4, 3, 3)})
    with pytest.raises(
        StateDictMismatchError, match=r"'kernel_space_generator.weight' is \(25, 4, 3, 3\)"
    ):
        load_model(save(misshaped, tmp_path / "misshaped.pth"))
    flat = dict(state, **{"channel_compressor.weight": torch.zeros(8, 16)})
    with pytest.raises(StateDictMismatchError, match="expected 4 dimensions"):
        load_model(save(flat, tmp_path / "flat.pth"))


def test_even_kernel_sizes_are_refused(tmp_path: Path) -> None:
    state = reference.DLUPack(16, 2, compressed_channels=8).state_dict()
    even = dict(
        state,
        **{
            "kernel_space_generator.weight": torch.zeros(16, 8, 3, 3),
            "kernel_space_generator.bias": torch.zeros(16),
        },
    )
    with pytest.raises(HyperParameterError, match="up_kernel odd"):
        load_model(save(even, tmp_path / "even.pth"))
    with pytest.raises(HyperParameterError, match=r"--up-kernel 4 is not allowed.*1, 3, 5"):
        load_model(save(state, tmp_path / "ok.pth"), overrides={"up_kernel": 4})


def test_groups_that_do_not_divide_the_channels(tmp_path: Path) -> None:
    path = save(reference.CARAFEPack(16, 2, compressed_channels=8).state_dict(), tmp_path / "c.pth")
    with pytest.raises(HyperParameterError, match=r"up_group dividing 16 channels.*--up-group 3"):
        load_model(path, overrides={"up_group": 3})
    ds = save(reference.DySample(16, 2, groups=4).state_dict(), tmp_path / "d.pth")
    with pytest.raises(HyperParameterError, match="--groups 3"):
        load_model(ds, overrides={"groups": 3})


def test_override_for_another_architecture(tmp_path: Path) -> None:
    path = save(reference.DLUPack(16, 2, compressed_channels=8).state_dict(), tmp_path / "m.pth")
    with pytest.raises(HyperParameterError, match="--stride does not apply to architecture 'dlu'"):
        load_model(path, overrides={"stride": 2})


class _Config:
    """A config object as older tools put into `meta` (weights_only loading refuses it)."""

    def __init__(self, text: str) -> None:
        self.text = text


def test_meta_objects_are_read_as_inert_data(tmp_path: Path) -> None:
    state = randomize(reference.DLUPack(16, 2, compressed_channels=8), 9).state_dict()
    meta = {"cfg": _Config("x"), "epoch": 3}
    path = save({"state_dict": state, "meta": meta}, tmp_path / "m.pth")
    loaded = load_model(path)
    assert loaded.arch == "dlu"
    assert any("tests.test_checkpoints._Config as inert data" in n for n in loaded.notes)
    checkpoint = read_checkpoint(path)
    assert checkpoint.meta == {"epoch": 3} and checkpoint.config_text is None
    trusted = read_checkpoint(path, trust_pickle=True).meta["cfg"]
    assert isinstance(trusted, _Config) and trusted.text == "x"


def test_pickled_model_needs_trust_and_gets_its_upsamplers_swapped(tmp_path: Path) -> None:
    model = nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1),
        official.DLUPack(16, 2, compressed_channels=8),
        official.DySample(16, 2, groups=2),
    )
    randomize(model, seed=10)
    path = save(model, tmp_path / "whole.pth")
    with pytest.raises(UnsafeCheckpointError, match="--trust-pickle"):
        load_model(path)
    loaded = load_model(path, trust_pickle=True)
    assert loaded.arch == PICKLED_MODULE_ARCH
    assert isinstance(loaded.model[1], reference.DLUPack) and isinstance(
        loaded.model[2], reference.DySample
    )
    assert loaded.example_shapes == [(1, 3, 64, 64)] and "input_shape" in loaded.assumed
    x = _input(3, 7, 9)
    with torch.no_grad():
        assert float((loaded.model(x) - model(x)).abs().max()) <= 1e-5


def test_pickled_official_module_is_loaded_as_its_architecture(tmp_path: Path) -> None:
    module = official.CARAFEPack(16, 2, encoder_dilation=2, compressed_channels=8)
    randomize(module, seed=12)
    loaded = load_model(save(module, tmp_path / "carafe.pth"), trust_pickle=True)
    assert loaded.arch == "carafe"
    assert loaded.given["encoder_dilation"] == 2  # from the module, not the default
    x = _input(16)
    with torch.no_grad():
        assert float((loaded.model(x) - module(x)).abs().max()) <= 1e-5


def test_pickled_official_class_whose_package_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pickle referring to custom.ops.dlu.DLUPack (needs mmcv) loads where that cannot import."""
    package = {name: types.ModuleType(name) for name in ("custom", "custom.ops", "custom.ops.dlu")}
    dlu_class = type("DLUPack", (official.DLUPack,), {"__module__": "custom.ops.dlu"})
    package["custom.ops.dlu"].DLUPack = dlu_class  # type: ignore[attr-defined]
    for name, module in package.items():
        monkeypatch.setitem(sys.modules, name, module)
    model = nn.Sequential(nn.Conv2d(4, 16, 1), dlu_class(16, 2, compressed_channels=8))
    randomize(model, seed=13)
    path = save(model, tmp_path / "whole.pth")
    for name in package:
        monkeypatch.delitem(sys.modules, name)
    loaded = load_model(path, trust_pickle=True)
    assert any("DLUPack -> dlu" in note for note in loaded.notes)
    x = _input(4)
    with torch.no_grad():
        assert float((loaded.model(x) - model(x)).abs().max()) <= 1e-5

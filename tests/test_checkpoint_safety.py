"""Safe loading of real training checkpoints, and refusal of pickles that would run code.

The mmengine checkpoints here are written the way mmengine 0.10.7's Runner writes them, by
stand-in classes under mmengine's module and class names (registered in sys.modules while
saving): the pickle stream names the same globals as a real `epoch_12.pth`
(`_MMENGINE_GLOBALS`, checked against a file written by mmengine itself). The malicious files
carry a payload that writes a marker file and sets an in-process flag; loading must refuse
them before anything runs.
"""

from __future__ import annotations

import functools
import operator
import os
import pickle
import subprocess
import sys
import types
import zipfile
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
import torch
from dlu_export.cli import main as export_main
from torch import nn

from dlu_deploy import reference
from dlu_deploy.checkpoints import (
    CheckpointError,
    CodeInCheckpointError,
    UnsafeCheckpointError,
    load_model,
    read_checkpoint,
)
from dlu_deploy.checkpoints.unpickling import is_inert, load_inert, unsafe_globals
from tests.helpers import randomize, save

# What torch.serialization.get_unsafe_globals_in_checkpoint lists for a checkpoint written by
# mmengine 0.10.7's save_checkpoint (message_hub, optimizer, param_schedulers) under numpy 2.
_MULTIARRAY = np.zeros(1).__reduce__()[0].__module__  # numpy._core.multiarray from numpy 2
_MMENGINE_GLOBALS = [
    "builtins.getattr",
    "mmengine.logging.history_buffer.HistoryBuffer",
    f"{_MULTIARRAY}._reconstruct",
    "numpy.dtype",
    "numpy.ndarray",
]
CONFIG_TEXT = "model = dict(\n    type='FasterRCNN',\n    neck=dict(type='UNIFIED_FPN'))\n"
CLASSES = ("person", "bicycle", "car")

# Set by any code of the file that runs in this process; must stay empty.
ran_code: list[str] = []


@pytest.fixture(autouse=True)
def _nothing_ran_yet() -> Iterator[None]:
    ran_code.clear()
    yield
    ran_code.clear()


def record_run(what: str, marker: str = "") -> str:
    """What a payload calls: the in-process flag and the marker file."""
    ran_code.append(what)
    if marker:
        Path(marker).write_text(what)
    return what


class HistoryBuffer:
    """mmengine.logging.history_buffer.HistoryBuffer (0.10.7), the parts that get pickled."""

    _statistics_methods: ClassVar[dict[str, Callable[..., Any]]] = {}

    def __init__(self, max_length: int = 1000000) -> None:
        self.max_length = max_length
        self._set_default_statistics()
        self._log_history = np.array([])
        self._count_history = np.array([])

    def _set_default_statistics(self) -> None:
        self._statistics_methods.setdefault("min", HistoryBuffer.min)
        self._statistics_methods.setdefault("max", HistoryBuffer.max)
        self._statistics_methods.setdefault("current", HistoryBuffer.current)
        self._statistics_methods.setdefault("mean", HistoryBuffer.mean)

    def update(self, log_val: float, count: int = 1) -> None:
        self._log_history = np.append(self._log_history, log_val)
        self._count_history = np.append(self._count_history, count)

    def mean(self) -> np.ndarray:
        return np.asarray(self._log_history.sum() / self._count_history.sum())

    def max(self) -> np.ndarray:
        return np.asarray(self._log_history.max())

    def min(self) -> np.ndarray:
        return np.asarray(self._log_history.min())

    def current(self) -> np.ndarray:
        return np.asarray(self._log_history[-1])

    def __getstate__(self) -> dict[str, Any]:
        self.__dict__.update(statistics_methods=self._statistics_methods)
        return self.__dict__

    def __setstate__(self, state: dict[str, Any]) -> None:
        record_run("HistoryBuffer.__setstate__")  # mmengine's own code would run here
        self.__dict__.update(state)


_HISTORY_MODULE = "mmengine.logging.history_buffer"
for _owner in (HistoryBuffer, HistoryBuffer.min, HistoryBuffer.max, HistoryBuffer.current):
    _owner.__module__ = _HISTORY_MODULE
HistoryBuffer.mean.__module__ = _HISTORY_MODULE


@contextmanager
def _importable(module_name: str, **attributes: object) -> Iterator[None]:
    """`module_name` (and its parents) in sys.modules with `attributes`, for this block only."""
    parts = module_name.split(".")
    names = [".".join(parts[: i + 1]) for i in range(len(parts))]
    added = [n for n in names if n not in sys.modules]
    for name in added:
        sys.modules[name] = types.ModuleType(name)
    vars(sys.modules[module_name]).update(attributes)
    try:
        yield
    finally:
        for name in added:
            del sys.modules[name]


# Written by mmengine 0.10.7's own HistoryBuffer (numpy 2.4): `hb = HistoryBuffer();
# hb.update(1.5); hb.update(2.5, count=2); pickle.dumps(OrderedDict(loss=hb), protocol=2)`, the
# protocol torch.save uses. The stand-in above must reproduce it byte for byte.
REAL_HISTORY_BUFFER_PICKLE = bytes.fromhex(
    "800263636f6c6c656374696f6e730a4f726465726564446963740a71002952710158040000006c6f73737102"
    "636d6d656e67696e652e6c6f6767696e672e686973746f72795f6275666665720a486973746f727942756666"
    "65720a7103298171047d710528580a0000006d61785f6c656e67746871064a40420f00580c0000005f6c6f67"
    "5f686973746f72797107636e756d70792e5f636f72652e6d756c746961727261790a5f7265636f6e73747275"
    "63740a7108636e756d70790a6e6461727261790a71094b0085710a635f636f646563730a656e636f64650a71"
    "0b580100000062710c58060000006c6174696e31710d86710e52710f877110527111284b014b02857112636e"
    "756d70790a64747970650a71135802000000663871148988877115527116284b0358010000003c71174e4e4e"
    "4affffffff4affffffff4b007471186289680b5811000000000000000000c3b83f0000000000000440711968"
    "0d86711a52711b74711c62580e0000005f636f756e745f686973746f7279711d680868094b0085711e680f87"
    "711f527120284b014b02857121681689680b5811000000000000000000c3b03f00000000000000407122680d"
    "867123527124747125625812000000737461746973746963735f6d6574686f647371267d7127285803000000"
    "6d696e7128635f5f6275696c74696e5f5f0a676574617474720a7129680358030000006d696e712a86712b52"
    "712c58030000006d6178712d6829680358030000006d6178712e86712f527130580700000063757272656e74"
    "713168296803580700000063757272656e74713286713352713458040000006d65616e713568296803580400"
    "00006d65616e7136867137527138757562732e"
)

NUMPY_2 = np.lib.NumpyVersion(np.__version__) >= "2.0.0"


@pytest.mark.skipif(not NUMPY_2, reason="the reference bytes name numpy 2's numpy._core")
def test_stand_in_pickles_as_mmengine_does(tmp_path: Path) -> None:
    with _importable(_HISTORY_MODULE, HistoryBuffer=HistoryBuffer):
        buffer = HistoryBuffer()
        buffer.update(1.5)
        buffer.update(2.5, count=2)
        assert pickle.dumps(OrderedDict(loss=buffer), protocol=2) == REAL_HISTORY_BUFFER_PICKLE
    # mmengine's own bytes as the pickle of a torch.save file, read safely.
    path = save({"x": 1}, tmp_path / "hub.pth")
    with zipfile.ZipFile(path) as source:
        records = {n: source.read(n) for n in source.namelist()}
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as target:
        for name, data in records.items():
            target.writestr(
                name, REAL_HISTORY_BUFFER_PICKLE if name.endswith("/data.pkl") else data
            )
    names = unsafe_globals(path)
    assert names == _MMENGINE_GLOBALS
    loaded, inert = load_inert(path, names or [])
    assert inert == ["mmengine.logging.history_buffer.HistoryBuffer"]
    state = loaded["loss"].state
    assert state["_log_history"].tolist() == [1.5, 2.5] and state["max_length"] == 1000000
    assert sorted(state["statistics_methods"]) == ["current", "max", "mean", "min"]
    assert ran_code == []


def _mmengine_runtime() -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]]:
    """message_hub, optimizer and param_schedulers state dicts after a few training steps."""
    params = [nn.Parameter(torch.randn(4, 3, generator=torch.Generator().manual_seed(0)))]
    optimizer = torch.optim.SGD(params, lr=0.02, momentum=0.9, weight_decay=1e-4)
    schedulers = [
        torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=0.001, total_iters=500),
        torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=[8, 11]),
    ]
    buffers = OrderedDict((key, HistoryBuffer()) for key in ("train/loss", "train/lr", "time"))
    for step in range(3):
        params[0].grad = torch.full_like(params[0], 0.1 * (step + 1))
        optimizer.step()
        for scheduler in schedulers:
            scheduler.step()
        buffers["train/loss"].update(float(params[0].detach().sum()))
        buffers["train/lr"].update(optimizer.param_groups[0]["lr"])
        buffers["time"].update(0.25 * step)
    runtime_info = OrderedDict(
        cfg=CONFIG_TEXT, epoch=12, iter=3, max_iters=3, last_ckpt="work_dirs/epoch_11.pth"
    )
    message_hub = {
        "log_scalars": buffers,
        "runtime_info": runtime_info,
        "resumed_keys": OrderedDict((key, True) for key in [*buffers, *runtime_info]),
    }
    return message_hub, optimizer.state_dict(), [s.state_dict() for s in schedulers]


def _mmengine_checkpoint(state_dict: dict[str, torch.Tensor], **extra: Any) -> dict[str, Any]:
    """What mmengine's Runner.save_checkpoint passes to torch.save."""
    message_hub, optimizer, schedulers = _mmengine_runtime()
    meta = {
        "epoch": 12,
        "iter": 3,
        "cfg": CONFIG_TEXT,
        "seed": 42,
        "experiment_name": "faster_rcnn_r50_dlu",
        "time": "20261130_104443",
        "mmengine_version": "0.10.7",
        "dataset_meta": {
            "classes": CLASSES,
            "palette": [(220, 20, 60), (119, 11, 32), (0, 0, 142)],
        },
    }
    return {
        "meta": meta,
        "state_dict": OrderedDict(state_dict),
        "message_hub": message_hub,
        "optimizer": optimizer,
        "param_schedulers": schedulers,
        **extra,
    }


def _save_mmengine(checkpoint: dict[str, Any], path: Path, protocol: int = 2) -> Path:
    with _importable(_HISTORY_MODULE, HistoryBuffer=HistoryBuffer):
        torch.save(checkpoint, path, pickle_protocol=protocol)
    return path


def _dlu_state() -> dict[str, torch.Tensor]:
    return dict(randomize(reference.DLUPack(16, 2, compressed_channels=8), seed=21).state_dict())


def test_mmengine_checkpoint_loads_without_mmengine_or_trust(tmp_path: Path) -> None:
    state = _dlu_state()
    path = _save_mmengine(_mmengine_checkpoint(state), tmp_path / "epoch_12.pth")
    assert unsafe_globals(path) == _MMENGINE_GLOBALS  # the globals of mmengine's own file
    assert "mmengine" not in sys.modules
    checkpoint = read_checkpoint(path)
    assert checkpoint.state_dict.keys() == state.keys()
    assert all(torch.equal(checkpoint.state_dict[k], v) for k, v in state.items())
    assert checkpoint.config_text == CONFIG_TEXT
    assert checkpoint.meta["dataset_meta"]["classes"] == CLASSES
    assert checkpoint.meta["seed"] == 42 and checkpoint.meta["mmengine_version"] == "0.10.7"
    assert any(
        "mmengine.logging.history_buffer.HistoryBuffer as inert data" in n for n in checkpoint.notes
    )
    assert load_model(path).arch == "dlu"
    assert ran_code == []
    # The inert classes were allowed for that load only.
    registered = torch.serialization.get_safe_globals()
    assert not any(is_inert(g[0] if isinstance(g, tuple) else g) for g in registered)


def test_mmengine_classes_are_not_used_even_when_importable(tmp_path: Path) -> None:
    """With mmengine installed the file's classes stay inert: their code never runs."""
    path = _save_mmengine(_mmengine_checkpoint(_dlu_state()), tmp_path / "epoch_12.pth")
    with _importable(_HISTORY_MODULE, HistoryBuffer=HistoryBuffer):
        checkpoint = read_checkpoint(path)
        assert checkpoint.config_text == CONFIG_TEXT
        assert ran_code == []
        trusted = torch.load(path, weights_only=False)  # the reference: a full unpickle
    assert ran_code == ["HistoryBuffer.__setstate__"] * 3
    assert checkpoint.meta == trusted["meta"]


def test_mmengine_detector_checkpoint_exports_without_trust(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _save_mmengine(_mmengine_checkpoint(_dlu_state()), tmp_path / "epoch_12.pth")
    assert export_main([str(path), str(tmp_path / "dlu.onnx"), "--mode", "portable"]) == 0
    out = capsys.readouterr().out
    assert "architecture dlu" in out and (tmp_path / "dlu.onnx").is_file()
    assert ran_code == []


MMCV_META = {
    "mmcv_version": "1.7.1",
    "time": "Mon Nov 30 10:44:43 2026",
    "env_info": "sys.platform: linux\nPython: 3.8.10\nPyTorch: 1.12.1",
    "config": CONFIG_TEXT,
    "seed": 0,
    "exp_name": "faster_rcnn_r50_fpn_dlu_1x_coco.py",
    "mmdet_version": "2.28.2",
    "CLASSES": CLASSES,
    "epoch": 12,
    "iter": 7330,
    "hook_msgs": {"last_ckpt": "work_dirs/epoch_12.pth"},
}


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy-format"])
def test_mmcv_runner_checkpoint(tmp_path: Path, zip_format: bool) -> None:
    """mmdetection 2.x (mmcv's save_checkpoint): meta with config text and CLASSES, optimizer."""
    state = _dlu_state()
    _, optimizer, _ = _mmengine_runtime()
    path = tmp_path / "epoch_12.pth"
    checkpoint = {"meta": MMCV_META, "state_dict": OrderedDict(state), "optimizer": optimizer}
    torch.save(checkpoint, path, _use_new_zipfile_serialization=zip_format)
    loaded = read_checkpoint(path)
    assert loaded.meta == MMCV_META and loaded.meta["CLASSES"] == CLASSES
    assert loaded.config_text == CONFIG_TEXT
    assert all(torch.equal(loaded.state_dict[k], v) for k, v in state.items())
    assert not any("inert" in note for note in loaded.notes)  # plain weights_only data


def test_meta_numpy_values_become_python_data(tmp_path: Path) -> None:
    cycle: list[Any] = ["x"]
    cycle.append(cycle)
    meta = {
        "best_score": np.float64(0.386),
        "palette": np.array([[220, 20, 60], [0, 0, 142]]),
        "cycle": cycle,
    }
    path = save({"state_dict": _dlu_state(), "meta": meta}, tmp_path / "m.pth")
    loaded = read_checkpoint(path).meta
    assert loaded == {"best_score": 0.386, "palette": [[220, 20, 60], [0, 0, 142]], "cycle": ["x"]}
    assert type(loaded["best_score"]) is float


class _Call:
    """Pickles as `func(*args)`: what a malicious `__reduce__` writes into a file."""

    def __init__(self, func: object, *args: object) -> None:
        self.func, self.args = func, args

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return self.func, self.args

    def __call__(self, *args: object) -> None:  # pickle wants a callable in a reduce
        raise AssertionError("never called")


def _payload(marker: Path) -> str:
    """Python text that, evaluated, sets the flag and writes the marker."""
    module = "__import__('tests.test_checkpoint_safety').test_checkpoint_safety"
    return f"{module}.record_run('code', {str(marker)!r})"


GADGETS: dict[str, Callable[[Path], object]] = {
    "os.system": lambda m: _Call(os.system, f"touch {m}"),
    "eval": lambda m: _Call(eval, _payload(m)),
    "exec": lambda m: _Call(exec, _payload(m)),
    "subprocess": lambda m: _Call(subprocess.call, ["touch", str(m)]),
    "getattr-import": lambda m: _Call(
        _Call(getattr, _Call(__import__, "os"), "system"), f"touch {m}"
    ),
    "getattr-on-real-class": lambda m: _Call(
        _Call(getattr, np.ndarray, "tofile"), np.zeros(1), str(m)
    ),
    "getattr-private-name": lambda m: _Call(getattr, HistoryBuffer, "__setstate__"),
    "getattr-system-name": lambda m: _Call(_Call(getattr, HistoryBuffer, "system"), f"touch {m}"),
    "nested-pickle": lambda m: _Call(pickle.loads, pickle.dumps(_Call(os.system, f"touch {m}"))),
    "torch.load": lambda m: _Call(torch.load, str(m)),
    "numpy-runstring": lambda m: _Call(np.testing._private.utils.runstring, _payload(m), {}),
    "methodcaller": lambda m: _Call(operator.methodcaller("tofile", str(m)), np.zeros(1)),
    "partial": lambda m: _Call(functools.partial(os.system, f"touch {m}")),
}
PLACES: dict[str, Callable[[dict[str, Any], object], None]] = {
    "meta": lambda c, g: c["meta"].update(cfg=g),
    "message_hub": lambda c, g: c["message_hub"]["runtime_info"].update(eta=g),
    "optimizer": lambda c, g: c["optimizer"]["param_groups"][0].update(lr=g),
    "state_dict": lambda c, g: c["state_dict"].update(extra=g),
}


def _malicious(tmp_path: Path, gadget: str, place: str, protocol: int = 2) -> tuple[Path, Path]:
    marker = tmp_path / "marker"
    checkpoint = _mmengine_checkpoint(_dlu_state())
    PLACES[place](checkpoint, GADGETS[gadget](marker))
    path = _save_mmengine(checkpoint, tmp_path / "epoch_12.pth", protocol)
    assert not marker.exists()
    return path, marker


def _attempt(load: Callable[[], object]) -> CheckpointError | None:
    """Run a load with mmengine's classes importable (as where it is installed): without the
    protection the file then loads fully, so its payload would run."""
    with _importable(_HISTORY_MODULE, HistoryBuffer=HistoryBuffer):
        try:
            load()
        except CheckpointError as exc:
            return exc
    return None


@pytest.mark.parametrize("gadget", list(GADGETS))
def test_code_running_pickle_is_refused(tmp_path: Path, gadget: str) -> None:
    path, marker = _malicious(tmp_path, gadget, "meta")
    error = _attempt(lambda: read_checkpoint(path))
    assert not marker.exists() and ran_code == []  # nothing ran
    assert isinstance(error, CodeInCheckpointError)
    problem = " ".join(error.problem.split())
    assert "was refused" in problem and str(path) in problem
    assert "Nothing in it was executed" in problem and "--trust-pickle" in error.fix


@pytest.mark.parametrize("place", list(PLACES))
def test_gadget_is_found_anywhere_in_the_file(tmp_path: Path, place: str) -> None:
    path, marker = _malicious(tmp_path, "getattr-import", place)
    error = _attempt(lambda: load_model(path))
    assert not marker.exists() and ran_code == []
    assert isinstance(error, CodeInCheckpointError) and "builtins.__import__" in error.problem


@pytest.mark.parametrize("protocol", [2, 4])
@pytest.mark.parametrize("gadget", ["os.system", "eval", "getattr-import", "nested-pickle"])
def test_trust_pickle_still_refuses_attacks(tmp_path: Path, gadget: str, protocol: int) -> None:
    """Refused by the scan (protocol 2, torch's default) or where the unpickler meets the global
    (protocol 4, which the scan cannot read), before the file's own classes run."""
    path, marker = _malicious(tmp_path, gadget, "message_hub", protocol)
    error = _attempt(lambda: read_checkpoint(path, trust_pickle=True))
    assert not marker.exists() and "code" not in ran_code
    # With protocol 4 the trusted classes before the gadget (message_hub's buffers) did run.
    expected = [] if protocol == 2 else ["HistoryBuffer.__setstate__"] * 3
    assert ran_code == expected
    assert isinstance(error, CodeInCheckpointError)
    assert "not even with --trust-pickle" in error.fix


@pytest.mark.filterwarnings("ignore:Detected pickle protocol 4")
def test_protocol_4_gadget_is_not_loaded_safely(tmp_path: Path) -> None:
    """torch's weights-only unpickler reads protocol 2 only: a newer stream is refused unread."""
    path, marker = _malicious(tmp_path, "eval", "meta", protocol=4)
    error = _attempt(lambda: read_checkpoint(path))
    assert not marker.exists() and ran_code == []
    assert error is not None and "cannot be read" in error.problem


def test_refusal_names_the_global(tmp_path: Path) -> None:
    path, _ = _malicious(tmp_path, "os.system", "optimizer")
    with pytest.raises(CodeInCheckpointError) as info:
        read_checkpoint(path)
    assert "posix.system" in info.value.problem and "Do not load this file" in info.value.fix
    path, _ = _malicious(tmp_path, "getattr-on-real-class", "message_hub")
    with pytest.raises(CodeInCheckpointError, match=r"getattr on the class numpy\.ndarray"):
        read_checkpoint(path)


def test_unknown_function_of_the_file_is_never_called(tmp_path: Path) -> None:
    """A code-running function no list knows (here importable at load time) stays inert."""
    marker = tmp_path / "marker"
    checkpoint = _mmengine_checkpoint(_dlu_state())
    record = _Call(record_run, "thirdparty.hooks.run", str(marker))
    checkpoint["meta"]["hook"] = checkpoint["message_hub"]["runtime_info"]["hook"] = record
    path = _save_mmengine(checkpoint, tmp_path / "epoch_12.pth")
    loaded = read_checkpoint(path)
    assert "hook" not in loaded.meta and loaded.config_text == CONFIG_TEXT
    assert any("tests.test_checkpoint_safety.record_run" in n for n in loaded.notes)
    assert not marker.exists() and ran_code == []


class _Flagged(nn.Conv2d):
    """A model class whose unpickling code leaves a trace."""

    def __setstate__(self, state: dict[str, Any]) -> None:
        record_run("_Flagged.__setstate__")
        super().__setstate__(state)


def test_pickled_model_needs_trust_and_none_of_its_code_runs_without(tmp_path: Path) -> None:
    checkpoint = _mmengine_checkpoint({}, model=_Flagged(3, 4, 1))
    del checkpoint["state_dict"]
    path = _save_mmengine(checkpoint, tmp_path / "whole.pth")
    with pytest.raises(UnsafeCheckpointError, match="--trust-pickle") as info:
        read_checkpoint(path)
    assert not isinstance(info.value, CodeInCheckpointError)
    assert "whole pickled tests.test_checkpoint_safety._Flagged" in info.value.problem
    assert ran_code == []
    with _importable(_HISTORY_MODULE, HistoryBuffer=HistoryBuffer):
        assert read_checkpoint(path, trust_pickle=True).module is not None
    assert "_Flagged.__setstate__" in ran_code


def test_mapping_subclass_that_cannot_be_inert(tmp_path: Path) -> None:
    config_dict = type("ConfigDict", (dict,), {"__module__": "thirdparty.config"})
    with _importable("thirdparty.config", ConfigDict=config_dict):
        path = save(
            {"state_dict": _dlu_state(), "meta": {"cfg": config_dict(a=1)}}, tmp_path / "m.pth"
        )
    with pytest.raises(UnsafeCheckpointError, match="cannot read as inert data") as info:
        read_checkpoint(path)
    assert "thirdparty.config.ConfigDict" in info.value.problem
    assert "--trust-pickle" in info.value.fix


def test_cli_refuses_a_malicious_checkpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, marker = _malicious(tmp_path, "os.system", "message_hub")
    assert export_main([str(path), str(tmp_path / "out.onnx")]) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert err.startswith("error:") and "posix.system" in err and "Traceback" not in err
    assert not marker.exists() and not (tmp_path / "out.onnx").exists()

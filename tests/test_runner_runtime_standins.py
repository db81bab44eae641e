"""The Engine's own logic under real use, on stand-ins of pycuda and TensorRT that keep their
rules (tests/edge_standins.py: per-thread context stacks, out-of-thread frees, TensorRT's
binding, shape and output-allocator rules) and compute real outputs: threads, several engines
and devices, out-of-memory then retry, inconsistent shapes, data-dependent outputs, close.

Every test also asserts that no rule was broken (`state.problems`: aborts, freed or foreign
memory used, wrong context) and nothing leaked (memory back to zero, no skipped frees).
"""

from __future__ import annotations

import ctypes.util
import gc
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from dlu_deploy.errors import UserError
from dlu_deploy.runtime import cuda, trt_api
from dlu_deploy.runtime.engine import Engine
from tests import edge_standins as standins

MEMORY = 1 << 20  # bytes per stand-in GPU


@pytest.fixture
def gpus(monkeypatch: pytest.MonkeyPatch) -> Iterator[standins.CudaState]:
    """Two stand-in GPUs of 1 MiB, TensorRT 10.3, and fresh process-wide runtime state."""
    state = standins.CudaState([MEMORY, MEMORY])
    _install(monkeypatch, state, "10.3.0.30")
    yield state


def _install(monkeypatch: pytest.MonkeyPatch, state: standins.CudaState, version: str) -> None:
    package, driver = standins.make_pycuda(state)
    monkeypatch.setitem(sys.modules, "pycuda", package)
    monkeypatch.setitem(sys.modules, "pycuda.driver", driver)
    monkeypatch.setitem(sys.modules, "tensorrt", standins.make_tensorrt(state, version))
    monkeypatch.setattr(cuda, "_devices", {})
    monkeypatch.setattr(trt_api, "_logger", None)
    monkeypatch.setattr(trt_api, "_loaded_libraries", {})
    monkeypatch.setattr(trt_api, "_load_library_errors", {})
    # (the code before issue 16 kept pushed contexts in `_contexts`: checked against it too)
    monkeypatch.setattr(cuda, "_contexts", {}, raising=False)


def _engine_file(tmp_path: Path, network: str, **kwargs: object) -> Path:
    path = tmp_path / f"{network}.engine"
    path.write_bytes(standins.engine_bytes(network, **kwargs))  # type: ignore[arg-type]
    return path


def _pair(rows: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "a": rng.standard_normal((rows, 4), dtype=np.float32),
        "b": rng.standard_normal((rows, 4), dtype=np.float32),
    }


def _check_add(outputs: dict[str, np.ndarray], feed: dict[str, np.ndarray]) -> None:
    expected = feed["a"].astype(np.float64) + 2 * feed["b"].astype(np.float64)
    np.testing.assert_allclose(outputs["y"], expected, rtol=1e-6, atol=1e-6)


def _clean(state: standins.CudaState) -> None:
    gc.collect()
    assert state.problems == []
    assert state.leaks == []
    assert state.used == [0, 0], "device memory left allocated"


def _run_threads(target, count: int) -> None:  # type: ignore[no-untyped-def]
    failures: list[BaseException] = []

    def guarded(index: int) -> None:
        try:
            target(index)
        except BaseException as exc:  # reported in the main thread
            failures.append(exc)

    threads = [threading.Thread(target=guarded, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    gc.collect()  # thread-local context stacks are checked when their threads are gone
    if failures:
        raise failures[0]


# ------------------------------------------------------------------ threads and devices


def test_one_engine_per_thread(gpus: standins.CudaState, tmp_path: Path) -> None:
    path = _engine_file(tmp_path, "add")

    def work(index: int) -> None:
        with Engine(path, plugins=[]) as engine:
            for rows in (2, 5, 3):
                feed = _pair(rows, seed=index * 10 + rows)
                _check_add(engine(feed), feed)

    _run_threads(work, 4)
    _clean(gpus)


@pytest.mark.parametrize("user_lock", [True, False], ids=["behind-a-lock", "engine-lock-only"])
def test_one_engine_shared_by_threads(
    gpus: standins.CudaState, tmp_path: Path, user_lock: bool
) -> None:
    engine = Engine(_engine_file(tmp_path, "add"), plugins=[])
    lock = threading.Lock() if user_lock else None

    def work(index: int) -> None:
        for call in range(5):
            feed = _pair(1 + (index + call) % 3, seed=100 * index + call)
            if lock is not None:
                with lock:
                    outputs = engine(feed)
            else:
                outputs = engine(feed)
            _check_add(outputs, feed)

    _run_threads(work, 4)
    engine.close()
    _clean(gpus)


def test_engine_made_in_a_worker_thread_outlives_it(
    gpus: standins.CudaState, tmp_path: Path
) -> None:
    made: list[Engine] = []
    feed = _pair(3, seed=1)

    def make(_: int) -> None:
        made.append(Engine(_engine_file(tmp_path, "add"), plugins=[]))
        _check_add(made[0](feed), feed)

    _run_threads(make, 1)  # the thread exits: nothing may stay on its context stack
    assert gpus.problems == []
    _check_add(made[0](feed), feed)  # used and freed from the main thread
    made[0].close()
    _clean(gpus)


def test_many_engines_on_one_device(gpus: standins.CudaState, tmp_path: Path) -> None:
    path = _engine_file(tmp_path, "add")
    engines = [Engine(path, plugins=[]) for _ in range(8)]
    feeds = [_pair(1 + i % 4, seed=i) for i in range(len(engines))]
    pending = [e.submit(f) for e, f in zip(engines, feeds, strict=True)]  # all in flight
    for job, feed in zip(pending, feeds, strict=True):
        _check_add(job.result(), feed)
    assert gpus.used[0] >= 8 * 4096  # activation memory of each
    for engine in engines:
        engine.close()
    _clean(gpus)


def test_engines_on_two_devices_use_their_own(gpus: standins.CudaState, tmp_path: Path) -> None:
    path = _engine_file(tmp_path, "add")
    first = Engine(path, plugins=[], device=0)
    second = Engine(path, plugins=[], device=1)
    for call in range(3):
        for engine in (first, second, first):
            feed = _pair(2 + call, seed=call)
            _check_add(engine(feed), feed)
    assert gpus.used[0] > 0 and gpus.used[1] > 0
    first.close()
    second.close()
    _clean(gpus)


# ------------------------------------------------------------------ failures and retries


def test_out_of_memory_at_a_bigger_shape_then_retry(
    gpus: standins.CudaState, tmp_path: Path
) -> None:
    engine = Engine(_engine_file(tmp_path, "add"), plugins=[])
    small = _pair(2, seed=0)
    _check_add(engine(small), small)
    big = _pair(4096, seed=1)  # 3 tensors x 64 KiB device + pinned, fine; see below
    gpus.capacities[0] = gpus.used[0] + 100_000  # room for some of the big buffers only
    with pytest.raises(Exception) as error:  # the message is checked after the retry
        engine(big)
    _check_add(engine(small), small)  # the old shape again: everything rebound
    assert isinstance(error.value, UserError)
    assert "Out of GPU memory for 'b' (65536 bytes) at input shapes a 4096x4" in str(error.value)
    del error
    medium = _pair(600, seed=2)
    _check_add(engine(medium), medium)
    _check_add(engine(small), small)
    gpus.capacities[0] = MEMORY
    _check_add(engine(big), big)
    engine.close()
    _clean(gpus)


def test_inconsistent_inputs_are_named_then_retry(gpus: standins.CudaState, tmp_path: Path) -> None:
    engine = Engine(_engine_file(tmp_path, "add"), plugins=[])
    good = _pair(2, seed=0)
    _check_add(engine(good), good)
    bad = {"a": _pair(3, seed=1)["a"], "b": good["b"]}  # each inside the profile
    with pytest.raises(Exception) as error:  # the message is checked after the retry
        engine(bad)
    _check_add(engine(good), good)  # the context's shape of 'a' must be set back
    assert isinstance(error.value, UserError)
    assert "do not fit together" in error.value.problem
    assert "broadcast dimensions must be conformable" in error.value.problem
    del error  # its traceback holds the stand-in context's frame (a real one holds no Python frame)
    engine.close()
    _clean(gpus)


def test_execute_needs_bound_inputs(gpus: standins.CudaState, tmp_path: Path) -> None:
    engine = Engine(_engine_file(tmp_path, "add"), plugins=[])
    with pytest.raises(UserError, match="no inputs are bound"):
        engine.execute()
    feed = _pair(2, seed=0)
    engine(feed)
    engine.execute()  # the benchmark path: same buffers, no copies
    engine.close()
    _clean(gpus)


# ------------------------------------------------------------------ data-dependent outputs


@pytest.mark.parametrize("version", ["10.3.0.30", "10.16.0.1", "11.1.0.106"])
def test_data_dependent_output(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, version: str
) -> None:
    state = standins.CudaState([MEMORY, MEMORY])
    _install(monkeypatch, state, version)
    engine = Engine(_engine_file(tmp_path, "nonzero"), plugins=[], cuda_graph=True)
    rng = np.random.default_rng(0)
    for rows, positive in [(2, 0.5), (8, 0.9), (3, 0.1), (5, 0.0), (8, 1.0)]:
        x = np.where(rng.random((rows, 4)) < positive, 1.0, -1.0).astype(np.float32)
        x *= rng.random((rows, 4), dtype=np.float32) + 0.5
        pending = engine.submit({"x": x})
        outputs = pending.result()
        expected = np.stack(np.nonzero(x > 0))  # ONNX NonZero: (rank, count) int64
        assert outputs["idx"].dtype == np.int64 and outputs["idx"].shape == expected.shape
        np.testing.assert_array_equal(outputs["idx"], expected)
        np.testing.assert_allclose(outputs["y"], 3.0 * x.astype(np.float64), rtol=1e-6)
    assert engine.device_memory_bytes > 4096
    engine.close()
    _clean(state)


def test_data_dependent_output_out_of_memory(gpus: standins.CudaState, tmp_path: Path) -> None:
    engine = Engine(_engine_file(tmp_path, "nonzero"), plugins=[])
    few = np.full((2, 4), -1.0, np.float32)
    few[0, 1] = 1.0
    assert engine({"x": few})["idx"].tolist() == [[0], [1]]
    many = np.ones((64, 4), np.float32)  # 256 indices: 4 KiB of int64
    gpus.capacities[0] = gpus.used[0] + 2048
    with pytest.raises(UserError, match="out of GPU memory for the data-dependent output 'idx'"):
        engine({"x": many})
    gpus.capacities[0] = MEMORY
    result = engine({"x": many})["idx"]
    np.testing.assert_array_equal(result, np.stack(np.nonzero(many > 0)))
    engine.close()
    _clean(gpus)


def test_host_located_tensor_is_refused(gpus: standins.CudaState, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="tensor 'y' lives in host memory"):
        Engine(_engine_file(tmp_path, "host_output"), plugins=[])
    _clean(gpus)


# ------------------------------------------------------------------ close


def test_close_then_call(gpus: standins.CudaState, tmp_path: Path) -> None:
    engine = Engine(_engine_file(tmp_path, "add"), plugins=[])
    feed = _pair(2, seed=0)
    _check_add(engine(feed), feed)
    pending = engine.submit(feed)
    engine.close()  # waits for the inference in flight; its outputs stay readable
    _check_add(pending.result(), feed)
    _clean(gpus)
    for call in (lambda: engine(feed), lambda: engine.submit(feed), engine.execute):
        with pytest.raises(UserError, match="is closed"):
            call()
    engine.close()  # twice is fine
    assert gpus.problems == []


def test_engine_dropped_without_close_in_another_thread(
    gpus: standins.CudaState, tmp_path: Path
) -> None:
    made: list[Engine] = []
    feed = _pair(2, seed=0)
    made.append(Engine(_engine_file(tmp_path, "add"), plugins=[]))
    _check_add(made[0](feed), feed)

    def drop(_: int) -> None:
        made.clear()  # the last reference dies in this thread
        gc.collect()

    _run_threads(drop, 1)
    _clean(gpus)


# ------------------------------------------------------------------ diagnostics


def test_load_library_refusal_is_kept(gpus: standins.CudaState, tmp_path: Path) -> None:
    library = ctypes.util.find_library("m")  # any loadable library: the ctypes fallback works
    found = Path(f"/lib/x86_64-linux-gnu/{library}")
    if library is None or not found.is_file():
        pytest.skip("no libm to stand in for a plugin library")
    trt = sys.modules["tensorrt"]
    trt.refusals[str(found.resolve())] = (  # type: ignore[attr-defined]
        "Plugin library was built against TensorRT 11.1 but this is TensorRT 10.3"
    )
    engine_path = _engine_file(tmp_path, "add", plugins=("DLU",))
    with pytest.raises(UserError) as error:
        Engine(engine_path, plugins=[found])
    assert "could not find plugin DLU version 1" in error.value.problem
    assert "built against TensorRT 11.1 but this is TensorRT 10.3" in error.value.problem
    assert "plugins that are not registered" in error.value.fix
    _clean(gpus)


def test_logger_keeps_few_errors_and_separates_threads(gpus: standins.CudaState) -> None:
    trt = sys.modules["tensorrt"]
    logger = trt_api.get_logger(trt)
    for index in range(10_000):
        logger.log(standins.Severity.ERROR, f"error {index}")
    assert len(logger.recent_errors) == trt_api.MAX_RECENT_ERRORS
    assert logger.recent_errors[-1] == "error 9999"

    started, seen = threading.Barrier(2), {}

    def record(index: int) -> None:
        with trt_api.recorded_errors(trt) as errors:
            started.wait()
            for call in range(50):
                logger.log(standins.Severity.ERROR, f"thread {index} call {call}")
            logger.log(standins.Severity.WARNING, "not an error")
            started.wait()
        seen[index] = errors

    _run_threads(record, 2)
    for index in range(2):
        assert seen[index] == [f"thread {index} call {c}" for c in range(50)]
    with trt_api.recorded_errors(trt) as errors:  # a thread without a block of its own
        builder_thread = threading.Thread(
            target=logger.log, args=(standins.Severity.ERROR, "from a builder thread")
        )
        builder_thread.start()
        builder_thread.join()
    assert errors == ["from a builder thread"]


@pytest.mark.parametrize(
    ("version", "sees_v3"),
    [("1.18.1", False), ("1.21.1", False), ("1.22.0", True), ("1.32.0", True), ("2.0.0", True)],
)
def test_trt_ep_before_v3_plugin_support_is_named(version: str, sees_v3: bool) -> None:
    from dlu_deploy.validate.backends import check_trt_ep_sees_v3_plugins

    if sees_v3:
        check_trt_ep_sees_v3_plugins(version)
        return
    with pytest.raises(UserError) as error:
        check_trt_ep_sees_v3_plugins(version)
    assert f"onnxruntime {version}'s TensorRT execution provider lists only IPluginV2" in str(
        error.value
    )
    assert "PR #24211" in error.value.problem and "onnxruntime-gpu >= 1.22" in error.value.fix


def test_torch_tensors_are_bound_256_byte_aligned() -> None:
    """setTensorAddress needs 256-byte aligned addresses; a view such as x[1:] is not."""
    torch = pytest.importorskip("torch")
    from dlu_deploy.runtime.engine import TENSOR_ALIGNMENT, bindable_tensor, empty_bindable

    storage = torch.arange(64, dtype=torch.float32)
    view = storage[1:37].view(4, 9)  # starts 4 bytes into its storage
    assert view.data_ptr() % TENSOR_ALIGNMENT != 0
    bound = bindable_tensor(torch, view)
    assert bound.data_ptr() % TENSOR_ALIGNMENT == 0
    assert bound.shape == view.shape and torch.equal(bound, view)
    assert bindable_tensor(torch, bound).data_ptr() == bound.data_ptr()  # no copy when aligned
    transposed = bindable_tensor(torch, view.t())  # not contiguous: copied in order
    assert transposed.is_contiguous() and torch.equal(transposed, view.t())
    assert transposed.data_ptr() % TENSOR_ALIGNMENT == 0
    for _ in range(8):  # whatever offset the allocator hands out
        out = empty_bindable(torch, (3, 5), np.dtype(np.float16), torch.device("cpu"))
        assert out.data_ptr() % TENSOR_ALIGNMENT == 0
        assert out.shape == (3, 5) and out.dtype == torch.float16 and out.is_contiguous()

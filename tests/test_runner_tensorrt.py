"""The TensorRT paths: build, Engine (dynamic shapes, async, CUDA graphs, torch zero-copy),
sidecar refusal, validate and bench. Need TensorRT, pycuda and a GPU; skipped elsewhere."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dlu_deploy.errors import UserError
from tests import formulas, runner_models


def _unavailable() -> str | None:
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return "TensorRT is not installed"
    try:
        import pycuda.driver as driver

        driver.init()
        if driver.Device.count() == 0:
            return "no CUDA device"
    except Exception as exc:  # ImportError without pycuda/libcuda, driver errors without a GPU
        return f"pycuda/CUDA unavailable ({type(exc).__name__}: {exc})"
    return None


pytestmark = [
    pytest.mark.tensorrt,
    pytest.mark.skipif(
        _unavailable() is not None, reason=f"needs TensorRT and a GPU: {_unavailable()}"
    ),
]

MIN, OPT, MAX = (1, 3, 8, 8), (1, 3, 16, 20), (2, 3, 32, 32)


def test_plugin_node_without_plugin_library(tmp_path) -> None:
    import tensorrt as trt

    from dlu_deploy.engine_build import build_engine
    from dlu_deploy.runtime import trt_api

    if trt_api.has_plugin_creator(trt, "DLU", "1"):
        pytest.skip("a DLU plugin is already registered in this process")
    graph = runner_models.dlu_plugin_graph(tmp_path / "dlu.onnx")
    shapes = {"x": (1, 8, 4, 4), "kernels": (1, 9, 4, 4), "offsets": (1, 8, 4, 4)}
    with pytest.raises(UserError, match="plugin DLU version 1 not found"):
        build_engine(graph, plugins=[], opt_shapes=shapes, progress=False)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory):
    from dlu_deploy.engine_build import build_engine

    folder = tmp_path_factory.mktemp("trt")
    reference = runner_models.make_reference()
    onnx_path = runner_models.export_portable(reference.model, folder / "net.onnx")
    result = build_engine(
        onnx_path,
        folder / "net.engine",
        min_shapes={"image": MIN},
        opt_shapes={"image": OPT},
        max_shapes={"image": MAX},
        timing_cache=folder / "timing.cache",
        progress=False,
    )
    return reference, onnx_path, result


def _image(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape, dtype=np.float32)


def test_build_writes_engine_sidecar_and_timing_cache(built) -> None:
    import tensorrt as trt

    result = built[2]
    record = json.loads(result.sidecar_path.read_text())
    assert result.engine_path.stat().st_size == record["engine"]["bytes"] > 0
    assert record["tensorrt"]["version"] == trt.__version__ and record["precision"] == "fp32"
    assert record["profiles"] == [{"image": {"min": list(MIN), "opt": list(OPT), "max": list(MAX)}}]
    assert record["gpu"]["compute_capability"] and record["plugins"] == []
    assert (result.engine_path.parent / "timing.cache").stat().st_size > 0


def test_engine_matches_onnxruntime_across_the_profile(built) -> None:
    from dlu_deploy.runtime import Engine

    _, onnx_path, result = built
    with Engine(result.engine_path) as engine:
        assert [s.name for s in engine.inputs] == ["image"]
        assert engine.inputs[0].profile == (MIN, OPT, MAX)
        for shape in (MIN, OPT, MAX, (2, 3, 12, 28)):
            image = _image(shape)
            got = engine({"image": image})
            want = runner_models.ort_outputs(onnx_path, image)
            for name in ("seg", "feat"):
                assert got[name].shape == want[name].shape
                assert np.abs(got[name] - want[name]).max() <= 1e-4
        assert engine.device_memory_bytes > 0


def test_async_submit_and_cuda_graph_replay(built) -> None:
    from dlu_deploy.runtime import Engine

    _, _, result = built
    image = _image(OPT, seed=2)
    with (
        Engine(result.engine_path) as plain,
        Engine(result.engine_path, cuda_graph=True) as graphed,
    ):
        want = plain.submit([image]).result()
        for _ in range(3):  # run, capture + replay, replay
            got = graphed([image])
            for name in want:
                np.testing.assert_array_equal(got[name], want[name])
        other = _image(MAX, seed=3)  # new shape: recaptured, still right
        np.testing.assert_array_equal(graphed([other])["seg"], plain([other])["seg"])


def test_shapes_outside_the_profile_and_wrong_inputs(built) -> None:
    from dlu_deploy.runtime import Engine

    _, _, result = built
    with Engine(result.engine_path) as engine:
        with pytest.raises(UserError, match="outside the engine's optimization profile"):
            engine({"image": _image((1, 3, 64, 64))})
        with pytest.raises(UserError, match="Unknown input name"):
            engine({"x": _image(OPT)})
        with pytest.raises(UserError, match="is float64"):
            engine({"image": _image(OPT).astype(np.float64)})


def test_torch_cuda_tensors_zero_copy(built) -> None:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("this torch has no CUDA")
    from dlu_deploy.runtime import Engine

    _, _, result = built
    image = _image(OPT, seed=5)
    with Engine(result.engine_path) as engine:
        want = engine({"image": image})
        got = engine({"image": torch.from_numpy(image).cuda()})
        torch.cuda.current_stream().synchronize()
        for name in want:
            assert got[name].is_cuda
            np.testing.assert_array_equal(got[name].cpu().numpy(), want[name])


def test_sidecar_mismatch_refuses_and_can_be_skipped(built, tmp_path) -> None:
    from dlu_deploy.runtime import Engine
    from dlu_deploy.runtime import sidecar as sc

    _, _, result = built
    engine_path = tmp_path / "copy.engine"
    engine_path.write_bytes(result.engine_path.read_bytes())
    record = json.loads(result.sidecar_path.read_text())
    record["tensorrt"]["version"] = "9.9.9"
    sc.write_sidecar(engine_path, record)
    with pytest.raises(UserError, match="built for another TensorRT/GPU"):
        Engine(engine_path)
    with Engine(engine_path, check_compatibility=False) as engine:
        assert engine({"image": _image(OPT)})["seg"].shape == (1, 2, 32, 40)


def test_corrupt_engine_without_sidecar(tmp_path) -> None:
    from dlu_deploy.runtime import Engine

    (tmp_path / "junk.engine").write_bytes(b"\x00" * 4096)
    with pytest.raises(UserError, match="TensorRT could not deserialize"):
        Engine(tmp_path / "junk.engine")


def test_validate_and_bench_the_engine(built, tmp_path) -> None:
    from dlu_deploy.bench import bench
    from dlu_deploy.validate import open_candidate, validate

    reference, _, result = built
    report = validate(reference, open_candidate(result.engine_path))
    assert report.passed and [r.shapes["image"] for r in report.runs] == [MIN, OPT, MAX]
    timings = bench(
        result.engine_path, reference=reference, warmup=3, iterations=20, compile_torch=False
    )
    engine_timing = timings.timings[0]
    assert engine_timing.clock == "cuda-events" and engine_timing.memory_bytes > 0
    assert 0 < engine_timing.p50_ms <= engine_timing.p99_ms


def test_fp16_flag_follows_the_tensorrt_version(built, tmp_path) -> None:
    import tensorrt as trt

    from dlu_deploy.engine_build import build_engine

    _, onnx_path, _ = built
    if not hasattr(trt.BuilderFlag, "FP16"):  # TensorRT 11: strongly typed only
        with pytest.raises(UserError, match="no fp16 builder flag"):
            build_engine(onnx_path, tmp_path / "h.engine", opt_shapes={"image": OPT}, fp16=True)
        return
    result = build_engine(
        onnx_path, tmp_path / "h.engine", opt_shapes={"image": OPT}, fp16=True, progress=False
    )
    assert result.sidecar["precision"] == "fp16" and result.sidecar["tensorrt"]["fp16_flag"]


def test_dlu_plugin_engine_matches_the_spec(tmp_path) -> None:
    """The project's plugin library in a real engine: one DLU node against docs/ops.md."""
    from dlu_deploy.engine_build import build_engine
    from dlu_deploy.libraries import TRT_PLUGIN_LIBRARY, find_native_library
    from dlu_deploy.runtime import Engine

    if find_native_library(TRT_PLUGIN_LIBRARY) is None:
        pytest.skip(f"{TRT_PLUGIN_LIBRARY} is not built")
    graph = runner_models.dlu_plugin_graph(tmp_path / "dlu.onnx")
    shapes = {"x": (1, 8, 5, 6), "kernels": (1, 9, 5, 6), "offsets": (1, 8, 5, 6)}
    result = build_engine(graph, opt_shapes=shapes, progress=False)
    assert result.sidecar["plugin_nodes"] == ["DLU v1"] and result.sidecar["plugins"]
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shapes["x"], dtype=np.float32)
    logits = rng.standard_normal(shapes["kernels"], dtype=np.float32)
    kernels = (np.exp(logits) / np.exp(logits).sum(1, keepdims=True)).astype(np.float32)
    offsets = (rng.standard_normal(shapes["offsets"]) * 1.5).astype(np.float32)
    with Engine(result.engine_path) as engine:
        got = engine({"x": x, "kernels": kernels, "offsets": offsets})["y"]
    want = formulas.dlu(x, kernels, offsets, 3, 1, 2)
    assert np.abs(got - want).max() <= 1e-5


def test_engines_across_threads_then_close(built) -> None:
    """On the real pycuda and TensorRT: an Engine per thread, one shared Engine, one made in
    a thread that has exited (pycuda aborts the process if a context stays pushed), close."""
    import threading

    from dlu_deploy.runtime import Engine

    _, _, result = built
    image = _image(OPT, seed=7)
    with Engine(result.engine_path) as engine:
        want = engine({"image": image})
    shared = Engine(result.engine_path)
    made: list[Engine] = []
    failures: list[BaseException] = []

    def work(own: bool) -> None:
        try:
            if own:
                with Engine(result.engine_path) as mine:
                    got = mine({"image": image})
            else:
                got = shared({"image": image})
            for name in want:
                np.testing.assert_array_equal(got[name], want[name])
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=work, args=(i % 2 == 0,)) for i in range(4)]
    threads.append(threading.Thread(target=lambda: made.append(Engine(result.engine_path))))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    for engine in (shared, made[0]):
        got = engine({"image": image})
        for name in want:
            np.testing.assert_array_equal(got[name], want[name])
        engine.close()
        with pytest.raises(UserError, match="is closed"):
            engine({"image": image})

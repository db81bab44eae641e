"""The things validate and bench run: a TensorRT engine, an ONNX file in onnxruntime, and the
PyTorch model built from the checkpoint.

Each backend takes and returns numpy arrays by name, and `prepare(feed)` returns a callable
that runs once on already-staged inputs (what a benchmark loop times). onnx, onnxruntime and
torch are imported by the backends that use them: running an engine needs none of them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from dlu_deploy.errors import UserError
from dlu_deploy.libraries import TRT_PLUGIN_LIBRARY, existing_plugin_paths, find_native_library
from dlu_deploy.runtime.io import TensorSpec, check_feed
from dlu_deploy.shapes import ShapeSet

if TYPE_CHECKING:
    import torch

TRT_EP_PLUGIN_DOMAIN = "trt.plugins"
ORT_PROVIDERS = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
}


class Backend(Protocol):
    label: str  # "tensorrt", "onnxruntime-cpu", "torch-eager", ...
    inputs: list[TensorSpec]
    output_names: list[str]
    precision: str  # "fp32" or "fp16": picks the default tolerances
    on_gpu: bool

    def run(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]: ...

    def prepare(self, feed: Mapping[str, np.ndarray]) -> Callable[[], None]: ...

    def profile_shape_sets(self) -> list[ShapeSet]: ...


class OrtBackend:
    """An ONNX file in onnxruntime: portable graphs directly, plugin-mode graphs through
    `dlu_deploy.ort.make_session` (the project's custom-op library on its kernels)."""

    def __init__(
        self,
        path: str | Path,
        *,
        provider: str = "cpu",
        plugins: Sequence[str | Path] | None = None,
        threads: int | None = None,
        device: int = 0,
    ) -> None:
        import onnxruntime as ort

        from dlu_deploy.onnx_info import inspect_onnx
        from dlu_deploy.ort import make_session

        info = inspect_onnx(path)
        self.label = f"onnxruntime-{provider}"
        self.precision = info.precision
        self.on_gpu = provider != "cpu"
        self.inputs = [
            TensorSpec(t.name, t.dtype, tuple(d if isinstance(d, int) else -1 for d in t.dims))
            for t in info.inputs
        ]
        self.output_names = [t.name for t in info.outputs]
        providers = _ort_providers(ort, provider, plugins, device)
        if provider == "tensorrt" and info.custom_nodes:
            # The TensorRT EP runs the nodes as the project's TensorRT plugins itself.
            check_trt_ep_sees_v3_plugins(ort.__version__)
            options = ort.SessionOptions()
            options.intra_op_num_threads = threads or 0
            model = trt_ep_model(info.path).SerializeToString()
            self.session = ort.InferenceSession(model, options, providers=providers)
        else:  # custom nodes (if any) on the custom-op library: CPU or CUDA EP, as the providers
            self.session = make_session(info.path, providers=providers, intra_op_threads=threads)

    def run(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        arrays = check_feed(feed, self.inputs)
        return dict(
            zip(self.output_names, self.session.run(self.output_names, arrays), strict=True)
        )

    def prepare(self, feed: Mapping[str, np.ndarray]) -> Callable[[], None]:
        arrays = check_feed(feed, self.inputs)
        names, session = self.output_names, self.session
        return lambda: session.run(names, arrays)

    def profile_shape_sets(self) -> list[ShapeSet]:
        return []


def _ort_providers(
    ort: Any, provider: str, plugins: Sequence[str | Path] | None, device: int
) -> list[Any]:
    if provider not in ORT_PROVIDERS:
        raise UserError(f"Unknown onnxruntime provider '{provider}'.", "Use cpu, cuda or tensorrt.")
    name = ORT_PROVIDERS[provider]
    if name not in ort.get_available_providers():
        raise UserError(
            f"This onnxruntime ({ort.__version__}) has no {name} "
            f"(available: {', '.join(ort.get_available_providers())}).",
            "Install onnxruntime-gpu (it replaces the CPU-only onnxruntime) on a machine with "
            "CUDA for --ort-provider cuda or tensorrt.",
        )
    if provider == "cpu":
        return ["CPUExecutionProvider"]
    cuda_options = {"device_id": device}
    chain: list[Any] = [("CUDAExecutionProvider", cuda_options), "CPUExecutionProvider"]
    if provider == "tensorrt":
        libraries = existing_plugin_paths(list(plugins)) if plugins is not None else []
        if plugins is None and (found := find_native_library(TRT_PLUGIN_LIBRARY)) is not None:
            libraries = [found]
        trt_options: dict[str, Any] = {"device_id": device}
        if libraries:
            trt_options["trt_extra_plugin_lib_paths"] = ";".join(map(str, libraries))
        chain.insert(0, ("TensorrtExecutionProvider", trt_options))
    return chain


# onnxruntime's TensorRT EP offers registered plugins in the domain `trt.plugins`. Before
# microsoft/onnxruntime PR #24211 (merged 2025-03-27, after 1.21.0 was released) it listed them
# with getPluginCreatorList, which holds IPluginV2 creators only; the PR switched to
# getAllCreators (V2 and V3). The project's plugins are IPluginV3: older EPs cannot see them.
TRT_EP_V3_PLUGINS_SINCE = (1, 22)


def check_trt_ep_sees_v3_plugins(ort_version: str) -> None:
    """UserError when this onnxruntime's TensorRT EP predates IPluginV3 support."""
    match = re.match(r"(\d+)\.(\d+)", ort_version)
    if match is None or (int(match[1]), int(match[2])) >= TRT_EP_V3_PLUGINS_SINCE:
        return
    since = ".".join(map(str, TRT_EP_V3_PLUGINS_SINCE))
    raise UserError(
        f"onnxruntime {ort_version}'s TensorRT execution provider lists only IPluginV2 plugin "
        "creators, so it cannot see this project's plugins (IPluginV3); the custom nodes would "
        "fail as unknown operators (V3 support: microsoft/onnxruntime PR #24211).",
        f"Install onnxruntime-gpu >= {since}, or run the engine itself with --backend trt, or "
        "use --ort-provider cuda (the custom nodes then run on the project's onnxruntime kernels).",
    )


def trt_ep_model(path: Path) -> Any:
    """The graph with its custom nodes moved to the domain `trt.plugins`: onnxruntime's
    TensorRT EP offers the creators of the loaded plugin libraries there (same op_type,
    attributes and plugin_version)."""
    import onnx

    from dlu_deploy.onnx_info import STANDARD_DOMAINS

    model = onnx.load(str(path))
    for node in model.graph.node:
        if node.domain not in STANDARD_DOMAINS:
            node.domain = TRT_EP_PLUGIN_DOMAIN
    kept = [o for o in model.opset_import if o.domain in STANDARD_DOMAINS]
    del model.opset_import[:]
    model.opset_import.extend([*kept, onnx.helper.make_opsetid(TRT_EP_PLUGIN_DOMAIN, 1)])
    return model


class TrtBackend:
    """A TensorRT engine through `dlu_deploy.runtime.Engine`."""

    def __init__(
        self,
        path: str | Path,
        *,
        plugins: Sequence[str | Path] | None = None,
        device: int = 0,
        check_compatibility: bool = True,
        cuda_graph: bool = False,
    ) -> None:
        from dlu_deploy.runtime import Engine

        self.engine = Engine(
            path,
            plugins,
            device=device,
            check_compatibility=check_compatibility,
            cuda_graph=cuda_graph,
        )
        self.label = "tensorrt"
        self.on_gpu = True
        self.inputs = list(self.engine.inputs)
        self.output_names = [s.name for s in self.engine.outputs]
        recorded = (self.engine.sidecar or {}).get("precision")
        io_half = any(s.dtype == np.float16 for s in [*self.engine.inputs, *self.engine.outputs])
        self.precision = recorded or ("fp16" if io_half else "fp32")

    def run(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self.engine.submit(feed).result()

    def prepare(self, feed: Mapping[str, np.ndarray]) -> Callable[[], None]:
        self.engine.submit(feed).result()  # binds the buffers and stages the inputs
        return self.engine.execute

    def profile_shape_sets(self) -> list[ShapeSet]:
        sets: list[ShapeSet] = []
        for index in range(3):  # min, opt, max
            shapes = {s.name: s.profile[index] for s in self.inputs if s.profile is not None}
            if shapes and shapes not in sets:
                sets.append(shapes)
        return sets


class TorchBackend:
    """The PyTorch model run on float32 copies of the inputs, or with `dtype` float64 on
    float64 copies (then the model must be float64 too: `noise.float64_copy`). Floating
    outputs come back in that dtype, integer ones (detector labels) as they are."""

    def __init__(
        self,
        model: torch.nn.Module,
        input_names: Sequence[str],
        output_names: Sequence[str],
        *,
        device: str = "cpu",
        label: str = "torch-eager",
        dtype: str = "float32",
    ) -> None:
        if dtype not in ("float32", "float64"):
            raise ValueError(f"TorchBackend runs float32 or float64, not {dtype}")
        self.model = model
        self.device = device
        self.label = label
        self.on_gpu = device.startswith("cuda")
        self.dtype = np.dtype(dtype)
        self.precision = "fp64" if dtype == "float64" else "fp32"
        self.inputs = [TensorSpec(n, self.dtype, ()) for n in input_names]
        self.output_names = list(output_names)

    def _tensors(self, feed: Mapping[str, np.ndarray]) -> list[torch.Tensor]:
        import torch

        missing = [s.name for s in self.inputs if s.name not in feed]
        if missing:
            raise UserError(
                f"The PyTorch model needs input(s) {', '.join(missing)}, which were not given.",
                "Name the inputs as the checkpoint's model does (see `dlu-deploy validate -h`).",
            )
        return [
            torch.from_numpy(np.asarray(feed[s.name], dtype=self.dtype)).to(self.device)
            for s in self.inputs
        ]

    def run(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        with torch.inference_mode():
            result = self.model(*self._tensors(feed))
        return {n: self._array(t) for n, t in self._name_outputs(result).items()}

    def _array(self, tensor: torch.Tensor) -> np.ndarray:
        array = tensor.detach().cpu().numpy()
        return array.astype(self.dtype) if array.dtype.kind == "f" else array

    def prepare(self, feed: Mapping[str, np.ndarray]) -> Callable[[], None]:
        import torch

        tensors, model = self._tensors(feed), self.model

        def once() -> None:
            with torch.inference_mode():
                model(*tensors)

        return once

    def profile_shape_sets(self) -> list[ShapeSet]:
        return []

    def _name_outputs(self, result: Any) -> dict[str, Any]:
        if isinstance(result, Mapping):
            values = [result[n] for n in self.output_names if n in result]
        elif isinstance(result, (list, tuple)):
            values = list(result)
        else:
            values = [result]
        if len(values) != len(self.output_names):
            raise UserError(
                f"The PyTorch model returned {len(values)} output(s), the checkpoint describes "
                f"{len(self.output_names)} ({', '.join(self.output_names)}).",
                "Check --arch (the model built from the checkpoint must match the exported one).",
            )
        return dict(zip(self.output_names, values, strict=True))


def open_candidate(
    path: str | Path,
    backend: str = "auto",
    *,
    plugins: Sequence[str | Path] | None = None,
    ort_provider: str = "cpu",
    threads: int | None = None,
    device: int = 0,
    check_compatibility: bool = True,
    cuda_graph: bool = False,
) -> Backend:
    """An engine (.engine/.plan/...) or an ONNX file (.onnx), as `backend` says or by suffix."""
    path = Path(path)
    kind = backend if backend != "auto" else ("ort" if path.suffix.lower() == ".onnx" else "trt")
    if kind == "ort":
        return OrtBackend(
            path, provider=ort_provider, plugins=plugins, threads=threads, device=device
        )
    if kind == "trt":
        if path.suffix.lower() == ".onnx":
            raise UserError(
                f"--backend trt needs an engine, {path.name} is an ONNX file.",
                f"Build one first: dlu-deploy build {path} -o {path.with_suffix('.engine').name}",
            )
        return TrtBackend(
            path,
            plugins=plugins,
            device=device,
            check_compatibility=check_compatibility,
            cuda_graph=cuda_graph,
        )
    raise UserError(f"Unknown backend '{backend}'.", "Use trt, ort or auto.")

"""ONNX -> TensorRT engine (`dlu-deploy build`), with plugin checks, parser error reporting,
build progress and the JSON sidecar.

Precision: TensorRT 11 networks are strongly typed, so the engine computes in the ONNX file's
types (an fp16 engine is built from `dlu-export --fp16`). TensorRT 10 builds strongly typed too
unless `fp16=True`, which asks for the (deprecated) weakly typed network with the FP16 builder
flag. TF32 is off unless asked for, so float32 engines match PyTorch float32.
"""

from __future__ import annotations

import datetime
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

import dlu_deploy
from dlu_deploy.errors import UserError
from dlu_deploy.libraries import existing_plugin_paths, trt_plugin_library
from dlu_deploy.onnx_info import OnnxInfo, inspect_onnx
from dlu_deploy.runtime import cuda, sidecar, trt_api
from dlu_deploy.shapes import Shape, ShapeSet, example_shape, format_shape

ProfileShapes = dict[str, tuple[Shape, Shape, Shape]]  # input -> (min, opt, max)


@dataclass(frozen=True)
class BuildResult:
    engine_path: Path
    sidecar_path: Path
    sidecar: dict[str, Any]
    seconds: float


@dataclass(frozen=True)
class ParserProblem:
    """One error of TensorRT's ONNX parser, copied out of its IParserError."""

    node_name: str
    node_operator: str
    description: str
    code: str


def resolve_profile(
    info: OnnxInfo,
    min_shapes: ShapeSet | None = None,
    opt_shapes: ShapeSet | None = None,
    max_shapes: ShapeSet | None = None,
) -> ProfileShapes:
    """Optimization profile of every dynamic input from --min/--opt/--max.

    An input given only in --opt (or only one of the three) is fixed to that shape; a missing
    --opt is the --max shape; a missing --min or --max is the --opt shape. Static inputs need no
    entry but must match if given.
    """
    given = {"min": min_shapes or {}, "opt": opt_shapes or {}, "max": max_shapes or {}}
    known = {t.name for t in info.inputs}
    for flag, shapes in given.items():
        unknown = sorted(set(shapes) - known)
        if unknown:
            raise UserError(
                f"--{flag} names unknown input(s) {', '.join(unknown)}.",
                f"The inputs of {info.path.name} are: {_describe_inputs(info)}.",
            )
    profile: ProfileShapes = {}
    for tensor in info.inputs:
        chosen = {flag: shapes.get(tensor.name) for flag, shapes in given.items()}
        if not any(chosen.values()):
            if tensor.is_dynamic:
                raise UserError(
                    f"Input '{tensor.name}' has dynamic dims ({format_shape(tensor.dims)}) but "
                    "no shapes were given for it.",
                    f"Pass --min/--opt/--max for it, e.g. --min {tensor.name}:"
                    f"{example_shape(tensor.dims, 64)} --opt {tensor.name}:"
                    f"{example_shape(tensor.dims, 256)} --max {tensor.name}:"
                    f"{example_shape(tensor.dims, 512)}, or just --opt for one shape.",
                )
            continue
        opt = chosen["opt"] or chosen["max"] or chosen["min"]
        assert opt is not None
        low, high = chosen["min"] or opt, chosen["max"] or opt
        for flag, shape in (("min", low), ("opt", opt), ("max", high)):
            if not tensor.accepts(shape):
                raise UserError(
                    f"--{flag} {tensor.name}:{format_shape(shape)} does not fit the input's dims "
                    f"{format_shape(tensor.dims)}.",
                    "Keep the rank and every fixed dim; only the '?' dims may vary.",
                )
        if not all(a <= b <= c for a, b, c in zip(low, opt, high, strict=True)):
            raise UserError(
                f"The shapes of '{tensor.name}' are not ordered: min {format_shape(low)}, "
                f"opt {format_shape(opt)}, max {format_shape(high)}.",
                "Every dim must satisfy min <= opt <= max.",
            )
        profile[tensor.name] = (low, opt, high)
    return profile


def parser_failure(
    problems: Sequence[ParserProblem], info: OnnxInfo, plugins: Sequence[Path]
) -> UserError:
    """The UserError for a failed parse: each offending node, and the fix."""
    lines = [
        f"node '{p.node_name or '?'}' ({p.node_operator or '?'}): {p.description} [{p.code}]"
        for p in problems
    ] or ["no details from the parser"]
    custom_ops = {n.op_type: n for n in info.custom_nodes}
    plugin_misses = [
        p for p in problems if p.node_operator in custom_ops or "plugin" in p.description.lower()
    ]
    if plugin_misses:
        node = custom_ops.get(plugin_misses[0].node_operator)
        what = f"plugin {node.op_type} version {node.plugin_version}" if node else "a plugin"
        loaded = f" (loaded: {', '.join(map(str, plugins))})" if plugins else " (none loaded)"
        fix = f"{what} not found{loaded}: pass --plugins path/to/libdlu_trt_plugins.so."
    else:
        fix = (
            "Check the model with `python -c \"import onnx; onnx.checker.check_model('MODEL')\"`, "
            "re-export it with dlu-export (portable mode uses standard ops only), or report the "
            "node names above."
        )
    return UserError(
        f"TensorRT's ONNX parser rejected {info.path.name}: " + "; ".join(lines) + ".", fix
    )


def check_plugins(
    info: OnnxInfo, has_creator: Callable[[str, str, str], bool], plugins: Sequence[Path]
) -> None:
    """UserError naming the plugin and nodes when a custom node has no registered creator.

    `has_creator(name, version, namespace)` asks TensorRT's plugin registry.
    """
    missing: dict[tuple[str, str, str], list[str]] = {}
    for node in info.custom_nodes:
        key = (node.op_type, node.plugin_version, node.plugin_namespace)
        if not has_creator(*key):
            missing.setdefault(key, []).append(node.name)
    if not missing:
        return
    what = "; ".join(
        f"plugin {name} version {version}{f' namespace {namespace}' if namespace else ''} not "
        f"found (node{'s' if len(nodes) > 1 else ''} {', '.join(nodes)})"
        for (name, version, namespace), nodes in missing.items()
    )
    loaded = ", ".join(map(str, plugins)) or "none"
    refused = trt_api.plugin_load_errors(plugins)  # e.g. built for another TensorRT major
    raise UserError(
        f"{info.path.name}: {what}; plugin libraries loaded: {loaded}"
        + (f" (TensorRT's load_library refused: {'; '.join(refused)})" if refused else "")
        + ".",
        "Pass --plugins path/to/libdlu_trt_plugins.so (this project's plugins, built for this "
        "TensorRT version).",
    )


def build_engine(
    onnx_path: str | Path,
    engine_path: str | Path | None = None,
    *,
    plugins: Sequence[str | Path] | None = None,
    min_shapes: ShapeSet | None = None,
    opt_shapes: ShapeSet | None = None,
    max_shapes: ShapeSet | None = None,
    workspace: int | None = None,
    timing_cache: str | Path | None = None,
    fp16: bool = False,
    tf32: bool = False,
    optimization_level: int | None = None,
    device: int = 0,
    console: Console | None = None,
    progress: bool = True,
) -> BuildResult:
    """Build `onnx_path` into `engine_path` (default: same name, .engine) and write its sidecar.

    `plugins`: plugin libraries (None: the project's own library when the graph has custom
    nodes). `workspace`: bytes of the builder's workspace pool. `timing_cache`: file read if it
    exists and written after the build.
    """
    started = time.perf_counter()
    info = inspect_onnx(onnx_path)
    engine_path = Path(engine_path) if engine_path is not None else info.path.with_suffix(".engine")
    profile = resolve_profile(info, min_shapes, opt_shapes, max_shapes)
    if plugins is not None:
        plugin_paths = existing_plugin_paths(list(plugins))
    else:
        plugin_paths = [trt_plugin_library()] if info.custom_nodes else []

    trt = trt_api.import_tensorrt(f"to build {engine_path.name}")
    if fp16 and not hasattr(trt.BuilderFlag, "FP16"):
        raise UserError(
            f"TensorRT {trt.__version__} builds strongly typed networks only: it has no fp16 "
            "builder flag.",
            "Export a float16 model with `dlu-export --fp16` and build it without --fp16; the "
            "engine then computes in the ONNX file's precision.",
        )
    gpu_device = cuda.device(device)  # its context is current only inside `active()`
    gpu = gpu_device.info
    logger = trt_api.get_logger(trt)
    trt_api.load_plugin_libraries(trt, plugin_paths)
    check_plugins(info, lambda *key: trt_api.has_plugin_creator(trt, *key), plugin_paths)

    with gpu_device.active():  # the builder runs on this device, in this thread only
        builder = trt.Builder(logger)
        network = _parse(trt, builder, info, strongly_typed=not fp16, plugins=plugin_paths)
        config = builder.create_builder_config()
        if workspace is not None:
            config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace))
        if fp16:
            config.set_flag(trt.BuilderFlag.FP16)
        if not tf32:  # on by default; off so float32 engines match PyTorch float32
            config.clear_flag(trt.BuilderFlag.TF32)
        if optimization_level is not None:
            config.builder_optimization_level = optimization_level
        if profile:
            optimization_profile = builder.create_optimization_profile()
            for name, (low, opt, high) in profile.items():
                optimization_profile.set_shape(name, low, opt, high)
            config.add_optimization_profile(optimization_profile)
        cache_path = Path(timing_cache) if timing_cache is not None else None
        cache_bytes = (
            cache_path.read_bytes() if cache_path is not None and cache_path.is_file() else b""
        )
        config.set_timing_cache(config.create_timing_cache(cache_bytes), False)

        console = console or Console(stderr=True)
        with (
            _build_progress(trt, config, console, enabled=progress) as monitor,
            trt_api.recorded_errors(trt) as errors,
        ):
            serialized = builder.build_serialized_network(network, config)
    if monitor is not None and monitor.cancelled:
        raise KeyboardInterrupt
    if serialized is None:
        raise UserError(
            f"TensorRT could not build {engine_path.name}: {'; '.join(errors) or 'no details'}.",
            "Read the errors above; a larger --workspace, smaller --max shapes or another "
            "precision can help. Run with --verbose for TensorRT's full log.",
        )
    engine_path.parent.mkdir(parents=True, exist_ok=True)
    engine_path.write_bytes(memoryview(serialized))
    if cache_path is not None:
        cache_path.write_bytes(memoryview(config.get_timing_cache().serialize()))

    seconds = time.perf_counter() - started
    record = _sidecar_record(
        trt, network, info, engine_path, gpu, profile, plugin_paths, fp16, tf32
    )
    record.update(workspace_bytes=workspace, build_seconds=round(seconds, 3))
    return BuildResult(engine_path, sidecar.write_sidecar(engine_path, record), record, seconds)


def _parse(
    trt: Any, builder: Any, info: OnnxInfo, *, strongly_typed: bool, plugins: Sequence[Path]
) -> Any:
    """The network parsed from the ONNX file (UserError naming the nodes the parser rejects)."""
    flags = 0
    if strongly_typed and trt_api.major_version(trt) < 11:  # 11: always strongly typed
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    # The bindings keep the parser (which owns the weights) alive as long as the network.
    parser = trt.OnnxParser(network, trt_api.get_logger(trt))
    if not parser.parse_from_file(str(info.path)):
        problems = [
            ParserProblem(e.node_name(), e.node_operator(), e.desc(), str(e.code()))
            for e in (parser.get_error(i) for i in range(parser.num_errors))
        ]
        raise parser_failure(problems, info, plugins)
    return network


def _sidecar_record(
    trt: Any,
    network: Any,
    info: OnnxInfo,
    engine_path: Path,
    gpu: cuda.DeviceInfo,
    profile: ProfileShapes,
    plugin_paths: Sequence[Path],
    fp16: bool,
    tf32: bool,
) -> dict[str, Any]:
    return {
        "format": sidecar.SIDECAR_FORMAT,
        "created_by": f"dlu-deploy {dlu_deploy.__version__}",
        "created_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "engine": sidecar.file_digest(engine_path),
        "onnx": {"path": str(info.path), **sidecar.file_digest(info.path)},
        "export": info.export_settings,
        "tensorrt": {
            "version": trt.__version__,
            "strongly_typed": not fp16,
            "fp16_flag": fp16,
            "tf32": tf32,
            "version_compatible": False,
        },
        "gpu": {
            "name": gpu.name,
            "compute_capability": gpu.compute_capability,
            "hardware_compatibility": "NONE",
            "cuda_driver": gpu.driver_version,
        },
        "precision": "fp16" if fp16 or info.has_fp16 else "fp32",
        "inputs": [_tensor_record(network.get_input(i)) for i in range(network.num_inputs)],
        "outputs": [_tensor_record(network.get_output(i)) for i in range(network.num_outputs)],
        "profiles": [
            {name: {"min": s[0], "opt": s[1], "max": s[2]} for name, s in profile.items()}
        ],
        "plugins": [
            {"path": str(p), "version": trt_api.plugin_library_version(p), **sidecar.file_digest(p)}
            for p in plugin_paths
        ],
        "plugin_nodes": sorted({f"{n.op_type} v{n.plugin_version}" for n in info.custom_nodes}),
    }


def _tensor_record(tensor: Any) -> dict[str, Any]:
    return {
        "name": tensor.name,
        "dtype": str(tensor.dtype),
        "shape": [int(d) for d in tensor.shape],
    }


@contextmanager
def _build_progress(trt: Any, config: Any, console: Console, *, enabled: bool) -> Iterator[Any]:
    """Show TensorRT's build phases as rich progress bars while the block runs; yields the
    progress monitor (None when disabled), whose `cancelled` says Ctrl-C stopped the build."""
    if not enabled or not hasattr(trt, "IProgressMonitor"):
        yield None
        return
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )
    monitor = _make_monitor(trt, progress)  # referenced here until the build is over
    config.progress_monitor = monitor
    with progress:
        yield monitor


def _make_monitor(trt: Any, progress: Progress) -> Any:
    class RichProgressMonitor(trt.IProgressMonitor):
        """Called from TensorRT's builder threads: one lock guards the task table. Ctrl-C
        arrives inside these callbacks; it must not escape into TensorRT, so it cancels the
        build through step_complete's return value instead (as NVIDIA's sample does)."""

        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)
            self._lock = threading.Lock()
            self._tasks: dict[str, tuple[Any, int]] = {}  # phase -> (task id, depth)
            self.cancelled = False

        def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
            try:
                with self._lock:
                    depth = self._tasks[parent_phase][1] + 1 if parent_phase in self._tasks else 0
                    task = progress.add_task("  " * depth + phase_name, total=num_steps)
                    self._tasks[phase_name] = (task, depth)
            except KeyboardInterrupt:
                self.cancelled = True

        def step_complete(self, phase_name: str, step: int) -> bool:
            try:
                with self._lock:
                    if phase_name in self._tasks:
                        progress.update(self._tasks[phase_name][0], completed=step + 1)
            except KeyboardInterrupt:
                self.cancelled = True
            return not self.cancelled

        def phase_finish(self, phase_name: str) -> None:
            try:
                with self._lock:
                    entry = self._tasks.pop(phase_name, None)
                    if entry is not None:
                        progress.remove_task(entry[0])
            except KeyboardInterrupt:
                self.cancelled = True

    return RichProgressMonitor()


def _describe_inputs(info: OnnxInfo) -> str:
    return ", ".join(f"{t.name} ({format_shape(t.dims)})" for t in info.inputs)


def parse_size(text: str) -> int:
    """'512M' / '2G' / '1048576' -> bytes (for --workspace)."""
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    text = text.strip().upper().removesuffix("B")
    try:
        if text and text[-1] in units:
            return int(float(text[:-1]) * units[text[-1]])
        return int(text)
    except ValueError as exc:
        raise UserError(
            f"'{text}' is not a size.", "Write bytes, or a number with K, M or G (e.g. 2G)."
        ) from exc

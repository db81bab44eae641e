"""`dlu-deploy serve`: a real Triton Inference Server (PyTriton's bundled tritonserver) serving
an ONNX file through `dlu_deploy.ort.make_session` or an engine through the TensorRT runtime.

Triton owns the endpoints (HTTP and gRPC: inference, health, metadata, metrics) and the
dynamic batcher; it checks each request against the model configuration (names, data types,
dims, batch size) before the model sees it. The model runs in this process: PyTriton's proxy
model in Triton's Python backend hands each batch over shared memory.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dlu_deploy.errors import UserError
from dlu_deploy.triton.config import ServingOptions, default_max_batch_size
from dlu_deploy.triton.interface import ModelInterface, read_interface

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class Endpoints:
    host: str
    http_port: int
    grpc_port: int
    metrics_port: int

    @property
    def http(self) -> str:
        return f"http://{self.host}:{self.http_port}"

    @property
    def grpc(self) -> str:
        return f"grpc://{self.host}:{self.grpc_port}"


def import_pytriton() -> Any:
    try:
        import pytriton.triton
    except ImportError as exc:
        raise UserError(
            f"`dlu-deploy serve` needs PyTriton, which this Python ({_python()}) does not have.",
            "Run scripts/setup-triton-env (a venv with it: then .venv-serve/bin/dlu-deploy "
            "serve ...), or pip install 'dlu-deploy[serve]' into a virtual environment "
            "(PyTriton 0.7 needs numpy < 2).",
        ) from exc
    return pytriton.triton


def _python() -> str:
    import sys

    return sys.executable


class ModelRunner:
    """Runs the model on the requests Triton hands over: requests of equal shapes are stacked
    into one batch (the dynamic batcher's point), each group run once and split back."""

    def __init__(self, backend: Any, interface: ModelInterface, batched: bool) -> None:
        self.backend = backend
        self.interface = interface
        self.batched = batched
        self.output_names = [t.name for t in interface.outputs]

    def __call__(self, requests: Sequence[Mapping[str, np.ndarray]]) -> list[dict[str, Any]]:
        if not self.batched:
            return [self._run(dict(r)) for r in requests]
        results: list[dict[str, Any] | None] = [None] * len(requests)
        groups: dict[tuple[Any, ...], list[int]] = {}
        for index, request in enumerate(requests):
            key = tuple((n, a.shape[1:], a.dtype.str) for n, a in sorted(request.items()))
            groups.setdefault(key, []).append(index)
        for indices in groups.values():
            names = list(requests[indices[0]])
            feed = {n: np.concatenate([requests[i][n] for i in indices]) for n in names}
            outputs = self._run(feed)
            start = 0
            for i in indices:
                size = len(requests[i][names[0]])
                results[i] = {n: v[start : start + size] for n, v in outputs.items()}
                start += size
        return [r for r in results if r is not None]

    def _run(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        outputs = self.backend.run(feed)
        return {n: np.ascontiguousarray(outputs[n]) for n in self.output_names}


def open_backend(model: str | Path, **options: Any) -> Any:
    """The model as a runner backend: ONNX -> make_session, engine -> dlu_deploy.runtime."""
    from dlu_deploy.validate.backends import open_candidate

    return open_candidate(model, "auto", **options)


def pytriton_tensors(tensors: Sequence[Any], batched: bool) -> list[Any]:
    from pytriton.model_config import Tensor

    return [
        Tensor(name=t.name, dtype=t.dtype.type, shape=tuple(t.dims[1:] if batched else t.dims))
        for t in tensors
    ]


@contextmanager
def running_server(
    model: str | Path,
    *,
    name: str | None = None,
    options: ServingOptions | None = None,
    host: str = "127.0.0.1",
    http_port: int = 8000,
    grpc_port: int = 8001,
    metrics_port: int = 8002,
    backend_options: Mapping[str, Any] | None = None,
    exit_timeout_s: int = 5,
    log_file: str | Path | None = None,
) -> Iterator[tuple[Any, Endpoints, ModelInterface]]:
    """Start Triton with `model` loaded; yields (pytriton Triton, endpoints, interface) and
    stops the server when the block ends (also on an exception). Triton's own log goes to
    `log_file` when given, else to stdout."""
    triton_module = import_pytriton()
    from pytriton.model_config import DynamicBatcher, ModelConfig

    from dlu_deploy.triton.stub_python import check_stub_python, stub_environment

    interface = read_interface(model)
    options = options or ServingOptions(max_batch_size=default_max_batch_size(interface))
    options.check(interface)
    name = name or interface.path.stem
    env = stub_environment()
    check_stub_python(env)
    os.environ["LD_LIBRARY_PATH"] = env.get("LD_LIBRARY_PATH", "")  # tritonserver inherits it

    # One backend per instance: PyTriton calls each instance's function from its own thread.
    runners = [
        ModelRunner(
            open_backend(model, **dict(backend_options or {})),
            interface,
            options.max_batch_size > 0,
        )
        for _ in range(options.instance_count)
    ]
    batcher = None
    if options.batching:
        batcher = DynamicBatcher(
            max_queue_delay_microseconds=options.max_queue_delay_us,
            preferred_batch_size=list(options.preferred_batch_sizes) or None,
        )
    config = triton_module.TritonConfig(
        http_address=host,
        http_port=http_port,
        grpc_address=host,
        grpc_port=grpc_port,
        metrics_port=metrics_port,
        exit_timeout_secs=exit_timeout_s,
        log_verbose=0,
        log_file=str(log_file) if log_file is not None else None,
    )
    _check_ports_free(
        host, {"--http-port": http_port, "--grpc-port": grpc_port, "--metrics-port": metrics_port}
    )
    batched = options.max_batch_size > 0
    with ExitStack() as stack:
        try:
            triton = stack.enter_context(triton_module.Triton(config=config))
            triton.bind(
                model_name=name,
                infer_func=runners,
                inputs=pytriton_tensors(interface.inputs, batched),
                outputs=pytriton_tensors(interface.outputs, batched),
                config=ModelConfig(
                    batching=batched,
                    max_batch_size=max(options.max_batch_size, 1),
                    batcher=batcher,  # None: no dynamic batcher (PyTriton checks the type)
                ),
                strict=True,
            )
            triton.run()
        except Exception as exc:  # PyTriton raises bare exceptions for any startup failure
            raise UserError(
                f"Triton did not start ({type(exc).__name__}: {exc}).{_log_tail(log_file)}",
                "Run with -v for Triton's whole log.",
            ) from exc
        yield triton, Endpoints(host, http_port, grpc_port, metrics_port), interface


def _check_ports_free(host: str, ports: Mapping[str, int]) -> None:
    """UserError naming the flag of a port something else listens on (Triton would otherwise
    fail half-started, or a client would reach the other server)."""
    for flag, port in ports.items():
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port))
            except OSError as exc:
                raise UserError(
                    f"Port {port} on {host} is not available ({exc.strerror}).",
                    f"Pass another {flag}, or stop what listens there.",
                ) from exc


def _log_tail(log_file: str | Path | None, lines: int = 15) -> str:
    if log_file is None or not Path(log_file).is_file():
        return ""
    tail = Path(log_file).read_text(errors="replace").splitlines()[-lines:]
    return " Triton's log ends with:\n" + "\n".join(tail)


def serve_forever(
    model: str | Path,
    *,
    on_ready: Callable[[Endpoints, ModelInterface, str], None] | None = None,
    name: str | None = None,
    **kwargs: Any,
) -> None:
    """Serve until Ctrl-C or SIGTERM, then stop Triton cleanly (in-flight requests finish)."""
    stop = threading.Event()

    def request_stop(signum: int, _frame: Any) -> None:
        stop.set()

    previous = signal.signal(signal.SIGTERM, request_stop)
    try:
        with running_server(model, name=name, **kwargs) as (triton, endpoints, interface):
            if on_ready is not None:
                on_ready(endpoints, interface, name or interface.path.stem)
            try:
                while not stop.is_set() and triton.is_alive():
                    time.sleep(0.2)
            except KeyboardInterrupt:
                pass
            if not stop.is_set() and not triton.is_alive():
                raise UserError(
                    "Triton stopped on its own (see its log above).",
                    "Run again with -v for Triton's log.",
                )
    finally:
        signal.signal(signal.SIGTERM, previous)

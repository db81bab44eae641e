"""`dlu-deploy serve`: a real Triton (PyTriton's tritonserver) serving the shipped default DLU
checkpoint, exported in plugin mode, over HTTP and gRPC.

Load: bounded concurrent clients on loopback, every response equal to the model run directly
(make_session, same feed). Faults: wrong dtype, wrong shape, missing input, oversized batch get
error responses and the server keeps serving. Stop: Ctrl-C (SIGINT) ends a `dlu-deploy serve`
process with exit code 0 while a client is sending; requests then fail with an error, never hang.

Needs the `serve` extra (PyTriton needs numpy < 2, so it lives in its own venv):
    scripts/setup-triton-env && .venv-serve/bin/python -m pytest tests/test_serve.py
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip(
    "pytriton",
    reason="needs the serve extra: scripts/setup-triton-env, then run this file with "
    ".venv-serve/bin/python -m pytest",
)

from dlu_deploy.errors import UserError
from dlu_deploy.triton import load
from dlu_deploy.triton.config import ServingOptions
from dlu_deploy.triton.server import running_server
from tests.triton_models import default_onnx

REPO = Path(__file__).resolve().parents[1]
MODEL = "dlu_default"
MAX_BATCH = 4


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def onnx_path() -> Path:
    """The shipped default checkpoint, exported in plugin mode with dynamic N, H, W."""
    return default_onnx("plugin", dynamic=True)


@pytest.fixture(scope="module")
def server(onnx_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[load.Feed]:
    """One Triton for the module: yields {'http': host:port, 'grpc': host:port}."""
    log = tmp_path_factory.mktemp("log") / "tritonserver.log"
    ports = {"http_port": free_port(), "grpc_port": free_port(), "metrics_port": free_port()}
    options = ServingOptions(max_batch_size=MAX_BATCH, max_queue_delay_us=2000)
    with running_server(onnx_path, name=MODEL, options=options, log_file=log, **ports):
        yield {
            "http": f"127.0.0.1:{ports['http_port']}",
            "grpc": f"127.0.0.1:{ports['grpc_port']}",
        }


@pytest.fixture(scope="module")
def direct(onnx_path: Path) -> tuple[list[load.Feed], list[dict[str, np.ndarray]]]:
    """Feeds (batch 1 and 2, two sizes) and the model's outputs run directly on each."""
    from dlu_deploy.ort import make_session

    session = make_session(onnx_path)
    rng = np.random.default_rng(0)
    feeds = [
        {"features": rng.standard_normal(shape).astype(np.float32)}
        for shape in ((1, 256, 8, 8), (1, 256, 8, 8), (2, 256, 8, 8), (1, 256, 12, 10))
    ]
    expected = [{"upsampled": session.run(["upsampled"], dict(f))[0]} for f in feeds]
    return feeds, expected


def test_health_and_metadata(server) -> None:
    connection = load.client("http", server["http"])
    assert connection.is_server_live() and connection.is_server_ready()
    assert connection.is_model_ready(MODEL)
    metadata = connection.get_model_metadata(MODEL)
    assert metadata["inputs"] == [
        {"name": "features", "datatype": "FP32", "shape": [-1, 256, -1, -1]}
    ]
    assert metadata["outputs"] == [
        {"name": "upsampled", "datatype": "FP32", "shape": [-1, 256, -1, -1]}
    ]
    config = connection.get_model_config(MODEL)
    assert config["max_batch_size"] == MAX_BATCH and "dynamic_batching" in config
    grpc = load.client("grpc", server["grpc"])
    assert grpc.is_server_ready() and grpc.is_model_ready(MODEL)


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_bounded_load_matches_the_model_run_directly(server, direct, protocol) -> None:
    feeds, expected = direct
    report = load.run_load(
        server[protocol],
        MODEL,
        feeds,
        expected,
        protocol=protocol,
        clients=4,
        duration_s=3.0,
        max_requests=200,
    )
    assert report.errors == []
    assert report.requests >= 20, report.requests
    # Dynamic batching stacks requests of equal shapes; per-image results do not change.
    assert report.mismatches == 0, report.max_abs_diff
    assert report.percentile_ms(50) <= report.percentile_ms(99)


def _error(server, feed, protocol: str = "http") -> str:
    from tritonclient.utils import InferenceServerException

    connection = load.client(protocol, server[protocol])
    with pytest.raises(InferenceServerException) as caught:
        load.infer(connection, protocol, MODEL, feed, ["upsampled"])
    return str(caught.value)


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_bad_requests_get_errors_and_the_server_keeps_serving(server, direct, protocol) -> None:
    feeds, expected = direct
    x = feeds[0]["features"]
    assert "data-type is 'FP64', but model 'dlu_default' expects 'FP32'" in _error(
        server, {"features": x.astype(np.float64)}, protocol
    )
    assert "unexpected shape for input 'features'" in _error(
        server, {"features": x[:, :255]}, protocol
    )
    assert "missing required input(s) ['features']" in _error(server, {}, protocol)
    assert "unexpected inference input 'other'" in _error(server, {"other": x}, protocol)
    assert f"batch-size must be <= {MAX_BATCH}" in _error(
        server, {"features": np.zeros((MAX_BATCH + 1, 256, 4, 4), np.float32)}, protocol
    )
    # the server still answers, with the right outputs
    connection = load.client(protocol, server[protocol])
    result = load.infer(connection, protocol, MODEL, feeds[2], ["upsampled"])
    np.testing.assert_array_equal(result["upsampled"], expected[2]["upsampled"])


def test_port_in_use_is_a_user_error(onnx_path, server) -> None:
    busy = int(server["http"].rsplit(":", 1)[1])
    with (
        pytest.raises(UserError, match=f"Port {busy} on 127.0.0.1 is not available"),
        running_server(onnx_path, http_port=busy, grpc_port=free_port(), metrics_port=free_port()),
    ):
        pass


def test_ctrl_c_stops_cleanly_while_a_client_sends(onnx_path, direct, tmp_path) -> None:
    feeds, expected = direct
    http, grpc, metrics = free_port(), free_port(), free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "export")])}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dlu_deploy.cli",
            "serve",
            str(onnx_path),
            "--name",
            MODEL,
            "--http-port",
            str(http),
            "--grpc-port",
            str(grpc),
            "--metrics-port",
            str(metrics),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        connection = load.client("http", f"127.0.0.1:{http}", timeout_s=10)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                if connection.is_model_ready(MODEL):
                    break
            except Exception:  # not listening yet
                pass
            assert process.poll() is None, process.communicate()[0]
            time.sleep(0.3)
        else:
            pytest.fail("the server did not become ready in 90 s")

        outcomes: list[str] = []
        sent_after_stop = threading.Event()

        def send() -> None:
            client = load.client("http", f"127.0.0.1:{http}", timeout_s=10)
            for _ in range(400):  # bounded; ends once requests fail after the stop
                try:
                    out = load.infer(client, "http", MODEL, feeds[0], ["upsampled"], 10)
                    same = np.array_equal(out["upsampled"], expected[0]["upsampled"])
                    outcomes.append("ok" if same else "WRONG")
                except Exception as exc:  # refused, closed or an error response: all clean
                    outcomes.append(f"error: {type(exc).__name__}")
                    sent_after_stop.set()
                    return
                time.sleep(0.01)

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        time.sleep(1.0)
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=60)
        sender.join(30)
        assert not sender.is_alive(), "a client request hung after the server stopped"
        assert process.returncode == 0, output
        assert "stopped" in output
        assert "ok" in outcomes and "WRONG" not in outcomes
        assert sent_after_stop.is_set() and outcomes[-1].startswith("error"), outcomes[-5:]
        with pytest.raises(ConnectionRefusedError):  # nothing listens any more
            socket.create_connection(("127.0.0.1", http), timeout=5)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_the_stub_embeds_the_serving_pythons_own_libpython() -> None:
    """PyTriton issue #51: the arrangement passes here; without it the loader would give the
    stub another libpython (on machines where the system's differs from this Python's)."""
    import platform

    from dlu_deploy.triton import stub_python

    env = stub_python.stub_environment()
    stub_python.check_stub_python(env)
    library = stub_python.resolved_libpython(stub_python.stub_path(), env)
    assert library is not None
    assert stub_python.libpython_version(library) == platform.python_version()

    bare = {k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"}
    other = stub_python.resolved_libpython(stub_python.stub_path(), bare)
    if other is None or stub_python.libpython_version(other) == platform.python_version():
        pytest.skip("the loader finds this Python's libpython even without the arrangement")
    with pytest.raises(UserError, match="PyTriton issue #51"):
        stub_python.check_stub_python(bare)

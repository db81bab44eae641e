"""Load benchmark of `dlu-deploy serve`: a real Triton (PyTriton's tritonserver) with dynamic
batching, bounded concurrent clients on loopback, against the same model run directly in this
process (not a test: it prints ratios measured in this run).

  direct         make_session(model).run, one request at a time, batch 1
  served HTTP    C clients over HTTP for D seconds (or R requests), batch-1 requests
  served gRPC    the same over gRPC

Every served response is compared with the model's own output on the same feed (zero errors and
zero mismatches expected). Default model: the shipped default DLU checkpoint exported in plugin
mode with dynamic N/H/W. Needs the serve extra:

    scripts/setup-triton-env
    .venv-serve/bin/python bench/serve_bench.py [--model m.onnx] [--clients 4] [--seconds 10]
        [--size 32] [--max-batch-size 8] [--max-queue-delay-us 1000] [--json out.json]
"""

from __future__ import annotations

import argparse
import socket
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "export"))

from bench import _common as common
from dlu_deploy.ort import make_session
from dlu_deploy.triton import load
from dlu_deploy.triton.config import ServingOptions
from dlu_deploy.triton.interface import read_interface
from dlu_deploy.triton.server import running_server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def default_model(folder: Path) -> Path:
    from dlu_export import ExportOptions, export_model
    from dlu_export.default import default_checkpoint

    from dlu_deploy.checkpoints import load_model

    path = folder / "dlu_default.onnx"
    export_model(load_model(default_checkpoint()), path, ExportOptions(dynamic=True))
    return path


def feeds_for(model: Path, size: int, count: int) -> list[load.Feed]:
    """Seeded batch-1 feeds: every variable dim after the batch dim is `size`."""
    rng = np.random.default_rng(0)
    feeds = []
    for _ in range(count):
        feed = {}
        for tensor in read_interface(model).inputs:
            shape = [1] + [size if d < 0 else d for d in tensor.dims[1:]]
            feed[tensor.name] = rng.standard_normal(shape).astype(tensor.dtype)
        feeds.append(feed)
    return feeds


def direct_run(model: Path, feeds: list[load.Feed], seconds: float, limit: int) -> load.LoadReport:
    session = make_session(model)
    report = load.LoadReport("direct", 1, 0.0)
    session.run(None, dict(feeds[0]))  # warm-up
    began = time.perf_counter()
    deadline = began + seconds
    while time.perf_counter() < deadline and report.requests < limit:
        start = time.perf_counter()
        session.run(None, dict(feeds[report.requests % len(feeds)]))
        report.latencies_s.append(time.perf_counter() - start)
    report.seconds = time.perf_counter() - began
    return report


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, help="ONNX file (default: the default sample)")
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients (default 4)")
    parser.add_argument("--seconds", type=float, default=10.0, help="per run (default 10)")
    parser.add_argument("--requests", type=int, default=20_000, help="cap per run")
    parser.add_argument("--size", type=int, default=32, help="H = W of the inputs (default 32)")
    parser.add_argument("--max-batch-size", type=int, default=8)
    parser.add_argument("--max-queue-delay-us", type=int, default=1000)
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        model = args.model or default_model(Path(folder))
        feeds = feeds_for(model, args.size, 8)
        session = make_session(model)
        names = [o.name for o in session.get_outputs()]
        expected = [dict(zip(names, session.run(names, dict(f)), strict=True)) for f in feeds]
        print(
            f"{model.name}: batch-1 requests of {args.size}x{args.size}, {args.clients} "
            f"clients, {args.seconds:g} s per run, {common.cpu_count()} CPU cores",
            flush=True,
        )
        reports = [direct_run(model, feeds, args.seconds, args.requests)]
        options = ServingOptions(
            max_batch_size=args.max_batch_size, max_queue_delay_us=args.max_queue_delay_us
        )
        ports = {"http_port": free_port(), "grpc_port": free_port(), "metrics_port": free_port()}
        log = Path(folder) / "tritonserver.log"
        with running_server(model, options=options, log_file=log, **ports) as (_, ends, iface):
            name = iface.path.stem
            for protocol, url in (
                ("http", f"127.0.0.1:{ends.http_port}"),
                ("grpc", f"127.0.0.1:{ends.grpc_port}"),
            ):
                reports.append(
                    load.run_load(
                        url,
                        name,
                        feeds,
                        expected,
                        protocol=protocol,
                        clients=args.clients,
                        duration_s=args.seconds,
                        max_requests=args.requests,
                    )
                )

    base = reports[0].throughput
    rows, results = [], []
    for r in reports:
        label = "direct (make_session)" if r.protocol == "direct" else f"served {r.protocol}"
        rows.append(
            [
                label,
                str(r.requests),
                f"{r.throughput:.1f}",
                f"{r.throughput / base:.2f}x",
                f"{r.percentile_ms(50):.2f}",
                f"{r.percentile_ms(99):.2f}",
                str(len(r.errors)),
                str(r.mismatches),
            ]
        )
        results.append(
            {
                "method": label,
                "requests": r.requests,
                "seconds": r.seconds,
                "throughput": r.throughput,
                "p50_ms": r.percentile_ms(50),
                "p99_ms": r.percentile_ms(99),
                "errors": r.errors[:5],
                "mismatches": r.mismatches,
            }
        )
    common.print_table(
        "Triton serving vs the model run directly (same process, same feeds)",
        ["method", "requests", "req/s", "vs direct", "p50 ms", "p99 ms", "errors", "mismatches"],
        rows,
    )
    common.write_json(args.json, {"clients": args.clients, "size": args.size, "results": results})
    return 0 if all(not r.errors and not r.mismatches for r in reports) else 1


if __name__ == "__main__":
    sys.exit(main())

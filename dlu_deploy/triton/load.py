"""A bounded load generator for a Triton server: concurrent clients on loopback for a bounded
time and request count, each response checked against the model's own outputs.

Used by the serving tests and bench/serve_bench.py. Needs tritonclient (the `serve` extra).
"""

from __future__ import annotations

import importlib
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

Feed = Mapping[str, np.ndarray]


@dataclass
class LoadReport:
    protocol: str
    clients: int
    seconds: float
    latencies_s: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    mismatches: int = 0  # responses that differ from the expected outputs
    max_abs_diff: float = 0.0

    @property
    def requests(self) -> int:
        return len(self.latencies_s)

    @property
    def throughput(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    def percentile_ms(self, q: float) -> float:
        return float(np.percentile(self.latencies_s, q) * 1e3) if self.latencies_s else 0.0


def client(protocol: str, url: str, timeout_s: float = 30.0) -> Any:
    """A tritonclient InferenceServerClient for 'http' (host:port) or 'grpc' (host:port)."""
    if protocol == "http":
        import tritonclient.http as http

        return http.InferenceServerClient(
            url, connection_timeout=timeout_s, network_timeout=timeout_s
        )
    if protocol == "grpc":
        import tritonclient.grpc as grpc

        return grpc.InferenceServerClient(url)
    raise ValueError(f"unknown protocol {protocol!r}")


def infer(
    connection: Any,
    protocol: str,
    model: str,
    feed: Feed,
    output_names: Sequence[str],
    timeout_s: float = 30.0,
) -> dict[str, np.ndarray]:
    """One inference request; tritonclient's InferenceServerException on an error response."""
    from tritonclient.utils import np_to_triton_dtype

    module = importlib.import_module(f"tritonclient.{protocol}")
    inputs = []
    for name, array in feed.items():
        tensor = module.InferInput(name, list(array.shape), np_to_triton_dtype(array.dtype))
        tensor.set_data_from_numpy(array)
        inputs.append(tensor)
    outputs = [module.InferRequestedOutput(n) for n in output_names]
    if protocol == "http":
        result = connection.infer(model, inputs, outputs=outputs, timeout=int(timeout_s * 1e6))
    else:
        result = connection.infer(model, inputs, outputs=outputs, client_timeout=timeout_s)
    return {n: result.as_numpy(n) for n in output_names}


def run_load(
    url: str,
    model: str,
    feeds: Sequence[Feed],
    expected: Sequence[Mapping[str, np.ndarray]],
    *,
    protocol: str = "http",
    clients: int = 4,
    duration_s: float = 5.0,
    max_requests: int = 10_000,
) -> LoadReport:
    """`clients` threads send feeds round-robin until `duration_s` or `max_requests` (in all);
    every response is compared with `expected` (the model run directly on the same feed)."""
    report = LoadReport(protocol, clients, 0.0)
    output_names = list(expected[0])
    lock = threading.Lock()
    issued = 0
    deadline = time.perf_counter() + duration_s

    def take() -> int | None:
        nonlocal issued
        with lock:
            if issued >= max_requests or time.perf_counter() >= deadline:
                return None
            issued += 1
            return issued - 1

    def worker() -> None:
        connection = client(protocol, url)
        try:
            while (index := take()) is not None:
                k = index % len(feeds)
                start = time.perf_counter()
                try:
                    result = infer(connection, protocol, model, feeds[k], output_names)
                except Exception as exc:  # every failure is counted, none stops the others
                    with lock:
                        report.errors.append(f"{type(exc).__name__}: {exc}")
                    continue
                latency = time.perf_counter() - start
                diff = max(
                    float(np.max(np.abs(result[n].astype(np.float64) - expected[k][n])))
                    if result[n].shape == expected[k][n].shape
                    else float("inf")
                    for n in output_names
                )
                same = all(np.array_equal(result[n], expected[k][n]) for n in output_names)
                with lock:
                    report.latencies_s.append(latency)
                    report.max_abs_diff = max(report.max_abs_diff, diff)
                    report.mismatches += 0 if same else 1
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(clients)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(duration_s + 60)
    report.seconds = time.perf_counter() - began
    return report

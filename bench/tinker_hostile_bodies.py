"""Does a hostile forward_backward body stall `wb tinker serve`'s other routes? /healthz latency while a
client sends (a) a ~32 KB zstd body that expands to 1 GiB and (b) a sub-KB zstd body whose CSR tensor
has 3 million rows, against the same latency with no hostile traffic (the baseline, in the same run).

    python bench/tinker_hostile_bodies.py [--rounds 5]

The service runs in-process (uvicorn on 127.0.0.1) over a stand-in engine with SmolLM2-135M's context
(8192) and vocabulary (49152): decoding needs no model. Prints a table and the ratio to the baseline.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import threading
import time
import urllib.error
import urllib.request

import numpy as np

KEY = "tml-bench-key"


class StandInEngine:
    name, max_context, vocab, slots, samplers = "smollm2-135m", 8192, 49152, {}, {}

    def release_session(self, sid: str) -> None:
        pass


def bomb() -> bytes:
    import zstandard

    comp = zstandard.ZstdCompressor().compressobj()
    return b"".join(comp.compress(bytes(1 << 20)) for _ in range(1024)) + comp.flush()


def many_rows() -> bytes:
    """zstd of a request whose CSR tensor has 3M + 1 row offsets (24 MB of zeros: under 1 KB compressed)."""
    import zstandard
    from tinker.proto import tinker_public_pb2 as pb

    msg = pb.ForwardBackwardRequest(model_id="s-x:train:0", seq_id=1, loss_fn="cross_entropy")
    datum = msg.data.add()
    datum.model_input.add().encoded_text.tokens = np.arange(3, dtype=np.int32).tobytes()
    t = datum.loss_fn_inputs["weights"]
    t.dtype = pb.DTYPE_FLOAT32
    t.shape.extend([3_000_000, 2])
    t.sparse_csr.crow_indices = np.zeros(3_000_001, np.int64).tobytes()
    return zstandard.ZstdCompressor().compress(msg.SerializeToString())


def post(url: str, body: bytes, encoding: str | None) -> float:
    headers = {"X-API-Key": KEY, "Content-Type": "application/x-protobuf"}
    if encoding:
        headers["Content-Encoding"] = encoding
    start = time.perf_counter()
    req = urllib.request.Request(url + "/api/v1/forward_backward", data=body, headers=headers)
    with urllib.request.urlopen(req, timeout=120) as resp:
        resp.read()
    return time.perf_counter() - start


def probe(url: str, stop: threading.Event, out: list[float]) -> None:
    req = urllib.request.Request(url + "/api/v1/healthz", headers={"X-API-Key": KEY})
    for _ in range(100_000):  # bounded; ends when `stop` is set
        if stop.is_set():
            return
        start = time.perf_counter()
        with urllib.request.urlopen(req, timeout=120) as resp:
            resp.read()
        out.append(time.perf_counter() - start)
        time.sleep(0.005)


def measure(url: str, body: bytes | None, encoding: str | None, rounds: int) -> tuple[list[float], list[float]]:
    """(healthz latencies, hostile request latencies) over `rounds` hostile requests (or 1 s idle each)."""
    stop, latencies, sends = threading.Event(), [], []
    thread = threading.Thread(target=probe, args=(url, stop, latencies))
    thread.start()
    for _ in range(rounds):
        if body is None:
            time.sleep(1.0)
        else:
            sends.append(post(url, body, encoding))
    time.sleep(0.2)
    stop.set()
    thread.join()
    return latencies, sends


def main() -> None:
    import uvicorn

    from trainers.tinker_service.metering import Meter
    from trainers.tinker_service.server import ServeConfig, Service, build_app

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # the code before tenants (PYTHONPATH=an older tree, for the before/after comparison) took one key
    keys = [KEY] if "admin_key" in ServeConfig.__dataclass_fields__ else KEY
    service = Service(ServeConfig(base_model="x", api_key=keys), StandInEngine(), Meter())
    server = uvicorn.Server(uvicorn.Config(build_app(service), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.05)
    big = bomb()
    rows = many_rows()
    cases = [("no hostile traffic (baseline)", None, None),
             (f"zstd bomb: {len(big) // 1024} KB -> 1 GiB", big, "zstd"),
             (f"{len(rows)}-byte zstd body declaring 3M sparse rows", rows, "zstd")]
    results = [(name, *measure(url, body, enc, args.rounds)) for name, body, enc in cases]
    base_max = max(results[0][1])  # a stall shows in the worst latency, not the median
    print(f"{'traffic':<44} {'healthz p50 ms':>15} {'healthz max ms':>15} {'ratio max':>10} {'refused in ms':>14}")
    for name, lat, sends in results:
        refused = f"{1000 * statistics.median(sends):.1f}" if sends else "-"
        print(f"{name:<44} {1000 * statistics.median(lat):>15.2f} {1000 * max(lat):>15.2f} "
              f"{max(lat) / base_max:>10.2f} {refused:>14}")
    server.should_exit = True
    thread.join(timeout=10)
    service.close()


if __name__ == "__main__":
    main()

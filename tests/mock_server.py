"""A scripted OpenAI-compatible server on loopback for tests and the client benchmark.

Markers in the last user message script faults per distinct message: `[429:K]` (first K requests get 429
with Retry-After), `[500:K]`, `[drop:K]` (close the connection without replying), `[400]` (always),
`[slow:S]` (sleep S seconds), `[length]` (finish_reason=length), `[think]` (a `<think>` block in the
content), `[rc]` (a `reasoning_content` field), `[reply:TEXT]` (the content; `[reply:]` is empty), `[replies:A|B|C]`
(choice i gets item i mod 3). `latency` delays every reply. `script(text, request) -> text` rewrites the
message before the markers are read, so one server can answer per model (request["model"]) or per sample.
`faults` injects random faults per request instead, from a seeded generator: probabilities for `429`,
`500`, `drop`, `slow` (`slow_seconds` more) and `length` (a truncated reply), e.g. the benchmark's mix.
Run alone: `python -m tests.mock_server --port 8001 --latency 0.05 [--faults 429=0.12,500=0.06,...]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Callable

_MARK = re.compile(r"\[(429|500|drop|slow|replies|reply|length|think|rc|400|one)(?::([^\]]*))?\]")


class MockServer:
    """Serve on 127.0.0.1 in a background thread (`start`/`stop`) or in the current loop (`serve`)."""

    def __init__(self, latency: float = 0.0, retry_after: float = 0.1,
                 script: Callable[[str, dict], str] | None = None, faults: dict[str, float] | None = None,
                 slow_seconds: float = 2.0, seed: int = 0):
        self.latency = latency
        self.faults = faults or {}
        self.slow_seconds = slow_seconds
        self.injected: Counter[str] = Counter()
        self._rng = random.Random(seed)
        self.script = script
        self.retry_after = retry_after
        self.counts: Counter[str] = Counter()  # requests seen per distinct user message
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.base_events.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def serve(self, port: int = 0) -> None:
        self._server = await asyncio.start_server(self._connection, "127.0.0.1", port, backlog=2048)
        self.port = self._server.sockets[0].getsockname()[1]

    def start(self) -> MockServer:
        ready = threading.Event()

        def main() -> None:
            self._loop = asyncio.new_event_loop()
            self._loop.run_until_complete(self.serve())
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=main, daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        if self._loop and self._server:
            asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop.close()

    async def _shutdown(self) -> None:
        self._server.close()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
                body = await reader.readexactly(int(headers.get("content-length", 0)))
                reply = await self._handle(method, path, body)
                if reply is None:  # a dropped connection
                    writer.transport.abort()
                    return
                status, payload, extra = reply
                data = json.dumps(payload).encode()
                hdrs = "".join(f"{k}: {v}\r\n" for k, v in extra.items())
                writer.write(f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n"
                             f"{hdrs}\r\n".encode() + data)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def _handle(self, method: str, path: str, body: bytes):
        if method == "GET" and path.endswith("/models"):
            return 200, {"object": "list", "data": [{"id": "mock", "object": "model", "owned_by": "mock"}]}, {}
        request = json.loads(body or b"{}")
        messages = request.get("messages") or [{"content": ""}]
        text = messages[-1].get("content") or ""
        if self.script is not None:
            text = self.script(text, request)
        self.counts[text] += 1
        seen = self.counts[text]
        marks = {m.group(1): m.group(2) for m in _MARK.finditer(text)}
        fault = self._draw()
        if fault:
            self.injected[fault] += 1
            if fault in ("429", "500", "drop"):
                marks, seen = {fault: "1"}, 1  # this request fails; the next one of the text is drawn anew
            elif fault == "slow":
                marks["slow"] = str(self.slow_seconds)
            else:
                marks[fault] = None
        if self.latency:
            await asyncio.sleep(self.latency)
        if "slow" in marks:
            await asyncio.sleep(float(marks["slow"] or 1))
        if "400" in marks:
            return 400, {"error": {"message": "scripted bad request", "type": "invalid_request_error"}}, {}
        if "429" in marks and seen <= int(marks["429"] or 1):
            return 429, {"error": {"message": "scripted rate limit"}}, {"Retry-After": str(self.retry_after)}
        if "500" in marks and seen <= int(marks["500"] or 1):
            return 500, {"error": {"message": "scripted server error"}}, {}
        if "drop" in marks and seen <= int(marks["drop"] or 1):
            return None
        return 200, self._completion(request, text, marks), {}

    def _draw(self) -> str | None:
        """A random fault for this request by the `faults` probabilities, or None."""
        if not self.faults:
            return None
        r, edge = self._rng.random(), 0.0
        for kind, p in self.faults.items():
            edge += p
            if r < edge:
                return kind
        return None

    def _completion(self, request: dict, text: str, marks: dict) -> dict:
        n = 1 if "one" in marks else int(request.get("n") or 1)
        choices = []
        for i in range(n):
            content = marks["reply"] if marks.get("reply") is not None else f"sample {i} for: {text[:40]}"
            if marks.get("replies") is not None:
                items = marks["replies"].split("|")
                content = items[i % len(items)]
            message: dict = {"role": "assistant", "content": content}
            if "think" in marks:
                message["content"] = f"<think>thinking {i}</think>{content}"
            if "rc" in marks:
                message["reasoning_content"] = f"reasoning {i}"
            finish = "length" if "length" in marks else "stop"
            choices.append({"index": i, "message": message, "finish_reason": finish, "logprobs": None})
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in request.get("messages", []))
        return {"id": f"cmpl-{time.monotonic_ns()}", "object": "chat.completion", "created": int(time.time()),
                "model": request.get("model", "mock"), "choices": choices,
                "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": 5 * n,
                          "total_tokens": prompt_tokens + 5 * n}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--faults", default="", help="random faults, e.g. 429=0.12,500=0.06,drop=0.04,slow=0.05,length=0.05")
    parser.add_argument("--slow-seconds", type=float, default=2.0)
    parser.add_argument("--retry-after", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    faults = {k: float(v) for k, _, v in (item.partition("=") for item in args.faults.split(",") if item)}
    server = MockServer(latency=args.latency, retry_after=args.retry_after, faults=faults,
                        slow_seconds=args.slow_seconds, seed=args.seed)

    async def run() -> None:
        await server.serve(args.port)
        print(f"listening on {server.url}", flush=True)
        await asyncio.Event().wait()

    asyncio.run(run())


if __name__ == "__main__":
    main()

"""A fake of OpenAI's files and batches endpoints on loopback, for the openai-batch backend's tests.

`POST /v1/files` (multipart, purpose batch), `GET /v1/files/{id}/content`, `POST /v1/batches`,
`GET /v1/batches/{id}`, `GET /v1/batches` (newest first, cursor pages). Each line of a batch is answered
by `tests.mock_server.MockServer`'s scripted chat endpoint, so its markers work per line: `[400]` makes an
error-file line, `[500:K]` a 5xx line the first K times, `[reply:X]` the content. A batch moves one step
per poll: validating, then in_progress answering `lines_per_poll` lines a poll, then completed with output
and error files. Scripts: `expire_batches` = the first K batches expire after answering half their lines
(the rest get `batch_expired` error lines); `fail_batches` = the first K batches fail at validation (a
queued-token limit); a line whose last message holds `[invalid]` fails its whole batch at validation, naming
that line; `fail_polls` = the first K polls of any batch get a 500; `hold` (an Event, set by default) keeps batches in progress while cleared. `creates` counts
`POST /v1/batches`. Run alone: `python -m tests.batch_server --port 8002`.
"""

from __future__ import annotations

import argparse
import itertools
import json
import threading
import time

from tests.mock_server import MockServer


class BatchServer:
    """The fake; `start()` serves it on 127.0.0.1 in a background thread and returns the base URL."""

    def __init__(self, lines_per_poll: int = 1000, expire_batches: int = 0, fail_batches: int = 0):
        self.lines_per_poll = lines_per_poll
        self.expire_batches = expire_batches
        self.fail_batches = fail_batches
        self.fail_polls = 0
        self.hold = threading.Event()
        self.hold.set()  # cleared: batches stay in progress
        self.chat = MockServer()
        self.files: dict[str, bytes] = {}
        self.batches: dict[str, dict] = {}
        self.answers: dict[str, list[dict]] = {}  # batch id -> output or error lines so far
        self.creates = 0
        self.lines_seen = 0  # request lines answered, over all batches
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._thread = None

    def start(self) -> str:
        from llm.serve import ServerThread

        self._thread = ServerThread(self.app())
        return self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._thread.stop()

    def app(self):
        from starlette.applications import Starlette
        from starlette.responses import JSONResponse, Response
        from starlette.routing import Route

        async def upload(request):
            form = await request.form()
            data = await form["file"].read()
            fid = self._new("file")
            self.files[fid] = data
            return JSONResponse({"id": fid, "object": "file", "bytes": len(data), "created_at": int(time.time()),
                                 "filename": form["file"].filename, "purpose": form["purpose"],
                                 "status": "processed"})

        async def content(request):
            fid = request.path_params["fid"]
            if fid not in self.files:
                return JSONResponse({"error": {"message": f"no file {fid}"}}, 404)
            return Response(self.files[fid], media_type="application/octet-stream")

        async def create(request):
            body = await request.json()
            if body.get("input_file_id") not in self.files:
                return JSONResponse({"error": {"message": "no such input file"}}, 400)
            lines = [json.loads(x) for x in self.files[body["input_file_id"]].decode().splitlines() if x.strip()]
            bid = self._new("batch")
            self.creates += 1
            self.batches[bid] = {"id": bid, "object": "batch", "endpoint": body["endpoint"], "errors": None,
                                 "input_file_id": body["input_file_id"], "completion_window": body["completion_window"],
                                 "status": "validating", "output_file_id": None, "error_file_id": None,
                                 "created_at": int(time.time()), "request_counts": {"total": len(lines), "completed": 0,
                                                                                    "failed": 0},
                                 "expire": self.creates <= self.expire_batches,
                                 "fail": self.creates <= self.fail_batches, "_lines": lines}
            self.answers[bid] = []
            return JSONResponse(_public(self.batches[bid]))

        async def retrieve(request):
            batch = self.batches.get(request.path_params["bid"])
            if self.fail_polls > 0:
                self.fail_polls -= 1
                return JSONResponse({"error": {"message": "scripted poll failure"}}, 500)
            if batch is None:
                return JSONResponse({"error": {"message": "no such batch"}}, 404)
            await self._advance(batch)
            return JSONResponse(_public(batch))

        async def listing(request):
            ordered = sorted(self.batches.values(), key=lambda b: b["id"], reverse=True)
            after = request.query_params.get("after")
            if after:
                ordered = [b for b in ordered if b["id"] < after]
            limit = int(request.query_params.get("limit", 20))
            page = [_public(b) for b in ordered[:limit]]
            return JSONResponse({"object": "list", "data": page, "has_more": len(ordered) > limit,
                                 "first_id": page[0]["id"] if page else None,
                                 "last_id": page[-1]["id"] if page else None})

        return Starlette(routes=[Route("/v1/files", upload, methods=["POST"]),
                                 Route("/v1/files/{fid}/content", content),
                                 Route("/v1/batches", create, methods=["POST"]),
                                 Route("/v1/batches", listing),
                                 Route("/v1/batches/{bid}", retrieve)])

    def _new(self, kind: str) -> str:
        with self._lock:
            return f"{kind}-{next(self._ids):06d}"

    async def _advance(self, batch: dict) -> None:
        """One step of a batch's life per poll (see the module docstring)."""
        if batch["status"] == "validating":
            invalid = [{"code": "invalid_request", "message": "scripted invalid line", "line": j, "param": None}
                       for j, line in enumerate(batch["_lines"], 1)
                       if "[invalid]" in line["body"]["messages"][-1]["content"]]
            if batch["fail"] and not invalid:
                invalid = [{"code": "token_limit_exceeded", "message": "enqueued token limit reached", "line": None,
                            "param": None}]
            batch["status"] = "failed" if invalid else "in_progress"
            batch["errors"] = {"object": "list", "data": invalid} if invalid else None
            return
        if batch["status"] != "in_progress" or not self.hold.is_set():
            return
        lines, answers = batch["_lines"], self.answers[batch["id"]]
        stop = len(lines) // 2 if batch["expire"] else len(lines)
        for line in lines[len(answers):min(stop, len(answers) + self.lines_per_poll)]:
            answers.append(await self._answer(line))
        counts = batch["request_counts"]
        counts["completed"] = sum(1 for a in answers if a["error"] is None and a["response"]["status_code"] == 200)
        counts["failed"] = len(answers) - counts["completed"]
        if len(answers) < stop:
            return
        for line in lines[len(answers):]:  # expired before they ran
            answers.append({"id": self._new("req"), "custom_id": line["custom_id"], "response": None,
                            "error": {"code": "batch_expired", "message": "not run before the window ended"}})
        ok = [a for a in answers if a["error"] is None and a["response"]["status_code"] == 200]
        bad = [a for a in answers if a not in ok]
        batch["output_file_id"] = self._store(ok)
        batch["error_file_id"] = self._store(bad)
        batch["status"] = "expired" if batch["expire"] else "completed"

    async def _answer(self, line: dict) -> dict:
        self.lines_seen += 1
        reply = await self.chat._handle("POST", line["url"], json.dumps(line["body"]).encode())
        status, payload = (500, {"error": {"message": "dropped"}}) if reply is None else reply[:2]
        for choice in payload.get("choices", []):  # per-choice counts, as `wb serve` gives them
            choice["usage"] = {"completion_tokens": payload["usage"]["completion_tokens"] // len(payload["choices"])}
        return {"id": self._new("req"), "custom_id": line["custom_id"],
                "response": {"status_code": status, "request_id": self._new("rq"), "body": payload}, "error": None}

    def _store(self, lines: list[dict]) -> str | None:
        if not lines:
            return None
        fid = self._new("file")
        self.files[fid] = "".join(json.dumps(x) + "\n" for x in lines).encode()
        return fid


def _public(batch: dict) -> dict:
    return {k: v for k, v in batch.items() if not k.startswith("_") and k not in ("expire", "fail")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8002)
    parser.add_argument("--lines-per-poll", type=int, default=1000)
    args = parser.parse_args()
    from llm.serve import ServerThread

    server = BatchServer(args.lines_per_poll)
    thread = ServerThread(server.app(), port=args.port)
    print(f"listening on {thread.start()}", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()

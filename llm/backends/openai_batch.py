"""The provider batch API as a backend (`--backend openai-batch`): the online path's units at batch prices.

Concurrent `chat` calls are gathered into batch input files (JSONL, one `/v1/chat/completions` request per
line, the body the online backend sends), cut under the provider's limits (`--batch-max-requests`,
`--batch-max-bytes`), uploaded (`POST /v1/files`, purpose batch) and submitted (`POST /v1/batches`, 24 h
window). Each batch is polled (`GET /v1/batches/{id}`, a progress line whenever its status or counts
change), then its output and error files are read (`GET /v1/files/{id}/content`) and every caller gets its
own `Completion`, so the runner records it in the ledger, and verification sees it, exactly as an online
reply. A request a batch did not answer (expired, cancelled, a failed batch, a 429/5xx line) is resubmitted
alone in a new batch, up to `--max-attempts` submissions; any other error line (a 4xx) fails its unit.

Resume: a batch is written to the run's ledger database (`batch_files`, `batch_requests`) when its file is
uploaded and again right after the batch is created, before anything else. A re-run adopts each pending
request of a recorded batch whose body is the same (the body's hash is part of its custom id) and polls that
batch, so a killed run never submits the same request twice; a file uploaded by a run killed before the
batch was created is looked up in `GET /v1/batches` by its input file id before a batch is created for it.
`vllm run-batch -i input.jsonl -o output.jsonl --model M` reads the same input format (README).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import sqlite3
import sys
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from llm.backends.base import Completion, PermanentError, SamplingParams, TransientError
from llm.backends.openai_http import OpenAIBackend, _completion, chat_body
from llm.generator import RetryPolicy
from llm.ledger import transaction

ENDPOINT = "/v1/chat/completions"
WINDOW = "24h"
TERMINAL = ("completed", "expired", "cancelled", "failed")
GATHER_SECONDS = 0.5  # a batch is cut once no request joined it for this long (or once it is full)
LIST_PAGES = 10  # pages of `GET /v1/batches` searched for a batch created by a killed run

_SCHEMA = """
CREATE TABLE IF NOT EXISTS batch_files (key TEXT NOT NULL, file_id TEXT PRIMARY KEY, batch_id TEXT, status TEXT,
  requests INTEGER);
CREATE TABLE IF NOT EXISTS batch_requests (file_id TEXT NOT NULL, custom_id TEXT NOT NULL, digest TEXT NOT NULL,
  pending INTEGER NOT NULL, PRIMARY KEY (file_id, custom_id));
"""


@dataclass(frozen=True)
class BatchLimits:
    """How the openai-batch backend cuts requests into batches and watches them (the `--batch-*` options)."""

    max_requests: int = 50_000  # per batch (OpenAI's limit)
    max_bytes: int = 200_000_000  # per input file (OpenAI's limit: 200 MB)
    inflight: int = 100_000  # requests held in submitted batches at once
    poll_seconds: float = 30.0
    max_submissions: int = 8  # times one request is submitted before it fails; also attempts per API call
    retry_base: float = 1.0  # backoff of a failed API call (upload, create, poll): --retry-base, doubling...
    retry_max: float = 60.0  # ...up to --retry-max, as the online path retries a request


class BatchStore:
    """The batches of one run key, in the ledger's database; every write is committed before it returns."""

    def __init__(self, conn: sqlite3.Connection, key: str):
        self.conn, self.key = conn, key
        conn.executescript(_SCHEMA)

    def _transaction(self):
        return transaction(self.conn)

    def uploaded(self, file_id: str, requests: list[tuple[str, str]]) -> None:
        """Record an uploaded input file and its (custom id, body digest) lines, before its batch is created."""
        with self._transaction():
            self.conn.execute("INSERT OR REPLACE INTO batch_files VALUES (?,?,?,?,?)",
                              (self.key, file_id, None, "uploaded", len(requests)))
            self.conn.executemany("INSERT OR REPLACE INTO batch_requests VALUES (?,?,?,1)",
                                  [(file_id, c, d) for c, d in requests])

    def created(self, file_id: str, batch_id: str) -> None:
        self.conn.execute("UPDATE batch_files SET batch_id=?, status='submitted' WHERE file_id=?", (batch_id, file_id))

    def status(self, file_id: str, status: str) -> None:
        self.conn.execute("UPDATE batch_files SET status=? WHERE file_id=?", (status, file_id))

    def settle(self, lines: list[tuple[str, str]]) -> None:
        """Mark (file id, custom id) lines answered or given up: a re-run neither adopts nor polls them."""
        if lines:
            with self._transaction():
                self.conn.executemany("UPDATE batch_requests SET pending=0 WHERE file_id=? AND custom_id=?", lines)

    def open_files(self) -> list[tuple[str, str | None, list[tuple[str, str]]]]:
        """(file id, batch id or None, pending (custom id, digest) lines) of every file with lines pending."""
        rows = self.conn.execute(
            "SELECT f.file_id, f.batch_id, r.custom_id, r.digest FROM batch_files f JOIN batch_requests r "
            "ON r.file_id = f.file_id WHERE f.key=? AND r.pending=1 ORDER BY f.rowid, r.rowid", (self.key,))
        files: dict[str, tuple[str | None, list[tuple[str, str]]]] = {}
        for file_id, batch_id, custom_id, digest in rows:
            files.setdefault(file_id, (batch_id, []))[1].append((custom_id, digest))
        return [(f, b, lines) for f, (b, lines) in files.items()]

    def batches(self) -> list[dict]:
        """Every batch of this key: file id, batch id, status, requests (what `wb` shows and tests read)."""
        rows = self.conn.execute("SELECT file_id, batch_id, status, requests FROM batch_files WHERE key=? "
                                 "ORDER BY rowid", (self.key,))
        return [dict(zip(("file_id", "batch_id", "status", "requests"), r, strict=True)) for r in rows]


class _Request:
    """One chat request on its way through batches; `future` resolves to a `Completion` or an error string.
    `body` is None for a line a killed run submitted that no caller has asked for again yet."""

    __slots__ = ("body", "custom_id", "digest", "file_id", "future", "size", "submissions")

    def __init__(self, digest: str, body: str | None, custom_id: str | None = None, file_id: str | None = None):
        self.digest, self.body, self.custom_id, self.file_id = digest, body, custom_id, file_id
        self.submissions = 0 if custom_id is None else 1
        self.size = 0  # bytes of its line in the input file
        self.future: asyncio.Future = asyncio.get_running_loop().create_future()

    def line(self) -> str:
        return f'{{"custom_id":{json.dumps(self.custom_id)},"method":"POST","url":"{ENDPOINT}","body":{self.body}}}\n'


class OpenAIBatchBackend(OpenAIBackend):
    """One provider's batch API; `attach_ledger` (the runner calls it) makes its batches survive a kill."""

    native_n = True
    usage_category = "batch"  # the ledger's category of its tokens (priced at --batch-discount)

    def __init__(self, base_url: str, model: str, api_key: str | None = None, timeout: float = 1800.0,
                 limits: BatchLimits | None = None):
        super().__init__(base_url, model, api_key, timeout, max_connections=16)
        self.name = f"batch:{base_url}"
        self.limits = limits or BatchLimits()
        self.store: BatchStore | None = None
        self.created = 0  # batches this process created
        self.states: dict[str, str] = {}  # batch id -> last status seen, for progress
        self._forming: list[_Request] = []
        self._forming_bytes = 0
        self._last_join = 0.0
        self._adoptable: dict[str, deque[_Request]] = {}
        self._tasks: set[asyncio.Task] = set()
        self._gatherer: asyncio.Task | None = None
        self._shown: dict[str, tuple] = {}
        self._seq = 0
        self._rng = random.Random(0)  # backoff jitter
        self._on_change: Callable[[], None] | None = None

    def attach_ledger(self, ledger, on_change: Callable[[], None] | None = None) -> None:
        """Keep this run's batches in `ledger`'s database, and resume (poll) those a killed run left pending;
        `on_change` is called whenever a batch's status or counts change (the run's progress.json)."""
        if self.store is not None:
            return
        self._on_change = on_change
        self.store = BatchStore(ledger.conn, f"{ledger.key}|{self.model}")  # a judge's batches apart from the model's
        for file_id, batch_id, lines in self.store.open_files():
            requests = [_Request(digest, None, custom_id, file_id) for custom_id, digest in lines]
            for r in requests:
                self._adoptable.setdefault(r.digest, deque()).append(r)
            self._spawn(self._follow(file_id, batch_id, requests, resumed=True))

    def batch_counts(self) -> dict[str, int]:
        """Batches of this process by last status seen (validating, in_progress, completed, ...)."""
        counts: dict[str, int] = {}
        for status in self.states.values():
            counts[status] = counts.get(status, 0) + 1
        return counts

    async def chat(self, messages: list[dict], n: int, params: SamplingParams) -> Completion:
        body = json.dumps(chat_body(self.model, messages, n, params), sort_keys=True, separators=(",", ":"),
                          ensure_ascii=False)
        digest = hashlib.sha256(body.encode()).hexdigest()[:24]
        request = self._adopt(digest, body)
        if request is None:
            request = _Request(digest, body)
            self._join(request)
        result = await request.future
        if isinstance(result, str):
            raise PermanentError(result)
        return self._counted(result)

    def _adopt(self, digest: str, body: str) -> _Request | None:
        """A pending line of a recorded batch with this body, now wanted by a caller (None: submit anew)."""
        queue = self._adoptable.get(digest)
        if not queue:
            return None
        request = queue.popleft()
        request.body = body
        if request.future.done() and self.store is not None:  # its batch was read before anyone asked for it
            self.store.settle([(request.file_id, request.custom_id)])
        return request

    def _join(self, request: _Request) -> None:
        """Queue a request for the next batch (the gatherer cuts batches once requests stop arriving)."""
        self._seq += 1
        request.custom_id = f"{request.digest}-{self._seq}"  # unique in its file; the digest finds it on resume
        request.size = len(request.line().encode())
        if request.size > self.limits.max_bytes:
            _resolve(request, f"the request is {request.size:,} bytes as a batch line, over --batch-max-bytes "
                              f"{self.limits.max_bytes:,}")
            return
        self._forming.append(request)
        self._forming_bytes += request.size
        self._last_join = asyncio.get_running_loop().time()
        if self._gatherer is None or self._gatherer.done():
            self._gatherer = asyncio.create_task(self._gather())

    async def _gather(self) -> None:
        loop = asyncio.get_running_loop()
        pause = min(GATHER_SECONDS, self.limits.poll_seconds)
        while self._forming:
            wait = self._last_join + pause - loop.time()
            full = len(self._forming) >= self.limits.max_requests or self._forming_bytes >= self.limits.max_bytes
            if wait > 0 and not full:
                await asyncio.sleep(wait)
                continue
            self._spawn(self._submit(self._cut()))

    def _cut(self) -> list[_Request]:
        """The longest run of queued requests (at least one) under the request and byte limits."""
        count, size = 0, 0
        for r in self._forming:
            if count and (count >= self.limits.max_requests or size + r.size > self.limits.max_bytes):
                break
            count, size = count + 1, size + r.size
        chunk, self._forming = self._forming[:count], self._forming[count:]
        self._forming_bytes -= size
        return chunk

    async def _submit(self, requests: list[_Request]) -> None:
        for r in requests:
            r.submissions += 1
        data = "".join(r.line() for r in requests).encode()
        try:
            file = await self._api(lambda: self.client.files.create(file=("wb-batch.jsonl", data), purpose="batch"))
        except (TransientError, PermanentError) as exc:
            for r in requests:
                _resolve(r, f"uploading a batch input file failed: {exc}")
            return
        for r in requests:
            r.file_id = file.id
        if self.store is not None:
            self.store.uploaded(file.id, [(r.custom_id, r.digest) for r in requests])
        await self._follow(file.id, None, requests, resumed=False)

    async def _follow(self, file_id: str, batch_id: str | None, requests: list[_Request], resumed: bool) -> None:
        """Create the batch of an uploaded file (unless it exists), poll it to its end, hand out its results."""
        try:
            if batch_id is None:
                batch = await self._find(file_id) if resumed else None
                if batch is None:
                    batch = await self._api(lambda: self.client.batches.create(
                        input_file_id=file_id, endpoint=ENDPOINT, completion_window=WINDOW))
                    self.created += 1
                if self.store is not None:
                    self.store.created(file_id, batch.id)  # first, so a kill from here on resumes this batch
                batch_id = batch.id
                self._print(f"batch {batch_id}: submitted, {len(requests):,} request(s) (input file {file_id})")
            else:
                batch = await self._api(lambda: self.client.batches.retrieve(batch_id))
            self._show(batch)
            while batch.status not in TERMINAL:
                await asyncio.sleep(self.limits.poll_seconds)
                batch = await self._api(lambda: self.client.batches.retrieve(batch_id))
                self._show(batch)
            results: dict[str, dict] = {}
            for fid in (batch.output_file_id, batch.error_file_id):
                if fid:
                    content = await self._api(lambda fid=fid: self.client.files.content(fid))
                    results.update(_read_results(content.text))
        except PermanentError as exc:  # e.g. a batch the provider no longer knows: these lines start over
            self._fail(requests, f"batch {batch_id or file_id}: {exc}", settle=True)
            return
        except Exception as exc:  # noqa: BLE001 - transient after retries, or a bug: a re-run polls again
            self._fail(requests, f"batch {batch_id or file_id}: {type(exc).__name__}: {exc}", settle=False)
            return
        self._settle(file_id, batch, requests, results)

    async def _find(self, file_id: str):
        """The batch a killed run created from `file_id` before recording it, or None."""
        page = await self._api(lambda: self.client.batches.list(limit=100))
        for _ in range(LIST_PAGES):
            for batch in page.data:
                if batch.input_file_id == file_id:
                    return batch
            if not page.has_next_page():
                return None
            page = await self._api(page.get_next_page)
        return None

    def _settle(self, file_id: str, batch, requests: list[_Request], results: dict[str, dict]) -> None:
        """Hand every request its reply or error, and queue the ones the batch did not answer again."""
        refused = {e.line: e.message for e in (batch.errors.data or [] if batch.errors else []) if e.line}
        settled, again = [], []
        for index, r in enumerate(requests, 1):
            outcome, retry = _outcome(batch, results.get(r.custom_id), refused.get(index))
            if r.body is None:  # a killed run's line nobody asked for again: keep a reply for a later caller
                if outcome is not None:
                    _resolve(r, outcome)
                    if isinstance(outcome, Completion):
                        continue
                self._adoptable[r.digest].remove(r)
                settled.append((r.file_id, r.custom_id))
                continue
            settled.append((r.file_id, r.custom_id))
            if outcome is None:
                if r.submissions < self.limits.max_submissions:
                    again.append(r)
                    continue
                outcome = f"{retry} (gave up after {r.submissions} batches)"
            _resolve(r, outcome)
        if self.store is not None:
            self.store.settle(settled)
            self.store.status(file_id, batch.status)
        if batch.status == "failed" and again:  # refused whole (e.g. the provider's queued-token limit): back off
            delay = min(3600.0, self.limits.poll_seconds * 2 ** (max(r.submissions for r in again) - 1))
            self._spawn(self._rejoin(again, delay))
        else:
            for r in again:
                self._join(r)

    async def _rejoin(self, requests: list[_Request], delay: float) -> None:
        await asyncio.sleep(delay)
        for r in requests:
            self._join(r)

    def _fail(self, requests: list[_Request], message: str, settle: bool) -> None:
        for r in requests:
            _resolve(r, message)
        if settle and self.store is not None:
            self.store.settle([(r.file_id, r.custom_id) for r in requests])
            for r in requests:
                if r.body is None:
                    self._adoptable[r.digest].remove(r)

    async def _api(self, make: Callable[[], Awaitable]):
        """`await make()` through the online backend's error mapping, retrying transient errors with the run's
        backoff (`--max-attempts`, `--retry-base`, `--retry-max`: about 2 minutes of outage by default);
        raises the last `TransientError` or a `PermanentError`."""
        policy = RetryPolicy(self.limits.max_submissions, self.limits.retry_base, self.limits.retry_max)
        attempt = 0
        while True:
            attempt += 1
            try:
                return await self._call(make())
            except TransientError as exc:
                if attempt >= policy.max_attempts:
                    raise
                await asyncio.sleep(exc.retry_after or policy.delay(attempt, self._rng))

    def _show(self, batch) -> None:
        """A progress line per batch whenever its status or counts change."""
        counts = batch.request_counts
        done, failed, total = (counts.completed, counts.failed, counts.total) if counts else (0, 0, 0)
        state = (batch.status, done, failed, total)
        self.states[batch.id] = batch.status
        if self._shown.get(batch.id) != state:
            self._shown[batch.id] = state
            self._print(f"batch {batch.id}: {batch.status}, {done:,}/{total:,} completed, {failed:,} failed")
            if self._on_change is not None:
                self._on_change()

    def _print(self, line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    def _spawn(self, coro) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def aclose(self) -> None:
        tasks = [*self._tasks, *([self._gatherer] if self._gatherer else [])]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await super().aclose()


def _resolve(request: _Request, outcome: Completion | str) -> None:
    if not request.future.done():  # a caller cancelled (SIGTERM) leaves its future cancelled
        request.future.set_result(outcome)


def _read_results(text: str) -> dict[str, dict]:
    """custom id -> result line of a batch output or error file (JSONL); unreadable lines are skipped (their
    requests count as unanswered and go out again)."""
    results = {}
    for line in text.splitlines():
        try:
            item = json.loads(line)
        except ValueError:
            continue
        if isinstance(item, dict) and isinstance(item.get("custom_id"), str):
            results[item["custom_id"]] = item
    return results


def _outcome(batch, result: dict | None, refused: str | None) -> tuple[Completion | str | None, str]:
    """(the caller's `Completion`, a permanent error, or None to resubmit; why it would be resubmitted) for one
    request of a finished `batch` from its result line (None: the batch never answered it)."""
    if refused is not None:
        return f"batch {batch.id} refused the request: {refused}", ""
    if result is None:
        return None, f"batch {batch.id} {batch.status} before answering"
    response = result.get("response") or {}
    status = response.get("status_code")
    body = response.get("body")
    if status == 200 and isinstance(body, dict):
        from openai.types.chat import ChatCompletion

        try:
            completion = _completion(ChatCompletion.model_validate(body))
        except ValueError as exc:
            return f"batch {batch.id}: a malformed reply ({str(exc).splitlines()[0]})", ""
        completion.extra["batch_id"] = batch.id
        return completion, ""
    error = result.get("error") or (body.get("error") if isinstance(body, dict) else None) or {}
    message = error.get("message") if isinstance(error, dict) else str(error)
    code = error.get("code") if isinstance(error, dict) else None
    why = f"{status or code}: {message or 'no message'}"
    if isinstance(status, int) and status < 500 and status not in (408, 409, 429):
        return why, ""  # a 4xx the same request gets again
    return None, why  # expired, cancelled, 429, 5xx: resubmitted alone

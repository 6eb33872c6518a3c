"""Weight updates for `wb serve --allow-weight-updates`: the seam between an RL trainer and its generator.

The trainer writes its weights to a file (`torch.save` of a state dict) and POSTs `{"path": ..., "version":
N}` to `/v1/weights`; the server loads them between decode steps once the requests already started have
finished (new requests wait meanwhile, so no completion mixes two versions) and stamps every chat completion with the version of the
weights that produced it (`weight_version` in the response). `GET /v1/weights` reports the version.
On GPU hosts the same role is played by SGLang's `/update_weights_from_disk` or TRL's `trl vllm-serve`
(NCCL broadcast); see trainers/RL.md.
"""

from __future__ import annotations

import threading
from pathlib import Path

LOAD_WAIT_SECONDS = 600.0  # at most this long a load waits for running jobs; then it loads anyway


class WeightError(ValueError):
    """A weight update the server cannot apply (bad body, missing file, keys or shapes that do not match)."""


class VersionedEngine:
    """Wraps a LocalEngine: the same `generate_batch` / `score`, plus `load(path, version)` and the version of
    the weights each completion came from (in `Completion.extra["weight_version"]`)."""

    def __init__(self, engine, version: int = 0):
        self.engine = engine
        self.version = version
        self._lock = threading.Condition()
        self._loading = 0  # loads waiting for the started jobs to finish
        self._open: set[int] = set()  # ids of jobs with samples admitted and not yet finished

    def __getattr__(self, name: str):
        return getattr(self.engine, name)

    def generate_batch(self, requests: list) -> list:
        with self._lock:
            version = self.version
            out = self.engine.generate_batch(requests)
        for completion in out:
            if not isinstance(completion, Exception):
                completion.extra["weight_version"] = version
        return out

    def accepts_new(self) -> bool:
        return not self._loading

    def admit(self, picks: list) -> None:
        with self._lock:
            for job, _ in picks:
                self._open.add(id(job))
            self.engine.admit(picks)

    def step(self) -> list:
        with self._lock:
            finished = self.engine.step()
            for job in finished:
                job.extra["weight_version"] = self.version
                self._open.discard(id(job))
            self._lock.notify_all()
        return finished

    def release(self, job) -> None:
        """A job dropped before it finished (cancelled) no longer holds a load back."""
        with self._lock:
            self._open.discard(id(job))
            self._lock.notify_all()

    def reset(self) -> None:
        with self._lock:
            self.engine.reset()
            self._open.clear()
            self._lock.notify_all()

    def score(self, ids: list[int]):
        with self._lock:
            return self.engine.score(ids)

    def load(self, path: str, version: int) -> None:
        """Load a state dict saved with `torch.save` into the model and set the version; WeightError when
        the file is missing or does not fit the model (the old weights stay in place)."""
        import torch

        if not Path(path).is_file():
            raise WeightError(f"{path}: no such weights file")
        try:
            state = torch.load(path, map_location=self.engine.device, weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any unreadable file is the caller's
            raise WeightError(f"{path}: cannot read a state dict ({type(exc).__name__}: {exc})") from None
        model = self.engine.model
        own = model.state_dict()
        if not isinstance(state, dict) or set(state) != set(own):
            missing = sorted(set(own) - set(state))[:3] if isinstance(state, dict) else []
            raise WeightError(f"{path}: the state dict does not match the served model (missing e.g. {missing})")
        bad = [k for k, v in state.items() if tuple(v.shape) != tuple(own[k].shape)]
        if bad:
            raise WeightError(f"{path}: shape mismatch for {bad[0]}: {tuple(state[bad[0]].shape)} vs "
                              f"{tuple(own[bad[0]].shape)}")
        with self._lock:
            self._loading += 1
            try:  # the started jobs finish on the old weights; new ones wait (bounded: they end by budget)
                self._lock.wait_for(lambda: not self._open, timeout=LOAD_WAIT_SECONDS)
                model.load_state_dict(state)
                self.version = version
            finally:
                self._loading -= 1


def parse_weight_request(body: object) -> tuple[str, int]:
    """(path, version) of a `/v1/weights` body; WeightError for anything else."""
    if not isinstance(body, dict):
        raise WeightError("the body must be a JSON object with `path` and `version`")
    path, version = body.get("path"), body.get("version")
    if not isinstance(path, str) or not path:
        raise WeightError("`path` must be the weights file the trainer wrote")
    if not isinstance(version, int) or isinstance(version, bool) or version < 0:
        raise WeightError("`version` must be a non-negative integer")
    return path, version


def weight_routes(engine: VersionedEngine) -> list:
    """Starlette routes: POST /v1/weights (load), GET /v1/weights (current version)."""
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def update(request: Request) -> JSONResponse:
        try:
            path, version = parse_weight_request(await request.json())
            await run_in_threadpool(engine.load, path, version)
        except ValueError as exc:  # WeightError, or a body that is not JSON
            message = str(exc) if isinstance(exc, WeightError) else "the body is not valid JSON"
            return JSONResponse({"error": {"message": message, "type": "invalid_request_error", "code": 400}},
                                status_code=400)
        return JSONResponse({"version": engine.version})

    async def current(request: Request) -> JSONResponse:
        return JSONResponse({"version": engine.version})

    return [Route("/v1/weights", update, methods=["POST"]), Route("/v1/weights", current, methods=["GET"])]

"""A bounded fuzz of `wb tinker serve`'s routes: every malformed request must end as a 4xx or a failed
future of category "user" whose message leaks no internals (no traceback, no server path), never a 5xx,
a "server" failure (the SDK retries those) or a hang. The service runs in-process over the tiny model.

Mutations: each field of a valid request of every route (nested fields too) replaced by each value of
BAD or removed, unparsable bodies per route, and broken forward_backward protobufs. About 700 requests;
the counts are printed (`pytest -s`).
"""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
from tinker import types
from tinker.proto import tinker_public_pb2 as pb
from tinker.proto.request_conv import forward_backward_request_to_proto

KEY = "tml-fuzz-key"
BAD = [None, "abc", -1, 2**40, 1.5, True, [], {}, [1, "x"], {"a": {"b": 1}}, "x" * 3000, float("nan")]
RAW_BODIES = [b"", b"[]", b"{", b"\xff\xfe", b'"text"', b"[" * 50000, b'{"a": 1e999}', b"null"]
MAX_POLLS = 20  # x poll_seconds (0.5 s): a future still pending after 10 s counts as a hang


@pytest.fixture(scope="module")
def app(tiny_model_dir, tmp_path_factory):
    import torch
    from starlette.testclient import TestClient

    from trainers.tinker_service.engine import Engine
    from trainers.tinker_service.metering import Meter
    from trainers.tinker_service.server import ServeConfig, Service, build_app

    torch.set_num_threads(1)
    run = tmp_path_factory.mktemp("fuzz")
    engine = Engine(str(tiny_model_dir), str(tiny_model_dir), run / "checkpoints", Meter())
    service = Service(ServeConfig(base_model=str(tiny_model_dir), api_key=[KEY], poll_seconds=0.5,
                                  max_request_mb=4), engine, Meter())
    with TestClient(build_app(service), raise_server_exceptions=False) as client:  # a crash is a 500, counted
        yield client, str(tiny_model_dir), run
    service.close()


class Tally:
    """What became of each bad input."""

    def __init__(self, run_dir: str):
        self.run_dir = run_dir
        self.counts = {"tried": 0, "clean": 0, "accepted": 0, "tracebacks": 0, "server": 0, "hangs": 0, "leaks": 0}
        self.examples: list[str] = []

    def bad(self, kind: str, what: str, detail: str) -> None:
        self.counts[kind] += 1
        if len(self.examples) < 10:
            self.examples.append(f"{kind}: {what}: {detail[:300]}")

    def check_message(self, what: str, message: str) -> bool:
        if ("Traceback" in message or 'File "' in message or self.run_dir in message or "site-packages" in message
                or len(message) > 500):  # a client's long value is echoed cut short, never whole
            self.bad("leaks", what, message)
            return False
        return True


def _post(client, path: str, content: bytes, content_type: str = "application/json"):
    return client.post("/api/v1/" + path, content=content,
                       headers={"X-API-Key": KEY, "Content-Type": content_type})


def _settle(client, tally: Tally, what: str, response) -> None:
    """Classify one answer, following a future handle to its end."""
    tally.counts["tried"] += 1
    if response.status_code >= 500:
        tally.bad("tracebacks", what, f"HTTP {response.status_code} {response.text}")
        return
    try:
        answer = response.json()
    except ValueError:
        tally.bad("leaks", what, f"not JSON: {response.text}")
        return
    if response.status_code >= 400:
        ok = isinstance(answer.get("error"), str) and answer["error"]
        if ok and tally.check_message(what, answer["error"]):
            tally.counts["clean"] += 1
        elif not ok:
            tally.bad("leaks", what, f"no error message: {answer}")
        return
    if "request_id" not in answer:
        tally.counts["accepted"] += 1
        return
    for _ in range(MAX_POLLS):
        result = client.post("/api/v1/retrieve_future", json={"request_id": answer["request_id"]},
                             headers={"X-API-Key": KEY})
        if result.status_code >= 500:
            tally.bad("tracebacks", what, result.text)
            return
        if "x-protobuf" in result.headers.get("content-type", ""):
            tally.counts["accepted"] += 1
            return
        body = result.json()
        if body.get("type") == "try_again":
            continue
        if "error" in body:
            if body.get("category") != "user":
                tally.bad("server", what, body["error"])
            elif tally.check_message(what, body["error"]):
                tally.counts["clean"] += 1
            return
        tally.counts["accepted"] += 1
        return
    tally.bad("hangs", what, "still pending")


def _result(client, handle: dict) -> dict:
    for _ in range(MAX_POLLS):
        body = client.post("/api/v1/retrieve_future", json=handle, headers={"X-API-Key": KEY}).json()
        if body.get("type") != "try_again":
            return body
    raise AssertionError(f"{handle} did not finish")


def _mutations(body: dict):
    """(description, mutated body): each field, and each field of a nested object, set to each BAD value
    or removed."""
    for key, value in body.items():
        for bad in BAD:
            yield f"{key}={bad!r:.30}", {**body, key: bad}
        yield f"no {key}", {k: v for k, v in body.items() if k != key}
        if isinstance(value, dict):
            for sub in value:
                for bad in BAD:
                    inner = copy.deepcopy(body)
                    inner[key][sub] = bad
                    yield f"{key}.{sub}={bad!r:.30}", inner


def _fb_bytes(model_id: str, tokens: list[int]) -> bytes:
    datum = types.Datum(model_input=types.ModelInput.from_ints(tokens),
                        loss_fn_inputs={"target_tokens": tokens[1:] + [1], "weights": [1.0] * len(tokens)})
    req = types.ForwardBackwardRequest(forward_backward_input=types.ForwardBackwardInput(
        data=[datum], loss_fn="cross_entropy"), model_id=model_id, seq_id=0)
    return forward_backward_request_to_proto(req).SerializeToString()


def _proto_mutations(valid: bytes):
    """(description, body, content-encoding): broken forward_backward requests."""
    import zstandard

    def edit(fn) -> bytes:
        msg = pb.ForwardBackwardRequest()
        msg.ParseFromString(valid)
        fn(msg)
        return msg.SerializeToString()

    def weights(msg):
        return msg.data[0].loss_fn_inputs["weights"]

    def sparse(shape, crow, col, values):
        def fn(msg):
            t = weights(msg)
            del t.shape[:]
            t.shape.extend(shape)
            t.sparse_csr.crow_indices = np.asarray(crow, np.int64).tobytes()
            t.sparse_csr.col_indices = np.asarray(col, np.int64).tobytes()
            t.sparse_csr.values = np.asarray(values, np.float32).tobytes()
        return fn

    def set_tokens(raw):
        return lambda msg: setattr(msg.data[0].model_input[0].encoded_text, "tokens", raw)

    def set_dense(shape=None, dense=None, dtype=None, name="weights"):
        def fn(msg):
            t = msg.data[0].loss_fn_inputs[name]
            if shape is not None:
                del t.shape[:]
                t.shape.extend(shape)
            if dense is not None:
                t.dense = dense
            if dtype is not None:
                t.dtype = dtype
        return fn

    yield "random bytes", b"\xff\x00\x13" * 20, None
    yield "truncated", valid[: len(valid) // 2], None
    yield "bad zstd", b"\x28\xb5\x2f\xfd" + b"\x00" * 30, "zstd"
    yield "gzip", valid, "gzip"
    comp = zstandard.ZstdCompressor().compressobj()
    yield "zstd bomb", b"".join(comp.compress(bytes(1 << 20)) for _ in range(16)) + comp.flush(), "zstd"
    yield "model_id abc", edit(lambda m: setattr(m, "model_id", "abc")), None
    yield "model_id empty", edit(lambda m: setattr(m, "model_id", "")), None
    yield "seq_id -5", edit(lambda m: setattr(m, "seq_id", -5)), None
    yield "loss_fn unknown", edit(lambda m: setattr(m, "loss_fn", "gspo")), None
    yield "loss_fn ppo without inputs", edit(lambda m: setattr(m, "loss_fn", "ppo")), None
    yield "clip text", edit(lambda m: m.loss_fn_config_v2["clip_low_threshold"].__setattr__("text", "abc")), None
    yield "no data", edit(lambda m: m.ClearField("data")), None
    yield "token bytes not x4", edit(set_tokens(b"\x01\x02\x03")), None
    yield "token id huge", edit(set_tokens(np.array([1, 2, 10**9], np.int32).tobytes())), None
    yield "token id negative", edit(set_tokens(np.array([1, -2, 3], np.int32).tobytes())), None
    yield "no tokens", edit(set_tokens(b"")), None
    yield "weights shape [5]", edit(set_dense(shape=[5])), None
    yield "weights shape [2, 2]", edit(set_dense(shape=[2, 2], dense=np.ones(4, np.float32).tobytes())), None
    yield "weights shape [3, 0]", edit(set_dense(shape=[3, 0], dense=b"")), None
    yield "weights 3 dims", edit(set_dense(shape=[1, 1, 3])), None
    yield "weights bytes not x4", edit(set_dense(dense=b"\x00" * 7)), None
    yield "weights dtype 9", edit(set_dense(dtype=9)), None
    yield "target_tokens float", edit(set_dense(name="target_tokens", dtype=pb.DTYPE_FLOAT32,
                                                dense=np.ones(3, np.float32).tobytes())), None
    yield "target_tokens nan", edit(set_dense(name="target_tokens", dtype=pb.DTYPE_FLOAT32,
                                              dense=np.full(3, np.nan, np.float32).tobytes())), None
    yield "target_tokens [3, 2] vs weights [3]", edit(set_dense(name="target_tokens", shape=[3, 2],
                                                                dense=np.ones(6, np.int64).tobytes())), None
    yield "no target_tokens", edit(lambda m: m.data[0].loss_fn_inputs.pop("target_tokens")), None
    yield "sparse [1, 2^40]", edit(sparse([1, 2**40], [0, 0], [], [])), None
    yield "sparse 3M rows", edit(sparse([3_000_000, 2], [0, 0], [], [])), None
    yield "sparse bad crow", edit(sparse([3, 2], [0, 5, 1, 1], [0], [1.0])), None
    yield "sparse col out of range", edit(sparse([3, 2], [0, 1, 1, 1], [7], [1.0])), None
    yield "sparse 1-D", edit(sparse([3], [0, 1], [0], [1.0])), None
    yield "sparse [3, 2] for weights of [3]", edit(sparse([3, 2], [0, 1, 1, 1], [0], [1.0])), None


def test_malformed_requests_get_clean_user_errors(app, capsys):
    client, model, run = app
    tally = Tally(str(run))

    def call(path, body):
        return client.post("/api/v1/" + path, json=body, headers={"X-API-Key": KEY})

    sid = call("create_session", {"tags": []}).json()["session_id"]
    handle = call("create_model", {"session_id": sid, "model_seq_id": 0, "base_model": model,
                                   "lora_config": {"rank": 2}})
    mid = _result(client, handle.json())["model_id"]
    path = _result(client, call("save_weights", {"model_id": mid, "path": "ck"}).json())["path"]
    sampler = call("create_sampling_session", {"session_id": sid, "sampling_session_seq_id": 0,
                                               "base_model": model}).json()["sampling_session_id"]
    rid = call("optim_step", {"model_id": mid}).json()["request_id"]  # a real future, for retrieve_future
    prompt = {"chunks": [{"type": "encoded_text", "tokens": [1, 2, 3]}]}
    valid = {
        "create_session": {"tags": [], "user_metadata": {}, "sdk_version": "0.38.0"},
        "session_heartbeat": {"session_id": sid},
        "create_model": {"session_id": sid, "model_seq_id": 1, "base_model": model,
                         "lora_config": {"rank": 2, "seed": 1, "train_mlp": True, "train_attn": True,
                                         "train_unembed": True},
                         "optimizer_config": {"type": "adamw"}},
        "get_info": {"model_id": mid},
        "optim_step": {"model_id": mid, "adam_params": {"learning_rate": 0.0, "beta1": 0.9, "beta2": 0.95,
                                                        "eps": 1e-12, "weight_decay": 0.0, "grad_clip_norm": 0.0}},
        "save_weights": {"model_id": mid, "path": "ck2", "overwrite": True},
        "save_weights_for_sampler": {"model_id": mid, "path": "sw", "sampling_session_seq_id": 3},
        "load_weights": {"model_id": mid, "path": path, "optimizer": True},
        "create_sampling_session": {"session_id": sid, "sampling_session_seq_id": 5, "base_model": model,
                                    "model_path": path},
        "asample": {"sampling_session_id": sampler, "seq_id": 1, "num_samples": 1, "prompt": prompt,
                    "sampling_params": {"max_tokens": 2, "seed": 1, "temperature": 1.0, "top_p": 1.0, "top_k": -1,
                                        "stop": ["x", 5]},
                    "prompt_logprobs": True, "prompt_logprobs_last_n": 1},
        "retrieve_future": {"request_id": rid},
        "client/config": {"sdk_version": "0.38.0"},
        "telemetry": {"events": []},
    }
    for route, body in valid.items():
        for what, mutated in _mutations(body):
            _settle(client, tally, f"{route} {what}", _post(client, route, json.dumps(mutated).encode()))
        for raw in RAW_BODIES:
            _settle(client, tally, f"{route} body {raw[:12]!r}", _post(client, route, raw))
        _settle(client, tally, f"{route} as text/plain", _post(client, route, json.dumps(body).encode(), "text/plain"))
    # ids of an owned session with a long tail: the engine's "unknown" message must not echo it whole
    for route in ("get_info", "optim_step", "save_weights"):
        body = {**valid[route], "model_id": f"{sid}:train:" + "9" * 3000}
        _settle(client, tally, f"{route} long model_id", _post(client, route, json.dumps(body).encode()))
    body = {**valid["asample"], "sampling_session_id": f"{sid}:sample:" + "9" * 3000}
    _settle(client, tally, "asample long sampler id", _post(client, "asample", json.dumps(body).encode()))
    # the prompt's chunks, one level further down than _mutations reaches
    for bad in BAD:
        chunk = {"type": "encoded_text", "tokens": bad}
        body = {**valid["asample"], "prompt": {"chunks": [chunk]}}
        _settle(client, tally, f"asample tokens={bad!r:.30}", _post(client, "asample", json.dumps(body).encode()))
        body = {**valid["asample"], "prompt": {"chunks": [bad]}}
        _settle(client, tally, f"asample chunk={bad!r:.30}", _post(client, "asample", json.dumps(body).encode()))
    valid_fb = _fb_bytes(mid, [1, 2, 3])
    for what, raw, encoding in _proto_mutations(valid_fb):
        headers = {"X-API-Key": KEY, "Content-Type": "application/x-protobuf",
                   **({"Content-Encoding": encoding} if encoding else {})}
        _settle(client, tally, f"forward_backward {what}", client.post("/api/v1/forward_backward", content=raw,
                                                                      headers=headers))
    # and after all that the service still trains
    fb = client.post("/api/v1/forward_backward", content=valid_fb,
                     headers={"X-API-Key": KEY, "Content-Type": "application/x-protobuf"}).json()
    poll = client.post("/api/v1/retrieve_future", json=fb, headers={"X-API-Key": KEY})
    for _ in range(MAX_POLLS):
        if "x-protobuf" in poll.headers.get("content-type", ""):
            break
        poll = client.post("/api/v1/retrieve_future", json=fb, headers={"X-API-Key": KEY})
    assert "x-protobuf" in poll.headers.get("content-type", "")
    c = tally.counts
    with capsys.disabled():
        print(f"\ntinker fuzz: {c['tried']} bad inputs tried, {c['clean']} clean errors, {c['accepted']} accepted "
              f"(valid after all), {c['tracebacks']} tracebacks (5xx), {c['server']} server-category failures, "
              f"{c['hangs']} hangs, {c['leaks']} leaking messages")
    assert (c["tracebacks"], c["server"], c["hangs"], c["leaks"]) == (0, 0, 0, 0), tally.examples
    assert c["tried"] > 600 and c["clean"] > 500

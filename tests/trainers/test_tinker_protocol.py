"""The Tinker service's parts without a model: wire formats against the SDK's own codecs, the scheduler's
seq_id order and fairness, the losses' formulas, prices, the meter, and the routes' handshake and errors."""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest
import torch
from tinker import types
from tinker.proto.request_conv import forward_backward_request_to_proto
from tinker.proto.response_conv import deserialize_forward_backward_output, deserialize_sample_response

from trainers.tinker_service.futures import FutureTable, Job, Scheduler
from trainers.tinker_service.losses import check_loss, per_token_loss
from trainers.tinker_service.metering import Meter, Prices, load_prices
from trainers.tinker_service.protocol import (
    RequestError,
    Sequence,
    decode_forward_backward,
    encode_forward_backward_output,
    encode_sample_response,
    parse_tinker_path,
)
from workbench.errors import InputError


def _request_bytes(compress: bool) -> tuple[bytes, str | None]:
    weights = torch.zeros(3, 4)
    weights[:, 0] = 1
    data = [types.Datum(model_input=types.ModelInput.from_ints([1, 2, 3]),
                        loss_fn_inputs={"target_tokens": [2, 3, 4], "weights": [1.0, 0.5, 0.0]}),
            types.Datum(model_input=types.ModelInput.from_ints([7, 8, 9]),
                        loss_fn_inputs={"target_tokens": types.TensorData.from_torch(torch.arange(12).view(3, 4)),
                                        "weights": types.TensorData.from_torch_sparse(weights)})]
    req = types.ForwardBackwardRequest(forward_backward_input=types.ForwardBackwardInput(
        data=data, loss_fn="ppo", loss_fn_config={"clip_low_threshold": 0.9}), model_id="s:train:0", seq_id=4)
    body = forward_backward_request_to_proto(req).SerializeToString()
    if not compress:
        return body, None
    import zstandard

    return zstandard.ZstdCompressor().compress(body), "zstd"


@pytest.mark.parametrize("compress", [False, True])
def test_forward_backward_request_decodes_what_the_sdk_encodes(compress):
    req = decode_forward_backward(*_request_bytes(compress))
    assert (req.model_id, req.seq_id, req.loss_fn, req.loss_fn_config) == ("s:train:0", 4, "ppo", {"clip_low_threshold": 0.9})
    assert req.num_tokens == 6 and req.data[0].tokens.tolist() == [1, 2, 3]
    np.testing.assert_array_equal(req.data[0].inputs["weights"], [1.0, 0.5, 0.0])
    assert req.data[1].inputs["target_tokens"].shape == (3, 4)
    dense = np.zeros((3, 4), np.float32)
    dense[:, 0] = 1
    np.testing.assert_array_equal(req.data[1].inputs["weights"], dense)  # CSR densified
    with pytest.raises(RequestError, match="not a ForwardBackwardRequest"):
        decode_forward_backward(b"\xff\xff\xff")
    with pytest.raises(RequestError, match="not valid zstd"):
        decode_forward_backward(b"plain", "zstd")


def test_results_decode_with_the_sdk():
    outputs = [{"logprobs": np.array([-1.0, -2.0], np.float32)}, {"logprobs": np.array([-3.0], np.float32)},
               {"logprobs": np.arange(6, dtype=np.float32).reshape(3, 2)}]
    out = deserialize_forward_backward_output(encode_forward_backward_output(outputs, {"loss:sum": 6.0}))
    assert out.metrics == {"loss:sum": 6.0}
    assert [o["logprobs"].to_numpy().tolist() for o in out.loss_fn_outputs] == [
        [-1.0, -2.0], [-3.0], [[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]]]
    sample = deserialize_sample_response(encode_sample_response(
        [Sequence([5, 6], [-0.5, -0.25], True), Sequence([7], [-1.0], False)], np.array([np.nan, -2.0], np.float32)))
    assert [(s.tokens, s.logprobs, s.stop_reason) for s in sample.sequences] == [
        ([5, 6], [-0.5, -0.25], "stop"), ([7], [-1.0], "length")]
    assert sample.prompt_logprobs == [None, -2.0]


def test_tinker_paths():
    assert parse_tinker_path("tinker://s1:train:0/weights/step-2") == ("s1:train:0", "weights", "step-2")
    for bad in ("tinker://x/other/n", "file:///x", "tinker://x/weights/../../etc", "tinker://x/weights/"):
        with pytest.raises(RequestError):
            parse_tinker_path(bad)


def _job(table, lane, seq, log):
    return Job(lane, seq, lambda: (log.append((lane, seq)) or {}, False), table.create(None))


def _drain(sched, table, jobs, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not all(j.future.done for j in jobs) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert all(j.future.done for j in jobs)


def test_scheduler_runs_each_lane_in_seq_order_and_lanes_in_turn():
    table, log = FutureTable(), []
    gate = threading.Event()
    sched = Scheduler(table)
    blocker = Job("x", None, lambda: (gate.wait(5), ({}, False))[1], table.create(None))
    sched.submit(blocker)  # hold the worker while everything else is queued
    jobs = [_job(table, "a", s, log) for s in (2, 3, 1)] + [_job(table, "b", s, log) for s in (1, 2, 3)]
    for j in jobs:
        sched.submit(j)
    dup = _job(table, "a", 3, log)
    sched.submit(dup)
    assert dup.future.done and "already used" in dup.future.error
    assert sched.stats()["out_of_order_accepted"] == 2  # a:2 and a:3 arrived before a:1
    gate.set()
    _drain(sched, table, jobs)
    assert [e for e in log if e[0] == "a"] == [("a", 1), ("a", 2), ("a", 3)]
    assert log == [("a", 1), ("b", 1), ("a", 2), ("b", 2), ("a", 3), ("b", 3)]  # round robin
    sched.stop()


def test_scheduler_skips_a_seq_id_that_never_comes_and_fails_a_crashing_job():
    table, log = FutureTable(), []
    sched = Scheduler(table, gap_timeout=0.2)
    late = _job(table, "a", 3, log)
    sched.submit(late)
    _drain(sched, table, [late])
    assert log == [("a", 3)]
    boom = Job("a", 4, lambda: 1 / 0, table.create(None))
    user = Job("a", 5, lambda: (_ for _ in ()).throw(RequestError("bad datum")), table.create(None))
    sched.submit(boom)
    sched.submit(user)
    _drain(sched, table, [boom, user])
    # a bug is a server failure whose message names the request, not the exception (that stays in the log)
    assert boom.future.category == "server" and "internal error in req-" in boom.future.error
    assert "ZeroDivision" not in boom.future.error
    assert (user.future.category, user.future.error) == ("user", "bad datum")
    sched.stop()


def test_losses_follow_their_formulas_and_gradients():
    logp = torch.tensor([-1.0, -2.0, -0.5], requires_grad=True)
    q = torch.tensor([-1.5, -1.0, -0.5])
    adv = torch.tensor([1.0, -2.0, 0.5])
    inputs = {"logprobs": q, "advantages": adv, "target_tokens": torch.tensor([1, 2, 3])}
    ratio = torch.exp(logp.detach() - q)
    ppo = per_token_loss("ppo", logp, inputs, {})
    expected = -torch.minimum(ratio * adv, ratio.clamp(0.8, 1.2) * adv)
    torch.testing.assert_close(ppo.detach(), expected)
    cispo = per_token_loss("cispo", logp, inputs, {"clip_high_threshold": 1.5})
    cispo.sum().backward()
    torch.testing.assert_close(logp.grad, -ratio.clamp(0.0, 1.5) * adv)  # the clipped ratio is a constant
    per_token = {"clip_low_threshold": torch.tensor([0.99, 0.99, 0.99]), **inputs}
    torch.testing.assert_close(per_token_loss("ppo", logp.detach(), per_token, {"clip_high_threshold": 1.01}),
                               -torch.minimum(ratio * adv, ratio.clamp(0.99, 1.01) * adv))
    ce = per_token_loss("cross_entropy", logp.detach(), {"weights": torch.tensor([1.0, 0.0, 2.0])}, {})
    torch.testing.assert_close(ce, torch.tensor([1.0, 0.0, 1.0]))
    with pytest.raises(RequestError, match="stable_reinforce.*server-side state"):
        check_loss("stable_reinforce", {}, [inputs])
    with pytest.raises(RequestError, match="dro needs loss_fn_config\\['beta'\\]"):
        check_loss("dro", {}, [inputs])


def test_prices_file_and_meter(tmp_path):
    good = tmp_path / "p.yaml"
    good.write_text("prefill: 1\nsample: 2.5\ntrain: 4\n")
    assert load_prices(str(good)) == Prices(1.0, 2.5, 4.0)
    for text, msg in [("train: -1\n", "non-negative"), ("cache: 1\n", "unknown key 'cache'"), ("- 1\n", "mapping"),
                      ("train: .inf\n", "non-negative"), (": :\n", "YAML")]:
        good.write_text(text)
        with pytest.raises(InputError, match=msg):
            load_prices(str(good))
    with pytest.raises(InputError, match="cannot read"):
        load_prices(str(tmp_path / "missing.yaml"))
    usage = tmp_path / "usage.json"
    meter = Meter(usage, Prices(1.0, 2.0, 3.0), token_budget=100)
    meter.record("s1", "m", trained=60)
    meter.record("s1", "samp", prefill=10, sampled=20)
    meter.flush()
    assert meter.totals().cost_usd == pytest.approx((10 * 1 + 20 * 2 + 60 * 3) / 1e6)
    meter.record("s1", "m", trained=15)
    with pytest.raises(RequestError, match="spent its token budget \\(105 of 100"):
        meter.check_budget("s1")
    meter.check_budget("s2")
    meter.flush()
    again = Meter(usage, None)  # a restarted server continues the counts
    assert again.report()["sessions"]["s1"]["models"]["m"]["trained_tokens"] == 75
    assert json.loads(usage.read_text())["usage"]["requests"] == 3


class _Engine:
    name, max_context, vocab, slots, samplers = "tiny", 64, 100, {}, {}

    def __init__(self):
        self.released = []

    def release_session(self, sid):
        self.released.append(sid)


def test_routes_handshake_auth_and_errors():
    from starlette.testclient import TestClient

    from trainers.tinker_service.server import ServeConfig, Service, build_app

    engine = _Engine()
    service = Service(ServeConfig(base_model="tiny", api_key=["tml-secret"], chunk_len=3, poll_seconds=0.1,
                                  session_timeout=1.0), engine, Meter())
    with TestClient(build_app(service)) as client:
        assert client.get("/api/v1/healthz").status_code == 401
        h = {"X-API-Key": "tml-secret"}
        config = client.post("/api/v1/client/config", json={"sdk_version": "0.38.0"}, headers=h).json()
        assert config["fwdbwd_max_chunk_len"] == 3 and config["pjwt_auth_enabled"] is False
        assert client.post("/api/v1/client/dynamic_config", json={}, headers=h).status_code == 404
        caps = client.get("/api/v1/get_server_capabilities", headers=h).json()["supported_models"]
        assert caps == [{"model_name": "tiny", "max_context_length": 64, "trainable": True, "sampleable": True}]
        sid = client.post("/api/v1/create_session", json={"tags": [], "sdk_version": "x"}, headers=h).json()["session_id"]
        assert client.post("/api/v1/session_heartbeat", json={"session_id": sid}, headers=h).status_code == 200
        assert client.post("/api/v1/session_heartbeat", json={"session_id": "nope"}, headers=h).status_code == 410
        proto = {**h, "Content-Type": "application/x-protobuf"}
        handle = client.post("/api/v1/forward_backward", content=b"\xff\xff", headers=proto).json()
        result = client.post("/api/v1/retrieve_future", json={"request_id": handle["request_id"]}, headers=h).json()
        assert result["category"] == "user" and "ForwardBackwardRequest" in result["error"]
        assert client.post("/api/v1/retrieve_future", json={"request_id": "req-x"}, headers=h).status_code == 404
        gate = threading.Event()
        slow = service.submit(service.caller("tml-secret"), None, "lane", None, lambda: (gate.wait(5), {"answer": 42})[1])
        poll = client.post("/api/v1/retrieve_future", json=slow, headers=h).json()
        assert poll["type"] == "try_again"  # pending after poll_seconds: the SDK polls again
        gate.set()
        assert client.post("/api/v1/retrieve_future", json=slow, headers=h).json() == {"answer": 42}
        assert client.post("/api/v1/create_sampling_session", json={"session_id": "nope"}, headers=h).status_code == 400
        assert client.post(f"/api/v1/sessions/{sid}/finish", json={}).status_code == 401  # every route checks the key
        assert client.get("/api/v1/samplers/x").status_code == 401
        client.post(f"/api/v1/sessions/{sid}/finish", json={}, headers=h)
        assert client.post("/api/v1/session_heartbeat", json={"session_id": sid}, headers=h).status_code == 410
        quiet = client.post("/api/v1/create_session", json={"tags": []}, headers=h).json()["session_id"]
        deadline = time.monotonic() + 10  # no heartbeat for session_timeout: ended, adapters freed
        while quiet not in engine.released and time.monotonic() < deadline:
            time.sleep(0.1)
        assert engine.released == [sid, quiet]
        assert client.post("/api/v1/session_heartbeat", json={"session_id": quiet}, headers=h).status_code == 410
    service.close()


def test_python_api_checks_options_before_loading_anything(tmp_path):
    from trainers import TinkerServeConfig, serve_tinker

    with pytest.raises(InputError, match="--base-model is required"):
        serve_tinker(TinkerServeConfig())
    with pytest.raises(InputError, match="--port 0: must be at least 1"):
        serve_tinker(TinkerServeConfig(base_model=str(tmp_path), port=0))
    with pytest.raises(InputError, match="--dtype 'fp8': must be one of"):
        serve_tinker(TinkerServeConfig(base_model=str(tmp_path), dtype="fp8"))
    assert not (tmp_path / "runs").exists()


def _raw_request(**tensor) -> bytes:
    """A ForwardBackwardRequest protobuf with one datum whose `weights` tensor has the given fields."""
    from tinker.proto import tinker_public_pb2 as pb

    msg = pb.ForwardBackwardRequest(model_id="s:train:0", seq_id=1, loss_fn="cross_entropy")
    datum = msg.data.add()
    datum.model_input.add().encoded_text.tokens = tensor.pop("tokens", np.arange(3, dtype=np.int32).tobytes())
    t = datum.loss_fn_inputs["weights"]
    t.dtype = tensor.pop("dtype", pb.DTYPE_FLOAT32)
    t.shape.extend(tensor.pop("shape", [3]))
    if "crow" in tensor:
        t.sparse_csr.crow_indices = np.asarray(tensor.pop("crow"), np.int64).tobytes()
        t.sparse_csr.col_indices = np.asarray(tensor.pop("col"), np.int64).tobytes()
        t.sparse_csr.values = np.asarray(tensor.pop("values"), np.float32).tobytes()
    else:
        t.dense = tensor.pop("dense", np.ones(3, np.float32).tobytes())
    return msg.SerializeToString()


def test_decoding_is_bounded_by_the_model_before_anything_is_allocated():
    import zstandard

    from trainers.tinker_service.protocol import Limits

    limits = Limits(max_bytes=1 << 20, max_rows=64, max_cols=100)  # a 64-token, 100-word model
    assert decode_forward_backward(_raw_request(), None, limits).data[0].inputs["weights"].tolist() == [1, 1, 1]
    # a zstd bomb: 32 MiB of zeros in a few KB; refused once the output passes 1 MiB
    comp = zstandard.ZstdCompressor().compressobj()
    bomb = b"".join(comp.compress(bytes(1 << 20)) for _ in range(32)) + comp.flush()
    assert len(bomb) < 64 << 10
    with pytest.raises(RequestError, match="expands past 1048576 bytes"):
        decode_forward_backward(bomb, "zstd", limits)
    with pytest.raises(RequestError, match="not valid zstd"):
        decode_forward_backward(b"\x28\xb5\x2f\xfd garbage", "zstd", limits)
    with pytest.raises(RequestError, match="Content-Encoding 'gzip' is not supported"):
        decode_forward_backward(_raw_request(), "gzip", limits)
    cases = [  # (tensor fields, the message naming what is wrong)
        ({"shape": [1, 2**40], "crow": [0, 0], "col": [], "values": []}, "declares 1099511627776 columns"),
        ({"shape": [3_000_000, 4], "crow": [0, 0], "col": [], "values": []}, "declares 3000000 rows"),
        ({"shape": [3, 4], "crow": [0, 1, 1], "col": [0], "values": [1.0]}, "crow_indices do not describe 3 rows"),
        ({"shape": [2, 4], "crow": [0, 1, 2], "col": [0, 9], "values": [1.0, 1.0]}, "col_indices must be 2 indices in \\[0, 4\\)"),
        ({"shape": [3], "crow": [0, 1], "col": [0], "values": [1.0]}, "sparse \\(CSR\\) but its shape \\[3\\] is not \\[T, K\\]"),
        ({"shape": [4]}, "has 3 values; its shape \\[4\\] needs 4"),
        ({"shape": [3, -1]}, "non-negative sizes"),
        ({"dense": b"\x00" * 5}, "has 5 bytes, not a multiple of 4"),
        ({"tokens": b"\x01\x02\x03"}, "model_input tokens has 3 bytes, not a multiple of 4"),
        ({"dtype": 9}, "unsupported dtype 9"),
    ]
    for fields, message in cases:
        with pytest.raises(RequestError, match=message):
            decode_forward_backward(_raw_request(**fields), None, limits)
    # sparse tensors may not expand past the byte budget in total: two 64 x 100 fp32 tensors need 51200 bytes
    small = Limits(max_bytes=40_000, max_rows=64, max_cols=100)
    with pytest.raises(RequestError, match="expands to 25600 bytes; the request may expand to 14400 more"):
        from tinker.proto import tinker_public_pb2 as pb

        msg = pb.ForwardBackwardRequest()
        msg.ParseFromString(_raw_request(shape=[64, 100], crow=[0] * 65, col=[], values=[]))
        msg.data[0].loss_fn_inputs["target_tokens"].CopyFrom(msg.data[0].loss_fn_inputs["weights"])
        decode_forward_backward(msg.SerializeToString(), None, small)
    with pytest.raises(RequestError, match="body has 50 bytes; at most 40 accepted"):
        decode_forward_backward(b"\x00" * 50, None, Limits(max_bytes=40))


def test_keys_map_to_tenants_and_a_key_is_generated_when_none_is_given(tmp_path):
    from trainers.tinker_service.server import Caller, ServeConfig, Service, load_keys

    keys, generated = load_keys(ServeConfig())
    (key, tenant), = keys.items()
    assert generated and tenant == "default" and key.startswith("tml-") and len(key) > 30
    assert load_keys(ServeConfig())[0] != keys  # a fresh secret each start
    keys_file = tmp_path / "keys.yaml"
    keys_file.write_text("tml-alice-key: alice\ntml-bob-key: bob\n")
    config = ServeConfig(api_key=["tml-first-key"], keys_file=str(keys_file), admin_key="tml-admin-key")
    assert load_keys(config) == ({"tml-first-key": "key1", "tml-alice-key": "alice", "tml-bob-key": "bob"}, False)
    service = Service(config, _Engine(), Meter())
    assert service.caller("tml-bob-key") == Caller("bob")
    assert service.caller("tml-admin-key") == Caller("admin", admin=True)
    assert service.caller("tml-bob-ke") is None and service.caller(None) is None and service.caller("") is None
    assert Caller("bob").may("bob") and not Caller("bob").may("alice") and Caller("admin", True).may("alice")
    service.close()
    for text, message in [("tml-alice-key: admin\n", "not 'admin'"), ("tml-alice-key: ../x\n", "tenant must be"),
                          ("short: alice\n", "entry 1: an API key must be"), ("- a\n", "mapping of API key"),
                          ("a: [\n", "not valid YAML")]:
        keys_file.write_text(text)
        with pytest.raises(InputError, match=message):
            load_keys(ServeConfig(keys_file=str(keys_file)))
    with pytest.raises(InputError, match="admin key must differ"):
        load_keys(ServeConfig(api_key=["tml-same-key"], admin_key="tml-same-key"))
    with pytest.raises(InputError, match="cannot read the keys file"):
        load_keys(ServeConfig(keys_file=str(tmp_path / "missing.yaml")))


def test_forward_backward_bodies_are_decoded_off_the_event_loop(monkeypatch):
    import asyncio

    from starlette.testclient import TestClient

    from trainers.tinker_service import server

    seen = []

    def decode(*args):
        try:
            asyncio.get_running_loop()
            seen.append("on the event loop")
        except RuntimeError:  # no loop in this thread: a worker thread
            seen.append("in a worker thread")
        return decode_forward_backward(*args)

    monkeypatch.setattr(server, "decode_forward_backward", decode)
    service = server.Service(server.ServeConfig(base_model="tiny", api_key=["tml-secret"]), _Engine(), Meter())
    with TestClient(server.build_app(service)) as client:
        handle = client.post("/api/v1/forward_backward", content=_raw_request(), headers={
            "X-API-Key": "tml-secret", "Content-Type": "application/x-protobuf"}).json()
        result = client.post("/api/v1/retrieve_future", json=handle, headers={"X-API-Key": "tml-secret"}).json()
    service.close()
    assert seen == ["in a worker thread"]
    assert result["category"] == "user" and "unknown model_id 's:train:0'" in result["error"]

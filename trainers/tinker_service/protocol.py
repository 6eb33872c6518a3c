"""Tinker's wire formats: the protobuf forward_backward request, the protobuf results, `tinker://` paths.

The SDK ships its generated protobuf module (`tinker.proto.tinker_public_pb2`); this module decodes
requests into plain Python/numpy values and encodes `ForwardBackwardOutput` and `SampleResponse`, the two
results the SDK accepts only as protobuf. Everything else on the wire is JSON.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

PROTO_CONTENT_TYPE = "application/x-protobuf"
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class RequestError(ValueError):
    """A request the user must fix; reported as a failed future with category `user`."""


def _pb():
    from trainers.tinker_service.sdk import require_sdk

    require_sdk()
    from tinker.proto import tinker_public_pb2

    return tinker_public_pb2


@dataclass
class Datum:
    """One training example: input tokens and the named per-token tensors the loss reads."""

    tokens: np.ndarray  # int64 [T]
    inputs: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class ForwardBackwardRequest:
    model_id: str
    seq_id: int
    loss_fn: str
    loss_fn_config: dict[str, float | str]
    forward_only: bool
    data: list[Datum]

    @property
    def num_tokens(self) -> int:
        return int(sum(d.tokens.size for d in self.data))


_NUMPY = {1: np.float32, 2: np.int64, 3: np.int32}


def _tensor(msg) -> np.ndarray:
    """A proto `Tensor` (dense or CSR) as a dense numpy array of its declared shape."""
    dtype = _NUMPY.get(msg.dtype)
    if dtype is None:
        raise RequestError(f"unsupported tensor dtype {msg.dtype} in loss_fn_inputs (float32 or int64 expected)")
    shape = list(msg.shape)
    if msg.WhichOneof("encoding") == "sparse_csr":
        csr = msg.sparse_csr
        values = np.frombuffer(csr.values, dtype=dtype)
        crow = np.frombuffer(csr.crow_indices, dtype=np.int64)
        col = np.frombuffer(csr.col_indices, dtype=np.int64)
        rows = len(crow) - 1
        cols = shape[1] if len(shape) == 2 else (int(col.max()) + 1 if col.size else 0)
        dense = np.zeros((rows, cols), dtype=dtype)
        for r in range(rows):
            dense[r, col[crow[r]:crow[r + 1]]] = values[crow[r]:crow[r + 1]]
        return dense.reshape(shape) if shape else dense.reshape(-1)
    arr = np.frombuffer(msg.dense, dtype=dtype).copy()
    return arr.reshape(shape) if shape else arr


def decode_forward_backward(body: bytes, content_encoding: str | None = None) -> ForwardBackwardRequest:
    """Parse a (possibly zstd-compressed) protobuf forward_backward body; raise RequestError if malformed."""
    if content_encoding == "zstd":
        import zstandard

        try:
            body = zstandard.ZstdDecompressor().decompress(body, max_output_size=1 << 31)
        except zstandard.ZstdError as exc:
            raise RequestError(f"forward_backward body is not valid zstd ({exc})") from None
    pb = _pb()
    msg = pb.ForwardBackwardRequest()
    try:
        msg.ParseFromString(body)
    except Exception as exc:  # noqa: BLE001 - protobuf raises its own DecodeError type
        raise RequestError(f"forward_backward body is not a ForwardBackwardRequest protobuf ({exc})") from None
    config: dict[str, float | str] = {k: float(v) for k, v in msg.loss_fn_config.items()}
    for k, v in msg.loss_fn_config_v2.items():
        config[k] = v.text if v.WhichOneof("value") == "text" else float(v.number)
    data = []
    for i, d in enumerate(msg.data):
        parts = []
        for chunk in d.model_input:
            kind = chunk.WhichOneof("chunk")
            if kind != "encoded_text":
                raise RequestError(f"datum {i}: only encoded_text chunks are supported (got {kind})")
            parts.append(np.frombuffer(chunk.encoded_text.tokens, dtype=np.int32))
        tokens = np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)
        inputs = {name: _tensor(t) for name, t in d.loss_fn_inputs.items()}
        data.append(Datum(tokens, inputs))
    return ForwardBackwardRequest(msg.model_id, int(msg.seq_id), msg.loss_fn, config, bool(msg.forward_only), data)


def encode_forward_backward_output(outputs: list[dict[str, np.ndarray]], metrics: dict[str, float]) -> bytes:
    """ForwardBackwardOutput protobuf: the datums' float32 outputs as ArrayRecords, one per run of datums
    whose outputs share trailing shapes (`[T]` outputs have none; `[T, K]` ones have `[K]`)."""
    pb = _pb()
    msg = pb.ForwardBackwardOutput()
    msg.loss_fn_output_type = "ArrayRecord"
    for k, v in metrics.items():
        msg.metrics[k] = float(v)
    runs: list[list[dict[str, np.ndarray]]] = []
    for out in outputs:
        trailing = {name: a.shape[1:] for name, a in out.items()}
        if not runs or {name: a.shape[1:] for name, a in runs[-1][0].items()} != trailing:
            runs.append([])
        runs[-1].append(out)
    for run in runs:
        record = msg.loss_fn_outputs.add()
        record.type_tag = "ArrayRecord"
        record.num_datums = len(run)
        for name in run[0]:
            arrays = [np.ascontiguousarray(o[name], dtype=np.float32) for o in run]
            offsets = np.concatenate([[0], np.cumsum([a.nbytes for a in arrays])]).astype(np.int64)
            bt = record.fields[name]
            bt.data = b"".join(a.tobytes() for a in arrays)
            bt.offsets = offsets.tobytes()
            bt.dtype = pb.DTYPE_FLOAT32
            bt.trailing_shape.extend(arrays[0].shape[1:])
    return msg.SerializeToString()


@dataclass
class Sequence:
    tokens: list[int]
    logprobs: list[float]
    stopped: bool  # True: a stop sequence or EOS ended it; False: max_tokens did


def encode_sample_response(sequences: list[Sequence], prompt_logprobs: np.ndarray | None) -> bytes:
    """SampleResponse protobuf; `prompt_logprobs` has NaN at positions not scored (always the first)."""
    pb = _pb()
    msg = pb.SampleResponse()
    for s in sequences:
        seq = msg.sequences.add()
        seq.stop_reason = pb.STOP_REASON_STOP if s.stopped else pb.STOP_REASON_LENGTH
        seq.tokens = np.asarray(s.tokens, dtype=np.int32).tobytes()
        seq.logprobs = np.asarray(s.logprobs, dtype=np.float32).tobytes()
    if prompt_logprobs is not None:
        msg.prompt_logprobs = np.asarray(prompt_logprobs, dtype=np.float32).tobytes()
    return msg.SerializeToString()


def prompt_tokens(model_input: dict) -> list[int]:
    """The token ids of a JSON ModelInput (`{"chunks": [{"type": "encoded_text", "tokens": [...]}]}`)."""
    if not isinstance(model_input, dict) or not isinstance(model_input.get("chunks"), list):
        raise RequestError("prompt must be a ModelInput with a `chunks` list")
    tokens: list[int] = []
    for chunk in model_input["chunks"]:
        if chunk.get("type", "encoded_text") != "encoded_text":
            raise RequestError(f"only encoded_text prompt chunks are supported (got {chunk.get('type')})")
        tokens.extend(int(t) for t in chunk.get("tokens", []))
    return tokens


def check_name(name: str, what: str) -> str:
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise RequestError(f"{what} {name!r} must be 1-128 letters, digits, '.', '_' or '-'")
    return name


def parse_tinker_path(path: str) -> tuple[str, str, str]:
    """`tinker://RUN/weights/NAME` or `tinker://RUN/sampler_weights/NAME` -> (run, kind, name)."""
    m = re.match(r"^tinker://([^/]+)/(weights|sampler_weights)/([^/]+)$", path or "")
    if not m:
        raise RequestError(f"{path!r} is not a checkpoint path (tinker://RUN/weights/NAME or "
                           "tinker://RUN/sampler_weights/NAME expected)")
    return m.group(1), m.group(2), check_name(m.group(3), "checkpoint name")

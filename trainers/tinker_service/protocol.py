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


@dataclass(frozen=True)
class Limits:
    """What a forward_backward body may declare, so a small body cannot make the server allocate a lot:
    `max_bytes` bounds the body after decompression and the dense bytes its sparse tensors expand to;
    `max_rows` (the model's context) and `max_cols` (its vocabulary) bound each tensor's dimensions."""

    max_bytes: int = 256 << 20
    max_rows: int = 1 << 20
    max_cols: int = 1 << 20


def _frombuffer(buf: bytes, dtype, what: str) -> np.ndarray:
    size = np.dtype(dtype).itemsize
    if len(buf) % size:
        raise RequestError(f"{what} has {len(buf)} bytes, not a multiple of {size} ({np.dtype(dtype).name})")
    return np.frombuffer(buf, dtype=dtype)


def _tensor(msg, what: str, limits: Limits, budget: list[int]) -> np.ndarray:
    """A proto `Tensor` (dense or CSR) as a dense numpy array of its declared shape. `budget[0]` is the
    dense bytes the request may still allocate for sparse tensors; it shrinks as they are expanded."""
    dtype = _NUMPY.get(msg.dtype)
    if dtype is None:
        raise RequestError(f"{what} has unsupported dtype {msg.dtype} (float32 or int64 expected)")
    shape = [int(n) for n in msg.shape]
    if len(shape) > 2 or any(n < 0 for n in shape):
        raise RequestError(f"{what} has shape {shape}; [T] or [T, K] with non-negative sizes expected")
    if shape and shape[0] > limits.max_rows:
        raise RequestError(f"{what} declares {shape[0]} rows; the model takes at most {limits.max_rows} positions")
    if len(shape) == 2 and shape[1] > limits.max_cols:
        raise RequestError(f"{what} declares {shape[1]} columns; at most {limits.max_cols} (the vocabulary) allowed")
    if msg.WhichOneof("encoding") == "sparse_csr":
        return _csr(msg.sparse_csr, dtype, shape, what, budget)
    arr = _frombuffer(msg.dense, dtype, what).copy()
    if shape and int(np.prod(shape)) != arr.size:
        raise RequestError(f"{what} has {arr.size} values; its shape {shape} needs {int(np.prod(shape))}")
    return arr.reshape(shape) if shape else arr


def _csr(csr, dtype, shape: list[int], what: str, budget: list[int]) -> np.ndarray:
    """Expand a CSR tensor, checking its indices against its declared 2-D shape before allocating."""
    if len(shape) != 2:
        raise RequestError(f"{what} is sparse (CSR) but its shape {shape} is not [T, K]")
    rows, cols = shape
    values = _frombuffer(csr.values, dtype, f"{what} values")
    crow = _frombuffer(csr.crow_indices, np.int64, f"{what} crow_indices")
    col = _frombuffer(csr.col_indices, np.int64, f"{what} col_indices")
    if crow.size != rows + 1 or crow[0] != 0 or np.any(np.diff(crow) < 0) or crow[-1] != values.size:
        raise RequestError(f"{what} crow_indices do not describe {rows} rows over {values.size} values")
    if col.size != values.size or (col.size and (col.min() < 0 or col.max() >= cols)):
        raise RequestError(f"{what} col_indices must be {values.size} indices in [0, {cols})")
    nbytes = rows * cols * np.dtype(dtype).itemsize
    if nbytes > budget[0]:
        raise RequestError(f"{what} expands to {nbytes} bytes; the request may expand to {budget[0]} more")
    budget[0] -= nbytes
    dense = np.zeros((rows, cols), dtype=dtype)
    dense[np.repeat(np.arange(rows), np.diff(crow)), col] = values
    return dense


def decompress(body: bytes, max_bytes: int) -> bytes:
    """zstd-decompress in a stream, refusing (RequestError) output past `max_bytes` before producing it."""
    import zstandard

    out, total = [], 0
    try:
        reader = zstandard.ZstdDecompressor().stream_reader(body)
        while chunk := reader.read(1 << 20):
            total += len(chunk)
            if total > max_bytes:
                raise RequestError(f"forward_backward body expands past {max_bytes} bytes; send smaller chunks")
            out.append(chunk)
    except zstandard.ZstdError:
        raise RequestError("forward_backward body is not valid zstd") from None
    return b"".join(out)


def decode_forward_backward(body: bytes, content_encoding: str | None = None,
                            limits: Limits | None = None) -> ForwardBackwardRequest:
    """Parse a (possibly zstd-compressed) protobuf forward_backward body within `limits`; raise
    RequestError, naming the datum and field, if it is malformed or declares more than the limits allow.
    CPU-bound: the server runs it off its event loop."""
    limits = limits or Limits()
    if content_encoding not in (None, "", "identity", "zstd"):
        raise RequestError(f"Content-Encoding {content_encoding[:40]!r} is not supported (zstd or none)")
    if len(body) > limits.max_bytes:
        raise RequestError(f"forward_backward body has {len(body)} bytes; at most {limits.max_bytes} accepted")
    if content_encoding == "zstd":
        body = decompress(body, limits.max_bytes)
    pb = _pb()
    msg = pb.ForwardBackwardRequest()
    try:
        msg.ParseFromString(body)
    except Exception:  # noqa: BLE001 - protobuf raises its own DecodeError type
        raise RequestError("forward_backward body is not a ForwardBackwardRequest protobuf") from None
    config: dict[str, float | str] = {k: float(v) for k, v in msg.loss_fn_config.items()}
    for k, v in msg.loss_fn_config_v2.items():
        config[k] = v.text if v.WhichOneof("value") == "text" else float(v.number)
    budget = [limits.max_bytes]
    data = []
    for i, d in enumerate(msg.data):
        parts = []
        for chunk in d.model_input:
            kind = chunk.WhichOneof("chunk")
            if kind != "encoded_text":
                raise RequestError(f"datum {i}: only encoded_text chunks are supported (got {kind})")
            parts.append(_frombuffer(chunk.encoded_text.tokens, np.int32, f"datum {i} model_input tokens"))
        tokens = np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)
        inputs = {name: _tensor(t, f"datum {i}: loss_fn_inputs[{name[:40]!r}]", limits, budget)
                  for name, t in d.loss_fn_inputs.items()}
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


def show(value: object, width: int = 60) -> str:
    """`repr(value)` cut to `width` characters, for echoing a client's value in an error."""
    text = repr(value)
    return text if len(text) <= width else text[:width - 3] + "..."


_KIND_NAMES = {str: "a string", int: "an integer", bool: "true or false", dict: "an object", list: "a list",
               float: "a number"}


def get_field(data: dict, name: str, kind: type, default: object = None, required: bool = False,
              lo: int | None = None, hi: int | None = None):
    """`data[name]` if it is a `kind` (a bool is not an integer; an integer is a number), else `default`
    when absent or null; raise RequestError naming the field when it is required, of another type, or an
    integer outside [lo, hi]."""
    value = data.get(name)
    if value is None:
        if required:
            raise RequestError(f"{name} is required")
        return default
    ok = isinstance(value, kind) and not (kind in (int, float) and isinstance(value, bool))
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        ok, value = True, float(value)
    if not ok:
        raise RequestError(f"{name} must be {_KIND_NAMES.get(kind, kind.__name__)}, got {type(value).__name__}")
    if kind is int and ((lo is not None and value < lo) or (hi is not None and value > hi)):
        raise RequestError(f"{name} must be an integer in [{lo}, {hi}], got {value}")
    return value


def prompt_tokens(model_input: object) -> list[int]:
    """The token ids of a JSON ModelInput (`{"chunks": [{"type": "encoded_text", "tokens": [...]}]}`);
    raise RequestError naming the chunk when it is not one."""
    if not isinstance(model_input, dict) or not isinstance(model_input.get("chunks"), list):
        raise RequestError("prompt must be a ModelInput with a `chunks` list")
    tokens: list[int] = []
    for i, chunk in enumerate(model_input["chunks"]):
        if not isinstance(chunk, dict):
            raise RequestError(f"prompt.chunks[{i}] must be an object")
        if chunk.get("type", "encoded_text") != "encoded_text":
            raise RequestError(f"prompt.chunks[{i}]: only encoded_text chunks are supported (got {show(chunk.get('type'))})")
        ids = chunk.get("tokens", [])
        if not isinstance(ids, list) or not all(isinstance(t, int) and not isinstance(t, bool) for t in ids):
            raise RequestError(f"prompt.chunks[{i}].tokens must be a list of integers")
        tokens.extend(ids)
    return tokens


def check_name(name: str, what: str) -> str:
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise RequestError(f"{what} {show(name)} must be 1-128 letters, digits, '.', '_' or '-'")
    return name


def parse_tinker_path(path: str) -> tuple[str, str, str]:
    """`tinker://RUN/weights/NAME` or `tinker://RUN/sampler_weights/NAME` -> (run, kind, name)."""
    m = re.match(r"^tinker://([^/]+)/(weights|sampler_weights)/([^/]+)$", path) if isinstance(path, str) else None
    if not m:
        raise RequestError(f"{show(path)} is not a checkpoint path (tinker://RUN/weights/NAME or "
                           "tinker://RUN/sampler_weights/NAME expected)")
    return m.group(1), m.group(2), check_name(m.group(3), "checkpoint name")

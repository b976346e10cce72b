"""The worker's side of the wire protocol (src/python/protocol.ts is the
server's): constants, the decoded request (Job) and the error messages.
Version, tags, sizes and kinds come from protocol.json beside this file, the
table the server is built from too."""

import json
import os
import struct

with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "protocol.json"), "rb") as _table:
    TABLE = json.load(_table)

PROTOCOL_VERSION = TABLE["version"]
# Raw frames (see channel.Channel): tag, u64 request id, and for predict a flags byte.
RAW_PREDICT = TABLE["raw_predict"]
RAW_RESULT = TABLE["raw_result"]
FLAG_DEBUG = TABLE["flag_debug"]
# With this flag, the predict frame's sample is preceded by a u16 length and
# the request's W3C trace context (ASCII: traceparent, "\n" tracestate).
FLAG_TRACE = TABLE["flag_trace"]
TRACE_LENGTH = struct.Struct(">H")
# The latency breakdown (docs/performance.md): a predict with this flag is
# answered by a timed result, [0x03][u64 id][f64 read, start, end, sent]
# [prediction], the four the worker's CLOCK_MONOTONIC in seconds.
FLAG_TIMINGS = TABLE["flag_timings"]
RAW_RESULT_TIMED = TABLE["raw_result_timed"]
STREAM_WINDOW = TABLE["stream_window"]
HEADER = struct.Struct(">I")
RAW_PREDICT_HEAD = struct.Struct(">BQB")
RAW_RESULT_HEAD_BYTES = TABLE["raw_result_head_bytes"]
RESULT_FRAME_HEAD = struct.Struct(">IBQ")
TIMED_RESULT_FRAME_HEAD = struct.Struct(">IBQdddd")
if (HEADER.size, RAW_PREDICT_HEAD.size, RESULT_FRAME_HEAD.size - HEADER.size, TRACE_LENGTH.size,
        TIMED_RESULT_FRAME_HEAD.size - HEADER.size) != (
    TABLE["frame_header_bytes"], TABLE["raw_predict_head_bytes"], RAW_RESULT_HEAD_BYTES,
    TABLE["trace_length_bytes"], TABLE["raw_result_timed_head_bytes"],
):  # pragma: no cover - caught by the unit tests before any release
    raise ImportError("protocol.json and the worker's frame layouts disagree")


class ProtocolViolation(Exception):
    """The server sent something the worker cannot frame or decode."""


class Job:
    """One unit of work: a `predict` (one id, `sample`) or a `predict_batch`
    (several ids, `samples`); the samples are JSON bytes. `trace` is the
    request's W3C trace context (a `predict` sent while tracing; for a batch,
    a tuple with one per id), else None. `read_at` is when the worker read a
    predict sent with the timings flag (CLOCK_MONOTONIC, seconds), else None."""

    __slots__ = ("ids", "sample", "debug", "samples", "trace", "read_at")

    def __init__(self, ids, sample, debug, samples, trace=None, read_at=None):
        self.ids = ids
        self.sample = sample
        self.debug = debug
        self.samples = samples
        self.trace = trace
        self.read_at = read_at

    @staticmethod
    def batch(message):
        ids = tuple(message["ids"])
        samples = message["samples"]
        if len(ids) != len(samples) or not ids:
            raise ProtocolViolation("predict_batch with %d ids and %d samples" % (len(ids), len(samples)))
        traces = message.get("traces")
        if traces is not None:
            if len(traces) != len(ids):
                raise ProtocolViolation("predict_batch with %d ids and %d traces" % (len(ids), len(traces)))
            traces = tuple(bytes(t).decode("ascii", "replace") for t in traces)
        return Job(ids, None, message.get("debug"), samples, traces)


def error_frame(request_id, kind, error, tb):
    return {"type": "error", "id": request_id, "kind": kind, "error": error, "traceback": tb}


def cancelled_error(request_id):
    return {
        "type": "error", "id": request_id, "kind": "cancelled",
        "error": "the request was cancelled", "traceback": "",
    }

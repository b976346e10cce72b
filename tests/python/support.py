"""Shared by the worker's unit tests: the package on sys.path (as the
bootstrap puts it), frames built and read the way the server does, and
stderr captured while the worker logs."""

import contextlib
import io
import os
import socket
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
WORKER_DIR = os.path.normpath(os.path.join(HERE, "..", "..", "src", "python", "worker"))
if WORKER_DIR not in sys.path:
    sys.path.insert(0, WORKER_DIR)

import msgpack  # noqa: E402

from _cortex_serve_worker.protocol import RAW_PREDICT, RAW_RESULT, RAW_RESULT_TIMED  # noqa: E402

MAX_FRAME = 1 << 20


def frame(payload):
    """`payload` behind its 4-byte big-endian length."""
    return struct.pack(">I", len(payload)) + payload


def message(value):
    """A framed msgpack message, as the server writes it."""
    return frame(msgpack.packb(value, use_bin_type=True))


def raw_predict(request_id, sample, debug=False, trace=None, flags=0):
    """A framed raw `predict`: tag, u64 id, flags, sample; with `trace` (str),
    the trace flag and the context before the sample; `flags` are added."""
    if trace is None:
        return frame(struct.pack(">BQB", RAW_PREDICT, request_id, (1 if debug else 0) | flags) + sample)
    context = trace.encode("ascii")
    head = struct.pack(">BQBH", RAW_PREDICT, request_id, (1 if debug else 0) | 2 | flags, len(context))
    return frame(head + context + sample)


def decode(payload):
    """A worker frame's payload as a dict; a raw `result` becomes {type, id, prediction}."""
    if payload[0] == RAW_RESULT:
        return {"type": "result", "id": struct.unpack_from(">Q", payload, 1)[0], "prediction": bytes(payload[9:])}
    if payload[0] == RAW_RESULT_TIMED:  # the latency breakdown's: four worker times before the body
        _, request_id, *timings = struct.unpack_from(">BQdddd", payload)
        return {"type": "result", "id": request_id, "prediction": bytes(payload[41:]), "timings": timings}
    return msgpack.unpackb(payload, raw=False)


def split_frames(data):
    """The payloads of the frames in `data`."""
    payloads = []
    at = 0
    while at < len(data):
        (length,) = struct.unpack_from(">I", data, at)
        payloads.append(data[at + 4:at + 4 + length])
        at += 4 + length
    assert at == len(data), "a partial frame at the end"
    return payloads


def read_all(sock):
    """Everything `sock` receives until the other end closes."""
    chunks = []
    while True:
        chunk = sock.recv(1 << 16)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def socket_pair():
    """A connected pair of Unix stream sockets: (worker's end fd, server's end socket)."""
    worker, server = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    return worker.detach(), server


@contextlib.contextmanager
def captured_stderr():
    """Collects what the worker logs (tracebacks, debug lines) instead of printing it."""
    buffer = io.StringIO()
    with contextlib.redirect_stderr(buffer):
        yield buffer

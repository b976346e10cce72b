"""The worker's side of the wire protocol (src/python/protocol.ts is the
server's): constants, the decoded request (Job) and the error messages."""

import struct

PROTOCOL_VERSION = 3
HEADER = struct.Struct(">I")
# Raw frames (see channel.Channel): tag, u64 request id, and for predict a flags byte.
RAW_PREDICT = 0x01
RAW_RESULT = 0x02
FLAG_DEBUG = 0x01
RAW_PREDICT_HEAD = struct.Struct(">BQB")
RAW_RESULT_HEAD_BYTES = 9
RESULT_FRAME_HEAD = struct.Struct(">IBQ")


class ProtocolViolation(Exception):
    """The server sent something the worker cannot frame or decode."""


class Job:
    """One unit of work: a `predict` (one id, `sample`) or a `predict_batch`
    (several ids, `samples`); the samples are JSON bytes."""

    __slots__ = ("ids", "sample", "debug", "samples")

    def __init__(self, ids, sample, debug, samples):
        self.ids = ids
        self.sample = sample
        self.debug = debug
        self.samples = samples

    @staticmethod
    def batch(message):
        ids = tuple(message["ids"])
        samples = message["samples"]
        if len(ids) != len(samples) or not ids:
            raise ProtocolViolation("predict_batch with %d ids and %d samples" % (len(ids), len(samples)))
        return Job(ids, None, message.get("debug"), samples)


def error_frame(request_id, kind, error, tb):
    return {"type": "error", "id": request_id, "kind": kind, "error": error, "traceback": tb}


def cancelled_error(request_id):
    return {
        "type": "error", "id": request_id, "kind": "cancelled",
        "error": "the request was cancelled", "traceback": "",
    }

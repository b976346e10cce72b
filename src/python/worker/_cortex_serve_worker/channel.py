"""The control channel's transport: length-prefixed frames over a socket's
file descriptor, read through one buffer (a frame usually costs one
syscall) and written with writev. Both the request loop and the cancel
watcher use it; the main channel's reads are on the hot path."""

import io
import os
import socket
import sys
import threading
import time

from .protocol import (
    FLAG_DEBUG, FLAG_TIMINGS, FLAG_TRACE, HEADER, RAW_PREDICT, RAW_PREDICT_HEAD, RAW_RESULT,
    RAW_RESULT_HEAD_BYTES, RAW_RESULT_TIMED, RESULT_FRAME_HEAD, TIMED_RESULT_FRAME_HEAD, TRACE_LENGTH, Job,
    ProtocolViolation,
)

try:
    import msgpack
except ImportError:  # pragma: no cover - checked by the server before start
    sys.stderr.write(
        "cortex-serve worker: the Python package msgpack is missing: "
        "apt-get install python3-msgpack (Debian) or pip install msgpack\n"
    )
    sys.exit(3)

READ_BUFFER_BYTES = 64 * 1024
# Under load the next request usually arrives within microseconds of an
# answer: the main channel is polled without sleeping for SPIN_SECONDS first,
# so the server's write finds the worker awake (waking a sleeping process
# costs the writer more than the write). Only while the last wait was shorter
# than SPIN_WHEN_WAITED: an idle or lightly loaded worker sleeps at once. The
# poll yields the core between reads, so a server sharing the core is not
# kept from writing (docs/performance.md, Measured levers).
SPIN_SECONDS = 50e-6
SPIN_WHEN_WAITED = 200e-6
# sched_yield(2), where the platform has it (Linux does).
_yield_core = getattr(os, "sched_yield", lambda: None)


class Channel:
    """The control channel: length-prefixed frames over one connected socket's
    file descriptor. A payload is a msgpack map, or a raw frame: `predict`
    [0x01][u64 id][u8 flags][sample] in, `result` [0x02][u64 id][prediction]
    out (see src/python/protocol.ts)."""

    def __init__(self, fd, max_frame, spin=False):
        self.fd = fd
        self.max_frame = max_frame
        self.reader = io.FileIO(fd, "rb", closefd=False)
        # For the polls of `_read` (the main channel only); it owns no more than
        # the channel does: both live as long as the worker.
        self.sock = socket.socket(fileno=fd) if spin else None
        self.last_wait = 1.0
        # When the last read returned (time.perf_counter: CLOCK_MONOTONIC on
        # Linux), for the timings of a predict that asks for them.
        self.read_at = 0.0
        # Bytes read and not yet taken: buffer[start:end]. One read usually
        # brings a whole frame (or several), so a frame costs one syscall.
        self.buffer = bytearray(READ_BUFFER_BYTES)
        self.start = 0
        self.end = 0
        # The main thread (answers) and the cancel watcher (dropped requests) both send.
        self.send_lock = threading.Lock()

    def _fill(self, n):
        """Reads until `n` bytes are buffered; False at end of input."""
        while self.end - self.start < n:
            buffer = self.buffer
            if self.start == self.end:
                self.start = self.end = 0
            elif len(buffer) - self.start < n:
                # The frame does not fit behind `start`: move what is left to the front.
                kept = self.end - self.start
                buffer[:kept] = buffer[self.start:self.end]
                self.start, self.end = 0, kept
            if len(buffer) < n:  # a frame larger than the buffer (start is 0 here)
                buffer = bytearray(n)
                buffer[:self.end] = memoryview(self.buffer)[:self.end]
                self.buffer = buffer
            with memoryview(buffer) as view:
                # Poll only for the start of the next frame: the rest of a
                # frame already begun (a large body) is being written now, and
                # a poll per chunk would take the core from the writer.
                got = self._read(view[self.end:], self.start == self.end)
            if not got:
                return False
            self.end += got
        return True

    def _read(self, view, between_frames):
        """One read into `view`, blocking until data or the end (0); polled
        first when `between_frames` and the last wait was short."""
        sock = self.sock
        if sock is None or not between_frames:
            got = self.reader.readinto(view)
            self.read_at = time.perf_counter()
            return got
        started = time.perf_counter()
        if self.last_wait < SPIN_WHEN_WAITED:
            deadline = started + SPIN_SECONDS
            while True:
                try:
                    got = sock.recv_into(view, 0, socket.MSG_DONTWAIT)
                    break
                except BlockingIOError:
                    if time.perf_counter() >= deadline:
                        got = self.reader.readinto(view)
                        break
                    # Let whatever waits for this core run between polls: on a
                    # busy machine that is often the server, about to write.
                    _yield_core()
        else:
            got = self.reader.readinto(view)
        now = self.read_at = time.perf_counter()
        self.last_wait = now - started
        return got

    def has_frame(self):
        """True when a whole frame is already buffered."""
        buffered = self.end - self.start
        return buffered >= 4 and buffered >= 4 + HEADER.unpack_from(self.buffer, self.start)[0]

    def receive(self):
        """Next message: a Job for a raw `predict`, a dict for a msgpack map,
        or None at end of input."""
        if not self._fill(4):
            return None
        (length,) = HEADER.unpack_from(self.buffer, self.start)
        if length == 0 or length > self.max_frame:
            raise ProtocolViolation(
                "frame of %d bytes refused (maximum %d)" % (length, self.max_frame)
            )
        if not self._fill(4 + length):
            return None
        at = self.start + 4
        self.start = at + length
        buffer = self.buffer
        tag = buffer[at]
        if tag == RAW_PREDICT:
            if length < RAW_PREDICT_HEAD.size:
                raise ProtocolViolation(
                    "raw predict frame of %d bytes: it needs at least %d" % (length, RAW_PREDICT_HEAD.size)
                )
            _, request_id, flags = RAW_PREDICT_HEAD.unpack_from(buffer, at)
            if flags & FLAG_TRACE:
                job = self._traced_job(buffer, at, length, request_id, flags)
                if flags & FLAG_TIMINGS:
                    job.read_at = self.read_at
                return job
            sample = buffer[at + RAW_PREDICT_HEAD.size:at + length]
            if flags & FLAG_TIMINGS:
                return Job((request_id,), sample, flags & FLAG_DEBUG, None, None, self.read_at)
            return Job((request_id,), sample, flags & FLAG_DEBUG, None)
        if not (0x80 <= tag <= 0x8f or tag == 0xDE or tag == 0xDF):
            raise ProtocolViolation("frame of unknown kind: first byte 0x%02x" % tag)
        with memoryview(buffer) as view:
            message = msgpack.unpackb(view[at:at + length], raw=False)
        if not isinstance(message, dict) or "type" not in message:
            raise ProtocolViolation("frame is not a message map")
        return message

    @staticmethod
    def _traced_job(buffer, at, length, request_id, flags):
        """The Job of a raw predict whose sample is preceded by a trace context."""
        start = at + RAW_PREDICT_HEAD.size + TRACE_LENGTH.size
        if length < start - at:
            raise ProtocolViolation("raw predict frame of %d bytes: too short for its trace context" % length)
        (size,) = TRACE_LENGTH.unpack_from(buffer, start - TRACE_LENGTH.size)
        if length < start - at + size:
            raise ProtocolViolation("raw predict frame of %d bytes: its trace context says %d bytes" % (length, size))
        trace = bytes(buffer[start:start + size]).decode("ascii", "replace")
        return Job((request_id,), buffer[start + size:at + length], flags & FLAG_DEBUG, None, trace)

    def _payload(self, message):
        """The msgpack of a message; OverflowError when it is over the maximum frame size."""
        payload = msgpack.packb(message, use_bin_type=True)
        if len(payload) > self.max_frame:
            raise OverflowError(
                "message of %d bytes is over the maximum frame size of %d bytes"
                % (len(payload), self.max_frame)
            )
        return payload

    def pack(self, message):
        """The framed message; OverflowError when it is over the maximum frame size."""
        payload = self._payload(message)
        return HEADER.pack(len(payload)) + payload

    def pack_item(self, request_id, body):
        """A framed `item` of a stream; OverflowError when it is over the maximum frame size."""
        return self.pack({"type": "item", "id": request_id, "value": body})

    def _result_head(self, request_id, body):
        """Length prefix and raw `result` header; OverflowError when the frame is too large."""
        length = RAW_RESULT_HEAD_BYTES + len(body)
        if length > self.max_frame:
            raise OverflowError(
                "message of %d bytes is over the maximum frame size of %d bytes"
                % (length, self.max_frame)
            )
        return RESULT_FRAME_HEAD.pack(length, RAW_RESULT, request_id)

    def pack_result(self, request_id, body):
        """A framed raw `result`; OverflowError when it is over the maximum frame size."""
        return self._result_head(request_id, body) + body

    def send_result(self, request_id, body):
        """Sends a raw `result`: header and body in one writev, the body not copied."""
        self._writev(self._result_head(request_id, body), body)

    def send_timed_result(self, request_id, body, read_at, started, ended):
        """Sends a timed `result` (the latency breakdown): the worker's read,
        predict start and end, and the moment of sending, then the body."""
        length = TIMED_RESULT_FRAME_HEAD.size - HEADER.size + len(body)
        if length > self.max_frame:
            raise OverflowError(
                "message of %d bytes is over the maximum frame size of %d bytes"
                % (length, self.max_frame)
            )
        self._writev(
            TIMED_RESULT_FRAME_HEAD.pack(
                length, RAW_RESULT_TIMED, request_id, read_at, started, ended, time.perf_counter(),
            ),
            body,
        )

    def send(self, message):
        payload = self._payload(message)
        self._writev(HEADER.pack(len(payload)), payload)

    def _writev(self, header, payload):
        with self.send_lock:
            # Header and payload in one syscall, without copying the payload behind the header.
            written = os.writev(self.fd, (header, payload))
            if written < len(header) + len(payload):  # a short write: finish from where it stopped
                data = memoryview(header + payload)[written:]
                while data:
                    data = data[os.write(self.fd, data):]

    def send_many(self, messages):
        """Sends several messages (dicts, or frames from `pack`) with one write."""
        self.write(b"".join(m if isinstance(m, bytes) else self.pack(m) for m in messages))

    def write(self, data):
        data = memoryview(data)
        with self.send_lock:
            while data:
                written = os.write(self.fd, data)
                data = data[written:]


def connect_channel(path):
    """Connects to the server's socket; returns the connection's fd."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError as exc:
        sys.stderr.write("cortex-serve worker: cannot connect to %s: %s\n" % (path, exc))
        sys.exit(3)
    return sock.detach()

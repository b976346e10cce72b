"""Framing: frames read whole whatever the chunking, the limits checked
before allocating, raw and msgpack frames told apart, writes framed."""

import os
import random
import struct
import threading
import time
import unittest

from support import MAX_FRAME, decode, message, raw_predict, read_all, socket_pair, split_frames

from _cortex_serve_worker.channel import READ_BUFFER_BYTES, Channel
from _cortex_serve_worker.protocol import (
    FLAG_TIMINGS, RAW_RESULT_TIMED, TIMED_RESULT_FRAME_HEAD, Job, ProtocolViolation,
)


def send_in_chunks(sock, data, seed):
    """Writes `data` in random chunk sizes (1 byte to 5 KiB) from another thread, then closes."""
    def run():
        rng = random.Random(seed)
        at = 0
        while at < len(data):
            size = rng.choice((1, 2, 3, 7, 64, 5000))
            sock.sendall(data[at:at + size])
            at += size
        sock.close()
    thread = threading.Thread(target=run)
    thread.start()
    return thread


class ChannelReadTest(unittest.TestCase):
    def receive_all(self, data, spin, seed=1, max_frame=MAX_FRAME):
        fd, server = socket_pair()
        channel = Channel(fd, max_frame, spin=spin)
        thread = send_in_chunks(server, data, seed)
        got = []
        try:
            while True:
                item = channel.receive()
                if item is None:
                    return got
                got.append(item)
        finally:
            thread.join()
            if channel.sock is not None:
                channel.sock.close()  # it owns the fd
            else:
                os.close(fd)

    def test_frames_arrive_whole_and_in_order_whatever_the_chunking(self):
        big = b"[" + b"1," * 100_000 + b"1]"  # larger than the read buffer
        self.assertGreater(len(big), READ_BUFFER_BYTES)
        data = (
            raw_predict(1, b'{"x": 1}')
            + message({"type": "credit", "id": 1, "n": 2})
            + raw_predict(2**53 - 1, big, debug=True)
            + raw_predict(3, b"")
            + message({"type": "shutdown"})
        )
        for spin in (False, True):
            for seed in range(3):
                got = self.receive_all(data, spin, seed)
                self.assertEqual(len(got), 5)
                first, credit, large, empty, shutdown = got
                self.assertIsInstance(first, Job)
                self.assertEqual((first.ids, bytes(first.sample), first.debug, first.samples), ((1,), b'{"x": 1}', 0, None))
                self.assertEqual(credit, {"type": "credit", "id": 1, "n": 2})
                self.assertEqual((large.ids, bytes(large.sample), large.debug), ((2**53 - 1,), big, 1))
                self.assertEqual((empty.ids, bytes(empty.sample)), ((3,), b""))
                self.assertEqual(shutdown, {"type": "shutdown"})

    def test_end_of_input_mid_frame_is_the_end(self):
        whole = raw_predict(1, b"[1]")
        self.assertEqual(self.receive_all(whole[:2], False), [])
        self.assertEqual(len(self.receive_all(whole + whole[:-1], False)), 1)

    def assert_violation(self, data, text, max_frame=MAX_FRAME):
        with self.assertRaises(ProtocolViolation) as caught:
            self.receive_all(data, False, max_frame=max_frame)
        self.assertEqual(str(caught.exception), text)

    def test_lengths_are_checked_before_reading_the_payload(self):
        self.assert_violation(struct.pack(">I", 0), "frame of 0 bytes refused (maximum 64)", max_frame=64)
        self.assert_violation(struct.pack(">I", 65), "frame of 65 bytes refused (maximum 64)", max_frame=64)

    def test_malformed_frames_name_what_is_wrong(self):
        self.assert_violation(
            struct.pack(">I", 3) + b"\x01\x00\x00", "raw predict frame of 3 bytes: it needs at least 10"
        )
        self.assert_violation(struct.pack(">I", 1) + b"\x07", "frame of unknown kind: first byte 0x07")
        self.assert_violation(message([1, 2]), "frame of unknown kind: first byte 0x92")
        self.assert_violation(message({"id": 1}), "frame is not a message map")
        # The trace flag with no room for the context's length, or a length past the frame's end.
        head = struct.pack(">BQB", 1, 5, 2)
        self.assert_violation(
            struct.pack(">I", 11) + head + b"\x00", "raw predict frame of 11 bytes: too short for its trace context"
        )
        self.assert_violation(
            struct.pack(">I", 14) + head + b"\x00\x09ab", "raw predict frame of 14 bytes: its trace context says 9 bytes"
        )

    def test_a_traced_predict_carries_its_context_before_the_sample(self):
        context = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\nk=v"
        jobs = self.receive_all(raw_predict(3, b"[1]", debug=True, trace=context) + raw_predict(4, b"2"), spin=0)
        self.assertEqual([(j.ids, bytes(j.sample), bool(j.debug), j.trace) for j in jobs], [
            ((3,), b"[1]", True, context), ((4,), b"2", False, None),
        ])


class ChannelWriteTest(unittest.TestCase):
    def setUp(self):
        self.fd, self.server = socket_pair()
        self.channel = Channel(self.fd, 64)

    def tearDown(self):
        self.server.close()

    def written(self):
        os.close(self.fd)
        return [decode(p) for p in split_frames(read_all(self.server))]

    def test_results_go_raw_and_maps_as_msgpack(self):
        self.channel.send_result(7, b'{"a":1}')
        self.channel.send({"type": "end", "id": 7, "items": 0})
        self.channel.send_many([self.channel.pack_result(8, b"1"), {"type": "shutdown"}])
        self.channel.write(self.channel.pack_item(9, b"2"))
        self.assertEqual(self.written(), [
            {"type": "result", "id": 7, "prediction": b'{"a":1}'},
            {"type": "end", "id": 7, "items": 0},
            {"type": "result", "id": 8, "prediction": b"1"},
            {"type": "shutdown"},
            {"type": "item", "id": 9, "value": b"2"},
        ])

    def test_a_frame_over_the_maximum_is_refused_before_anything_is_written(self):
        for write in (
            lambda: self.channel.send_result(1, b"x" * 56),
            lambda: self.channel.pack_result(1, b"x" * 56),
            lambda: self.channel.send({"type": "item", "id": 1, "value": b"x" * 64}),
        ):
            with self.assertRaisesRegex(OverflowError, r"over the maximum frame size of 64 bytes"):
                write()
        self.channel.send_result(1, b"x" * 55)  # exactly 64 bytes: allowed
        self.assertEqual(self.written(), [{"type": "result", "id": 1, "prediction": b"x" * 55}])

    def test_a_timed_result_carries_four_monotonic_times_before_the_body(self):
        before = time.clock_gettime(time.CLOCK_MONOTONIC)
        self.channel.send_timed_result(7, b'{"a":1}', before, before + 1, before + 2)
        after = time.clock_gettime(time.CLOCK_MONOTONIC)
        os.close(self.fd)
        (payload,) = split_frames(read_all(self.server))
        tag, request_id, read_at, started, ended, sent = struct.unpack_from(">BQdddd", payload)
        self.assertEqual((tag, request_id), (RAW_RESULT_TIMED, 7))
        self.assertEqual((read_at, started, ended), (before, before + 1, before + 2))
        # perf_counter, which the worker stamps with, is CLOCK_MONOTONIC: the server relies on it.
        self.assertTrue(before <= sent <= after, (before, sent, after))
        self.assertEqual(bytes(payload[41:]), b'{"a":1}')
        self.assertEqual(len(payload) - len(b'{"a":1}'), TIMED_RESULT_FRAME_HEAD.size - 4)


class CountingSocket:
    """A socket whose recv_into calls (the channel's polls) are counted."""

    def __init__(self, sock):
        self.sock = sock
        self.polls = 0

    def recv_into(self, *args):
        self.polls += 1
        return self.sock.recv_into(*args)

    def close(self):
        self.sock.close()


class ChannelPollTest(unittest.TestCase):
    def test_only_the_start_of_a_frame_is_polled_for_not_the_rest_of_it(self):
        fd, server = socket_pair()
        channel = Channel(fd, MAX_FRAME, spin=True)
        channel.sock = CountingSocket(channel.sock)
        channel.last_wait = 0.0  # as under load: the next read polls first
        frame = raw_predict(1, b"[" + b"1," * 1000 + b"1]")
        server.sendall(frame[:100])
        rest = threading.Timer(0.05, server.sendall, (frame[100:],))
        rest.start()
        try:
            job = channel.receive()
            self.assertEqual(bytes(job.sample), frame[14:])
            # One poll brought the first 100 bytes; the rest was waited for in a blocking read.
            self.assertEqual(channel.sock.polls, 1)
        finally:
            rest.join()
            server.close()
            channel.sock.close()


class ChannelTimingsTest(unittest.TestCase):
    def test_a_predict_with_the_timings_flag_gets_the_time_its_read_returned(self):
        fd, server = socket_pair()
        channel = Channel(fd, MAX_FRAME, spin=True)
        try:
            parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
            server.sendall(
                raw_predict(1, b"1") + raw_predict(2, b"2", flags=FLAG_TIMINGS)
                + raw_predict(3, b"3", trace=parent, flags=FLAG_TIMINGS)
            )
            before = time.perf_counter()
            plain, timed, traced = channel.receive(), channel.receive(), channel.receive()
            self.assertIsNone(plain.read_at)
            self.assertLessEqual(timed.read_at, time.perf_counter())
            self.assertGreaterEqual(timed.read_at, before)
            self.assertEqual((timed.ids, bytes(timed.sample), timed.debug), ((2,), b"2", 0))
            # Traced and timed: both the context and the read time.
            self.assertEqual((traced.trace, bytes(traced.sample)), (parent, b"3"))
            self.assertGreaterEqual(traced.read_at, before)
        finally:
            server.close()
            channel.sock.close()


if __name__ == "__main__":
    unittest.main()

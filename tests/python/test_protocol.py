"""The worker against the protocol table both sides read (protocol.json,
which the server imports): the worker sends each message with exactly the
table's fields, reads no field the table does not list, and uses the
table's version, tags, sizes and kinds. tests/protocol_table_test.ts holds
the server to the same table."""

import json
import os
import shutil
import sys
import tempfile
import time
import unittest

from support import WORKER_DIR, captured_stderr, decode, message, raw_predict, read_all, socket_pair, split_frames

from _cortex_serve_worker import protocol
from _cortex_serve_worker.channel import Channel
from _cortex_serve_worker.control import Control
from _cortex_serve_worker.protocol import Job
from _cortex_serve_worker.serve import Worker

with open(os.path.join(WORKER_DIR, "_cortex_serve_worker", "protocol.json")) as _f:
    TABLE = json.load(_f)

INFERENCE = """
def predict(sample, metadata):
    if sample == "boom":
        raise ValueError("boom")
    if sample == "object":
        return object()
    if isinstance(sample, dict) and "n" in sample:
        return iter(range(sample["n"]))
    return sample
"""


class Recording(dict):
    """A message that remembers which fields were read."""

    def __init__(self, *args):
        super().__init__(*args)
        self.read = set()

    def __getitem__(self, key):
        self.read.add(key)
        return super().__getitem__(key)

    def get(self, key, default=None):
        self.read.add(key)
        return super().get(key, default)

    def __contains__(self, key):
        self.read.add(key)
        return super().__contains__(key)


def server_message(kind, **values):
    """A message of `kind` with every field the table lists, and nothing else."""
    fields = TABLE["server_messages"][kind]
    assert sorted(values) == sorted(fields), "%s: %s vs the table's %s" % (kind, sorted(values), sorted(fields))
    return Recording(dict(values, type=kind))


class ProtocolTableTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="cortex-serve-protocol-")
        self.inference = os.path.join(self.dir, "inference_protocol_test.py")
        with open(self.inference, "w") as f:
            f.write(INFERENCE)
        self.saved_path = list(sys.path)

    def tearDown(self):
        sys.path[:] = self.saved_path
        sys.modules.pop("inference_protocol_test", None)
        shutil.rmtree(self.dir)

    def init_message(self, version=None):
        return server_message(
            "init", protocol=TABLE["version"] if version is None else version, api="api",
            inference=self.inference, metadata={}, python_root=None, project_dir=self.dir,
            interface="init_metadata", model=None, model_dir=None, stream_window=TABLE["stream_window"],
            models=None,
        )

    def converse(self, init, frames):
        """Runs a worker on `init` then `frames` (bytes) until their end; returns what it sent, decoded."""
        main_fd, server = socket_pair()
        cancel_fd, cancel_server = socket_pair()
        cancel_server.close()  # no cancels: the watcher sees the end at once
        server.sendall(frames)
        server.shutdown(1)  # end of input after the frames
        channel = Channel(main_fd, 1 << 20)
        worker = Worker(channel, Channel(cancel_fd, 1 << 20))
        real = channel.receive
        first = [init]
        channel.receive = lambda: first.pop() if first else real()
        with captured_stderr():
            if worker.start():
                worker.serve()
        os.close(main_fd)
        sent = [decode(p) for p in split_frames(read_all(server))]
        server.close()
        return sent

    def assert_table_fields(self, sent):
        for m in sent:
            if m["type"] == "result":
                continue  # raw: its layout is checked with the constants
            self.assertIn(m["type"], TABLE["worker_messages"])
            self.assertEqual(sorted(m), sorted(["type"] + TABLE["worker_messages"][m["type"]]), m)
            if m["type"] == "error":
                self.assertIn(m["kind"], TABLE["error_kinds"])
            if m["type"] == "init_error":
                self.assertIn(m["phase"], TABLE["init_phases"])

    def test_constants_are_the_tables(self):
        self.assertEqual(protocol.PROTOCOL_VERSION, TABLE["version"])
        self.assertEqual(protocol.RAW_PREDICT, TABLE["raw_predict"])
        self.assertEqual(protocol.RAW_RESULT, TABLE["raw_result"])
        self.assertEqual(protocol.FLAG_DEBUG, TABLE["flag_debug"])
        self.assertEqual(protocol.FLAG_TRACE, TABLE["flag_trace"])
        self.assertEqual(protocol.TRACE_LENGTH.size, TABLE["trace_length_bytes"])
        self.assertEqual(protocol.STREAM_WINDOW, TABLE["stream_window"])
        self.assertEqual(protocol.HEADER.size, TABLE["frame_header_bytes"])
        self.assertEqual(protocol.RAW_PREDICT_HEAD.size, TABLE["raw_predict_head_bytes"])
        self.assertEqual(protocol.RESULT_FRAME_HEAD.size - protocol.HEADER.size, TABLE["raw_result_head_bytes"])
        self.assertEqual(protocol.RAW_RESULT_HEAD_BYTES, TABLE["raw_result_head_bytes"])
        self.assertEqual(protocol.FLAG_TIMINGS, TABLE["flag_timings"])
        self.assertEqual(protocol.RAW_RESULT_TIMED, TABLE["raw_result_timed"])
        self.assertEqual(
            protocol.TIMED_RESULT_FRAME_HEAD.size - protocol.HEADER.size, TABLE["raw_result_timed_head_bytes"],
        )
        # Flags are bits of one byte, each its own; tags are distinct and never start a msgpack map.
        flags = [TABLE["flag_debug"], TABLE["flag_trace"], TABLE["flag_timings"]]
        self.assertEqual(len(set(flags)), len(flags))
        self.assertTrue(all(f and f & (f - 1) == 0 and f < 256 for f in flags))
        tags = [TABLE["raw_predict"], TABLE["raw_result"], TABLE["raw_result_timed"]]
        self.assertEqual(len(set(tags)), len(tags))
        self.assertTrue(all(t < 0x80 for t in tags))

    def test_a_conversation_uses_the_tables_messages_and_no_other_field(self):
        init = self.init_message()
        # A batch's predict gets the list: ["boom", 1] is returned as is.
        batch = server_message("predict_batch", ids=[5, 6], samples=[b'"boom"', b"1"], debug=False, traces=None)
        frames = (
            raw_predict(1, b'{"x": 1}') + raw_predict(2, b'{"n": 2}') + raw_predict(3, b'"boom"')
            + raw_predict(4, b'"object"') + message(batch) + message(server_message("shutdown"))
        )
        sent = self.converse(init, frames)
        self.assertEqual([m["type"] for m in sent], [
            "ready", "result", "item", "item", "end", "error", "error", "result", "result",
        ])
        self.assertEqual(sent[0]["protocol"], TABLE["version"])
        self.assertEqual(sent[1], {"type": "result", "id": 1, "prediction": b'{"x":1}'})
        self.assertEqual([m["kind"] for m in sent[5:7]], ["predict", "serialize"])
        self.assertEqual([(m["id"], m["prediction"]) for m in sent[7:]], [(5, b'"boom"'), (6, b"1")])
        self.assert_table_fields(sent)
        self.assertLessEqual(init.read, set(TABLE["server_messages"]["init"]) | {"type"})

    def test_a_predict_asking_for_timings_gets_a_timed_result_with_ordered_times(self):
        frames = (
            raw_predict(1, b'{"x": 1}', flags=TABLE["flag_timings"]) + raw_predict(2, b"2")
            + message(server_message("shutdown"))
        )
        before = time.perf_counter()
        sent = self.converse(self.init_message(), frames)
        self.assertEqual([m["type"] for m in sent], ["ready", "result", "result"])
        timed, plain = sent[1], sent[2]
        self.assertEqual((timed["id"], timed["prediction"]), (1, b'{"x":1}'))
        read_at, started, ended, sent_at = timed["timings"]
        self.assertTrue(before <= read_at <= started <= ended <= sent_at <= time.perf_counter(), timed)
        self.assertNotIn("timings", plain)

    def test_a_traced_predict_runs_in_its_context_and_only_then(self):
        with open(self.inference, "w") as f:
            f.write(
                "import cortex_serve_trace\n"
                "def predict(sample, metadata):\n"
                "    if isinstance(sample, list):\n"
                "        return [[cortex_serve_trace.traceparent(), cortex_serve_trace.traceparents()]] * len(sample)\n"
                "    if sample == 'stream':\n"
                "        return (cortex_serve_trace.traceparent() for _ in range(2))\n"
                "    return [cortex_serve_trace.traceparent(), cortex_serve_trace.tracestate(),\n"
                "            cortex_serve_trace.headers()]\n"
            )
        parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        frames = (
            raw_predict(1, b"1", trace=parent) + raw_predict(2, b"2")
            + raw_predict(3, b"3", debug=True, trace=parent + "\nvendor=a:b")
            + raw_predict(4, b'"stream"', trace=parent)
            + message(server_message(
                "predict_batch", ids=[5, 6, 7], samples=[b"5", b"not json", b"7"], debug=False,
                traces=[b"00-five", b"00-six", b"00-seven\nk=v"],
            ))
            + message(server_message("shutdown"))
        )
        sent = self.converse(self.init_message(), frames)
        self.assertEqual([m["type"] for m in sent], [
            "ready", "result", "result", "result", "item", "item", "end", "result", "error", "result",
        ])
        # A batch: predict gets the parsed samples' traceparents, in order; no single context.
        in_batch = [None, ["00-five", "00-seven"]]
        self.assertEqual([json.loads(sent[i]["prediction"]) for i in (7, 9)], [in_batch, in_batch])
        self.assertEqual(sent[8]["kind"], "sample")
        loads = [json.loads(m["prediction"]) for m in sent[1:4]]
        self.assertEqual(loads[0], [parent, None, {"traceparent": parent}])
        self.assertEqual(loads[1], [None, None, {}])
        self.assertEqual(loads[2], [parent, "vendor=a:b", {"traceparent": parent, "tracestate": "vendor=a:b"}])
        self.assertEqual([json.loads(m["value"]) for m in sent[4:6]], [parent, parent])
        import cortex_serve_trace
        self.assertIsNone(cortex_serve_trace.traceparent())
        self.assertEqual(cortex_serve_trace.traceparents(), [])
        self.assertNotIn("opentelemetry", sys.modules)

    def test_another_version_is_refused_with_the_tables_init_error(self):
        sent = self.converse(self.init_message(version=TABLE["version"] - 1), b"")
        self.assertEqual([m["type"] for m in sent], ["init_error"])
        self.assertEqual(sent[0]["phase"], "protocol")
        self.assert_table_fields(sent)

    def test_an_init_failure_is_the_tables_init_error(self):
        with open(self.inference, "w") as f:
            f.write("x = 1\n")
        sent = self.converse(self.init_message(), b"")
        self.assertEqual([(m["type"], m["phase"]) for m in sent], [("init_error", "signature")])
        self.assert_table_fields(sent)

    def test_credit_batch_and_cancel_are_read_by_the_tables_fields_only(self):
        fd, server = socket_pair()
        channel = Channel(fd, 1 << 20)
        control = Control(channel, None)
        control.running = Job((7,), b"1", 0, None)
        credit = server_message("credit", id=7, n=3)
        control._message(credit)
        self.assertEqual(control.credits, {7: 3})
        batch = server_message("predict_batch", ids=[8, 9], samples=[b"1", b"2"], debug=True, traces=[b"00-a", b"00-b"])
        control._message(batch)
        self.assertEqual(control.pending[0].ids, (8, 9))
        self.assertEqual(control.pending[0].trace, ("00-a", "00-b"))
        # The watcher takes exactly a dict (no subclass): this one cannot record what is read.
        cancel = dict(server_message("cancel", id=10))
        control.cancels = type("Cancels", (), {"items": [cancel], "receive": lambda self: self.items.pop() if self.items else None})()
        control._watch()
        os.close(fd)
        self.assertEqual([decode(p) for p in split_frames(read_all(server))], [protocol.cancelled_error(10)])
        server.close()
        for m in (credit, batch):
            self.assertLessEqual(m.read, set(TABLE["server_messages"][m["type"]]) | {"type"}, m)
        self.assert_table_fields([protocol.cancelled_error(1), protocol.error_frame(1, "sample", "e", "")])


if __name__ == "__main__":
    unittest.main()

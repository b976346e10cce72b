"""The Cortex 0.17+ pieces of the worker on their own: payloads by
Content-Type (multipart edge cases included), the answer envelope of each
kind of return value, arguments passed by name, and python_client's
versions, caches and live reload over a local model directory."""

import os
import shutil
import struct
import tempfile
import unittest

import support  # noqa: F401 - puts the worker package on sys.path

import msgpack

from _cortex_serve_worker.models import ModelClient
from _cortex_serve_worker.payloads import PayloadError, parse_payload, read_request
from _cortex_serve_worker.realtime import RealtimeInterface, pack_answer
from _cortex_serve_worker.user_module import InitFailure


def envelope(content_type, query, headers, body):
    ct = content_type.encode()
    q = query.encode()
    h = msgpack.packb(headers)
    return struct.pack(">H", len(ct)) + ct + struct.pack(">I", len(q)) + q + struct.pack(">I", len(h)) + h + body


def unpack_answer(data):
    status, n = struct.unpack_from(">HH", data, 0)
    content_type = data[4:4 + n].decode()
    (h,) = struct.unpack_from(">I", data, 4 + n)
    headers = msgpack.unpackb(data[8 + n:8 + n + h]) if h else []
    return status, content_type, headers, data[8 + n + h:]


class PayloadTest(unittest.TestCase):
    def test_the_request_envelope_reads_back(self):
        parts = read_request(bytearray(envelope("image/png", "a=1", [["x-k", "v"]], b"\x00\xff")))
        self.assertEqual(parts, ("image/png", "a=1", [["x-k", "v"]], b"\x00\xff"))

    def test_by_content_type(self):
        self.assertEqual(parse_payload("Application/JSON; charset=utf-8", b'{"a": 1}'), {"a": 1})
        self.assertEqual(parse_payload("text/plain", "é".encode()), "é")
        self.assertEqual(parse_payload('text/plain; charset="latin-1"', b"\xe9"), "é")
        self.assertEqual(parse_payload("", b"\x00\x01"), b"\x00\x01")
        self.assertEqual(parse_payload("application/octet-stream", b""), b"")
        self.assertEqual(parse_payload("application/x-www-form-urlencoded", b"a=1&a=2&b=%C3%A9").getlist("a"), ["1", "2"])

    def test_bad_bodies_are_the_clients_fault(self):
        for content_type, body in [
            ("application/json", b"{"),
            ("application/json", b""),
            ("text/plain; charset=nope", b"x"),
            ("text/plain", b"\xff"),
            ("multipart/form-data", b"--x\r\n"),
            ("multipart/form-data; boundary=B", b"no boundary here"),
            ("multipart/form-data; boundary=B", b'--B\r\nContent-Disposition: form-data; name="a"\r\n\r\nnever closed'),
        ]:
            with self.assertRaises(PayloadError, msg=content_type):
                parse_payload(content_type, body)

    def test_multipart_files_and_fields(self):
        body = (
            b"preamble\r\n--B\r\n"
            b'Content-Disposition: form-data; name="f"; filename="x.bin"\r\nContent-Type: image/png\r\n\r\n'
            b"\x00\r\n-B\r\x01\r\n--B\r\n"
            b'Content-Disposition: form-data; name="t"\r\n\r\nhello\r\n--B--\r\n'
        )
        form = parse_payload("multipart/form-data; boundary=B", body)
        self.assertEqual(form["t"], "hello")
        self.assertEqual(form["f"].filename, "x.bin")
        self.assertEqual(form["f"].content_type, "image/png")
        self.assertEqual(form["f"].file.read(), b"\x00\r\n-B\r\x01")


class AnswerTest(unittest.TestCase):
    def test_each_kind_of_return_value(self):
        self.assertEqual(unpack_answer(pack_answer(b"\x01")), (200, "application/octet-stream", [], b"\x01"))
        self.assertEqual(unpack_answer(pack_answer("é")), (200, "text/plain; charset=utf-8", [], "é".encode()))
        self.assertEqual(unpack_answer(pack_answer({"a": [1]})), (200, "application/json", [], b'{"a":[1]}'))
        self.assertEqual(unpack_answer(pack_answer(None)), (200, "application/json", [], b"null"))

    def test_a_starlette_response_passes_through(self):
        from starlette.responses import JSONResponse, Response

        answer = unpack_answer(pack_answer(Response("no", status_code=418, media_type="text/x-tea", headers={"X-A": "b"})))
        self.assertEqual(answer, (418, "text/x-tea; charset=utf-8", [["x-a", "b"]], b"no"))
        self.assertEqual(unpack_answer(pack_answer(JSONResponse({"k": 1}, status_code=201)))[:2], (201, "application/json"))


class ArgumentsTest(unittest.TestCase):
    def interface(self, cls, models=None):
        message = {"metadata": {"k": "v"}, "models": models}
        interface = RealtimeInterface(cls, message, "p.py:1")
        interface.init()
        return interface

    def test_only_the_declared_arguments_by_name_in_any_order(self):
        class Predictor:
            def __init__(self, config):
                self.config = config

            def predict(self, query_params, payload):
                return (self.config, query_params, payload)

        interface = self.interface(Predictor)
        self.assertEqual(interface.run(("P", "Q", "H")), ({"k": "v"}, "Q", "P"))
        self.assertTrue(interface.wants_payload)
        self.assertIsNone(interface.post_names)

    def test_an_async_predictor_gets_the_request_id(self):
        class Predictor:
            def __init__(self, config, metrics_client):
                pass

            def predict(self, payload, request_id):
                return (payload, request_id)

        interface = self.interface(Predictor)
        self.assertEqual(interface.run(("P", "Q", {"x-request-id": "job-1"})), ("P", "job-1"))

    def test_a_parameter_cortex_never_passes_fails_with_the_fix(self):
        class Predictor:
            def __init__(self, config):
                pass

            def predict(self, payload, extra):
                pass

        with self.assertRaises(InitFailure) as caught:
            self.interface(Predictor)
        self.assertIn("'extra'", caught.exception.error)
        self.assertIn("remove it or give it a default", caught.exception.error)


def read_weights(path):
    with open(os.path.join(path, "w.txt")) as f:
        return f.read()


class ModelClientTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp()
        self.events = []
        for name, version, text in [("a", "1", "a1"), ("a", "2", "a2"), ("b", None, "b")]:
            path = os.path.join(self.dir, name, version) if version else os.path.join(self.dir, name)
            os.makedirs(path)
            with open(os.path.join(path, "w.txt"), "w") as f:
                f.write(text)

    def tearDown(self):
        shutil.rmtree(self.dir)

    def client(self, cache_size=None):
        spec = {"sources": None, "dir": self.dir, "cache_size": cache_size, "disk_cache_size": cache_size}
        client = ModelClient(spec, None, self.events.append)
        client.bind(read_weights)
        return client

    def test_versions_latest_and_unversioned(self):
        client = self.client()
        self.assertEqual(client.get_model("a"), "a2")
        self.assertEqual(client.get_model("a", "highest"), "a2")
        self.assertEqual(client.get_model("a", 1), "a1")
        self.assertEqual(client.get_model("b"), "b")
        self.assertEqual(client.get_model("b", "1"), "b")
        with self.assertRaisesRegex(ValueError, "has no version 3; it has 1, 2"):
            client.get_model("a", "3")
        with self.assertRaisesRegex(ValueError, "model_name is required"):
            client.get_model()
        with self.assertRaisesRegex(ValueError, "must be a folder name"):
            client.get_model("../a")

    def test_the_cache_evicts_the_least_recently_used(self):
        client = self.client(cache_size=1)
        client.get_model("a", "1")
        client.get_model("b")
        self.assertEqual([(e["event"], e["model"], e["version"]) for e in self.events], [
            ("load", "a", "1"), ("load", "b", "1"), ("evict", "a", "1"),
        ])

    def test_a_new_version_is_served_by_latest_at_once(self):
        client = self.client()
        self.assertEqual(client.get_model("a"), "a2")
        os.makedirs(os.path.join(self.dir, "a", "10"))
        with open(os.path.join(self.dir, "a", "10", "w.txt"), "w") as f:
            f.write("a10")
        self.assertEqual(client.get_model("a"), "a10")


if __name__ == "__main__":
    unittest.main()

"""python_client over an s3:// model directory, against a local
S3-compatible endpoint: versions found by listing, downloaded on demand,
a version added to the bucket served by "latest" once the listing is
renewed, and disk_cache_size removing the least recently used download."""

import os
import shutil
import tempfile
import threading
import unittest
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse
from xml.sax.saxutils import escape

from support import captured_stderr

try:
    import boto3  # noqa: F401
except ImportError:  # pragma: no cover - python3-boto3 is in scripts/setup
    boto3 = None

from _cortex_serve_worker import models


class FakeBucket(BaseHTTPRequestHandler):
    """ListObjectsV2 and HEAD/GET of `server.objects` (key -> bytes) in bucket "b"."""

    def _object(self, key, with_body):
        body = self.server.objects.get(key)
        if body is None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.server.gets.append(key) if with_body else None
        self.send_response(200)
        self.send_header("ETag", '"%d"' % len(body))
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Last-Modified", "Thu, 01 Jan 1970 00:00:00 GMT")
        self.end_headers()
        if with_body:
            self.wfile.write(body)

    def do_HEAD(self):
        self._object(urlparse(self.path).path[len("/b/"):], False)

    def do_GET(self):
        url = urlparse(self.path)
        query = parse_qs(url.query)
        if url.path.rstrip("/") == "/b" and "list-type" in query:
            prefix = query.get("prefix", [""])[0]
            keys = sorted(k for k in self.server.objects if k.startswith(prefix))
            contents = "".join(
                "<Contents><Key>%s</Key><Size>%d</Size><ETag>&quot;%d&quot;</ETag></Contents>"
                % (escape(k), len(self.server.objects[k]), len(self.server.objects[k]))
                for k in keys
            )
            body = (
                '<?xml version="1.0" encoding="UTF-8"?><ListBucketResult '
                'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name><Prefix>%s</Prefix>'
                "<KeyCount>%d</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated>%s"
                "</ListBucketResult>" % (escape(prefix), len(keys), contents)
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        self._object(url.path[len("/b/"):], True)

    def log_message(self, *args):
        pass


@unittest.skipIf(boto3 is None, "boto3 is not installed")
class S3ModelsTest(unittest.TestCase):
    def setUp(self):
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), FakeBucket)
        self.server.objects = {
            "models/iris/1/w.txt": b"iris-1",
            "models/iris/2/w.txt": b"iris-2",
            "models/wine/w.txt": b"wine",
        }
        self.server.gets = []
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.home = tempfile.mkdtemp(prefix="cortex-serve-s3-models-")
        self.saved_env = dict(os.environ)
        self.saved_relist = models.RELIST_SECONDS
        for name in list(os.environ):
            if name.startswith("AWS_") or name.startswith("CORTEX_AWS"):
                del os.environ[name]
        os.environ.update(
            HOME=self.home, AWS_DEFAULT_REGION="us-east-1", AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test",
            AWS_CONFIG_FILE=os.path.join(self.home, "no-config"),
            CORTEX_S3_ENDPOINT_URL="http://127.0.0.1:%d" % self.server.server_address[1],
        )

    def tearDown(self):
        models.RELIST_SECONDS = self.saved_relist
        os.environ.clear()
        os.environ.update(self.saved_env)
        self.server.shutdown()
        self.server.server_close()
        shutil.rmtree(self.home)

    def client(self, disk_cache_size=None):
        spec = {"sources": None, "dir": "s3://b/models/", "cache_size": disk_cache_size,
                "disk_cache_size": disk_cache_size}
        client = models.ModelClient(spec, os.path.join(self.home, "downloads"), lambda event: None)

        def load(path):
            with open(os.path.join(path, "w.txt"), "rb") as f:
                return f.read()

        client.bind(load)
        return client

    def test_versions_are_listed_and_downloaded_on_demand(self):
        client = self.client()
        with captured_stderr():
            self.assertEqual(client.get_model("iris"), b"iris-2")
            self.assertEqual(client.get_model("iris", "1"), b"iris-1")
            self.assertEqual(client.get_model("wine"), b"wine")
            self.assertEqual(client.get_model("iris"), b"iris-2")
        self.assertEqual(sorted(self.server.gets), ["models/iris/1/w.txt", "models/iris/2/w.txt", "models/wine/w.txt"])

    def test_a_version_added_to_the_bucket_is_served_once_listed_again(self):
        client = self.client()
        with captured_stderr():
            self.assertEqual(client.get_model("iris"), b"iris-2")
            self.server.objects["models/iris/3/w.txt"] = b"iris-3"
            self.assertEqual(client.get_model("iris"), b"iris-2", "listed again before RELIST_SECONDS")
            models.RELIST_SECONDS = 0
            self.assertEqual(client.get_model("iris"), b"iris-3")

    def test_disk_cache_size_removes_the_least_recently_used_download(self):
        client = self.client(disk_cache_size=1)
        with captured_stderr() as log:
            client.get_model("iris", "1")
            first = os.path.join(self.home, "downloads", "multi", "iris", "1")
            self.assertTrue(os.path.isdir(first))
            client.get_model("iris", "2")
        self.assertFalse(os.path.exists(first))
        self.assertIn("removed from disk (disk_cache_size 1)", log.getvalue())


if __name__ == "__main__":
    unittest.main()

"""The s3:// model download against a local S3-compatible endpoint: signed
with credentials, anonymous (unsigned) without, cached by ETag, and
failures that say what was tried."""

import os
import shutil
import tempfile
import threading
import unittest
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from support import captured_stderr

try:
    import boto3  # noqa: F401
except ImportError:  # pragma: no cover - python3-boto3 is in scripts/setup
    boto3 = None

from _cortex_serve_worker.s3 import download_s3
from _cortex_serve_worker.user_module import InitFailure


class FakeS3(BaseHTTPRequestHandler):
    """HEAD and GET of the objects in `server.objects` (path -> bytes); 403 for all when `server.refuse`."""

    def _answer(self, with_body):
        self.server.seen.append((self.command, self.path, "authorization" in {k.lower() for k in self.headers}))
        if self.server.refuse:
            body = b"<?xml version='1.0'?><Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>"
            self.send_response(403)
        else:
            body = self.server.objects.get(self.path.split("?")[0])
            if body is None:
                self.send_response(404)
                body = b""
            else:
                self.send_response(200)
                self.send_header("ETag", '"%d-%s"' % (len(body), body.decode()))
                self.send_header("Last-Modified", "Thu, 01 Jan 1970 00:00:00 GMT")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if with_body:
            self.wfile.write(body)

    def do_HEAD(self):
        self._answer(False)

    def do_GET(self):
        self._answer(True)

    def log_message(self, *args):
        pass


@unittest.skipIf(boto3 is None, "boto3 is not installed")
class DownloadTest(unittest.TestCase):
    def setUp(self):
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), FakeS3)
        self.server.objects = {"/bucket/dir/weights.txt": b"v1"}
        self.server.refuse = False
        self.server.seen = []
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.home = tempfile.mkdtemp(prefix="cortex-serve-s3-")
        self.cache = os.path.join(self.home, "models")
        # boto3 sees only what the test gives it: no credentials anywhere, unless set.
        self.saved_env = dict(os.environ)
        for name in list(os.environ):
            if name.startswith("AWS_") or name.startswith("CORTEX_AWS"):
                del os.environ[name]
        os.environ.update(
            HOME=self.home, AWS_DEFAULT_REGION="us-east-1",
            AWS_CONFIG_FILE=os.path.join(self.home, "no-config"),
            AWS_SHARED_CREDENTIALS_FILE=os.path.join(self.home, "no-credentials"),
            CORTEX_S3_ENDPOINT_URL="http://127.0.0.1:%d" % self.server.server_address[1],
        )

    def tearDown(self):
        os.environ.clear()
        os.environ.update(self.saved_env)
        self.server.shutdown()
        self.server.server_close()
        shutil.rmtree(self.home)

    def download(self, url="s3://bucket/dir/weights.txt"):
        with captured_stderr() as log:
            path = download_s3(url, self.cache)
        return path, log.getvalue()

    def gets(self):
        return [seen for seen in self.server.seen if seen[0] == "GET"]

    def test_without_credentials_the_download_is_anonymous_and_cached(self):
        path, log = self.download()
        with open(path, "rb") as f:
            self.assertEqual(f.read(), b"v1")
        self.assertTrue(path.endswith("/weights.txt"))
        self.assertIn("1 file(s) downloaded, 0 reused (anonymously: no AWS credentials)", log)
        self.assertTrue(self.server.seen and not any(signed for _, _, signed in self.server.seen))
        again, log = self.download()
        self.assertEqual(again, path)
        self.assertEqual(len(self.gets()), 1, "the unchanged model was downloaded again")
        self.server.objects["/bucket/dir/weights.txt"] = b"v2"
        self.download()
        with open(path, "rb") as f:
            self.assertEqual(f.read(), b"v2")

    def test_with_credentials_the_download_is_signed(self):
        os.environ.update(AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test")
        _, log = self.download()
        self.assertNotIn("anonymously", log)
        self.assertTrue(self.server.seen and all(signed for _, _, signed in self.server.seen))

    def test_a_refused_anonymous_download_says_both_were_tried(self):
        self.server.refuse = True
        with self.assertRaises(InitFailure) as caught:
            self.download()
        error = caught.exception.error
        self.assertEqual(caught.exception.phase, "init")
        self.assertTrue(error.startswith(
            "predictor.model s3://bucket/dir/weights.txt: boto3 found no AWS credentials, "
            "and the anonymous (unsigned) download failed: ClientError: "
        ), error)
        self.assertIn("403", error)
        self.assertIn(": if the bucket is not public, write ~/.aws/credentials", error)
        self.assertTrue(error.endswith("or download the model yourself and set predictor.model to its path"))

    def test_a_refused_signed_download_names_the_credentials(self):
        os.environ.update(AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test")
        self.server.refuse = True
        with self.assertRaises(InitFailure) as caught:
            self.download()
        self.assertRegex(
            caught.exception.error,
            r"^predictor\.model s3://bucket/dir/weights\.txt: download failed: ClientError: .*403.*: "
            r"check the URL, the credentials and the network$",
        )


if __name__ == "__main__":
    unittest.main()

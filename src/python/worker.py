"""cortex-serve worker: runs one replica of a user's inference file.

Started by the server as `python worker.py --max-frame N --channel PATH`. The
worker connects twice to the Unix socket at PATH: first the main channel
(every message but `cancel`, both ways), then the cancel channel (`cancel`
only, server to worker). Frames are length-prefixed (4-byte big-endian
length, then a msgpack map or a raw frame; see src/python/protocol.ts and
channel.ts). Before any user code runs, fd 1 points at stderr (the log
stream) so `print()` and C libraries writing to fd 1 can never corrupt the
protocol, and fd 0 reads from /dev/null.

Lifecycle: `init` message -> import the inference file (its global scope
runs) -> check signatures against the interface cortex.yaml's dialect asks
for -> download an s3:// model -> `init(metadata)`, `init(model_path,
metadata)` or `PythonPredictor(config)` -> `ready`; then `predict` and
`predict_batch` messages, run one at a time in order, until `shutdown` or end
of input. The main thread reads the main channel and runs user code; after
`ready` a second thread reads the cancel channel (see Control), so a cancel
reaches the worker while user code runs. A `predict` that returns a
generator or another iterator streams its items (`item` frames, then `end`).
"""

import ast
import base64
import collections
import collections.abc
import datetime
import decimal
import hashlib
import importlib.util
import inspect
import io
import json
import math
import os
import select
import signal
import socket
import struct
import sys
import tempfile
import threading
import time
import traceback

PROTOCOL_VERSION = 3
HEADER = struct.Struct(">I")
# Raw frames (see Channel): tag, u64 request id, and for predict a flags byte.
RAW_PREDICT = 0x01
RAW_RESULT = 0x02
FLAG_DEBUG = 0x01
RAW_PREDICT_HEAD = struct.Struct(">BQB")
RAW_RESULT_HEAD_BYTES = 9
RESULT_FRAME_HEAD = struct.Struct(">IBQ")
READ_BUFFER_BYTES = 64 * 1024
# Under load the next request usually arrives within microseconds of an
# answer: the main channel is polled without sleeping for SPIN_SECONDS first,
# so the server's write finds the worker awake (waking a sleeping process
# costs the writer more than the write). Only while the last wait was shorter
# than SPIN_WHEN_WAITED: an idle or lightly loaded worker sleeps at once.
SPIN_SECONDS = 50e-6
SPIN_WHEN_WAITED = 200e-6
LOG_SAMPLE_CHARS = 1000

try:
    import msgpack
except ImportError:  # pragma: no cover - checked by the server before start
    sys.stderr.write(
        "cortex-serve worker: the Python package msgpack is missing: "
        "apt-get install python3-msgpack (Debian) or pip install msgpack\n"
    )
    sys.exit(3)


class ProtocolViolation(Exception):
    """The server sent something the worker cannot frame or decode."""


class Channel:
    """The control channel: length-prefixed frames over two private file
    descriptors. A payload is a msgpack map, or a raw frame: `predict`
    [0x01][u64 id][u8 flags][sample] in, `result` [0x02][u64 id][prediction]
    out (see src/python/protocol.ts)."""

    def __init__(self, fd_in, fd_out, max_frame, spin=False):
        self.fd_in = fd_in
        self.fd_out = fd_out
        self.max_frame = max_frame
        self.reader = io.FileIO(fd_in, "rb", closefd=False)
        # For the polls of `_read` (the main channel only); it owns no more than
        # the channel does: both live as long as the worker.
        self.sock = socket.socket(fileno=fd_in) if spin else None
        self.last_wait = 1.0
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
                got = self._read(view[self.end:])
            if not got:
                return False
            self.end += got
        return True

    def _read(self, view):
        """One read into `view`, blocking until data or the end (0)."""
        sock = self.sock
        if sock is None:
            return self.reader.readinto(view)
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
        else:
            got = self.reader.readinto(view)
        self.last_wait = time.perf_counter() - started
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
            sample = buffer[at + RAW_PREDICT_HEAD.size:at + length]
            return Job((request_id,), sample, flags & FLAG_DEBUG, None)
        if not (0x80 <= tag <= 0x8f or tag == 0xDE or tag == 0xDF):
            raise ProtocolViolation("frame of unknown kind: first byte 0x%02x" % tag)
        with memoryview(buffer) as view:
            message = msgpack.unpackb(view[at:at + length], raw=False)
        if not isinstance(message, dict) or "type" not in message:
            raise ProtocolViolation("frame is not a message map")
        return message

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

    def send(self, message):
        payload = self._payload(message)
        self._writev(HEADER.pack(len(payload)), payload)

    def _writev(self, header, payload):
        with self.send_lock:
            # Header and payload in one syscall, without copying the payload behind the header.
            written = os.writev(self.fd_out, (header, payload))
            if written < len(header) + len(payload):  # a short write: finish from where it stopped
                data = memoryview(header + payload)[written:]
                while data:
                    data = data[os.write(self.fd_out, data):]

    def send_many(self, messages):
        """Sends several messages (dicts, or frames from `pack`) with one write."""
        self.write(b"".join(m if isinstance(m, bytes) else self.pack(m) for m in messages))

    def write(self, data):
        data = memoryview(data)
        with self.send_lock:
            while data:
                written = os.write(self.fd_out, data)
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


def take_over_stdio(channel_path):
    """Connects the main channel, then the cancel channel (in that order: the
    server tells them apart by it); fd 0 then reads /dev/null and fd 1 writes
    to the log. Returns both fds."""
    main_fd = connect_channel(channel_path)
    cancel_fd = connect_channel(channel_path)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(2, 1)
    sys.stdin = open(os.devnull, "r")
    sys.stdout = io.TextIOWrapper(
        io.FileIO(1, "wb", closefd=False), encoding="utf-8",
        errors="backslashreplace", line_buffering=True,
    )
    sys.stderr = io.TextIOWrapper(
        io.FileIO(2, "wb", closefd=False), encoding="utf-8",
        errors="backslashreplace", line_buffering=True,
    )
    return main_fd, cancel_fd


def watch_parent():
    """Exits when the server is gone, even while user code is busy.

    On Linux the kernel sends SIGKILL when the server dies (PR_SET_PDEATHSIG),
    which works even while user code holds the GIL in a C call; a thread
    polling the parent pid covers other systems.
    """
    parent = os.getppid()
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_PDEATHSIG = 1
        armed = libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
    except (OSError, AttributeError):
        armed = False
    if os.getppid() != parent:  # the server died before prctl took effect
        os._exit(70)
    if armed:
        return  # the kernel watches: no thread waking twice a second to take the GIL

    def loop():
        while True:
            time.sleep(0.5)
            if os.getppid() != parent:
                os._exit(70)

    threading.Thread(target=loop, name="cortex-parent-watch", daemon=True).start()


def flush_output():
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):  # closed or replaced by user code
            pass


def log(message):
    sys.stderr.write("cortex-serve worker: %s\n" % message)


def truncate(text, limit=LOG_SAMPLE_CHARS):
    return text if len(text) <= limit else text[:limit] + "... (%d chars)" % len(text)


# ---------------------------------------------------------------- user code


class InitFailure(Exception):
    def __init__(self, phase, error, tb=""):
        super().__init__(error)
        self.phase = phase
        self.error = error
        self.tb = tb


def describe(exc):
    return "%s: %s" % (type(exc).__name__, exc) if str(exc) else type(exc).__name__


def accepts(fn, count):
    try:
        inspect.signature(fn).bind(*([None] * count))
        return True
    except TypeError:
        return False
    except ValueError:  # no signature available (builtins): assume it does
        return True


def signature_text(name, fn):
    try:
        return "%s%s" % (name, inspect.signature(fn))
    except (TypeError, ValueError):
        return name


def load_user_module(message):
    inference = message["inference"]
    project_dir = message["project_dir"]
    paths = [os.path.dirname(inference)]
    if message.get("python_root"):
        paths.append(message["python_root"])
    paths.append(project_dir)
    for path in reversed(paths):
        if path not in sys.path:
            sys.path.insert(0, path)
    name = os.path.splitext(os.path.basename(inference))[0]
    try:
        spec = importlib.util.spec_from_file_location(name, inference)
        if spec is None or spec.loader is None:
            raise ImportError("cannot load %s as a Python module" % inference)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    except BaseException as exc:  # noqa: BLE001 - user code may raise anything
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise InitFailure("import", describe(exc), traceback.format_exc())
    return module


# --------------------------------------------------------------- interfaces
#
# How the worker calls one inference file, by the dialect of cortex.yaml:
# module functions init(metadata) / init(model_path, metadata) and
# predict(sample, metadata) with optional pre_inference/post_inference
# hooks, or Cortex 0.12's class PythonPredictor(config).predict(payload).
# The predict path only calls Interface.init() once and then
# Interface.predict(sample) (or pre/run/post one by one).


class Interface:
    """One loaded inference file: `init()` once, then `predict(sample)`.
    `has_pre`/`has_post`: whether `pre`/`post` do anything (the hot path skips them otherwise)."""

    has_pre = False
    has_post = False

    def init(self, model_path=None):
        pass

    def pre(self, sample):
        return sample

    def run(self, sample):
        raise NotImplementedError

    def post(self, prediction):
        return prediction

    def predict(self, sample):
        return self.post(self.run(self.pre(sample)))


class ModuleInterface(Interface):
    """Module functions: `init(metadata)` or `init(model_path, metadata)`, `predict(sample, metadata)`, hooks."""

    def __init__(self, functions, metadata, init_arity, hook_arity):
        self.functions = functions
        self.metadata = metadata
        self.init_arity = init_arity
        self.hook_arity = hook_arity
        self.has_pre = "pre_inference" in functions
        self.has_post = "post_inference" in functions

    def init(self, model_path=None):
        if "init" in self.functions:
            if self.init_arity == 2:
                self.functions["init"](model_path, self.metadata)
            else:
                self.functions["init"](self.metadata)

    def _hook(self, name, value):
        fn = self.functions.get(name)
        if fn is None:
            return value
        if self.hook_arity[name] == 3:  # the TensorFlow/ONNX handler form: signature is None
            return fn(value, None, self.metadata)
        return fn(value, self.metadata)

    def pre(self, sample):
        return self._hook("pre_inference", sample)

    def run(self, sample):
        return self.functions["predict"](sample, self.metadata)

    def post(self, prediction):
        return self._hook("post_inference", prediction)


class ClassInterface(Interface):
    """Cortex 0.12: `PythonPredictor(config)` once, then `predict(payload)`."""

    def __init__(self, cls, config):
        self.cls = cls
        self.config = config
        self.instance = None

    def init(self, model_path=None):
        self.instance = self.cls(self.config)

    def run(self, sample):
        return self.instance.predict(sample)


def class_lines(path, name):
    """Lines where the module at `path` defines class `name` at top level."""
    try:
        with open(path, "rb") as source:
            tree = ast.parse(source.read(), path)
    except (OSError, SyntaxError, ValueError):
        return []
    return [node.lineno for node in tree.body if isinstance(node, ast.ClassDef) and node.name == name]


def _function(module, relative, name, shapes, required, hint=""):
    """The module's function `name` and the first arity of `shapes` it accepts."""
    fn = getattr(module, name, None)
    if fn is None:
        if required:
            raise InitFailure(
                "signature",
                "%s defines no %s function: add `def %s:`%s" % (relative, name, shapes[0][1], hint),
            )
        return None, 0
    if not callable(fn):
        raise InitFailure("signature", "%s: %s is not a function" % (relative, name))
    for arity, _ in shapes:
        if accepts(fn, arity):
            return fn, arity
    wanted = " or ".join(shape for _, shape in shapes)
    raise InitFailure(
        "signature",
        "%s: %s must accept %s; yours is %s" % (relative, name, wanted, signature_text(name, fn)),
    )


def module_interface(module, message, relative):
    """Module functions; with `init_model_path` (Cortex 0.10/0.11) init also gets the model's path."""
    metadata = message.get("metadata") or {}
    with_model = message.get("interface") == "init_model_path"
    hint = ""
    lines = class_lines(message["inference"], "PythonPredictor") if not hasattr(module, "predict") else []
    if lines:
        hint = (
            " (%s:%d defines class PythonPredictor, the Cortex 0.12 interface, which this cortex.yaml "
            "does not use: declare the api with \"predictor: {type: python, path: %s}\", or move "
            "its __init__ body into init() and its predict method into predict(sample, metadata))"
            % (relative, lines[-1], relative)
        )
    predict, _ = _function(module, relative, "predict", [(2, "predict(sample, metadata)")], True, hint)
    init_shapes = [(2, "init(model_path, metadata)"), (1, "init(metadata)")] if with_model else [(1, "init(metadata)")]
    init, init_arity = _function(module, relative, "init", init_shapes, False)
    functions = {"predict": predict}
    hook_arity = {}
    if init is not None:
        functions["init"] = init
    for name, value in (("pre_inference", "sample"), ("post_inference", "prediction")):
        shapes = [(2, "%s(%s, metadata)" % (name, value)), (3, "%s(%s, signature, metadata)" % (name, value))]
        fn, arity = _function(module, relative, name, shapes, False)
        if fn is not None:
            functions[name] = fn
            hook_arity[name] = arity
    return ModuleInterface(functions, metadata, init_arity, hook_arity)


def class_interface(module, message, relative):
    """Cortex 0.12/0.13: one class PythonPredictor with __init__(self, config) and predict(self, payload)."""
    lines = class_lines(message["inference"], "PythonPredictor")
    if len(lines) > 1:
        raise InitFailure(
            "signature",
            "%s defines class PythonPredictor %d times, at lines %s: keep one (the last replaces the others)"
            % (relative, len(lines), ", ".join(str(n) for n in lines)),
        )
    cls = getattr(module, "PythonPredictor", None)
    if cls is None:
        hint = ""
        if callable(getattr(module, "predict", None)):
            hint = (
                " (it defines a module-level predict(): that is the interface of cortex.yaml's "
                "python.inference or of a predictor without type (Cortex 0.10/0.11); with "
                "\"type: python\" Cortex 0.12 calls PythonPredictor(config).predict(payload))"
            )
        raise InitFailure(
            "signature",
            "%s defines no class PythonPredictor: add `class PythonPredictor:` with "
            "`def __init__(self, config):` and `def predict(self, payload):`%s" % (relative, hint),
        )
    where = "%s:%d" % (relative, lines[0]) if lines else relative
    if not inspect.isclass(cls):
        raise InitFailure("signature", "%s: PythonPredictor is not a class" % where)
    if not accepts(cls, 1):
        raise InitFailure(
            "signature",
            "%s: PythonPredictor.__init__ must accept (self, config); yours is %s"
            % (where, signature_text("__init__", cls.__init__)),
        )
    predict = getattr(cls, "predict", None)
    if predict is None or not callable(predict):
        raise InitFailure(
            "signature", "%s: class PythonPredictor has no predict method: add `def predict(self, payload):`" % where
        )
    if not accepts(predict, 2):
        raise InitFailure(
            "signature",
            "%s: PythonPredictor.predict must accept (self, payload); yours is %s"
            % (where, signature_text("predict", predict)),
        )
    return ClassInterface(cls, message.get("metadata") or {})


def build_interface(module, message, relative):
    """Checks the file's signatures against the interface cortex.yaml asks for."""
    if message.get("interface") == "python_predictor":
        return class_interface(module, message, relative)
    return module_interface(module, message, relative)


# -------------------------------------------------------------------- model


def resolve_model(message):
    """The local path of predictor.model: as given, or downloaded first when it is s3://."""
    model = message.get("model")
    if not model or not model.startswith("s3://"):
        return model or None
    cache = message.get("model_dir") or os.path.join(tempfile.gettempdir(), "cortex-serve-models")
    return download_s3(model, cache)


def _model_failure(url, problem, fix):
    return InitFailure("init", "predictor.model %s: %s: %s" % (url, problem, fix))


def download_s3(url, cache_root):
    """Downloads an S3 object or prefix into `cache_root`; reused while its ETags are unchanged."""
    local_fix = "or download the model yourself and set predictor.model to its path"
    try:
        import boto3
        import botocore.config
        import botocore.exceptions
        import botocore.session
    except ImportError:
        raise _model_failure(
            url, "downloading it needs boto3, which this Python lacks",
            "apt-get install python3-boto3 (Debian) or add boto3 to requirements.txt, " + local_fix,
        )
    core = botocore.session.get_session()
    if os.environ.get("CORTEX_AWS_INSTANCE_METADATA") != "1":
        # Look for credentials without asking the network: the EC2 instance
        # metadata and container endpoints are only asked when enabled.
        resolver = core.get_component("credential_provider")
        for provider in ("iam-role", "container-role"):
            try:
                resolver.remove(provider)
            except (AttributeError, KeyError, ValueError):
                pass
    session = boto3.Session(botocore_session=core)
    if session.get_credentials() is None:
        raise _model_failure(
            url, "boto3 found no AWS credentials to download it",
            "write ~/.aws/credentials for the user that runs cortex-serve (on EC2 with an "
            "instance role, set CORTEX_AWS_INSTANCE_METADATA=1 in the server's environment), " + local_fix,
        )
    bucket, _, key = url[len("s3://"):].partition("/")
    # CORTEX_S3_ENDPOINT_URL points at S3-compatible storage (MinIO, a local gateway).
    endpoint = os.environ.get("CORTEX_S3_ENDPOINT_URL") or None
    client = session.client("s3", endpoint_url=endpoint, config=botocore.config.Config(
        connect_timeout=5, read_timeout=60, retries={"max_attempts": 2},
        s3={"addressing_style": "path"} if endpoint else {},
    ))
    target = os.path.join(cache_root, hashlib.sha256(url.encode("utf-8")).hexdigest()[:16])
    os.makedirs(target, exist_ok=True)
    try:
        objects = _s3_objects(client, bucket, key, botocore.exceptions.ClientError)
        if not objects:
            raise _model_failure(url, "no object or prefix of that name exists", "correct the URL")
        manifest_path = os.path.join(target, ".etags.json")
        try:
            with open(manifest_path) as f:
                manifest = json.load(f)
        except (OSError, ValueError):
            manifest = {}
        fetched = 0
        for name, object_key, etag in objects:
            path = os.path.join(target, name)
            if manifest.get(name) == etag and os.path.exists(path):
                continue
            os.makedirs(os.path.dirname(path), exist_ok=True)
            partial = "%s.part-%d" % (path, os.getpid())
            client.download_file(bucket, object_key, partial)
            os.replace(partial, path)
            manifest[name] = etag
            fetched += 1
        partial = "%s.part-%d" % (manifest_path, os.getpid())
        with open(partial, "w") as f:
            json.dump(manifest, f)
        os.replace(partial, manifest_path)
    except InitFailure:
        raise
    except Exception as exc:  # noqa: BLE001 - botocore raises many kinds
        raise _model_failure(url, "download failed: %s" % describe(exc), "check the URL, the credentials and the network")
    log("model %s: %d file(s) downloaded, %d reused, in %s" % (url, fetched, len(objects) - fetched, target))
    single = len(objects) == 1 and objects[0][1] == key
    return os.path.join(target, objects[0][0]) if single else os.path.join(target, _prefix_name(key))


def _prefix_name(key):
    return key.rstrip("/").rsplit("/", 1)[-1] or "model"


def _s3_objects(client, bucket, key, client_error):
    """(local name, key, etag) of the object `key`, or of every object under the prefix `key/`."""
    if key and not key.endswith("/"):
        try:
            head = client.head_object(Bucket=bucket, Key=key)
            return [(key.rsplit("/", 1)[-1], key, head.get("ETag", ""))]
        except client_error as exc:
            if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchKey", "NotFound"):
                raise
    prefix = key.rstrip("/") + "/" if key else ""
    found = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            rel = item["Key"][len(prefix):]
            if rel and not rel.endswith("/"):
                found.append((os.path.join(_prefix_name(key), rel), item["Key"], item.get("ETag", "")))
    return found


# ------------------------------------------------------------ serialization


class NotSerializable(TypeError):
    pass


def to_json_value(value):
    """`default` hook for json.dumps: the SPEC §4 conversions."""
    module = type(value).__module__
    if module == "numpy" and hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (set, frozenset)):
        try:
            return sorted(value)
        except TypeError:
            return sorted(value, key=repr)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    kind = type(value)
    raise NotSerializable(
        "the prediction contains a value of type %s.%s, which cannot be converted "
        "to JSON: return dicts, lists, strings, numbers, booleans, None, numpy "
        "arrays or scalars, sets, bytes, dates or Decimals"
        % (kind.__module__, kind.__qualname__)
    )


def finite(value):
    """Replaces NaN and +/-Infinity with None, converting as it goes."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    if isinstance(value, (str, int, bool)) or value is None:
        return value
    return finite(to_json_value(value))


# One encoder for every prediction: json.dumps with options builds a new one per call.
dumps = json.JSONEncoder(
    default=to_json_value, allow_nan=False, ensure_ascii=False, separators=(",", ":"),
).encode


def serialize(prediction):
    """Prediction -> UTF-8 JSON bytes. NaN and +/-Infinity become null."""
    try:
        text = dumps(prediction)
    except ValueError as exc:
        if "Out of range float" not in str(exc):
            raise
        text = dumps(finite(prediction))
    return text.encode("utf-8")


# --------------------------------------------------------------- control


class Cancelled(BaseException):
    """Raised inside user code on the main thread when the server cancels
    the running request (client gone, deadline passed). A BaseException, like
    KeyboardInterrupt, so `except Exception` in user code does not swallow it;
    `finally` blocks and context managers run."""


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


class Control:
    """Which request runs, and how a cancel reaches it.

    The main thread reads the main channel itself (no hand-off between
    threads per request) and runs jobs one at a time, in order; frames it
    reads while a stream waits for credit are kept in `pending`. Cancels
    come on a second channel that a daemon thread reads (`_watch`), so they
    take effect while the main thread is busy in user code:
    - the running job: `cancel_requested` is set and SIGUSR1 sent to the
      main thread, whose handler raises Cancelled when user code is running
      (`in_user`); the worker's own code checks the flag at its waiting
      points instead, so a frame is never cut in half by the exception;
    - a job not started yet (read or still unread: request ids increase in
      the order the server sends requests): answered `cancelled` at once,
      and its ids go to `dropped`, so the main thread skips it (answering
      the other ids of a batch) when it gets to it;
    - a finished job: ignored (its answer is on the way).
    """

    def __init__(self, channel, cancels):
        self.channel = channel
        self.cancels = cancels
        self.lock = threading.Lock()
        # Under `lock`: the running job, the highest id started, ids answered `cancelled` before they started.
        self.running = None
        self.started_upto = 0
        self.dropped = set()
        self.cancel_requested = False
        # Main thread only.
        self.in_user = False
        self.pending = collections.deque()
        self.credits = {}
        self.closed = False
        self.main_ident = threading.get_ident()
        # Written by the watcher when it cancels the running job, so a stream
        # waiting for credit wakes up.
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(self.wake_w, False)

    def start_watcher(self):
        threading.Thread(target=self._watch, name="cortex-cancel", daemon=True).start()

    def _watch(self):
        try:
            while True:
                try:
                    message = self.cancels.receive()
                except OSError:
                    return  # the channel is gone: the main channel's end stops the worker
                if message is None:
                    return
                if type(message) is not dict or message.get("type") != "cancel":
                    raise ProtocolViolation("unexpected message on the cancel channel")
                self._cancel(message["id"])
        except Exception as exc:  # noqa: BLE001 - a broken channel ends the worker
            log("protocol violation: %s" % exc)
            flush_output()
            os._exit(3)

    def _cancel(self, request_id):
        with self.lock:
            running = self.running
            if running is not None and request_id in running.ids:
                if not self.cancel_requested:
                    self.cancel_requested = True
                    try:
                        os.write(self.wake_w, b"c")
                    except BlockingIOError:
                        pass  # a wake-up is pending already
                    signal.pthread_kill(self.main_ident, signal.SIGUSR1)
                return
            if request_id <= self.started_upto:
                return  # finished already: its answer is on the way
            self.dropped.add(request_id)
        self.channel.send(cancelled_error(request_id))

    def on_signal(self, signum, frame):
        """SIGUSR1 handler, on the main thread between two bytecodes."""
        if self.in_user and self.cancel_requested:
            self.in_user = False
            raise Cancelled()

    def _read(self):
        """The next job from `pending` or the main channel, or None once the input ended."""
        while True:
            if self.pending:
                return self.pending.popleft()
            if self.closed:
                return None
            message = self._receive()
            if type(message) is Job:
                return message
            self._message(message)

    def _receive(self):
        """The next frame of the main channel, or None at its end."""
        try:
            return self.channel.receive()
        except OSError as exc:
            # The channel is gone (closed under us): like its end, and the
            # server stops a worker that keeps running without it.
            log("control channel failed: %s" % exc)
            return None

    def _message(self, message):
        """A frame that is not a job: credit, shutdown, or the end of input (None)."""
        kind = None if message is None else message.get("type")
        if kind is None or kind == "shutdown":
            self.closed = True
        elif kind == "predict_batch":
            self.pending.append(Job.batch(message))
        elif kind == "credit":
            request_id = message["id"]
            running = self.running
            # Credit for a stream that already ended is dropped.
            if running is not None and request_id in running.ids:
                self.credits[request_id] = self.credits.get(request_id, 0) + message["n"]
        else:
            raise ProtocolViolation("unexpected message %r" % kind)

    def next_job(self):
        """The next job to run, or None once the input ended."""
        while True:
            job = self._read()
            if job is None:
                return None
            ids = job.ids
            with self.lock:
                self.started_upto = ids[-1]
                if not self.dropped:
                    self.running = job
                    self.cancel_requested = False
                    return job
                cancelled = [i for i in ids if i in self.dropped]
                if not cancelled:
                    self.running = job
                    self.cancel_requested = False
                    return job
                self.dropped.difference_update(cancelled)
            # Cancelled before it started: the other ids of a batch are answered now.
            for request_id in ids:
                if request_id not in cancelled:
                    self.channel.send(cancelled_error(request_id))

    def finished(self, job):
        with self.lock:
            self.running = None
            cancelled = self.cancel_requested
            self.cancel_requested = False
        if cancelled:
            self._drain_wake()
        if self.credits:
            self.credits.clear()

    def _drain_wake(self):
        try:
            while os.read(self.wake_r, 64):
                pass
        except BlockingIOError:
            pass

    def call(self, fn, *args):
        """Runs user code where a cancel can reach it."""
        self.in_user = True
        try:
            if self.cancel_requested:
                raise Cancelled()
            return fn(*args)
        finally:
            self.in_user = False

    def wait_for_window(self, request_id, sent, window):
        """Blocks while `window` items of the stream are unacknowledged,
        reading the main channel for credit (other frames wait in `pending`).

        Raises Cancelled on a cancel, or when the window is full and the
        input has ended (nobody will grant credit any more)."""
        channel = self.channel
        while not self.cancel_requested:
            if sent - self.credits.get(request_id, 0) < window:
                return
            if self.closed:
                break
            if not channel.has_frame():
                ready, _, _ = select.select([channel.fd_in, self.wake_r], [], [])
                if self.wake_r in ready:
                    self._drain_wake()
                    continue
            message = self._receive()
            if type(message) is Job:
                self.pending.append(message)
            else:
                self._message(message)
        raise Cancelled()


def cancelled_error(request_id):
    return {
        "type": "error", "id": request_id, "kind": "cancelled",
        "error": "the request was cancelled", "traceback": "",
    }


# Types a prediction usually has: never a stream, no isinstance check against the ABC needed.
PLAIN_TYPES = frozenset((dict, list, str, int, float, bool, type(None), tuple, bytes))


def is_stream(value):
    """A generator or another iterator: its items are streamed."""
    return isinstance(value, collections.abc.Iterator) and not isinstance(
        value, (str, bytes, bytearray, memoryview, dict, list, tuple)
    )


# --------------------------------------------------------------------- loop


DEFAULT_STREAM_WINDOW = 8


class Worker:
    def __init__(self, channel, cancels):
        self.channel = channel
        self.control = Control(channel, cancels)
        self.interface = Interface()
        self.metadata = {}
        self.api = "?"
        self.window = DEFAULT_STREAM_WINDOW

    def start(self):
        message = self.channel.receive()
        if message is None:
            return False
        kind = "predict" if type(message) is Job else message.get("type")
        if kind != "init":
            raise ProtocolViolation("expected init, got %r" % kind)
        if message.get("protocol") != PROTOCOL_VERSION:
            self.channel.send({
                "type": "init_error", "phase": "protocol", "traceback": "",
                "error": "the server speaks protocol %r, this worker %d: use the worker "
                "shipped with the same cortex-serve binary"
                % (message.get("protocol"), PROTOCOL_VERSION),
            })
            return False
        self.api = message["api"]
        self.metadata = message.get("metadata") or {}
        self.window = max(1, int(message.get("stream_window") or DEFAULT_STREAM_WINDOW))
        relative = os.path.relpath(message["inference"], message["project_dir"])
        try:
            module = load_user_module(message)
            self.interface = build_interface(module, message, relative)
            model_path = resolve_model(message)
            try:
                self.interface.init(model_path)
            except BaseException as exc:  # noqa: BLE001
                if isinstance(exc, KeyboardInterrupt):
                    raise
                raise InitFailure("init", describe(exc), traceback.format_exc())
        except InitFailure as failure:
            if failure.tb:
                sys.stderr.write(failure.tb)
            flush_output()
            self.channel.send({
                "type": "init_error", "phase": failure.phase,
                "error": failure.error, "traceback": failure.tb,
            })
            return False
        flush_output()
        self.channel.send({
            "type": "ready", "protocol": PROTOCOL_VERSION, "pid": os.getpid(),
            "python": sys.version.split()[0],
        })
        return True

    def serve(self):
        control = self.control
        control.start_watcher()
        next_job = control.next_job
        finished = control.finished
        while True:
            job = next_job()
            if job is None:
                return
            try:
                if job.samples is None:
                    self.predict(job)
                else:
                    self.predict_batch(job)
            except Cancelled:
                # Raised by a late signal in the worker's own code, after the
                # request's answer or error went out: nothing left to answer.
                pass
            finally:
                # Output without a final newline still reaches the log per request.
                flush_output()
                finished(job)

    def user_error(self, request_id, exc):
        """The error frame for an exception raised by user code."""
        if isinstance(exc, Cancelled):
            return cancelled_error(request_id)
        if isinstance(exc, MemoryError):
            return error_frame(request_id, "out_of_memory", "MemoryError: predict ran out of memory", traceback.format_exc())
        tb = traceback.format_exc()
        sys.stderr.write(tb)
        return error_frame(request_id, "predict", describe(exc), tb)

    def predict(self, job):
        request_id = job.ids[0]
        debug = job.debug
        raw = job.sample
        try:
            sample = json.loads(raw)
        except RecursionError:
            return self.fail(request_id, "sample", "it nests too deeply to parse", "")
        except Exception as exc:  # noqa: BLE001 - any parse failure is the client's, never the worker's
            return self.fail(request_id, "sample", str(exc) or type(exc).__name__, "")
        if debug:
            log("api %s request %d sample: %s" % (self.api, request_id, truncate(bytes(raw).decode("utf-8", "replace"))))
        interface = self.interface
        control = self.control
        streaming = False
        try:
            # The hooks and predict run in one window where a cancel can reach
            # them (see Control.call, inlined on this path).
            control.in_user = True
            try:
                if control.cancel_requested:
                    raise Cancelled()
                if interface.has_pre:
                    sample = interface.pre(sample)
                prediction = interface.run(sample)
                if type(prediction) not in PLAIN_TYPES and is_stream(prediction):
                    streaming = True
                elif interface.has_post:
                    prediction = interface.post(prediction)
            finally:
                control.in_user = False
        except BaseException as exc:  # noqa: BLE001 - SystemExit too costs one request only
            if isinstance(exc, KeyboardInterrupt):
                raise
            return self.channel.send(self.user_error(request_id, exc))
        if streaming:
            return self.stream(request_id, prediction, debug)
        try:
            body = serialize(prediction)
        except (TypeError, ValueError, RecursionError) as exc:
            return self.fail(request_id, "serialize", "cannot serialize the prediction: %s" % exc, traceback.format_exc())
        if debug:
            log("api %s request %d prediction: %s" % (self.api, request_id, truncate(body.decode("utf-8", "replace"))))
        try:
            self.channel.send_result(request_id, body)
        except OverflowError as exc:
            self.fail(request_id, "serialize", "the prediction is too large: %s (raise --max-frame)" % exc, "")

    def stream(self, request_id, iterator, debug):
        """Sends the iterator's items as `item` frames, at most `window` ahead of credit."""
        control = self.control
        post = self.interface.post
        sent = 0
        try:
            while True:
                control.wait_for_window(request_id, sent, self.window)
                try:
                    item = control.call(next, iterator)
                except StopIteration:
                    break
                item = control.call(post, item)
                try:
                    body = serialize(item)
                    frame = self.channel.pack({"type": "item", "id": request_id, "value": body})
                except (TypeError, ValueError, RecursionError, OverflowError) as exc:
                    self.close_iterator(iterator)
                    return self.fail(
                        request_id, "serialize",
                        "cannot serialize item %d of the stream: %s" % (sent, exc),
                        traceback.format_exc(),
                    )
                if debug:
                    log("api %s request %d item %d: %s" % (self.api, request_id, sent, truncate(body.decode("utf-8", "replace"))))
                self.channel.write(frame)
                sent += 1
        except BaseException as exc:  # noqa: BLE001
            if isinstance(exc, (KeyboardInterrupt, ProtocolViolation)):
                raise  # a violation read while waiting for credit ends the worker
            error = self.user_error(request_id, exc)
            self.close_iterator(iterator)
            return self.channel.send(error)
        self.channel.send({"type": "end", "id": request_id, "items": sent})

    def close_iterator(self, iterator):
        """Closes a generator that will not be resumed, so its `finally` blocks run."""
        close = getattr(iterator, "close", None)
        if close is None:
            return
        try:
            self.control.in_user = True
            close()
        except BaseException as exc:  # noqa: BLE001 - a raising finally changes nothing now
            if isinstance(exc, KeyboardInterrupt):
                raise
        finally:
            self.control.in_user = False

    def predict_batch(self, job):
        debug = job.debug
        interface = self.interface
        call = self.control.call
        # A sample that cannot be parsed fails its own request; the others go on.
        answers = {}
        ids = []
        samples = []
        for request_id, raw in zip(job.ids, job.samples):
            try:
                samples.append(json.loads(raw))
                ids.append(request_id)
            except RecursionError:
                answers[request_id] = error_frame(request_id, "sample", "it nests too deeply to parse", "")
            except Exception as exc:  # noqa: BLE001 - any parse failure is the client's
                answers[request_id] = error_frame(request_id, "sample", str(exc) or type(exc).__name__, "")
            if debug:
                log("api %s request %d sample: %s" % (self.api, request_id, truncate(bytes(raw).decode("utf-8", "replace"))))
        in_order = lambda: [answers[i] for i in job.ids]  # noqa: E731
        if not ids:
            return self.channel.send_many(in_order())
        try:
            samples = [call(interface.pre, sample) for sample in samples]
            predictions = call(interface.run, samples)
        except BaseException as exc:  # noqa: BLE001
            if isinstance(exc, KeyboardInterrupt):
                raise
            first = self.user_error(ids[0], exc)
            answers.update((i, dict(first, id=i)) for i in ids)
            return self.channel.send_many(in_order())
        wrong = batch_shape_error(predictions, len(ids))
        if wrong is not None:
            log("api %s: %s" % (self.api, wrong))
            answers.update((i, error_frame(i, "predict", wrong, "")) for i in ids)
            return self.channel.send_many(in_order())
        for request_id, prediction in zip(ids, predictions):
            answers[request_id] = self.batch_item(request_id, prediction, debug)
        self.channel.send_many(in_order())

    def batch_item(self, request_id, prediction, debug):
        """The answer of one request of a batch: a packed `result`, or an `error` message."""
        try:
            prediction = self.control.call(self.interface.post, prediction)
        except BaseException as exc:  # noqa: BLE001
            if isinstance(exc, KeyboardInterrupt):
                raise
            return self.user_error(request_id, exc)
        try:
            body = serialize(prediction)
            frame = self.channel.pack_result(request_id, body)
        except (TypeError, ValueError, RecursionError) as exc:
            return error_frame(request_id, "serialize", "cannot serialize the prediction: %s" % exc, traceback.format_exc())
        except OverflowError as exc:
            return error_frame(request_id, "serialize", "the prediction is too large: %s (raise --max-frame)" % exc, "")
        if debug:
            log("api %s request %d prediction: %s" % (self.api, request_id, truncate(body.decode("utf-8", "replace"))))
        return frame

    def fail(self, request_id, kind, error, tb):
        self.channel.send(error_frame(request_id, kind, error, tb))


def error_frame(request_id, kind, error, tb):
    return {"type": "error", "id": request_id, "kind": kind, "error": error, "traceback": tb}


def batch_shape_error(predictions, size):
    """Why `predictions` cannot answer a batch of `size`, or None."""
    if not isinstance(predictions, (list, tuple)):
        kind = type(predictions)
        hint = " (call .tolist() on it)" if hasattr(predictions, "tolist") else ""
        return (
            "predict returned %s.%s for a batch of %d: with server_side_batching it must "
            "return a list with one prediction per sample%s"
            % (kind.__module__, kind.__qualname__, size, hint)
        )
    if len(predictions) != size:
        return "predict returned %d items for a batch of %d" % (len(predictions), size)
    return None


def parse_args(argv):
    """(max_frame, channel path) from `--max-frame N --channel PATH`."""
    if len(argv) == 5 and argv[1] == "--max-frame" and argv[2].isdigit() and argv[3] == "--channel":
        return int(argv[2]), argv[4]
    sys.stderr.write(
        "usage: worker.py --max-frame BYTES --channel SOCKET (started by cortex-serve)\n"
    )
    sys.exit(2)


def main(argv):
    max_frame, channel_path = parse_args(argv)
    # Lead a process group of our own, so the server can stop whatever user
    # code starts (subprocesses, pools) together with the worker.
    try:
        os.setpgid(0, 0)
    except OSError:
        pass
    # Ctrl-C in a terminal reaches the whole process group; the server decides
    # when workers stop (after draining), so the worker ignores SIGINT.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    main_fd, cancel_fd = take_over_stdio(channel_path)
    watch_parent()
    worker = Worker(Channel(main_fd, main_fd, max_frame, spin=True), Channel(cancel_fd, cancel_fd, max_frame))
    # Cancellation reaches the main thread as SIGUSR1 (see Control).
    signal.signal(signal.SIGUSR1, worker.control.on_signal)
    try:
        if worker.start():
            worker.serve()
    except ProtocolViolation as exc:
        log("protocol violation: %s" % exc)
        return 3
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    code = main(sys.argv)
    sys.stderr.flush()
    # Skip interpreter teardown of user objects that may hang (threads, pools).
    os._exit(code)

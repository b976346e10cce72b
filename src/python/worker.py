"""cortex-serve worker: runs one replica of a user's inference file.

Started by the server as `python worker.py --max-frame N --channel PATH`. The
server talks to it over the Unix socket at PATH (without `--channel`: over
stdin/stdout) with length-prefixed msgpack frames (4-byte big-endian length,
then one msgpack map; see src/python/protocol.ts and channel.ts). Before any
user code runs, the control channel is moved off fds 0 and 1: fd 1 then
points at stderr (the log stream) so `print()` and C libraries writing to
fd 1 can never corrupt the protocol, and fd 0 reads from /dev/null.

Lifecycle: `init` message -> import the inference file (its global scope
runs) -> check signatures -> `init(metadata)` -> `ready`; then `predict`
messages until `shutdown` or end of input.
"""

import base64
import datetime
import decimal
import importlib.util
import inspect
import io
import json
import math
import os
import signal
import socket
import struct
import sys
import threading
import time
import traceback

PROTOCOL_VERSION = 1
HEADER = struct.Struct(">I")
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
    """The control channel: framed msgpack over two private file descriptors."""

    def __init__(self, fd_in, fd_out, max_frame):
        self.fd_in = fd_in
        self.fd_out = fd_out
        self.max_frame = max_frame
        self.reader = io.FileIO(fd_in, "rb", closefd=False)
        self.header = bytearray(HEADER.size)
        self.buffer = bytearray(64 * 1024)

    def _read_exactly(self, view):
        filled = 0
        while filled < len(view):
            n = self.reader.readinto(view[filled:])
            if not n:
                return False
            filled += n
        return True

    def receive(self):
        """Next message as a dict, or None at end of input."""
        if not self._read_exactly(memoryview(self.header)):
            return None
        (length,) = HEADER.unpack(self.header)
        if length == 0 or length > self.max_frame:
            raise ProtocolViolation(
                "frame of %d bytes refused (maximum %d)" % (length, self.max_frame)
            )
        if length > len(self.buffer):
            self.buffer = bytearray(max(length, 2 * len(self.buffer)))
        view = memoryview(self.buffer)[:length]
        if not self._read_exactly(view):
            return None
        message = msgpack.unpackb(view, raw=False)
        if not isinstance(message, dict) or "type" not in message:
            raise ProtocolViolation("frame is not a message map")
        return message

    def send(self, message):
        payload = msgpack.packb(message, use_bin_type=True)
        if len(payload) > self.max_frame:
            raise OverflowError(
                "message of %d bytes is over the maximum frame size of %d bytes"
                % (len(payload), self.max_frame)
            )
        header = HEADER.pack(len(payload))
        # Header and payload in one syscall, without copying the payload behind the header.
        written = os.writev(self.fd_out, (header, payload))
        if written < len(header) + len(payload):  # a short write: finish from where it stopped
            data = memoryview(header + payload)[written:]
            while data:
                data = data[os.write(self.fd_out, data):]


def connect_channel(path):
    """Connects to the server's socket; returns its fd for both directions."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError as exc:
        sys.stderr.write("cortex-serve worker: cannot connect to %s: %s\n" % (path, exc))
        sys.exit(3)
    fd = sock.detach()
    return fd, fd


def take_over_stdio(channel_path):
    """Moves the control channel off fds 0/1; fd 1 then writes to the log."""
    if channel_path is None:
        fd_in = os.dup(0)
        fd_out = os.dup(1)
    else:
        fd_in, fd_out = connect_channel(channel_path)
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
    return fd_in, fd_out


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
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:  # the server died before prctl took effect
        os._exit(70)

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


HOOKS = (
    ("init", 1, False, "init(metadata)"),
    ("predict", 2, True, "predict(sample, metadata)"),
    ("pre_inference", 2, False, "pre_inference(sample, metadata)"),
    ("post_inference", 2, False, "post_inference(prediction, metadata)"),
)


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


def check_signatures(module, relative):
    functions = {}
    for name, arity, required, shape in HOOKS:
        fn = getattr(module, name, None)
        if fn is None:
            if required:
                hint = ""
                if hasattr(module, "PythonPredictor"):
                    hint = " (Cortex's class-based PythonPredictor is not supported: move its __init__ body into init(metadata) and its predict method into a module-level predict(sample, metadata))"
                raise InitFailure(
                    "signature",
                    "%s defines no %s function: add `def %s:`%s" % (relative, name, shape, hint),
                )
            continue
        if not callable(fn):
            raise InitFailure("signature", "%s: %s is not a function" % (relative, name))
        if not accepts(fn, arity):
            raise InitFailure(
                "signature",
                "%s: %s must accept %s; yours is %s"
                % (relative, name, shape, signature_text(name, fn)),
            )
        functions[name] = fn
    return functions


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


def dumps(value):
    return json.dumps(
        value, default=to_json_value, allow_nan=False, ensure_ascii=False,
        separators=(",", ":"),
    )


def serialize(prediction):
    """Prediction -> UTF-8 JSON bytes. NaN and +/-Infinity become null."""
    try:
        text = dumps(prediction)
    except ValueError as exc:
        if "Out of range float" not in str(exc):
            raise
        text = dumps(finite(prediction))
    return text.encode("utf-8")


# --------------------------------------------------------------------- loop


class Worker:
    def __init__(self, channel):
        self.channel = channel
        self.functions = {}
        self.metadata = {}
        self.api = "?"

    def start(self):
        message = self.channel.receive()
        if message is None:
            return False
        if message.get("type") != "init":
            raise ProtocolViolation("expected init, got %r" % message.get("type"))
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
        relative = os.path.relpath(message["inference"], message["project_dir"])
        try:
            module = load_user_module(message)
            self.functions = check_signatures(module, relative)
            if "init" in self.functions:
                try:
                    self.functions["init"](self.metadata)
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

    def predict(self, message):
        try:
            self._predict(message)
        finally:
            # Output without a final newline still reaches the log per request.
            flush_output()

    def _predict(self, message):
        request_id = message["id"]
        debug = bool(message.get("debug"))
        try:
            raw = message["sample"]
            sample = json.loads(raw)
        except ValueError as exc:
            return self.fail(request_id, "sample", "the sample is not valid JSON: %s" % exc, "")
        if debug:
            log("api %s request %d sample: %s" % (self.api, request_id, truncate(bytes(raw).decode("utf-8", "replace"))))
        fns = self.functions
        try:
            if "pre_inference" in fns:
                sample = fns["pre_inference"](sample, self.metadata)
            prediction = fns["predict"](sample, self.metadata)
            if "post_inference" in fns:
                prediction = fns["post_inference"](prediction, self.metadata)
        except MemoryError:
            return self.fail(request_id, "out_of_memory", "MemoryError: predict ran out of memory", traceback.format_exc())
        except BaseException as exc:  # noqa: BLE001 - SystemExit too costs one request only
            if isinstance(exc, KeyboardInterrupt):
                raise
            tb = traceback.format_exc()
            sys.stderr.write(tb)
            return self.fail(request_id, "predict", describe(exc), tb)
        try:
            body = serialize(prediction)
        except (TypeError, ValueError, RecursionError) as exc:
            return self.fail(request_id, "serialize", "cannot serialize the prediction: %s" % exc, traceback.format_exc())
        if debug:
            log("api %s request %d prediction: %s" % (self.api, request_id, truncate(body.decode("utf-8", "replace"))))
        try:
            self.channel.send({"type": "result", "id": request_id, "prediction": body})
        except OverflowError as exc:
            self.fail(request_id, "serialize", "the prediction is too large: %s (raise --max-frame)" % exc, "")

    def fail(self, request_id, kind, error, tb):
        self.channel.send({
            "type": "error", "id": request_id, "kind": kind, "error": error, "traceback": tb,
        })

    def serve(self):
        while True:
            message = self.channel.receive()
            if message is None or message.get("type") == "shutdown":
                return
            if message.get("type") != "predict":
                raise ProtocolViolation("unexpected message %r" % message.get("type"))
            self.predict(message)


def parse_args(argv):
    """(max_frame, channel path or None) from `--max-frame N [--channel PATH]`."""
    if len(argv) in (3, 5) and argv[1] == "--max-frame" and argv[2].isdigit():
        if len(argv) == 3:
            return int(argv[2]), None
        if argv[3] == "--channel":
            return int(argv[2]), argv[4]
    sys.stderr.write(
        "usage: worker.py --max-frame BYTES [--channel SOCKET] (started by cortex-serve)\n"
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
    fd_in, fd_out = take_over_stdio(channel_path)
    watch_parent()
    worker = Worker(Channel(fd_in, fd_out, max_frame))
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

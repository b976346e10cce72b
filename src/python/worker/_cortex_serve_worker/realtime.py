"""The Cortex 0.17–0.35 PythonPredictor (interface `realtime_predictor`):
`__init__(self, config[, python_client][, job_spec][, metrics_client])` and
`predict(self[, payload][, query_params][, headers][, batch_id])`, the
optional arguments passed by name, only those the method declares; an
optional `post_predict(self[, response][, payload][, query_params][, headers])`
run after the answer went out; `load_model(self, model_path)` for
multi-model APIs (see models.py). Each request arrives as an envelope
(payloads.read_request) and is answered with one (pack_answer): JSON for
JSON-able values, text/plain for str, application/octet-stream for bytes, a
Starlette Response passed through with its status, headers and media type."""

import inspect
import struct
import sys
import traceback

import msgpack

from .answers import SERIALIZE_ERRORS, serialize
from .interfaces import Interface, class_lines, signature_text
from .models import ModelClient, MetricsClient
from .user_module import InitFailure

ANSWER_HEAD = struct.Struct(">HH")
U32 = struct.Struct(">I")

PREDICT_ARGS = ("payload", "query_params", "headers", "batch_id")
POST_PREDICT_ARGS = ("response", "payload", "query_params", "headers")
INIT_ARGS = ("config", "python_client", "job_spec", "metrics_client")

JSON_TYPE = "application/json"
TEXT_TYPE = "text/plain; charset=utf-8"
BYTES_TYPE = "application/octet-stream"
_JSON_HEAD = ANSWER_HEAD.pack(200, len(JSON_TYPE)) + JSON_TYPE.encode() + U32.pack(0)


def _params(fn):
    """The parameters of a method after self, as inspect sees them."""
    return list(inspect.signature(fn).parameters.values())[1:]


def _named(where, method, fn, allowed, required=()):
    """The names of `allowed` that `fn` declares; InitFailure for a required one it lacks or one it cannot get."""
    names = []
    for param in _params(fn):
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        if param.name in allowed:
            names.append(param.name)
        elif param.default is param.empty:
            raise InitFailure(
                "signature",
                "%s: PythonPredictor.%s has the parameter %r, which Cortex never passes (it passes %s by "
                "name); yours is %s: remove it or give it a default"
                % (where, method, param.name, ", ".join(allowed), signature_text(method, fn)),
            )
    for name in required:
        if name not in names:
            raise InitFailure(
                "signature",
                "%s: PythonPredictor.%s must accept %r; yours is %s"
                % (where, method, name, signature_text(method, fn)),
            )
    return tuple(names)


class RealtimeInterface(Interface):
    """A PythonPredictor whose methods get their optional arguments by name."""

    def __init__(self, cls, message, where):
        self.cls = cls
        self.config = message.get("metadata") or {}
        self.where = where
        self.init_names = _named(where, "__init__", cls.__init__, INIT_ARGS, ("config",))
        self.predict_names = _named(where, "predict", cls.predict, PREDICT_ARGS)
        post = getattr(cls, "post_predict", None)
        self.post_names = None if post is None else _named(where, "post_predict", post, POST_PREDICT_ARGS)
        self.wants_payload = "payload" in self.predict_names
        self.models = ModelClient.from_init(message)
        if self.models is not None and not callable(getattr(cls, "load_model", None)):
            raise InitFailure(
                "signature",
                "%s: predictor.multi_model_reloading needs PythonPredictor.load_model(self, model_path), "
                "which returns the loaded model" % where,
            )
        if self.models is not None and "python_client" not in self.init_names:
            raise InitFailure(
                "signature",
                "%s: with models configured, PythonPredictor.__init__ must accept python_client: "
                "write `def __init__(self, config, python_client):` and keep it for get_model()" % where,
            )
        self.instance = None

    def init(self, model_path=None):
        instance = self.cls.__new__(self.cls)
        if self.models is not None:
            self.models.bind(instance.load_model)
        values = {
            "config": self.config,
            "python_client": self.models,
            "job_spec": None,
            "metrics_client": MetricsClient(),
        }
        instance.__init__(**{name: values[name] for name in self.init_names})
        self.instance = instance

    def run(self, sample):
        """`predict` with the arguments it declares; `sample` is (payload, query_params, headers)."""
        payload, query_params, headers = sample
        values = {"payload": payload, "query_params": query_params, "headers": headers, "batch_id": None}
        return self.instance.predict(**{name: values[name] for name in self.predict_names})

    def post_predict(self, response, sample):
        payload, query_params, headers = sample
        values = {"response": response, "payload": payload, "query_params": query_params, "headers": headers}
        self.instance.post_predict(**{name: values[name] for name in self.post_names})


def realtime_interface(module, message, relative):
    """Checks the class's shape and its methods' parameters, before `ready`."""
    lines = class_lines(message["inference"], "PythonPredictor")
    where = "%s:%d" % (relative, lines[-1]) if lines else relative
    cls = getattr(module, "PythonPredictor", None)
    if cls is None or not inspect.isclass(cls):
        raise InitFailure(
            "signature",
            "%s defines no class PythonPredictor: add `class PythonPredictor:` with "
            "`def __init__(self, config):` and `def predict(self, payload):`" % relative,
        )
    if not callable(getattr(cls, "predict", None)):
        raise InitFailure(
            "signature", "%s: class PythonPredictor has no predict method: add `def predict(self, payload):`" % where
        )
    return RealtimeInterface(cls, message, where)


def is_response(value):
    """A Starlette Response (or one shaped like it: status_code, body, raw_headers)."""
    return hasattr(value, "status_code") and hasattr(value, "raw_headers") and hasattr(value, "body")


def pack_answer(value):
    """The answer envelope of predict's return value; SERIALIZE_ERRORS when it has no wire form."""
    kind = type(value)
    if kind is bytes or kind is bytearray or kind is memoryview:
        return _head(200, BYTES_TYPE, None) + bytes(value)
    if kind is str:
        return _head(200, TEXT_TYPE, None) + value.encode("utf-8")
    if kind not in (dict, list) and is_response(value):
        return _response(value)
    return _JSON_HEAD + serialize(value)


def _head(status, content_type, headers):
    ct = content_type.encode("latin-1")
    packed = msgpack.packb(headers, use_bin_type=True) if headers else b""
    return ANSWER_HEAD.pack(status, len(ct)) + ct + U32.pack(len(packed)) + packed


def _response(response):
    body = response.body
    if not isinstance(body, (bytes, bytearray, memoryview)):
        raise TypeError(
            "predict returned a %s without a body (a streaming response): return a Response "
            "with its content, or a generator to stream JSON items" % type(response).__name__
        )
    content_type = ""
    headers = []
    for name, value in response.raw_headers:
        name = name.decode("latin-1").lower()
        value = value.decode("latin-1")
        if name == "content-type":
            content_type = value
        elif name != "content-length":
            headers.append([name, value])
    if not 100 <= int(response.status_code) <= 599:
        raise ValueError("predict returned a Response with status %r" % response.status_code)
    return _head(int(response.status_code), content_type, headers) + bytes(body)


def run_post_predict(interface, response, sample, log):
    """Runs post_predict after the answer went out; its errors are logged, never answered."""
    try:
        interface.post_predict(response, sample)
    except BaseException as exc:  # noqa: BLE001 - user code may raise anything; the answer is gone
        if isinstance(exc, KeyboardInterrupt):
            raise
        sys.stderr.write(traceback.format_exc())
        log("post_predict raised %s: %s (the answer had already been sent)" % (type(exc).__name__, exc))


__all__ = ["RealtimeInterface", "realtime_interface", "pack_answer", "run_post_predict", "SERIALIZE_ERRORS"]

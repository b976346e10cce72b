"""The Cortex 0.17-0.33 PythonPredictor (interface `realtime_predictor`):
`__init__(self, config[, python_client][, job_spec][, metrics_client])` and
`predict(self[, payload][, query_params][, headers][, batch_id])`, the
optional arguments passed by name, only those the method declares; an
optional `post_predict(self[, response][, payload][, query_params][, headers])`
run after the answer went out; `load_model(self, model_path)` for
multi-model APIs (see models.py). Each request arrives as an envelope
(payloads.read_request) and is answered with one (pack_answer): JSON for
JSON-able values, text/plain for str, application/octet-stream for bytes, a
Starlette Response passed through with its status, headers and media type.

Cortex 0.34-0.35 (interface `realtime_handler`) renamed the class Handler,
`predict` handle_post (the only verb served here), `python_client`
model_client, and replaced post_predict by a callback: handle_post may
return `(result, callback)`, and the callback runs after the answer."""

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

# request_id: AsyncAPI's (Cortex 0.31+), the request's x-request-id (the job's id).
PREDICT_ARGS = ("payload", "query_params", "headers", "batch_id", "request_id")
POST_PREDICT_ARGS = ("response", "payload", "query_params", "headers")
INIT_ARGS = ("config", "python_client", "job_spec", "metrics_client")
HANDLER_INIT_ARGS = ("config", "model_client", "metrics_client")
HANDLER_ARGS = ("payload", "query_params", "headers")
OTHER_VERBS = ("handle_get", "handle_put", "handle_patch", "handle_delete")

JSON_TYPE = "application/json"
TEXT_TYPE = "text/plain; charset=utf-8"
BYTES_TYPE = "application/octet-stream"
_JSON_HEAD = ANSWER_HEAD.pack(200, len(JSON_TYPE)) + JSON_TYPE.encode() + U32.pack(0)


def _params(fn):
    """The parameters of a method after self, as inspect sees them."""
    return list(inspect.signature(fn).parameters.values())[1:]


def _named(where, method, fn, allowed, required=(), cls_name="PythonPredictor"):
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
                "%s: %s.%s has the parameter %r, which Cortex never passes (it passes %s by "
                "name); yours is %s: remove it or give it a default"
                % (where, cls_name, method, param.name, ", ".join(allowed), signature_text(method, fn)),
            )
    for name in required:
        if name not in names:
            raise InitFailure(
                "signature",
                "%s: %s.%s must accept %r; yours is %s"
                % (where, cls_name, method, name, signature_text(method, fn)),
            )
    return tuple(names)


class RealtimeInterface(Interface):
    """A PythonPredictor whose methods get their optional arguments by name."""

    def __init__(self, cls, message, where, handler=False):
        self.cls = cls
        self.config = message.get("metadata") or {}
        self.where = where
        # Cortex 0.34+: class Handler, handle_post, model_client, (result, callback) answers.
        self.handler = handler
        name = cls.__name__
        self.method = "handle_post" if handler else "predict"
        self.client_name = "model_client" if handler else "python_client"
        init_args = HANDLER_INIT_ARGS if handler else INIT_ARGS
        self.init_names = _named(where, "__init__", cls.__init__, init_args, ("config",), name)
        method_args = HANDLER_ARGS if handler else PREDICT_ARGS
        self.predict_names = _named(where, self.method, getattr(cls, self.method), method_args, (), name)
        post = None if handler else getattr(cls, "post_predict", None)
        self.post_names = None if post is None else _named(where, "post_predict", post, POST_PREDICT_ARGS)
        self.wants_payload = "payload" in self.predict_names
        self.wants_request_id = "request_id" in self.predict_names
        declared = set(self.predict_names) | set(self.post_names or ())
        self.wants_payload = self.wants_payload or "payload" in declared
        self.wants_query = "query_params" in declared
        self.wants_headers = "headers" in declared or self.wants_request_id
        self.models = ModelClient.from_init(message)
        if self.models is not None and not callable(getattr(cls, "load_model", None)):
            raise InitFailure(
                "signature",
                "%s: multi_model_reloading needs %s.load_model(self, model_path), "
                "which returns the loaded model" % (where, name),
            )
        if self.models is not None and self.client_name not in self.init_names:
            raise InitFailure(
                "signature",
                "%s: with models configured, %s.__init__ must accept %s: write `def __init__(self, "
                "config, %s):` and keep it for get_model()" % (where, name, self.client_name, self.client_name),
            )
        self.instance = None

    def init(self, model_path=None):
        instance = self.cls.__new__(self.cls)
        if self.models is not None:
            self.models.bind(instance.load_model)
        values = {
            "config": self.config,
            "python_client": self.models,
            "model_client": self.models,
            "job_spec": None,
            "metrics_client": MetricsClient(),
        }
        instance.__init__(**{name: values[name] for name in self.init_names})
        self.instance = instance

    def run(self, sample):
        """`predict` with the arguments it declares; `sample` is (payload, query_params, headers)."""
        payload, query_params, headers = sample
        values = {"payload": payload, "query_params": query_params, "headers": headers, "batch_id": None}
        if self.wants_request_id:
            values["request_id"] = (
                [h.get("x-request-id") for h in headers] if type(headers) is list else headers.get("x-request-id")
            )
        return getattr(self.instance, self.method)(**{name: values[name] for name in self.predict_names})

    def post_predict(self, response, sample):
        payload, query_params, headers = sample
        values = {"response": response, "payload": payload, "query_params": query_params, "headers": headers}
        self.instance.post_predict(**{name: values[name] for name in self.post_names})


def realtime_interface(module, message, relative, log):
    """Checks the class's shape and its methods' parameters, before `ready`."""
    handler = message.get("interface") == "realtime_handler"
    name, method = ("Handler", "handle_post") if handler else ("PythonPredictor", "predict")
    lines = class_lines(message["inference"], name)
    where = "%s:%d" % (relative, lines[-1]) if lines else relative
    cls = getattr(module, name, None)
    if cls is None or not inspect.isclass(cls):
        raise InitFailure(
            "signature",
            "%s defines no class %s: add `class %s:` with `def __init__(self, config):` and "
            "`def %s(self, payload):`" % (relative, name, name, method),
        )
    if not callable(getattr(cls, method, None)):
        raise InitFailure(
            "signature", "%s: class %s has no %s method: add `def %s(self, payload):`"
            % (where, name, method, method)
            + (" (only POST is served: handle_get, handle_put, handle_patch and handle_delete are not)"
               if handler else ""),
        )
    if handler:
        for verb in OTHER_VERBS:
            if callable(getattr(cls, verb, None)):
                log("%s: Handler.%s is not served: only POST requests reach the Handler (handle_post)" % (where, verb))
    return RealtimeInterface(cls, message, where, handler)


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


def split_callback(interface, value):
    """(answer, callback) of a Handler's `(result, callable)` return; (value, None) otherwise."""
    if interface.handler and type(value) is tuple and len(value) == 2 and callable(value[1]):
        return value[0], value[1]
    return value, None


def after_answer(what, fn, log):
    """Runs post_predict or a Handler's callback after the answer went out; errors logged, never answered."""
    try:
        fn()
    except BaseException as exc:  # noqa: BLE001 - user code may raise anything; the answer is gone
        if isinstance(exc, KeyboardInterrupt):
            raise
        sys.stderr.write(traceback.format_exc())
        log("%s raised %s: %s (the answer had already been sent)" % (what, type(exc).__name__, exc))


__all__ = ["RealtimeInterface", "realtime_interface", "pack_answer", "split_callback", "after_answer", "SERIALIZE_ERRORS"]

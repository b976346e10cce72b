"""The trace context of the request being served, for user code run by cortex-serve.

While the server exports OpenTelemetry traces (`OTEL_DENO=true`), each
request that runs alone is sent to the worker with the W3C trace context of
its `predict` span. While that request's code runs (`predict`, the
`pre_inference`/`post_inference` hooks, a streaming generator, a Cortex
0.17+ `post_predict`), the functions below return it; otherwise (tracing
off, between requests) they return None or nothing. A server-side batch
serves requests of several traces: while it runs, `traceparents()` lists
them, one per sample of the list `predict` gets, and `traceparent()` is None.

    try:
        import cortex_serve_trace
    except ImportError:  # not run by cortex-serve
        cortex_serve_trace = None

    def predict(sample, metadata):
        headers = cortex_serve_trace.headers() if cortex_serve_trace else {}
        return requests.post(URL, json=sample, headers=headers).json()

When user code (or a library it uses) has imported Python's `opentelemetry`
API, the worker also makes the context current, so spans user code starts
are children of the server's `predict` span; this module never imports it.
"""

__all__ = ["traceparent", "tracestate", "headers", "traceparents"]

_traceparent = None
_tracestate = None
_traceparents = ()


def traceparent():
    """The W3C `traceparent` of the running request's `predict` span, or None."""
    return _traceparent


def tracestate():
    """The W3C `tracestate` of the running request, or None when it has none."""
    return _tracestate


def headers():
    """The running request's trace context as HTTP headers (empty when there is none):
    pass them on a call to another service to continue the trace there."""
    if _traceparent is None:
        return {}
    if _tracestate is None:
        return {"traceparent": _traceparent}
    return {"traceparent": _traceparent, "tracestate": _tracestate}


def traceparents():
    """The `traceparent` of each request being served: one for a request that runs
    alone, one per sample of the list `predict` gets in a batch; [] when there is none."""
    return list(_traceparents)


def _enter(parent, state):
    """Called by the worker around a request (parent None after it)."""
    global _traceparent, _tracestate, _traceparents
    _traceparent = parent
    _tracestate = state
    _traceparents = () if parent is None else (parent,)


def _enter_batch(parents):
    """Called by the worker around a batch's `predict` (empty after it)."""
    global _traceparents
    _traceparents = tuple(parents)

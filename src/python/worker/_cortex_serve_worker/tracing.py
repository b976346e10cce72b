"""Runs a request in the W3C trace context the server sent with it (a
`predict` frame with the trace flag, only while the server exports traces):
the public module cortex_serve_trace (beside the bootstrap) returns it while
the request runs, and when user code has imported Python's `opentelemetry`
API, the context is current in it too, so user spans are children of the
server's `predict` span. Nothing of `opentelemetry` is imported here unless
it already was."""

import sys

import cortex_serve_trace

from .process import log

_enter = cortex_serve_trace._enter
_otel = None  # (attach, detach, extract) once resolved; False when it failed


def run_traced(run, job):
    """`run(job)` with `job.trace` as the current trace context."""
    parent, _, state = job.trace.partition("\n")
    _enter(parent, state or None)
    token = None
    detach = None
    if "opentelemetry.context" in sys.modules and _otel is not False:
        token, detach = _attach(parent, state)
    try:
        run(job)
    finally:
        if detach is not None:
            try:
                detach(token)
            except Exception:  # noqa: BLE001 - a mismatched context must not cost the request
                pass
        _enter(None, None)


def _attach(parent, state):
    """(token, detach) of the context made current in `opentelemetry`, or (None, None)."""
    global _otel
    try:
        if _otel is None:
            from opentelemetry import context
            from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

            _otel = (context.attach, context.detach, TraceContextTextMapPropagator().extract)
        attach, detach, extract = _otel
        carrier = {"traceparent": parent}
        if state:
            carrier["tracestate"] = state
        return attach(extract(carrier)), detach
    except Exception as exc:  # noqa: BLE001 - an unusable opentelemetry costs the spans, never the request
        if _otel is None:
            _otel = False
            log("opentelemetry is imported but the trace context cannot be made current in it: %s" % exc)
        return None, None

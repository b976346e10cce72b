"""Runs a request in the W3C trace context the server sent with it (a
`predict` frame with the trace flag, or a `predict_batch` with `traces`,
only while the server exports traces): the public module cortex_serve_trace
(beside the bootstrap) returns it while the request runs (for a batch, the
list of its requests'), and when user code has imported Python's
`opentelemetry` API, a single request's context is current in it too, so
user spans are children of the server's `predict` span. Nothing of
`opentelemetry` is imported here unless it already was."""

import sys

import cortex_serve_trace

from .process import log

_enter = cortex_serve_trace._enter
_enter_batch = cortex_serve_trace._enter_batch
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


def run_batch_traced(run, job):
    """`run(job)` for a batch sent with trace contexts; see enter_batch."""
    try:
        run(job)
    finally:
        _enter_batch(())


def enter_batch(job, ids):
    """The batch's requests whose samples parsed (`ids`, what `predict` gets):
    their traceparents, in order, for cortex_serve_trace.traceparents()."""
    by_id = dict(zip(job.ids, job.trace))
    _enter_batch([by_id[i].partition("\n")[0] for i in ids])


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

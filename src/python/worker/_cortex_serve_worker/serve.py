"""The request loop: `init` to `ready` (Worker.start), then jobs one at a
time in order (Worker.serve), each answered as a raw `result`, a stream of
`item` frames and `end`, or an `error`. The hot path: names it uses per
request are bound at import or kept in locals."""

import functools
import os
import sys
import traceback
from time import perf_counter

from .answers import PLAIN_TYPES, SERIALIZE_ERRORS, batch_shape_error, is_stream, loads, serialize
from .arenas import LARGE_REQUEST_BYTES, ArenaReserve, uses_pymalloc
from .control import Cancelled, Control
from .interfaces import Interface, build_interface
from .process import flush_output, log, truncate
from .protocol import PROTOCOL_VERSION, STREAM_WINDOW, Job, ProtocolViolation, cancelled_error, error_frame
from .s3 import resolve_model
from .tracing import enter_batch, run_batch_traced, run_traced
from .user_module import InitFailure, describe, load_user_module


class Worker:
    def __init__(self, channel, cancels):
        self.channel = channel
        self.control = Control(channel, cancels)
        self.interface = Interface()
        self.api = "?"
        self.window = STREAM_WINDOW
        self.arenas = ArenaReserve(uses_pymalloc())

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
        self.window = max(1, int(message.get("stream_window") or STREAM_WINDOW))
        relative = os.path.relpath(message["inference"], message["project_dir"])
        try:
            module = load_user_module(message)
            self.interface = build_interface(module, message, relative)
            if message.get("interface") in ("realtime_predictor", "realtime_handler"):
                # Requests come as envelopes (payload by Content-Type), answers go as envelopes.
                from . import realtime_serve  # Starlette only for the dialects that use it

                self.predict = functools.partial(realtime_serve.predict, self)
                self.predict_batch = functools.partial(realtime_serve.predict_batch, self)
                if self.interface.models is not None:
                    self.interface.models.emit = self.channel.send  # load/evict events, for the metrics
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
            sample = job.sample
            if sample is not None and len(sample) >= LARGE_REQUEST_BYTES:
                self.arenas.fit(len(sample))
            try:
                if job.samples is None:
                    if job.trace is None:
                        self.predict(job)
                    else:
                        run_traced(self.predict, job)
                elif job.trace is None:
                    self.predict_batch(job)
                else:
                    run_batch_traced(self.predict_batch, job)
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

    def trace(self, request_id, what, data):
        """Logs a sample or an answer of a request sent with the debug flag."""
        text = bytes(data).decode("utf-8", "replace")
        log("api %s request %d %s: %s" % (self.api, request_id, what, truncate(text)))

    # The three answer paths (a request, a stream's item, a batch's request)
    # share the error frames below; the single request's path stays inline,
    # without calls the others need (it is the hot path).

    def predict(self, job):
        request_id = job.ids[0]
        debug = job.debug
        raw = job.sample
        if debug:
            self.trace(request_id, "sample", raw)
        try:
            sample = loads(raw)
        except Exception as exc:  # noqa: BLE001 - any parse failure is the client's, never the worker's
            return self.channel.send(sample_error(request_id, exc))
        interface = self.interface
        control = self.control
        streaming = False
        read_at = job.read_at  # None unless the server asked for timings
        if read_at is not None:
            started = perf_counter()
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
        if read_at is not None:
            ended = perf_counter()
        if streaming:
            return self.stream(request_id, prediction, debug)
        try:
            body = serialize(prediction)
        except SERIALIZE_ERRORS as exc:
            return self.channel.send(serialize_error(request_id, "the prediction", exc))
        if debug:
            self.trace(request_id, "prediction", body)
        try:
            if read_at is None:
                self.channel.send_result(request_id, body)
            else:
                self.channel.send_timed_result(request_id, body, read_at, started, ended)
        except OverflowError as exc:
            self.channel.send(too_large_error(request_id, exc))

    def answer(self, request_id, value, debug, what, pack):
        """`pack(request_id, body)` of `value` after the post hook, or the error frame saying why not.
        For an answer that is not the single request's (a stream's item, a batch's request)."""
        try:
            value = self.control.call(self.interface.post, value)
        except BaseException as exc:  # noqa: BLE001
            if isinstance(exc, KeyboardInterrupt):
                raise
            return self.user_error(request_id, exc)
        try:
            body = serialize(value)
        except SERIALIZE_ERRORS as exc:
            return serialize_error(request_id, what, exc)
        try:
            frame = pack(request_id, body)
        except OverflowError as exc:
            return too_large_error(request_id, exc)
        if debug:
            self.trace(request_id, what, body)
        return frame

    def stream(self, request_id, iterator, debug):
        """Sends the iterator's items as `item` frames, at most `window` ahead of credit."""
        control = self.control
        channel = self.channel
        pack = channel.pack_item
        sent = 0
        try:
            while True:
                control.wait_for_window(request_id, sent, self.window)
                try:
                    item = control.call(next, iterator)
                except StopIteration:
                    break
                frame = self.answer(request_id, item, debug, "item %d of the stream" % sent, pack)
                if type(frame) is dict:
                    self.close_iterator(iterator)
                    return channel.send(frame)
                channel.write(frame)
                sent += 1
        except BaseException as exc:  # noqa: BLE001
            if isinstance(exc, (KeyboardInterrupt, ProtocolViolation)):
                raise  # a violation read while waiting for credit ends the worker
            error = self.user_error(request_id, exc)
            self.close_iterator(iterator)
            return channel.send(error)
        channel.send({"type": "end", "id": request_id, "items": sent})

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
            if debug:
                self.trace(request_id, "sample", raw)
            try:
                samples.append(loads(raw))
                ids.append(request_id)
            except Exception as exc:  # noqa: BLE001 - any parse failure is the client's
                answers[request_id] = sample_error(request_id, exc)
        if job.trace is not None:
            enter_batch(job, ids)
        if ids:
            try:
                samples = [call(interface.pre, sample) for sample in samples]
                predictions = call(interface.run, samples)
            except BaseException as exc:  # noqa: BLE001
                if isinstance(exc, KeyboardInterrupt):
                    raise
                first = self.user_error(ids[0], exc)
                answers.update((i, dict(first, id=i)) for i in ids)
            else:
                wrong = batch_shape_error(predictions, len(ids))
                if wrong is not None:
                    log("api %s: %s" % (self.api, wrong))
                    answers.update((i, error_frame(i, "predict", wrong, "")) for i in ids)
                else:
                    pack = self.channel.pack_result
                    for request_id, prediction in zip(ids, predictions):
                        answers[request_id] = self.answer(request_id, prediction, debug, "the prediction", pack)
        self.channel.send_many([answers[i] for i in job.ids])


def sample_error(request_id, exc):
    """The error frame for a sample that is not JSON (the client's fault)."""
    if isinstance(exc, RecursionError):
        return error_frame(request_id, "sample", "it nests too deeply to parse", "")
    return error_frame(request_id, "sample", str(exc) or type(exc).__name__, "")


def serialize_error(request_id, what, exc):
    """The error frame for an answer that cannot become JSON."""
    return error_frame(request_id, "serialize", "cannot serialize %s: %s" % (what, exc), traceback.format_exc())


def too_large_error(request_id, exc):
    """The error frame for an answer over the maximum frame size."""
    return error_frame(request_id, "serialize", "the prediction is too large: %s (raise --max-frame)" % exc, "")

"""Which request runs, and how a cancel reaches it (see Control): the
main thread's reads of the main channel between requests and while a stream
waits for credit, the cancel watcher thread, and Cancelled, raised in user
code by the SIGUSR1 handler."""

import collections
import os
import select
import signal
import threading

from .process import flush_output, log
from .protocol import Job, ProtocolViolation, cancelled_error


class Cancelled(BaseException):
    """Raised inside user code on the main thread when the server cancels
    the running request (client gone, deadline passed). A BaseException, like
    KeyboardInterrupt, so `except Exception` in user code does not swallow it;
    `finally` blocks and context managers run."""


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
                ready, _, _ = select.select([channel.fd, self.wake_r], [], [])
                if self.wake_r in ready:
                    self._drain_wake()
                    continue
            message = self._receive()
            if type(message) is Job:
                self.pending.append(message)
            else:
                self._message(message)
        raise Cancelled()

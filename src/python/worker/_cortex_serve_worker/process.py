"""The process around user code: fd 0 and 1 taken from it before it runs,
an exit when the server is gone, and the worker's own log lines."""

import io
import os
import signal
import sys
import threading
import time

from .channel import connect_channel

LOG_SAMPLE_CHARS = 1000


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

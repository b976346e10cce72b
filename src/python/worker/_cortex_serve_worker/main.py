"""The worker's entry (called by the bootstrap worker.py): its arguments,
its process group and signals, the channels, then the request loop."""

import os
import signal
import sys

from .channel import Channel
from .process import log, take_over_stdio, watch_parent
from .protocol import ProtocolViolation
from .serve import Worker


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
    worker = Worker(Channel(main_fd, max_frame, spin=True), Channel(cancel_fd, max_frame))
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

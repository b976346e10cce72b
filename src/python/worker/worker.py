"""cortex-serve worker bootstrap: `python worker.py --max-frame N --channel PATH`.

The server writes this file and the package `_cortex_serve_worker` beside it
into its state directory and starts one such process per replica. The
package's name keeps it from shadowing a module of the user's project; what
the worker does is told in its __init__.py.
"""

import os
import sys


def _run():
    here = os.path.dirname(os.path.abspath(__file__))
    if sys.path[:1] != [here]:
        sys.path.insert(0, here)
    # No __pycache__ for the worker's own modules (as for a script); user code
    # imported later keeps the interpreter's setting.
    writes_bytecode = sys.dont_write_bytecode
    sys.dont_write_bytecode = True
    try:
        from _cortex_serve_worker.main import main
    finally:
        sys.dont_write_bytecode = writes_bytecode
    code = main(sys.argv)
    sys.stderr.flush()
    # Skip interpreter teardown of user objects that may hang (threads, pools).
    os._exit(code)


if __name__ == "__main__":
    _run()

"""The user's inference file: imported (its global scope runs) with its
directories on sys.path, and InitFailure, how anything failing before
`ready` is told to the server (phase, error, traceback)."""

import importlib.util
import os
import sys
import traceback


class InitFailure(Exception):
    """A failure before `ready`: answered `init_error` with its phase."""

    def __init__(self, phase, error, tb=""):
        super().__init__(error)
        self.phase = phase
        self.error = error
        self.tb = tb


def describe(exc):
    return "%s: %s" % (type(exc).__name__, exc) if str(exc) else type(exc).__name__


def load_user_module(message):
    inference = message["inference"]
    project_dir = message["project_dir"]
    paths = [os.path.dirname(inference)]
    if message.get("python_root"):
        paths.append(message["python_root"])
    paths.append(project_dir)
    for path in reversed(paths):
        if path not in sys.path:
            sys.path.insert(0, path)
    name = os.path.splitext(os.path.basename(inference))[0]
    try:
        spec = importlib.util.spec_from_file_location(name, inference)
        if spec is None or spec.loader is None:
            raise ImportError("cannot load %s as a Python module" % inference)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    except BaseException as exc:  # noqa: BLE001 - user code may raise anything
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise InitFailure("import", describe(exc), traceback.format_exc())
    return module

"""Loads a Cortex inference file the way cortex-serve's worker does, for the
peer servers of the benchmark: the project directory is the working
directory and on the import path, the file's global scope runs, then
init(metadata). Settings come from the environment:

BENCH_PROJECT    project directory (holding cortex.yaml)
BENCH_INFERENCE  inference file, relative to the project
BENCH_METADATA   the API's metadata as JSON (default {})
"""

import importlib.util
import json
import os
import sys
import threading
import time


def load():
    """Returns (predict, metadata) of the configured inference file."""
    project = os.environ["BENCH_PROJECT"]
    path = os.path.join(project, os.environ["BENCH_INFERENCE"])
    metadata = json.loads(os.environ.get("BENCH_METADATA") or "{}")
    os.chdir(project)
    os.environ["CORTEX_PROJECT_DIR"] = project
    for entry in (project, os.path.dirname(path)):
        if entry not in sys.path:
            sys.path.insert(0, entry)
    spec = importlib.util.spec_from_file_location("inference", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if hasattr(module, "init"):
        module.init(metadata)
    return module.predict, metadata


def dumps(prediction):
    """The prediction as JSON bytes (numpy values as lists or scalars)."""
    return json.dumps(prediction, default=lambda v: v.tolist(), separators=(",", ":")).encode()


def exit_with_parent():
    """Exits when the benchmark that started this server is gone."""
    parent = os.getppid()

    def loop():
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=loop, daemon=True).start()

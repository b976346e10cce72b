"""Benchmark peer: Flask served by waitress, predict serialized by a lock.

Usage: BENCH_PROJECT=... BENCH_INFERENCE=... python3 flask_app.py PORT
"""

import sys
import threading

from flask import Flask, Response, request
from waitress import serve

from _inference import dumps, exit_with_parent, load

predict, metadata = load()
lock = threading.Lock()
app = Flask(__name__)


@app.post("/predict")
def handle():
    sample = request.get_json(force=True)
    with lock:
        prediction = predict(sample, metadata)
    return Response(dumps(prediction), mimetype="application/json")


if __name__ == "__main__":
    exit_with_parent()
    serve(app, host="127.0.0.1", port=int(sys.argv[1]), threads=4, _quiet=True)

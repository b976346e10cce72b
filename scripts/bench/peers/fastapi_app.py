"""Benchmark peer: FastAPI served by uvicorn, predict serialized by a lock.

Usage: BENCH_PROJECT=... BENCH_INFERENCE=... python3 fastapi_app.py PORT [WORKERS]
With WORKERS above 1, uvicorn runs that many processes (one lock each).
"""

import json
import os
import sys
import threading

import uvicorn
from fastapi import FastAPI, Request, Response

from _inference import dumps, exit_with_parent, load

predict, metadata = load()
lock = threading.Lock()
app = FastAPI()


@app.post("/predict")
async def handle(request: Request):
    sample = json.loads(await request.body())
    with lock:
        prediction = predict(sample, metadata)
    return Response(dumps(prediction), media_type="application/json")


if __name__ == "__main__":
    exit_with_parent()
    workers = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    uvicorn.run(
        "fastapi_app:app", host="127.0.0.1", port=int(sys.argv[1]), workers=workers,
        log_level="warning", access_log=False,
    )

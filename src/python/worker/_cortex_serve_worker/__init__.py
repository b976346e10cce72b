"""cortex-serve worker: runs one replica of a user's inference file.

Started by the server through the bootstrap `worker.py --max-frame N
--channel PATH`. The worker connects twice to the Unix socket at PATH: first
the main channel (every message but `cancel`, both ways), then the cancel
channel (`cancel` only, server to worker). Frames are length-prefixed (4-byte
big-endian length, then a msgpack map or a raw frame; see
src/python/protocol.ts and channel.py). Before any user code runs, fd 1
points at stderr (the log stream) so `print()` and C libraries writing to
fd 1 can never corrupt the protocol, and fd 0 reads from /dev/null.

Lifecycle: `init` message -> import the inference file (its global scope
runs) -> check signatures against the interface cortex.yaml's dialect asks
for -> download an s3:// model -> `init(metadata)`, `init(model_path,
metadata)` or `PythonPredictor(config)` -> `ready`; then `predict` and
`predict_batch` messages, run one at a time in order, until `shutdown` or end
of input. The main thread reads the main channel and runs user code; after
`ready` a second thread reads the cancel channel (see control.Control), so a
cancel reaches the worker while user code runs. A `predict` that returns a
generator or another iterator streams its items (`item` frames, then `end`).

Modules, from the bottom up:
- protocol: the wire constants (from protocol.json, the table the server is
  built from too), the decoded request (Job), error messages;
- channel: framing over a socket (the hot path's reads and writes);
- process: the process around user code (stdio, parent watch, log);
- user_module: importing the inference file, InitFailure;
- interfaces: the calling conventions of each dialect, checked at start;
- s3: downloading an s3:// model;
- answers: a prediction to JSON bytes, streams, batch shapes;
- control: which request runs, and how a cancel reaches it;
- serve: the request loop (Worker);
- tracing: a request sent with a trace context runs in it (the public
  module cortex_serve_trace beside the bootstrap returns it to user code);
- payloads, formdata: the Cortex 0.17+ request envelope and its payload by
  Content-Type (Starlette's classes, or formdata's stand-ins);
- realtime, realtime_serve: the Cortex 0.17+ PythonPredictor / 0.34+ Handler
  and its answer paths (typed answers, post_predict, callbacks);
- models: python_client.get_model for multi-model predictors;
- main: argument parsing and process setup.
"""

/**
 * The worker program, part of the binary: the bootstrap `worker.py`, the
 * package `_cortex_serve_worker/` beside it and the public module
 * `cortex_serve_trace.py` user code may import (./worker/), imported as text so
 * nothing is read from the source tree at run time, and written to the state
 * directory at startup.
 */
import { join } from "node:path";
import bootstrap from "./worker/worker.py" with { type: "text" };
import traceModule from "./worker/cortex_serve_trace.py" with { type: "text" };
import init from "./worker/_cortex_serve_worker/__init__.py" with { type: "text" };
import answers from "./worker/_cortex_serve_worker/answers.py" with { type: "text" };
import arenas from "./worker/_cortex_serve_worker/arenas.py" with { type: "text" };
import channel from "./worker/_cortex_serve_worker/channel.py" with { type: "text" };
import formdata from "./worker/_cortex_serve_worker/formdata.py" with { type: "text" };
import models from "./worker/_cortex_serve_worker/models.py" with { type: "text" };
import payloads from "./worker/_cortex_serve_worker/payloads.py" with { type: "text" };
import realtime from "./worker/_cortex_serve_worker/realtime.py" with { type: "text" };
import realtimeServe from "./worker/_cortex_serve_worker/realtime_serve.py" with { type: "text" };
import control from "./worker/_cortex_serve_worker/control.py" with { type: "text" };
import interfaces from "./worker/_cortex_serve_worker/interfaces.py" with { type: "text" };
import main from "./worker/_cortex_serve_worker/main.py" with { type: "text" };
import process from "./worker/_cortex_serve_worker/process.py" with { type: "text" };
import protocol from "./worker/_cortex_serve_worker/protocol.py" with { type: "text" };
import protocolTable from "./worker/_cortex_serve_worker/protocol.json" with { type: "json" };
import s3 from "./worker/_cortex_serve_worker/s3.py" with { type: "text" };
import serve from "./worker/_cortex_serve_worker/serve.py" with { type: "text" };
import tracing from "./worker/_cortex_serve_worker/tracing.py" with { type: "text" };
import userModule from "./worker/_cortex_serve_worker/user_module.py" with { type: "text" };

/** Name of the worker's package directory, beside the bootstrap. */
export const WORKER_PACKAGE = "_cortex_serve_worker";

/** One file of the worker program: its path relative to the bootstrap's directory, and its text. */
export interface WorkerFile {
  readonly path: string;
  readonly source: string;
}

/** Every file of the worker program; the bootstrap `worker.py` first. */
export const WORKER_FILES: readonly WorkerFile[] = [
  { path: "worker.py", source: bootstrap },
  // Public: user code imports it for the request's trace context (see the module).
  { path: "cortex_serve_trace.py", source: traceModule },
  ...Object.entries({
    "__init__.py": init,
    "answers.py": answers,
    "arenas.py": arenas,
    "channel.py": channel,
    "control.py": control,
    "formdata.py": formdata,
    "models.py": models,
    "payloads.py": payloads,
    "realtime.py": realtime,
    "realtime_serve.py": realtimeServe,
    "interfaces.py": interfaces,
    "main.py": main,
    "process.py": process,
    "protocol.py": protocol,
    // A JSON module is imported as data (the protocol's table, ./protocol.ts reads it too).
    "protocol.json": `${JSON.stringify(protocolTable, null, 2)}\n`,
    "s3.py": s3,
    "serve.py": serve,
    "tracing.py": tracing,
    "user_module.py": userModule,
  }).map(([name, source]) => ({ path: join(WORKER_PACKAGE, name), source })),
];

/**
 * Writes the worker program into `dir` (owner-only; files already there and
 * identical are left alone) and returns the bootstrap's path, the program
 * to start.
 */
export async function writeWorker(dir: string): Promise<string> {
  await Deno.mkdir(join(dir, WORKER_PACKAGE), { recursive: true, mode: 0o700 });
  for (const file of WORKER_FILES) await _writeIfChanged(join(dir, file.path), file.source);
  return join(dir, "worker.py");
}

async function _writeIfChanged(path: string, source: string): Promise<void> {
  try {
    if ((await Deno.readTextFile(path)) === source) return;
  } catch {
    // Not there yet.
  }
  const temp = `${path}.tmp-${Deno.pid}`;
  await Deno.writeTextFile(temp, source, { mode: 0o600 });
  await Deno.rename(temp, path);
}

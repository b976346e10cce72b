/** The protocol version handshake and raw frames against the real worker. */
import assert from "node:assert/strict";
import { join } from "node:path";
import { PROTOCOL_VERSION } from "../src/python/protocol.ts";
import { InitFailedError, WorkerProcess } from "../src/python/worker_process.ts";
import { WORKER_SOURCE } from "../src/python/worker_source.ts";
import { PYTHON, ROOT, tempDir } from "./_helpers.ts";
import { json, parse, startWorker, within } from "./_worker.ts";

/** Starts `program` as the worker and sends `init` with `protocol`; resolves with how init ended. */
async function initWith(
  program: string | undefined,
  protocol: number,
): Promise<{ error: unknown; lines: string[] }> {
  await using dir = await tempDir("cortex-serve-protocol-");
  await Deno.writeTextFile(
    join(dir.path, "inference.py"),
    "def predict(sample, metadata):\n    return sample\n",
  );
  let workerPath = program;
  if (workerPath === undefined) {
    workerPath = join(dir.path, "worker.py");
    await Deno.writeTextFile(workerPath, WORKER_SOURCE);
  }
  const lines: string[] = [];
  const worker = WorkerProcess.spawn({
    python: PYTHON,
    workerPath,
    cwd: dir.path,
    env: { PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin" },
    maxFrameBytes: 1 << 20,
    onLog: (line) => lines.push(line),
  });
  let error: unknown;
  try {
    await worker.init({
      protocol,
      api: "api",
      inference: join(dir.path, "inference.py"),
      metadata: {},
      python_root: null,
      project_dir: dir.path,
      interface: "init_metadata",
      model: null,
      model_dir: null,
      stream_window: 4,
    });
  } catch (caught) {
    error = caught;
  }
  // The worker exits (it refused the server) or is killed (the server refused it).
  assert.notEqual(await within(worker.exited, 5000), "timeout");
  return { error, lines };
}

Deno.test("a worker refuses a server that speaks another protocol version", async () => {
  const { error } = await initWith(undefined, PROTOCOL_VERSION - 1);
  assert.ok(error instanceof InitFailedError, String(error));
  assert.equal(error.phase, "protocol");
  assert.match(
    error.message,
    new RegExp(`the server speaks protocol ${PROTOCOL_VERSION - 1}, this worker ${PROTOCOL_VERSION}`),
  );
});

Deno.test("the server refuses a worker that speaks another protocol version, and stops it", async () => {
  const { error } = await initWith(
    join(ROOT, "tests", "fixtures", "old_protocol_worker.py"),
    PROTOCOL_VERSION,
  );
  assert.ok(error instanceof InitFailedError, String(error));
  assert.equal(error.phase, "protocol");
  assert.equal(
    error.message,
    `the worker speaks protocol 2, this server ${PROTOCOL_VERSION}: use the worker shipped with the same cortex-serve binary`,
  );
});

Deno.test("raw predict and result frames carry any JSON, in order, and the debug flag", async () => {
  await using w = await startWorker(`
def predict(sample, metadata):
    return sample
`);
  const samples = [{}, "é ü 漢字 \u{1f600}", { big: "x".repeat(200_000) }, [1, 2.5, null, true]];
  for (const sample of samples) {
    assert.deepEqual(parse(await w.worker.predict(json(sample), false)), sample);
  }
  // Several requests in flight at once: answered in order, each by its id.
  const answers = await Promise.all(samples.map((s) => w.worker.predict(json(s), false)));
  assert.deepEqual(answers.map(parse), samples);
  assert.deepEqual(parse(await w.worker.predict(json({ logged: 1 }), true)), { logged: 1 });
  assert.ok(w.lines.some((line) => line.includes('sample: {"logged":1}')), w.lines.join("\n"));
  assert.ok(w.lines.some((line) => line.includes('prediction: {"logged":1}')), w.lines.join("\n"));
});

/** The protocol version handshake, raw frames and the cancel channel against the real worker. */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ChannelListener, readPayloads, writeAll } from "../src/python/channel.ts";
import { encodeFrame } from "../src/python/codec.ts";
import {
  decodeMessage,
  encodeMessageFrame,
  PROTOCOL_VERSION,
  RAW_PREDICT,
  type WorkerMessage,
} from "../src/python/protocol.ts";
import { InitFailedError } from "../src/python/worker_process.ts";
import { writeWorker } from "../src/python/worker_source.ts";
import { PYTHON, ROOT, tempDir } from "./_helpers.ts";
import { initFields, json, parse, predict, spawnWorker, startWorker, within } from "./_worker.ts";

const STREAM = `
import os

def predict(sample, metadata):
    if not isinstance(sample, dict) or "n" not in sample:
        return sample
    return items(sample["n"])

def items(n):
    try:
        for i in range(n):
            yield i
    finally:
        open(os.path.join(os.getcwd(), "closed"), "w").close()
`;

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
  const workerPath = program ?? await writeWorker(dir.path);
  const lines: string[] = [];
  const worker = spawnWorker(dir.path, workerPath, lines);
  let error: unknown;
  try {
    await worker.init(initFields(dir.path, { protocol }));
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
    assert.deepEqual(parse(await predict(w.worker, json(sample), false)), sample);
  }
  // Several requests in flight at once: answered in order, each by its id.
  const answers = await Promise.all(samples.map((s) => predict(w.worker, json(s), false)));
  assert.deepEqual(answers.map(parse), samples);
  assert.deepEqual(parse(await predict(w.worker, json({ logged: 1 }), true)), { logged: 1 });
  assert.ok(w.lines.some((line) => line.includes('sample: {"logged":1}')), w.lines.join("\n"));
  assert.ok(w.lines.some((line) => line.includes('prediction: {"logged":1}')), w.lines.join("\n"));
});

Deno.test("a stream waiting for credit wakes up for its cancel and closes its generator", async () => {
  await using w = await startWorker(STREAM, 2);
  const call = w.worker.run(json({ n: 1000 }), false);
  const answer = await call.answer;
  assert.equal(answer.type, "stream");
  // Nothing is read: the worker sends its window of 2 items and waits for credit.
  const queued = w.worker.run(json({ after: true }), false);
  call.cancel();
  assert.equal(await within(call.finished, 2000), "cancelled");
  await Deno.stat(join(w.dir, "closed"));
  const next = await queued.answer;
  assert.deepEqual(next.type === "body" && parse(next.body), { after: true });
});

Deno.test("a batch cancelled before it started is answered for every id; the worker runs the next request", async () => {
  await using w = await startWorker(`
import time
def predict(sample, metadata):
    if isinstance(sample, list):
        return sample
    time.sleep(sample["sleep"])
    return sample
`);
  const first = w.worker.run(json({ sleep: 0.4 }), false);
  const batch = w.worker.runBatch([json(1), json(2), json(3)], false);
  const last = w.worker.run(json({ sleep: 0 }), false);
  batch.cancel();
  assert.equal(await within(batch.finished, 300), "cancelled");
  const outcomes = await batch.outcomes;
  assert.deepEqual(outcomes.map((o) => !o.ok && o.error.kind), ["cancelled", "cancelled", "cancelled"]);
  const answers = await Promise.all([first.answer, last.answer]);
  assert.deepEqual(answers.map((a) => a.type === "body" && parse(a.body)), [{ sleep: 0.4 }, { sleep: 0 }]);
  assert.ok(w.worker.alive);
});

Deno.test("a cancel that arrives after the answer is ignored", async () => {
  await using w = await startWorker(STREAM);
  const call = w.worker.run(json([1]), false);
  const answer = await call.answer;
  assert.deepEqual(answer.type === "body" && parse(answer.body), [1]);
  call.cancel(); // finished already: nothing is sent
  assert.deepEqual(parse(await predict(w.worker, json([2]), false)), [2]);
  assert.ok(w.worker.alive);
});

/** Starts worker.py on a no-op file and drives its channels by hand; `frame` goes out after `ready`. */
async function sendRawAfterReady(payload: Uint8Array): Promise<{ code: number; log: string }> {
  await using dir = await tempDir("cortex-serve-protocol-");
  await Deno.writeTextFile(
    join(dir.path, "inference.py"),
    "def predict(sample, metadata):\n    return sample\n",
  );
  const workerPath = await writeWorker(dir.path);
  const listener = ChannelListener.open(join(dir.path, "run"));
  const child = new Deno.Command(PYTHON, {
    args: [workerPath, "--max-frame", "65536", "--channel", listener.path],
    cwd: dir.path,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const stderr = new Response(child.stderr).text();
  const conns = await listener.accept(child.status);
  assert.ok(conns !== undefined);
  const init = { type: "init", ...initFields(dir.path) } as const;
  await writeAll(conns.main, encodeMessageFrame(init, 65536));
  const ready = Promise.withResolvers<WorkerMessage>();
  const reading = readPayloads(conns.main, 65536, (p) => ready.resolve(decodeMessage(p)));
  const reply = await within(ready.promise, 5000);
  assert.ok(reply !== "timeout" && reply.type === "ready", String(reply));
  await writeAll(conns.main, encodeFrame(payload, 65536));
  const status = await within(child.status, 5000);
  assert.notEqual(status, "timeout");
  conns.main.close();
  conns.cancel.close();
  await reading;
  return { code: status === "timeout" ? -1 : status.code, log: await stderr };
}

Deno.test("the worker refuses a raw frame that is too short, or a first byte it does not know", async () => {
  const short = await sendRawAfterReady(new Uint8Array([RAW_PREDICT, 0, 0, 0, 1]));
  assert.equal(short.code, 3);
  assert.match(short.log, /protocol violation: raw predict frame of 5 bytes: it needs at least 10/);
  const unknown = await sendRawAfterReady(new Uint8Array([0x05, 1, 2, 3]));
  assert.equal(unknown.code, 3);
  assert.match(unknown.log, /protocol violation: frame of unknown kind: first byte 0x05/);
});

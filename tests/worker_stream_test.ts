/** Streams, flow control and cancellation against the real worker. */
import assert from "node:assert/strict";
import { join } from "node:path";
import { PredictFailedError, type PredictStream, type WorkerProcess } from "../src/python/worker_process.ts";
import { delay, ROOT } from "./_helpers.ts";
import { json, parse, predict, startWorker, within } from "./_worker.ts";

const STREAMING = `
import os, time

def predict(sample, metadata):
    if sample.get("plain"):
        return {"plain": True}
    return generate(sample)

def generate(sample):
    marks = os.path.join(os.getcwd(), "produced")
    try:
        for i in range(sample["n"]):
            if i == sample.get("fail_at"):
                raise RuntimeError("broke at %d" % i)
            with open(marks, "w") as f:
                f.write(str(i + 1))
            yield {"i": i, "token": "t%d" % i}
            if sample.get("slow"):
                time.sleep(0.05)
    finally:
        with open(os.path.join(os.getcwd(), "closed"), "w") as f:
            f.write("yes")
`;

async function streamOf(worker: WorkerProcess, sample: unknown): Promise<PredictStream> {
  const answer = await worker.run(json(sample), false).answer;
  assert.equal(answer.type, "stream");
  return answer.stream;
}

async function collect(stream: PredictStream): Promise<unknown[]> {
  const items: unknown[] = [];
  for await (const item of stream) items.push(parse(item));
  return items;
}

async function readInt(path: string): Promise<number> {
  try {
    return Number(await Deno.readTextFile(path));
  } catch {
    return 0;
  }
}

Deno.test("a generator streams its items in order, then ends; other returns answer as before", async () => {
  await using w = await startWorker(STREAMING);
  assert.deepEqual(await collect(await streamOf(w.worker, { n: 20 })), [
    ...Array.from({ length: 20 }, (_, i) => ({ i, token: `t${i}` })),
  ]);
  assert.deepEqual(await collect(await streamOf(w.worker, { n: 0 })), []);
  const plain = await w.worker.run(json({ plain: true }), false).answer;
  assert.equal(plain.type, "body");
  assert.deepEqual(plain.type === "body" && parse(plain.body), { plain: true });
  // `predict` collects a stream into a JSON array.
  assert.deepEqual(parse(await predict(w.worker, json({ n: 3 }), false)), [
    { i: 0, token: "t0" },
    { i: 1, token: "t1" },
    { i: 2, token: "t2" },
  ]);
});

Deno.test("an exception mid-stream ends the stream with the error after the items before it", async () => {
  await using w = await startWorker(STREAMING);
  const stream = await streamOf(w.worker, { n: 5, fail_at: 2 });
  const items: unknown[] = [];
  await assert.rejects(
    (async () => {
      for await (const item of stream) items.push(parse(item));
    })(),
    (error: unknown) =>
      error instanceof PredictFailedError && error.kind === "predict" &&
      error.message === "RuntimeError: broke at 2" && error.traceback.includes("generate"),
  );
  assert.equal(items.length, 2);
  assert.deepEqual(parse(await predict(w.worker, json({ plain: true }), false)), { plain: true });
});

Deno.test("the generator waits while the window is full; credit moves it on", async () => {
  const window = 3;
  await using w = await startWorker(STREAMING, window);
  const stream = await streamOf(w.worker, { n: 50 });
  const produced = join(w.dir, "produced");
  await delay(300);
  // Window items sent, plus the one the generator holds at its yield: no further.
  assert.ok(await readInt(produced) <= window + 1, `produced ${await readInt(produced)}`);
  assert.ok(stream.received <= window);
  const iterator = stream[Symbol.asyncIterator]();
  for (let i = 0; i < 10; i++) assert.equal((await iterator.next()).done, false);
  await delay(200);
  const after = await readInt(produced);
  assert.ok(after > window + 1 && after <= 10 + window + 1, `produced ${after}`);
  let rest = 0;
  while (!(await iterator.next()).done) rest++;
  assert.equal(rest, 40);
});

Deno.test("cancel raises inside predict on the main thread; finally runs; the worker serves on", async () => {
  await using w = await startWorker(`
import os, threading, time

def predict(sample, metadata):
    if sample.get("quick"):
        return {"quick": True, "main": threading.current_thread() is threading.main_thread()}
    try:
        while True:
            sum(range(1000))
            time.sleep(0.01)
    finally:
        with open(os.path.join(os.getcwd(), "finally"), "w") as f:
            f.write(threading.current_thread().name)
`);
  const call = w.worker.run(json({}), false);
  await delay(200);
  const started = performance.now();
  call.cancel();
  await assert.rejects(
    call.answer,
    (error: unknown) => error instanceof PredictFailedError && error.kind === "cancelled",
  );
  assert.equal(await call.finished, "cancelled");
  assert.ok(performance.now() - started < 1000);
  assert.equal(await Deno.readTextFile(join(w.dir, "finally")), "MainThread");
  assert.deepEqual(parse(await predict(w.worker, json({ quick: true }), false)), { quick: true, main: true });
  assert.ok(w.worker.alive);
});

Deno.test("a cancelled request that has not started is dropped at once", async () => {
  await using w = await startWorker(`
import time
def predict(sample, metadata):
    time.sleep(sample["sleep"])
    return sample
`);
  const first = w.worker.run(json({ sleep: 0.5 }), false);
  const second = w.worker.run(json({ sleep: 0 }), false);
  second.cancel();
  assert.equal(await within(second.finished, 300), "cancelled");
  await assert.rejects(second.answer, /cancelled/);
  const answer = await first.answer;
  assert.deepEqual(answer.type === "body" && parse(answer.body), { sleep: 0.5 });
});

Deno.test("leaving a stream early cancels it: the generator is closed and the worker is free", async () => {
  await using w = await startWorker(STREAMING);
  const call = w.worker.run(json({ n: 1000, slow: true }), false);
  const answer = await call.answer;
  assert.equal(answer.type, "stream");
  let seen = 0;
  for await (const _ of answer.type === "stream" ? answer.stream : []) {
    if (++seen === 3) break;
  }
  assert.equal(await within(call.finished, 2000), "cancelled");
  assert.equal(await Deno.readTextFile(join(w.dir, "closed")), "yes");
  assert.ok(await readInt(join(w.dir, "produced")) < 20);
  assert.deepEqual(parse(await predict(w.worker, json({ plain: true }), false)), { plain: true });
});

Deno.test("code stuck in C does not see the cancel: the request stays running", async () => {
  await using w = await startWorker(`
import os, signal

def predict(sample, metadata):
    # A blocking read with the signal masked: what a long C call looks like.
    signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1])
    r, _ = os.pipe()
    os.read(r, 1)
`);
  const call = w.worker.run(json({}), false);
  await delay(100);
  call.cancel();
  assert.equal(await within(call.finished, 700), "timeout");
  w.worker.kill("SIGKILL");
  assert.equal(await call.finished, "lost");
});

Deno.test("a worker that sends past its window breaks the protocol and is stopped", async () => {
  await using w = await startWorker("", 4, join(ROOT, "tests", "fixtures", "rogue_worker.py"));
  const answer = await w.worker.run(json({}), false).answer;
  assert.equal(answer.type, "stream");
  await assert.rejects(
    (async () => {
      for await (const _ of answer.type === "stream" ? answer.stream : []) {
        await delay(100); // a reader slower than the worker
      }
    })(),
    /Worker broke the protocol: Worker sent more than 4 unacknowledged items on stream 1/,
  );
  assert.equal(w.worker.alive, false);
});

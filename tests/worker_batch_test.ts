/** `predict_batch` against the real worker: one predict call, one outcome per sample. */
import assert from "node:assert/strict";
import { PredictFailedError } from "../src/python/worker_process.ts";
import { json, parse, predict, predictBatch, startWorker } from "./_worker.ts";

const BATCHED = `
calls = []

def pre_inference(sample, metadata):
    return sample["x"]

def predict(samples, metadata):
    calls.append(len(samples))
    mode = samples[0]
    if mode == "raise":
        raise ValueError("bad batch")
    if mode == "tuple":
        return tuple(s for s in samples)
    if mode == "not-list":
        return {"n": len(samples)}
    if mode == "short":
        return samples[:-1]
    if mode == "object":
        return [object() if s == "object" else s for s in samples]
    if mode == "calls":
        return [list(calls) for _ in samples]
    return [s * 10 for s in samples]

def post_inference(prediction, metadata):
    return {"y": prediction}
`;

Deno.test("a batch is one predict call on a list; hooks run per sample; answers keep their order", async () => {
  await using w = await startWorker(BATCHED);
  const outcomes = await predictBatch(w.worker, [json({ x: 1 }), json({ x: 2 }), json({ x: 3 })], false);
  assert.deepEqual(outcomes.map((o) => o.ok && parse(o.body)), [{ y: 10 }, { y: 20 }, { y: 30 }]);
  const calls = await predictBatch(w.worker, [json({ x: "calls" }), json({ x: "calls" })], false);
  assert.deepEqual(calls.map((o) => o.ok && parse(o.body)), [{ y: [3, 2] }, { y: [3, 2] }]);
  const tuple = await predictBatch(w.worker, [json({ x: "tuple" }), json({ x: 5 })], false);
  assert.deepEqual(tuple.map((o) => o.ok && parse(o.body)), [{ y: "tuple" }, { y: 5 }]);
});

Deno.test("a raise, a non-list and a wrong length fail every request of the batch", async () => {
  await using w = await startWorker(BATCHED);
  const cases: [string, RegExp][] = [
    ["raise", /^ValueError: bad batch$/],
    ["not-list", /^predict returned builtins\.dict for a batch of 4: .* must return a list/],
    ["short", /^predict returned 3 items for a batch of 4$/],
  ];
  for (const [mode, message] of cases) {
    const outcomes = await predictBatch(w.worker, [mode, 1, 2, 3].map((x) => json({ x })), false);
    assert.equal(outcomes.length, 4);
    for (const outcome of outcomes) {
      assert.ok(!outcome.ok, mode);
      assert.ok(outcome.error instanceof PredictFailedError);
      assert.equal(outcome.error.kind, "predict");
      assert.match(outcome.error.message, message);
    }
  }
  // The worker is still healthy afterwards.
  const after = await predictBatch(w.worker, [json({ x: 4 })], false);
  assert.deepEqual(after.map((o) => o.ok && parse(o.body)), [{ y: 40 }]);
});

Deno.test("one unserialisable prediction fails its request only", async () => {
  await using w = await startWorker(BATCHED);
  const outcomes = await predictBatch(w.worker, [
    json({ x: "object" }),
    json({ x: 7 }),
    json({ x: "object" }),
  ], false);
  const middle = outcomes[1]!;
  assert.ok(middle.ok);
  assert.deepEqual(parse(middle.body), { y: 7 });
  for (const outcome of [outcomes[0]!, outcomes[2]!]) {
    assert.ok(!outcome.ok);
    assert.equal(outcome.error.kind, "serialize");
    assert.match(outcome.error.message, /builtins\.object, which cannot be converted to JSON/);
  }
});

Deno.test("batches and single requests may be pipelined; each answer reaches its own caller", async () => {
  await using w = await startWorker(`
def predict(sample, metadata):
    return sample if not isinstance(sample, list) else [s + 1 for s in sample]
`);
  const single = predict(w.worker, json(1), false);
  const batch = predictBatch(w.worker, [json(10), json(20)], false);
  const again = predict(w.worker, json(2), false);
  assert.deepEqual(parse(await single), 1);
  assert.deepEqual((await batch).map((o) => o.ok && parse(o.body)), [11, 21]);
  assert.deepEqual(parse(await again), 2);
});

Deno.test("a worker that dies during a batch fails the whole batch", async () => {
  await using w = await startWorker(`
import os
def predict(samples, metadata):
    os._exit(9)
`);
  await assert.rejects(
    predictBatch(w.worker, [json(1), json(2)], false),
    (error: Error) => error.name === "WorkerExitedError" && /exited with code 9/.test(error.message),
  );
});

Deno.test("cancelling a running batch cancels every request in it", async () => {
  await using w = await startWorker(`
import time
def predict(samples, metadata):
    while True:
        time.sleep(0.01)
`);
  const call = w.worker.runBatch([json(1), json(2), json(3)], false);
  await new Promise((resolve) => setTimeout(resolve, 100));
  call.cancel();
  const outcomes = await call.outcomes;
  assert.deepEqual(outcomes.map((o) => !o.ok && o.error.kind), ["cancelled", "cancelled", "cancelled"]);
  assert.equal(await call.finished, "cancelled");
});

Deno.test("a sample the worker cannot parse fails its own request; predict gets the others", async () => {
  await using w = await startWorker(`
def predict(samples, metadata):
    return [len(samples)] * len(samples)
`);
  const outcomes = await predictBatch(
    w.worker,
    [json(1), new TextEncoder().encode("{not json"), json(3)],
    false,
  );
  assert.deepEqual(outcomes.map((o) => o.ok ? parse(o.body) : o.error.kind), [2, "sample", 2]);
});

/**
 * Load shedding in process: rejections are answered in order, a few per
 * event-loop turn, and logged as counts per reason.
 */
import assert from "node:assert/strict";
import { MAX_HOLD_TURNS, RejectionLog, ShedPacer } from "../src/http/shedding.ts";
import { Logger } from "../src/log/logger.ts";

/** Resolves after the current macrotask and the timers already due. */
function nextTurn(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

Deno.test("shed pacer: answers in arrival order, at most N per event-loop turn", async () => {
  const pacer = new ShedPacer(2);
  const answered: number[] = [];
  const all = Array.from({ length: 5 }, (_, i) => pacer.answer(() => answered.push(i)));
  assert.deepEqual(answered, [], "nothing is answered in the turn the rejection happened");
  assert.equal(pacer.waiting, 5);
  await nextTurn();
  assert.deepEqual(answered, [0, 1]);
  await nextTurn();
  assert.deepEqual(answered, [0, 1, 2, 3]);
  await Promise.all(all);
  assert.deepEqual(answered, [0, 1, 2, 3, 4]);
  assert.equal(pacer.waiting, 0);
});

Deno.test("shed pacer: the answer's value reaches the caller", async () => {
  const pacer = new ShedPacer();
  assert.equal(await pacer.answer(() => "503"), "503");
});

Deno.test("rejection log: one warn line per reason with its count, not one per request", () => {
  const lines: string[] = [];
  const logger = new Logger({ format: "json", level: "info", sink: (line) => lines.push(line) });
  const log = new RejectionLog(logger);
  assert.equal(log.perRequest, false);
  for (let i = 0; i < 5; i++) log.count("requests rejected", { api: "a", status: 503, reason: "queue full" });
  log.count("requests rejected", { api: "a", status: 503, reason: "not ready" });
  log.count("unauthorized", { method: "POST", path: "/x", reason: "no key" });
  assert.deepEqual(lines, [], "counted, not written yet");
  log.flush();
  const records = lines.map((line) => JSON.parse(line));
  assert.deepEqual(
    records.map(({ level, msg, reason, count }) => ({ level, msg, reason, count })),
    [
      { level: "warn", msg: "requests rejected", reason: "queue full", count: 5 },
      { level: "warn", msg: "requests rejected", reason: "not ready", count: 1 },
      { level: "warn", msg: "unauthorized", reason: "no key", count: 1 },
    ],
  );
  assert.equal(records[2].path, "/x");
  log.flush();
  assert.equal(lines.length, 3, "counts restart after each summary");
});

Deno.test("rejection log: at debug level each rejection is logged by the caller", () => {
  const log = new RejectionLog(new Logger({ level: "debug", sink: () => {} }));
  assert.equal(log.perRequest, true);
});

Deno.test("shed pacer: answers more per turn when many wait, so none waits much over MAX_HOLD_TURNS turns", async () => {
  const pacer = new ShedPacer(1);
  let answered = 0;
  const count = MAX_HOLD_TURNS * 2 + 1;
  const all = Array.from({ length: count }, () => pacer.answer(() => answered++));
  await nextTurn();
  assert.equal(answered, 3, "ceil(501 / 250) in the first turn");
  await Promise.all(all);
  assert.equal(answered, count);
});

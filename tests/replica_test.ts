/**
 * The replica's state machine in-process, against a scripted fake worker:
 * every transition of the table, timeouts, crashes, stop at any point.
 */
import assert from "node:assert/strict";
import { ApiError } from "../src/errors/api_error.ts";
import { Replica, type ReplicaRun, type ReplicaState } from "../src/supervision/replica.ts";
import {
  apiState,
  countStates,
  isReady,
  nextState,
  REPLICA_STATES,
  STATE_INFO,
  TRANSITIONS,
} from "../src/supervision/replica_states.ts";
import { RestartBackoff } from "../src/supervision/backoff.ts";
import { waitUntil } from "../src/supervision/events.ts";
import { FakeSpawner, type FakeWorker, recordingLogger, sample } from "./_fake_worker.ts";

const FAST_BACKOFF = { initialMs: 1, maxMs: 5, resetAfterMs: 60_000 };

function makeReplica(spawner: FakeSpawner, extra: { initTimeoutMs?: number; memBytes?: number } = {}) {
  const { logger, records } = recordingLogger();
  const replica = new Replica({
    api: "api",
    index: 0,
    spawn: spawner.spawn,
    init: { protocol: 1, api: "api", inference: "inference.py", metadata: {}, python_root: "." } as never,
    initTimeoutMs: extra.initTimeoutMs,
    killGraceMs: 50,
    cancelGraceMs: 30,
    backoff: FAST_BACKOFF,
    memBytes: extra.memBytes,
    memText: undefined,
    logger,
    readRss: () => Promise.resolve(extra.memBytes === undefined ? undefined : extra.memBytes * 2),
  });
  const states: ReplicaState[] = [];
  replica.changes.on((r) => states.push(r.state));
  return { replica, records, states };
}

function stateIs(replica: Replica, state: ReplicaState, timeoutMs = 2000): Promise<true> {
  return waitUntil([replica.changes], () => replica.state === state || undefined, { timeoutMs });
}

/** The body of a run's answer (a stream fails the test). */
async function body(run: ReplicaRun): Promise<Uint8Array> {
  const answer = await run.answer;
  if (answer.type !== "body") throw new Error("expected a body, got a stream");
  return answer.body;
}

Deno.test("transition table: every state but stopped can stop; an illegal event throws", () => {
  for (const [state, events] of Object.entries(TRANSITIONS)) {
    if (state === "stopped") assert.deepEqual(events, {});
    else assert.equal(events.stop?.to, "stopped", state);
  }
  assert.equal(nextState("ready", "dispatch").to, "busy");
  assert.throws(
    () => nextState("starting", "dispatch"),
    /Illegal replica transition: event "dispatch" in state "starting"/,
  );
  assert.throws(() => nextState("stopped", "spawn"), /Illegal/);
});

Deno.test("replica states: one list; the table, the facts and readiness all cover it", () => {
  assert.deepEqual(Object.keys(TRANSITIONS), [...REPLICA_STATES]);
  assert.deepEqual(Object.keys(STATE_INFO), [...REPLICA_STATES]);
  assert.deepEqual(REPLICA_STATES.filter(isReady), ["ready", "busy"]);
  assert.deepEqual(Object.keys(countStates([])), [...REPLICA_STATES]);
  assert.equal(countStates(["busy", "busy", "ready"]).busy, 2);
  assert.equal(apiState(["busy", "init_failed"]), "ready");
  assert.equal(apiState(["starting", "restarting"]), "restarting");
  assert.equal(apiState(["init_failed", "out_of_memory"]), "out_of_memory");
  assert.equal(apiState([]), "starting");
});

Deno.test("transition table: its effects are what the replica does on the way", () => {
  for (const [from, events] of Object.entries(TRANSITIONS)) {
    for (const [event, transition] of Object.entries(events)) {
      const where = `${from} --${event}--> ${transition.to}`;
      if (transition.effect === "serve") assert.equal(transition.to, "ready", where);
      if (transition.effect === "drop") assert.equal(from, "starting", where);
      if (from === "busy" && transition.to !== "busy" && transition.to !== "ready" && event !== "stop") {
        assert.equal(transition.effect, "kill", `${where}: a worker left busy must go`);
      }
    }
  }
  assert.equal(nextState("starting", "ready").effect, "serve");
  assert.equal(nextState("starting", "init_failed").effect, "drop");
  assert.equal(nextState("busy", "stuck").effect, "kill");
});

Deno.test("restart backoff: doubles while workers die before doing any work; a healthy one resets it", () => {
  let now = 1000;
  const backoff = new RestartBackoff({ initialMs: 10, maxMs: 40, resetAfterMs: 1000 }, () => now);
  // Init keeps failing: never ready.
  assert.deepEqual([backoff.next(), backoff.next(), backoff.next(), backoff.next()], [10, 20, 40, 40]);
  // Ready, answered a request, then crashed: the shortest delay again.
  backoff.starting();
  backoff.ready();
  backoff.answered();
  assert.equal(backoff.next(), 10);
  // Ready but gone before answering anything: backs off further.
  backoff.starting();
  backoff.ready();
  assert.equal(backoff.next(), 20);
  // Ready and up for resetAfterMs without a request: reset too.
  backoff.starting();
  backoff.ready();
  now += 1000;
  assert.equal(backoff.next(), 10);
});

Deno.test("replica: starting → ready → busy → ready, each transition logged at debug", async () => {
  const spawner = new FakeSpawner();
  const { replica, records, states } = makeReplica(spawner);
  replica.start();
  await stateIs(replica, "ready");
  const running = body(replica.run(sample({ x: 1 }), false));
  assert.equal(replica.state, "busy");
  spawner.last.answer({ y: 2 });
  assert.equal(new TextDecoder().decode(await running), '{"y":2}');
  assert.equal(replica.state, "ready");
  await replica.stop();
  assert.deepEqual(states, ["ready", "busy", "ready", "stopped"]);
  const logged = records.filter((r) => r.msg === "replica state").map((r) => `${r.from}-${r.event}->${r.to}`);
  assert.deepEqual(logged, [
    "starting-ready->ready",
    "ready-dispatch->busy",
    "busy-done->ready",
    "ready-stop->stopped",
  ]);
  assert.ok(records.every((r) => r.msg !== "replica state" || r.level === "debug"));
});

Deno.test("replica: a Python error costs one request; an unparsable sample is a 400; the worker stays", async () => {
  const spawner = new FakeSpawner();
  const { replica } = makeReplica(spawner);
  replica.start();
  await stateIs(replica, "ready");
  const failing = body(replica.run(sample(1), false));
  spawner.last.failPredict("predict", "ValueError: no");
  await assert.rejects(failing, (e: ApiError) => e.code === "PREDICT_FAILED" && e.status === 500);
  const bad = body(replica.run(sample(1), false));
  spawner.last.failPredict("sample", "it nests too deeply to parse");
  await assert.rejects(
    bad,
    (e: ApiError) => e.status === 400 && /not valid JSON: it nests too deeply/.test(e.message),
  );
  assert.equal(replica.state, "ready");
  assert.equal(spawner.workers.length, 1);
  await replica.stop();
});

Deno.test("replica: past its deadline predict is cancelled (504); one that does not stop in the grace is killed", async () => {
  const spawner = new FakeSpawner();
  const { replica, states, records } = makeReplica(spawner);
  replica.start();
  await stateIs(replica, "ready");
  const run = replica.run(sample(1), false);
  const running = body(run);
  run.timeOut();
  await assert.rejects(running, (e: ApiError) => e.code === "PREDICT_TIMEOUT" && e.status === 504);
  const first = spawner.workers[0]!;
  assert.equal(first.cancels, 1);
  assert.deepEqual(first.signals, [], "the worker gets --cancel-grace to stop");
  assert.equal(replica.state, "busy");
  const second = await spawner.nth(2);
  await stateIs(replica, "ready");
  assert.notEqual(second, first);
  assert.deepEqual(first.signals, ["SIGTERM"]);
  assert.deepEqual(states, ["ready", "busy", "busy", "restarting", "starting", "ready"]);
  assert.deepEqual(replica.cancels, { client: 0, timeout: 1 });
  const logged = records.filter((r) => r.msg === "replica state").map((r) => `${r.from}-${r.event}->${r.to}`);
  assert.deepEqual(logged.slice(1, 4), [
    "ready-dispatch->busy",
    "busy-cancel->busy",
    "busy-stuck->restarting",
  ]);
  assert.ok(
    records.some((r) => r.msg === "predict did not stop within --cancel-grace: restarting the worker"),
  );
  await replica.stop();
});

Deno.test("replica: a cancel the worker honours frees the replica without a restart", async () => {
  for (const reason of ["client", "timeout"] as const) {
    const spawner = new FakeSpawner();
    const { replica, states, records } = makeReplica(spawner);
    replica.start();
    await stateIs(replica, "ready");
    const run = replica.run(sample(1), false);
    if (reason === "client") run.cancel();
    else run.timeOut();
    await assert.rejects(
      run.answer,
      (e: ApiError) => reason === "client" ? e.code === "CLIENT_CLOSED" : e.code === "PREDICT_TIMEOUT",
    );
    const worker = spawner.last;
    assert.equal(worker.cancels, 1);
    run.cancel(); // a second cancel of the same request is a no-op
    assert.equal(worker.cancels, 1);
    worker.cancelled();
    await run.finished;
    assert.equal(replica.state, "ready");
    assert.deepEqual(states, ["ready", "busy", "busy", "ready"]);
    assert.deepEqual(worker.signals, []);
    assert.equal(replica.cancels[reason], 1);
    const cancelled = records.find((r) => r.msg === "request cancelled");
    assert.equal(
      cancelled?.reason,
      reason === "client" ? "client closed the connection" : "--predict-timeout passed",
    );
    // The grace timer was cleared: nothing happens later.
    await new Promise((resolve) => setTimeout(resolve, 60));
    assert.equal(replica.state, "ready");
    assert.equal(spawner.workers.length, 1);
    await replica.stop();
  }
});

Deno.test("replica: an answer that beats the cancel still frees the replica; the client already had its 499", async () => {
  const spawner = new FakeSpawner();
  const { replica } = makeReplica(spawner);
  replica.start();
  await stateIs(replica, "ready");
  const run = replica.run(sample(1), false);
  run.cancel();
  spawner.last.answer("too late");
  await assert.rejects(run.answer, (e: ApiError) => e.code === "CLIENT_CLOSED");
  await run.finished;
  assert.equal(replica.state, "ready");
  await replica.stop();
});

Deno.test("replica: a worker that ignores SIGTERM after a timeout is killed after the grace period", async () => {
  const spawner = new FakeSpawner();
  const { replica } = makeReplica(spawner);
  replica.start();
  await stateIs(replica, "ready");
  const first = spawner.last;
  first.ignoreSigterm = true;
  const run = replica.run(sample(1), false);
  const running = body(run);
  run.timeOut();
  await assert.rejects(running, /did not finish within --predict-timeout/);
  await first.until(() => first.ended);
  assert.deepEqual(first.signals, ["SIGTERM", "SIGKILL"]);
  await replica.stop();
});

Deno.test("replica: a crash during a request is 502 and restarts; so is a channel closed by a live worker", async () => {
  for (const fail of [(w: FakeWorker) => w.exit(3), (w: FakeWorker) => w.breakChannel()]) {
    const spawner = new FakeSpawner();
    const { replica } = makeReplica(spawner);
    replica.start();
    await stateIs(replica, "ready");
    const first = spawner.last;
    const running = body(replica.run(sample(1), false));
    fail(first);
    await assert.rejects(running, (e: ApiError) => e.code === "WORKER_DIED" && e.status === 502);
    // The live worker with a dead channel is not left running.
    await first.until(() => first.ended);
    await spawner.nth(2);
    await stateIs(replica, "ready");
    assert.equal(replica.restarts, 1);
    await replica.stop();
  }
});

Deno.test("replica: stopped during init goes straight to stopped, without an init failure", async () => {
  const spawner = new FakeSpawner("pending");
  const { replica, records, states } = makeReplica(spawner);
  replica.start();
  await spawner.last.until(() => spawner.last.initPending);
  await replica.stop();
  assert.deepEqual(states, ["stopped"]);
  assert.ok(!records.some((r) => r.level === "error"), JSON.stringify(records));
  assert.ok(!records.some((r) => r.msg === "init failed; retrying"));
  assert.equal(replica.serving, false);
});

Deno.test("replica: init failure is retried with backoff; init timeout counts as one", async () => {
  const spawner = new FakeSpawner({ fail: "boom" }, "pending", "ready");
  const { replica, states } = makeReplica(spawner, { initTimeoutMs: 30 });
  replica.start();
  await stateIs(replica, "ready");
  assert.deepEqual(states, ["init_failed", "starting", "init_failed", "starting", "ready"]);
  assert.equal(spawner.workers.length, 3);
  assert.equal(replica.lastError, undefined);
  await replica.stop();
});

Deno.test("replica: over compute.mem the worker is killed; the request gets 502 out of memory", async () => {
  const spawner = new FakeSpawner();
  const { replica, states } = makeReplica(spawner, { memBytes: 1 << 20 });
  replica.start();
  await stateIs(replica, "ready");
  const running = body(replica.run(sample(1), false));
  await assert.rejects(
    running,
    (e: ApiError) => e.code === "OUT_OF_MEMORY" && /over compute.mem/.test(e.message),
  );
  await stateIs(replica, "ready");
  assert.deepEqual(states.slice(0, 4), ["ready", "busy", "out_of_memory", "starting"]);
  await replica.stop();
});

Deno.test("replica: stop while busy answers the request and ends in stopped", async () => {
  const spawner = new FakeSpawner();
  const { replica, states } = makeReplica(spawner);
  replica.start();
  await stateIs(replica, "ready");
  const running = body(replica.run(sample(1), false));
  await replica.stop();
  await assert.rejects(running, /The server stopped the worker/);
  assert.deepEqual(states, ["ready", "busy", "stopped"]);
  assert.equal(spawner.workers.length, 1);
});

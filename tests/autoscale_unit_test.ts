/**
 * The autoscaler in-process: a pool of replicas with scripted fake workers,
 * load made by holding predict calls open. Scaling is observed through the
 * pool's change events, with deadlines.
 */
import assert from "node:assert/strict";
import { Autoscaler } from "../src/supervision/autoscale.ts";
import { waitUntil } from "../src/supervision/events.ts";
import { ApiPool } from "../src/supervision/pool.ts";
import { fakeReplica, FakeSpawner, recordingLogger, sample } from "./_fake_worker.ts";

function setup() {
  const { logger, records } = recordingLogger();
  const pool = new ApiPool({
    api: "api",
    queuePerReplica: 8,
    maxReplicas: 2,
    predictTimeoutMs: 10_000,
    logger,
  });
  const spawners = new Map<number, FakeSpawner>();
  const create = (index: number) => {
    const spawner = new FakeSpawner();
    spawners.set(index, spawner);
    return fakeReplica(spawner, logger, { index });
  };
  const first = create(0);
  pool.setReplicas([first]);
  first.start();
  const autoscaler = new Autoscaler({
    pool,
    minReplicas: 1,
    maxReplicas: 2,
    settings: { windowMs: 100, cooldownMs: 200 },
    create,
    logger,
  });
  const count = (n: number) =>
    waitUntil([pool.changes], () => pool.replicas.length === n || undefined, { timeoutMs: 3000 });
  return { pool, spawners, autoscaler, records, count };
}

/** From now on every worker answers at once; pending calls are answered. */
function answerAll(spawners: Map<number, FakeSpawner>): void {
  for (const spawner of spawners.values()) {
    const worker = spawner.last;
    worker.autoAnswer = "ok";
    if (worker.pending !== undefined) worker.answer("ok");
  }
}

Deno.test("autoscale: a deep queue adds a replica; quiet retires it; a failed stop is logged, not unhandled", async () => {
  const { pool, spawners, autoscaler, records, count } = setup();
  await waitUntil([pool.changes], () => pool.replicas[0]!.state === "ready" || undefined, {
    timeoutMs: 2000,
  });
  autoscaler.start();
  const held = Array.from({ length: 4 }, (_, i) => pool.submit(sample(i), { debug: false }));
  await count(2);
  const added = pool.replicas[1]!;
  await waitUntil([added.changes], () => added.state === "busy" || undefined, { timeoutMs: 2000 });
  assert.ok(records.some((r) => r.msg === "scaled up" && r.replicas === 2));
  // The replica to be retired fails to stop: the autoscaler logs it.
  spawners.get(1)!.last.shutdownError = new Error("shutdown failed");
  answerAll(spawners);
  await Promise.all(held);
  await count(1);
  await autoscaler.stop();
  assert.equal(pool.replicas[0]!.index, 0);
  assert.ok(records.some((r) => r.msg === "scaled down" && r.replicas === 1));
  assert.ok(
    records.some((r) => r.msg === "stopping a retired replica failed" && r.error === "shutdown failed"),
  );
  assert.deepEqual(pool.scaleEvents, { up: 1, down: 1 });
  await pool.replicas[0]!.stop();
  spawners.get(1)!.last.exit(0);
});

/**
 * A one-replica pool whose fake worker is ready and answers every request
 * with `answer`: what the in-process HTTP tests put behind `createApp`.
 */
import type { Logger } from "../src/log/logger.ts";
import { ApiPool } from "../src/supervision/pool.ts";
import { waitUntil } from "../src/supervision/events.ts";
import type { Replica } from "../src/supervision/replica.ts";
import { fakeReplica, FakeSpawner } from "./_fake_worker.ts";

/** A pool of API `api` with one ready fake replica; stop `replica` when done. */
export async function readyFakePool(
  logger: Logger,
  answer: unknown,
): Promise<{ pool: ApiPool; spawner: FakeSpawner; replica: Replica }> {
  const pool = new ApiPool({
    api: "api",
    queuePerReplica: 4,
    maxReplicas: 1,
    predictTimeoutMs: 5000,
    logger,
  });
  const spawner = new FakeSpawner();
  const replica = fakeReplica(spawner, logger);
  pool.setReplicas([replica]);
  replica.start();
  await waitUntil([pool.changes], () => replica.state === "ready" || undefined, { timeoutMs: 2000 });
  spawner.last.autoAnswer = answer;
  return { pool, spawner, replica };
}

/**
 * A pool in-process (pool_test.ts, pool_pipelining_test.ts): its replicas
 * run scripted fake workers (./_fake_worker.ts), one spawner each.
 */
import { ApiPool, type Prediction } from "../src/supervision/pool.ts";
import { waitUntil } from "../src/supervision/events.ts";
import { fakeReplica, FakeSpawner, recordingLogger } from "./_fake_worker.ts";

export interface Setup {
  readonly replicas?: number;
  readonly queue?: number;
  readonly predictTimeoutMs?: number;
  readonly queueTimeoutMs?: number;
  readonly pipelining?: boolean;
}

export async function makePool(setup: Setup = {}) {
  const { logger, records } = recordingLogger();
  const spawners: FakeSpawner[] = [];
  const pool = new ApiPool({
    api: "api",
    queuePerReplica: setup.queue ?? 8,
    maxReplicas: setup.replicas ?? 1,
    predictTimeoutMs: setup.predictTimeoutMs ?? 10_000,
    ...(setup.queueTimeoutMs === undefined ? {} : { queueTimeoutMs: setup.queueTimeoutMs }),
    ...(setup.pipelining === undefined ? {} : { pipelining: setup.pipelining }),
    logger,
  });
  const replicas = Array.from({ length: setup.replicas ?? 1 }, (_, index) => {
    const spawner = new FakeSpawner();
    spawners.push(spawner);
    return fakeReplica(spawner, logger, { index });
  });
  pool.setReplicas(replicas);
  replicas.forEach((r) => r.start());
  await waitUntil([pool.changes], () => replicas.every((r) => r.state === "ready") || undefined, {
    timeoutMs: 2000,
  });
  const stop = () => Promise.all(replicas.map((r) => r.stop()));
  return { pool, replicas, spawners, records, stop };
}

export const text = (p: Prediction) =>
  new TextDecoder().decode(p.answer.type === "body" ? p.answer.body : undefined);

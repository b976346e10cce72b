/**
 * Deployment readiness and zero-downtime reload in-process: real config,
 * replicas with scripted fake workers, no Python. Readiness is an event;
 * every wait here has a deadline.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { loadProjectConfig } from "../src/config/load.ts";
import type { ResolvedProject } from "../src/config/types.ts";
import { Deployment } from "../src/supervision/deployment.ts";
import { waitUntil } from "../src/supervision/events.ts";
import { type Generation, Reloader } from "../src/supervision/reloader.ts";
import type { Replica } from "../src/supervision/replica.ts";
import { FakeSpawner, type InitScript, recordingLogger } from "./_fake_worker.ts";
import type { Logger } from "../src/log/logger.ts";
import { ROOT } from "./_helpers.ts";

const IRIS = join(ROOT, "examples", "iris-classifier");
let project: ResolvedProject | undefined;

async function deployment(logger: Logger, ...scripts: InitScript[]) {
  project ??= await loadProjectConfig(IRIS);
  const spawner = new FakeSpawner(...scripts);
  const deployment = new Deployment(project, IRIS, {
    python: "python3",
    workerPath: "/nonexistent/worker.py",
    maxFrameBytes: 1 << 20,
    queuePerReplica: 4,
    predictTimeoutMs: 1000,
    initTimeoutMs: undefined,
    killGraceMs: 50,
    cancelGraceMs: 20,
    backoff: { initialMs: 5, maxMs: 20, resetAfterMs: 60_000 },
    maxLogLineChars: 1000,
    serverEnv: {},
    logger,
    spawnWorker: spawner.spawn,
  });
  return { deployment, spawner };
}

function replicasOf(deployment: Deployment): Replica[] {
  return [...deployment.pools.values()].flatMap((pool) => [...pool.replicas]);
}

function stopped(deployment: Deployment): Promise<true> {
  const replicas = replicasOf(deployment);
  return waitUntil(
    replicas.map((r) => r.changes),
    () => replicas.every((r) => r.state === "stopped") || undefined,
    {
      timeoutMs: 2000,
    },
  );
}

function generation(deployment: Deployment, fetch?: Generation["fetch"]): Generation {
  return { deployment, fetch: fetch ?? (() => new Response("ok")) };
}

Deno.test("deployment: whenReady and onApiReady follow replica events", async () => {
  const { logger } = recordingLogger();
  const { deployment: d, spawner } = await deployment(logger, "pending");
  const announced: string[] = [];
  d.onApiReady((api) => announced.push(api.name));
  let ready = false;
  const whenReady = d.whenReady(undefined).then(() => ready = true);
  d.start();
  await spawner.last.until(() => spawner.last.initPending);
  assert.equal(ready, false);
  spawner.last.ready();
  await whenReady;
  assert.deepEqual(announced, ["classifier"]);
  // Announced once, however often the state changes afterwards.
  spawner.last.exit(1);
  await spawner.nth(2);
  assert.deepEqual(announced, ["classifier"]);
  await d.stop(100);
});

Deno.test("deployment: whenReady with failOnInitError rejects when every replica of an api failed init", async () => {
  const { logger } = recordingLogger();
  const { deployment: d } = await deployment(logger, { fail: "ImportError: no torch" });
  d.start();
  await assert.rejects(
    d.whenReady(undefined, { failOnInitError: true }),
    /api classifier: init failed: ImportError/,
  );
  const aborted = new AbortController();
  const pending = d.whenReady(aborted.signal);
  aborted.abort(new Error("stop"));
  await assert.rejects(pending, /stop/);
  await d.stop(100);
});

Deno.test("reload before the first version was ready: readiness follows the switch, the first stops cleanly", async () => {
  const { logger, records } = recordingLogger();
  const first = await deployment(logger, "pending");
  first.deployment.start();
  const reloader = new Reloader(generation(first.deployment), {
    build: async () => {
      const next = await deployment(logger, "ready");
      next.deployment.start();
      return generation(next.deployment);
    },
    drainTimeoutMs: 1000,
    logger,
  });
  const switched: Generation[] = [];
  reloader.switched.on((g) => switched.push(g));
  const ready = reloader.whenReady();
  assert.equal(await reloader.reload(), true);
  await ready;
  assert.equal(switched.length, 1);
  assert.equal(reloader.current, switched[0]);
  await stopped(first.deployment);
  assert.ok(
    !records.some((r) => r.level === "error"),
    JSON.stringify(records.filter((r) => r.level === "error")),
  );
  await reloader.stop(100);
});

Deno.test("reload: the old version stops only after the requests it took have finished", async () => {
  const { logger } = recordingLogger();
  const first = await deployment(logger);
  first.deployment.start();
  await first.deployment.whenReady();
  const release = Promise.withResolvers<void>();
  const entered = Promise.withResolvers<void>();
  const reloader = new Reloader(
    generation(first.deployment, async () => {
      entered.resolve();
      await release.promise;
      return new Response("old");
    }),
    {
      build: async () => {
        const next = await deployment(logger);
        next.deployment.start();
        return generation(next.deployment, () => new Response("new"));
      },
      drainTimeoutMs: 5000,
      logger,
    },
  );
  const info = {} as Deno.ServeHandlerInfo<Deno.NetAddr>;
  const held = reloader.fetch(new Request("http://127.0.0.1/"), info);
  await entered.promise;
  assert.equal(await reloader.reload(), true);
  assert.equal(await (await reloader.fetch(new Request("http://127.0.0.1/"), info)).text(), "new");
  const old = replicasOf(first.deployment);
  assert.ok(old.every((r) => r.state === "ready"), "the old version still serves its request");
  release.resolve();
  assert.equal(await (await held).text(), "old");
  await stopped(first.deployment);
  await reloader.stop(100);
});

Deno.test("reload: a version whose init fails is stopped and the running one keeps serving", async () => {
  const { logger, records } = recordingLogger();
  const first = await deployment(logger);
  first.deployment.start();
  await first.deployment.whenReady();
  let broken: Deployment | undefined;
  const reloader = new Reloader(generation(first.deployment), {
    build: async () => {
      const next = await deployment(logger, { fail: "SyntaxError: invalid syntax" });
      broken = next.deployment;
      next.deployment.start();
      return generation(next.deployment);
    },
    drainTimeoutMs: 1000,
    logger,
  });
  assert.equal(await reloader.reload(), false);
  assert.equal(reloader.current.deployment, first.deployment);
  assert.ok(broken !== undefined);
  await stopped(broken);
  assert.ok(records.some((r) => r.msg === "reload failed: the running version keeps serving"));
  await reloader.stop(100);
});

Deno.test("reload: a build that throws is logged and reload resolves false", async () => {
  const { logger, records } = recordingLogger();
  const first = await deployment(logger);
  first.deployment.start();
  const reloader = new Reloader(generation(first.deployment), {
    build: () => Promise.reject(new Error("cortex.yaml: bad")),
    drainTimeoutMs: 1000,
    logger,
  });
  assert.equal(await reloader.reload(), false);
  assert.ok(
    records.some((r) =>
      r.msg === "reload failed: the running version keeps serving" && r.error === "cortex.yaml: bad"
    ),
  );
  await reloader.stop(100);
});

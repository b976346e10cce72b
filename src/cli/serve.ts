/**
 * `cortex-serve serve`: config → staging → interpreter → workers → HTTP,
 * then signals: SIGTERM/SIGINT drain and exit 0.
 */
import { loadProjectConfig } from "../config/load.ts";
import type { ResolvedProject } from "../config/types.ts";
import { Logger } from "../log/logger.ts";
import { stageProject } from "../project/stage.ts";
import { defaultStateDir, ensureStateDir } from "../project/state_dir.ts";
import { checkInterpreter, chooseInterpreter } from "../python/interpreter.ts";
import { DEFAULT_MAX_LINE_CHARS } from "../python/log_lines.ts";
import { writeWorker } from "../python/worker_source.ts";
import { createApp } from "../server/app.ts";
import { DEFAULT_BACKOFF } from "../server/backoff.ts";
import { Deployment } from "../server/deployment.ts";
import type { ServeOptions } from "./serve_options.ts";

const KILL_GRACE_MS = 2000;

/** Runs the server until SIGTERM/SIGINT; resolves with the exit code. */
export async function serve(options: ServeOptions): Promise<number> {
  const logger = new Logger({ format: options.logFormat, level: options.logLevel });
  const project = await loadProjectConfig(options.projectDir);
  const stateDir = await ensureStateDir(options.stateDir ?? defaultStateDir());
  const interpreter = await checkInterpreter(chooseInterpreter(options.python, Deno.env.toObject()));
  logger.info("python", { executable: interpreter.executable, version: interpreter.version });

  const staged = await stageProject(project.root, { stateDir });
  for (const entry of staged.skipped) {
    logger.warn("not staged", { path: entry.path, reason: entry.reason });
  }
  logger.info("project staged", { dir: staged.dir, files: staged.files, reused: staged.reused });
  const workerPath = await writeWorker(stateDir);

  const deployment = new Deployment(project, staged.dir, {
    python: interpreter.executable,
    workerPath,
    maxFrameBytes: options.maxFrameBytes,
    queuePerReplica: options.queuePerReplica,
    predictTimeoutMs: options.predictTimeoutMs,
    initTimeoutMs: options.initTimeoutMs,
    killGraceMs: KILL_GRACE_MS,
    backoff: DEFAULT_BACKOFF,
    maxLogLineChars: options.debug ? Number.MAX_SAFE_INTEGER : DEFAULT_MAX_LINE_CHARS,
    serverEnv: Deno.env.toObject(),
    logger,
  });
  deployment.start();

  const { app } = createApp({
    project,
    pools: deployment.pools,
    maxBodyBytes: options.maxBodyBytes,
    debug: options.debug,
    logger,
  });
  const listening = Promise.withResolvers<Deno.NetAddr>();
  const server = Deno.serve({
    hostname: options.host,
    port: options.port,
    onListen: (addr) => listening.resolve(addr),
  }, app.fetch);
  const addr = await listening.promise;
  const base = `http://${addr.hostname.includes(":") ? `[${addr.hostname}]` : addr.hostname}:${addr.port}`;
  logger.info("listening", { url: base, deployment: project.deployment.name });
  if (addr.hostname === "127.0.0.1" || addr.hostname === "::1") {
    logger.info("only this machine can connect: pass --host 0.0.0.0 to accept other machines");
  }
  const stopAnnouncing = announceReady(project, deployment, base, logger);

  const signal = await waitForStopSignal();
  stopAnnouncing();
  logger.info("shutting down", { signal, drain_timeout_s: options.drainTimeoutMs / 1000 });
  const [drained] = await Promise.all([deployment.stop(options.drainTimeoutMs), server.shutdown()]);
  logger.info("stopped", { drained });
  return 0;
}

/** Logs each API's URL once it first has a ready replica. */
function announceReady(
  project: ResolvedProject,
  deployment: Deployment,
  base: string,
  logger: Logger,
): () => void {
  const pending = new Set(project.apis.map((api) => api.name));
  const timer = setInterval(() => {
    for (const api of project.apis) {
      if (!pending.has(api.name)) continue;
      const ready = deployment.pools.get(api.name)?.replicas.some((r) =>
        r.state === "ready" || r.state === "busy"
      );
      if (!ready) continue;
      pending.delete(api.name);
      logger.info("api ready", { api: api.name, url: `${base}${api.endpoint}` });
    }
    if (pending.size === 0) clearInterval(timer);
  }, 50);
  return () => clearInterval(timer);
}

/** Resolves with the name of the first SIGTERM or SIGINT. */
function waitForStopSignal(): Promise<Deno.Signal> {
  return new Promise((resolve) => {
    const signals: Deno.Signal[] = ["SIGTERM", "SIGINT"];
    const handlers = signals.map((name) => {
      const handler = () => {
        handlers.forEach(([n, h]) => Deno.removeSignalListener(n, h));
        resolve(name);
      };
      Deno.addSignalListener(name, handler);
      return [name, handler] as const;
    });
  });
}

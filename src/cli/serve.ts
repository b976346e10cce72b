/**
 * `cortex-serve serve`: config -> staging -> interpreter -> workers -> HTTP,
 * then signals: SIGTERM/SIGINT drain and exit 0.
 */
import { loadProjectConfig } from "../config/load.ts";
import { parsesByContentType, type ResolvedProject } from "../config/types.ts";
import { Logger } from "../log/logger.ts";
import { ProjectMount } from "../project/mount.ts";
import { stageProject } from "../project/stage.ts";
import { defaultStateDir, ensureStateDir } from "../project/state_dir.ts";
import { preparePythonEnvironment } from "../python/environment.ts";
import { checkInterpreter, chooseInterpreter } from "../python/interpreter.ts";
import { DEFAULT_MAX_LINE_CHARS } from "../python/log_lines.ts";
import { writeWorker } from "../python/worker_source.ts";
import { modelDir } from "../python/worker_launch.ts";
import type { ModelMessage } from "../python/protocol.ts";
import { DIALECT_NAMES } from "../config/dialect.ts";
import { memoryShortfall, readMemAvailable } from "./memory_check.ts";
import { type CortexApp, createApp } from "../http/app.ts";
import { DEFAULT_BACKOFF } from "../supervision/backoff.ts";
import { Deployment } from "../supervision/deployment.ts";
import type { ApiPool } from "../supervision/pool.ts";
import { Reloader } from "../supervision/reloader.ts";
import { tracingEnabled } from "../http/tracing_enabled.ts";
import { HttpListener } from "../http/listener.ts";
import type { ConnectionLimits } from "../http/connections.ts";
import { registerConnectionMetrics } from "../http/connection_metrics.ts";
import { type ConnectionOptions, defaultMaxConnections } from "./connection_options.ts";
import { raiseOpenFileLimit } from "./fd_limit.ts";
import { BodyWatch } from "../http/body_watch.ts";
import { Security } from "./security.ts";
import { ServerMetrics } from "../http/metrics.ts";
import type { LatencyBreakdown } from "../http/latency_breakdown.ts";
import { RequestStats } from "../http/stats.ts";
import { ConsoleActivity } from "../http/console/activity.ts";
import { ServiceNotifier } from "../supervision/sd_notify.ts";
import { PROTOCOL_VERSION } from "../python/protocol.ts";
import { VERSION } from "./version.ts";
import type { ServeOptions } from "./serve_options.ts";
import { JobService } from "../jobs/service.ts";
import { openJobStore } from "../jobs/open_store.ts";

const KILL_GRACE_MS = 2000;

/** Runs the server until SIGTERM/SIGINT; resolves with the exit code. */
export async function serve(options: ServeOptions): Promise<number> {
  const activity = new ConsoleActivity();
  const logger = new Logger({ format: options.logFormat, level: options.logLevel, tap: activity.tap });
  using stop = listenForStop();
  try {
    return await run(options, logger, stop, activity);
  } catch (error) {
    if (!stop.signal.aborted) throw error;
    // SIGTERM/SIGINT during startup (a long pip install, say): pip was stopped with it.
    logger.info("stopped during startup", { signal: stop.signal.reason });
    return 0;
  }
}

async function run(
  options: ServeOptions,
  logger: Logger,
  stop: StopListener,
  activity: ConsoleActivity,
): Promise<number> {
  const security = await Security.load(options.security, {
    env: Deno.env.toObject(),
    logger,
    host: options.host,
  });
  const stateDir = await ensureStateDir(options.stateDir ?? defaultStateDir());
  const interpreter = await checkInterpreter(chooseInterpreter(options.python, Deno.env.toObject()));
  logger.info("python", { executable: interpreter.executable, version: interpreter.version });
  const limits = await connectionLimits(options.connections, interpreter.executable, logger);
  for (const warning of interpreter.warnings) logger.warn(warning, { python: interpreter.executable });
  const workerPath = await writeWorker(stateDir);
  // Durable jobs outlive every deployment too: the runner is given each version's pools.
  const jobsStore = options.jobs.store;
  await using jobs = jobsStore.kind === "off" ? undefined : new JobService({
    store: await openJobStore(jobsStore, {
      stateDir,
      leaseMs: options.jobs.leaseMs,
      ttlMs: options.jobs.ttlMs,
    }),
    logger,
    ttlMs: options.jobs.ttlMs,
    leaseMs: options.jobs.leaseMs,
    maxAttempts: options.jobs.maxAttempts,
    maxQueued: options.jobs.maxQueued,
  });
  if (jobs) logger.info("jobs", { store: jobs.store.description });
  // The server's metrics outlive every deployment: restarts and cancels of
  // any version are counted in them as they happen.
  const bodyWatch = new BodyWatch(options.bodyTimeoutMs);
  const metrics = new ServerMetrics({
    pools: () => reloader.current.deployment.pools.values(),
    bodiesReading: () => bodyWatch.reading,
    build: { version: VERSION, protocol: PROTOCOL_VERSION },
    ...(jobs === undefined ? {} : { jobs: (api: string) => jobs.depth(api) }),
  });
  const runtime = {
    workerPath,
    maxFrameBytes: options.maxFrameBytes,
    queuePerReplica: options.queuePerReplica,
    predictTimeoutMs: options.predictTimeoutMs,
    cancelGraceMs: options.cancelGraceMs,
    queueTimeoutMs: options.queueTimeoutMs,
    initTimeoutMs: options.initTimeoutMs,
    killGraceMs: KILL_GRACE_MS,
    backoff: DEFAULT_BACKOFF,
    maxLogLineChars: options.debug ? Number.MAX_SAFE_INTEGER : DEFAULT_MAX_LINE_CHARS,
    logger,
    scale: { windowMs: options.scaleWindowMs, cooldownMs: options.scaleCooldownMs },
    enforceMem: options.enforceMem,
    modelDir: modelDir(stateDir),
    counters: metrics,
    onModelEvent: (api: string, event: ModelMessage) => metrics.observeModel(api, event),
    workerTimings: options.latencyBreakdown,
  };
  // Loaded only when asked for: the idle server holds no more code than it runs.
  const breakdown = options.latencyBreakdown
    ? new (await import("../http/latency_breakdown.ts")).LatencyBreakdown(metrics.registry)
    : undefined;
  /** Config -> staging -> Python environment -> a deployment not yet started; at startup and on reload. */
  const buildDeployment = async (): Promise<Deployment> => {
    const project = await loadProjectConfig(options.projectDir);
    logger.info("config", { dialect: project.dialect, dialect_name: DIALECT_NAMES[project.dialect] });
    for (const field of project.ignored) {
      logger.info("config field accepted and ignored", {
        field: field.path,
        resource: field.resource,
        line: field.line,
        reason: field.reason,
      });
    }
    await warnMemory(project, options.enforceMem, logger);
    const staged = await stageProject(project.root, { stateDir });
    for (const entry of staged.skipped) {
      logger.warn("not staged", { path: entry.path, reason: entry.reason });
    }
    logger.info("project staged", { dir: staged.dir, files: staged.files, reused: staged.reused });
    const env = await preparePythonEnvironment(staged.dir, {
      interpreter,
      stateDir,
      runDependenciesSh: options.runDependenciesSh,
      skipRequirements: options.noRequirements,
      serverEnv: Deno.env.toObject(),
      logger,
      signal: stop.signal,
    });
    return new Deployment(project, staged.dir, { ...runtime, python: env.python, serverEnv: env.serverEnv });
  };
  const deployment = await buildDeployment();
  const project = deployment.project;
  await using mount = options.projectMount === undefined
    ? undefined
    : await ProjectMount.create(options.projectMount, deployment.stagedDir, stateDir);
  if (mount) logger.info("project mounted", { path: mount.path, target: mount.target });

  deployment.start();

  jobs?.usePools(deployment.pools, typedApis(deployment.project));
  const stats = new RequestStats();
  // The OpenTelemetry API is loaded only when tracing is on.
  const tracing = tracingEnabled() ? (await import("../http/tracing.ts")).startTracing : undefined;
  const buildApp = (project: ResolvedProject, pools: ReadonlyMap<string, ApiPool>): CortexApp =>
    withBreakdown(
      breakdown,
      pools,
      createApp({
        tracing,
        metrics,
        stats,
        activity,
        project,
        pools,
        maxBodyBytes: options.maxBodyBytes,
        bodyWatch,
        debug: options.debug,
        logger,
        keys: security.keys,
        cors: security.cors,
        jobs,
        version: VERSION,
      }),
    );
  const reloader: Reloader = new Reloader({
    deployment,
    fetch: buildApp(project, deployment.pools).app.fetch,
  }, {
    build: async () => {
      const next = await buildDeployment();
      await mount?.point(next.stagedDir);
      next.start();
      return { deployment: next, fetch: buildApp(next.project, next.pools).app.fetch };
    },
    restore: async (current) => await mount?.point(current.deployment.stagedDir),
    drainTimeoutMs: options.drainTimeoutMs,
    logger,
  });
  const server = HttpListener.start({
    hostname: options.host,
    port: options.port,
    tls: security.tls,
    handler: reloader.fetch,
    limits,
    logger,
  });
  registerConnectionMetrics(metrics.registry, server);
  const addr = server.addr;
  const base = server.url;
  logger.info("listening", { url: base, deployment: project.deployment.name });
  if (addr.hostname === "127.0.0.1" || addr.hostname === "::1") {
    logger.info("only this machine can connect: pass --host 0.0.0.0 to accept other machines");
  }
  // "api ready" for every version: the first when each API has a replica,
  // a reloaded one when requests switch to it (it is ready by then).
  const announce = (next: Deployment) =>
    next.onApiReady((api) => logger.info("api ready", { api: api.name, url: `${base}${api.endpoint}` }));
  let stopAnnouncing = announce(deployment);
  const offSwitched = reloader.switched.on((next) => {
    jobs?.usePools(next.deployment.pools, typedApis(next.deployment.project));
    stopAnnouncing();
    stopAnnouncing = announce(next.deployment);
  });
  const notifier = new ServiceNotifier({
    python: interpreter.executable,
    socket: Deno.env.get("NOTIFY_SOCKET"),
    logger,
  });
  reloader.whenReady(stop.signal).then(
    () => logger.info("every api is ready", { url: base }),
    () => {}, // stopped first
  );
  notifier.readyWhen(
    (signal) => reloader.whenReady(signal),
    `Serving ${project.deployment.name} at ${base}`,
  );

  const onHangup = () => {
    void security.reload(server);
    void reloader.reload();
  };
  Deno.addSignalListener("SIGHUP", onHangup);

  const signal = await stop.received;
  Deno.removeSignalListener("SIGHUP", onHangup);
  offSwitched();
  stopAnnouncing();
  const notifyingStop = notifier.stopping();
  logger.info("shutting down", { signal, drain_timeout_s: options.drainTimeoutMs / 1000 });
  // No new job starts; runs under way end with the drain (or go back to the queue).
  const jobsClosed = jobs?.close(options.drainTimeoutMs + 10_000);
  const [drained] = await Promise.all([reloader.stop(options.drainTimeoutMs), server.shutdown()]);
  await jobsClosed;
  logger.info("stopped", { drained });
  await notifyingStop;
  return 0;
}

/**
 * Raises the open-file limit and resolves `--max-connections` from it when
 * it was not given; logs both.
 */
async function connectionLimits(
  options: ConnectionOptions,
  python: string,
  logger: Logger,
): Promise<ConnectionLimits> {
  const files = await raiseOpenFileLimit(python);
  const maxConnections = options.maxConnections ??
    (files === undefined ? 1024 : defaultMaxConnections(files.soft));
  logger.info("connection limits", {
    max_connections: maxConnections,
    open_file_limit: files?.soft,
    open_file_hard_limit: files?.hard,
    header_timeout_s: options.headerTimeoutMs / 1000,
    keepalive_timeout_s: options.keepAliveTimeoutMs / 1000,
  });
  if (files !== undefined && maxConnections > files.soft) {
    logger.warn("--max-connections is above the open-file limit: accepts may fail when descriptors run out", {
      max_connections: maxConnections,
      open_file_limit: files.soft,
      fix: "raise LimitNOFILE= (systemd) or ulimit -n, or lower --max-connections",
    });
  }
  return { ...options, maxConnections };
}

/**
 * Warns when the replicas started ask, through `compute.mem`, for more
 * memory than the machine has available.
 */
async function warnMemory(project: ResolvedProject, enforce: boolean, logger: Logger): Promise<void> {
  const available = await readMemAvailable();
  const shortfall = available === undefined ? undefined : memoryShortfall(project, available);
  if (shortfall === undefined) return;
  const mib = (bytes: number) => Math.round(bytes / 2 ** 20);
  logger.warn(
    "min_replicas × compute.mem is over the memory this machine has available: " +
      (enforce
        ? "workers may be killed at their cap (--enforce-mem) or by the kernel"
        : "compute.mem is a request, as in Cortex; the kernel may stop workers when memory runs out"),
    {
      requested_mib: mib(shortfall.requestedBytes),
      available_mib: mib(shortfall.availableBytes),
      requests: shortfall.requests.join(", "),
    },
  );
}

/** The first SIGTERM or SIGINT, as a promise and as an abort signal. */
interface StopListener extends Disposable {
  readonly received: Promise<Deno.Signal>;
  /** Aborted, with the signal's name as reason, when one arrives. */
  readonly signal: AbortSignal;
}

/** Listens for SIGTERM and SIGINT from now on; dispose to stop listening. */
function listenForStop(): StopListener {
  const signals: Deno.Signal[] = ["SIGTERM", "SIGINT"];
  const controller = new AbortController();
  const received = Promise.withResolvers<Deno.Signal>();
  const handlers = signals.map((name) =>
    [name, () => {
      dispose();
      controller.abort(name);
      received.resolve(name);
    }] as const
  );
  const dispose = () => handlers.forEach(([name, handler]) => Deno.removeSignalListener(name, handler));
  handlers.forEach(([name, handler]) => Deno.addSignalListener(name, handler));
  return { received: received.promise, signal: controller.signal, [Symbol.dispose]: dispose };
}

/** The APIs whose worker parses the payload by Content-Type: their jobs carry the request's meta. */
function typedApis(project: ResolvedProject): ReadonlySet<string> {
  return new Set(
    project.apis.filter((api) => parsesByContentType(api.pythonInterface)).map((api) => api.name),
  );
}

/** The app with the latency breakdown's route, pools and handler instrumented (`--latency-breakdown`). */
function withBreakdown(
  breakdown: LatencyBreakdown | undefined,
  pools: ReadonlyMap<string, ApiPool>,
  built: CortexApp,
): CortexApp {
  if (breakdown === undefined) return built;
  for (const pool of pools.values()) breakdown.instrument(pool);
  breakdown.addRoute(built.app);
  const fetch = built.app.fetch;
  built.app.fetch = breakdown.wrap((request, info) => fetch(request, info));
  return built;
}

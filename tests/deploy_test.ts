/**
 * The shipped service files agree with the server: the systemd unit and the
 * Kubernetes manifests use flags `serve` accepts, probe routes the app
 * answers, and drain timeouts that fit in their stop windows.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { parseAllDocuments } from "yaml";
import { parseServeArgs, type ServeOptions } from "../src/cli/serve_options.ts";
import { loadProjectConfig } from "../src/config/load.ts";
import { Logger } from "../src/log/logger.ts";
import { createApp } from "../src/http/app.ts";
import { ApiPool } from "../src/supervision/pool.ts";
import { ROOT } from "./_helpers.ts";

const DEPLOY = join(ROOT, "deploy");

/** `[Section]` → key → values (a key may repeat). */
function parseUnit(text: string): Map<string, Map<string, string[]>> {
  const sections = new Map<string, Map<string, string[]>>();
  let current: Map<string, string[]> | undefined;
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const section = /^\[(\w+)\]$/.exec(line);
    if (section) {
      current = new Map();
      sections.set(section[1]!, current);
      continue;
    }
    const kv = /^(\w+)=(.*)$/.exec(line);
    assert.ok(kv && current, `not a unit line: ${line}`);
    current.set(kv[1]!, [...(current.get(kv[1]!) ?? []), kv[2]!]);
  }
  return sections;
}

function serveOptions(args: readonly string[]): ServeOptions {
  assert.equal(args[0], "serve");
  const options = parseServeArgs(args.slice(1));
  assert.notEqual(options, "help");
  return options as ServeOptions;
}

/** Status of GET `path` on an app whose one API has no replica yet. */
async function probeStatus(path: string): Promise<number> {
  const project = await loadProjectConfig(join(ROOT, "examples", "iris-classifier"));
  const logger = new Logger({ sink: () => {} });
  const pools = new Map(project.apis.map((api) => [
    api.name,
    new ApiPool({ api: api.name, queuePerReplica: 1, maxReplicas: 1, predictTimeoutMs: 1000, logger }),
  ]));
  const { app } = createApp({ project, pools, maxBodyBytes: 1024, debug: false, logger });
  const res = await app.request(path);
  await res.body?.cancel();
  return res.status;
}

Deno.test("systemd unit: notify, reload, drain within TimeoutStopSec, hardening", async () => {
  const unit = parseUnit(await Deno.readTextFile(join(DEPLOY, "systemd", "cortex-serve.service")));
  const service = unit.get("Service")!;
  const one = (key: string) => {
    const values = service.get(key);
    assert.equal(values?.length, 1, `Service.${key} should be set once`);
    return values![0]!;
  };
  const [binary, ...args] = one("ExecStart").split(/\s+/);
  assert.equal(binary, "/usr/local/bin/cortex-serve");
  const options = serveOptions(args);
  assert.equal(options.logFormat, "json");
  assert.equal(options.host, "0.0.0.0");

  assert.equal(one("Type"), "notify");
  assert.equal(one("NotifyAccess"), "all");
  assert.equal(one("ExecReload"), "/bin/kill -HUP $MAINPID");
  assert.equal(one("KillSignal"), "SIGTERM");
  assert.equal(one("KillMode"), "mixed");
  assert.equal(one("Restart"), "on-failure");
  const stopSec = Number(one("TimeoutStopSec"));
  const drainSec = options.drainTimeoutMs / 1000;
  assert.ok(
    stopSec > drainSec + 2 && stopSec <= drainSec + 30,
    `TimeoutStopSec=${stopSec} vs drain ${drainSec}`,
  );
  assert.equal(one("NoNewPrivileges"), "yes");
  assert.equal(one("ProtectSystem"), "strict");
  assert.equal(one("StateDirectory"), "cortex-serve");
  assert.equal(service.get("MemoryDenyWriteExecute"), undefined, "the JavaScript engine needs W+X memory");
  assert.deepEqual(unit.get("Install")?.get("WantedBy"), ["multi-user.target"]);
});

Deno.test("Kubernetes manifests: probes, ports and grace period match the server", async () => {
  const docs = [];
  for (const file of ["deployment.yaml", "service.yaml", "hpa.yaml"]) {
    for (const doc of parseAllDocuments(await Deno.readTextFile(join(DEPLOY, "kubernetes", file)))) {
      assert.deepEqual(doc.errors, [], file);
      docs.push(doc.toJS());
    }
  }
  const byKind = new Map(docs.map((doc) => [doc.kind, doc]));
  const deployment = byKind.get("Deployment");
  const pod = deployment.spec.template.spec;
  const container = pod.containers[0];
  const options = serveOptions(container.args);
  assert.equal(options.host, "0.0.0.0");
  assert.equal(options.logFormat, "json");

  const http = container.ports.find((p: { name: string }) => p.name === "http");
  assert.equal(http.containerPort, options.port);
  assert.deepEqual(container.livenessProbe.httpGet, { path: "/livez", port: "http" });
  assert.deepEqual(container.readinessProbe.httpGet, { path: "/healthz", port: "http" });
  assert.equal(await probeStatus(container.livenessProbe.httpGet.path), 200);
  assert.equal(await probeStatus(container.readinessProbe.httpGet.path), 503, "not ready without a replica");
  assert.equal(deployment.spec.template.metadata.annotations["prometheus.io/path"], "/metrics");
  assert.equal(Number(deployment.spec.template.metadata.annotations["prometheus.io/port"]), options.port);

  const preStop = container.lifecycle.preStop.sleep.seconds;
  const drain = options.drainTimeoutMs / 1000;
  assert.ok(
    pod.terminationGracePeriodSeconds >= preStop + drain + 5,
    "grace period shorter than preStop + drain",
  );
  assert.deepEqual(deployment.spec.selector.matchLabels, deployment.spec.template.metadata.labels);
  const state = container.volumeMounts.find((m: { name: string }) => m.name === "state");
  assert.equal(state.mountPath, options.stateDir);

  const service = byKind.get("Service");
  assert.deepEqual(service.spec.selector, deployment.spec.selector.matchLabels);
  assert.equal(service.spec.ports[0].targetPort, "http");

  const hpa = byKind.get("HorizontalPodAutoscaler");
  assert.equal(hpa.spec.scaleTargetRef.kind, "Deployment");
  assert.equal(hpa.spec.scaleTargetRef.name, deployment.metadata.name);
  assert.ok(hpa.spec.minReplicas <= hpa.spec.maxReplicas);
});

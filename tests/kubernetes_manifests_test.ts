/**
 * Every Kubernetes manifest under deploy/kubernetes/ is checked offline
 * against the Kubernetes and KEDA API schemas (kubernetes-models): each
 * document's kind is known and its `validate()` passes (types, required
 * fields, enums), and a type check of the document as a typed object literal
 * rejects any field the API does not have, so a misspelt key fails CI. The
 * queue-depth autoscalers name a metric the server exports.
 */
import assert from "node:assert/strict";
import { join, relative } from "node:path";
import { parse, parseAllDocuments } from "yaml";
import { Deployment } from "kubernetes-models/apps/v1/Deployment";
import { HorizontalPodAutoscaler } from "kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler";
import { ConfigMap } from "kubernetes-models/v1/ConfigMap";
import { Service } from "kubernetes-models/v1/Service";
import { ScaledObject } from "@kubernetes-models/keda/keda.sh/v1alpha1/ScaledObject";
import { ServerMetrics } from "../src/http/metrics.ts";
import { ApiPool } from "../src/supervision/pool.ts";
import { Logger } from "../src/log/logger.ts";
import { ROOT, tempDir } from "./_helpers.ts";

const KUBERNETES = join(ROOT, "deploy", "kubernetes");

/** A kind the manifests may use: its model (runtime schema) and its TypeScript interface. */
interface Kind {
  readonly validate: (doc: Record<string, unknown>) => void;
  /** Import specifier (through the import map) and interface name of the typed check. */
  readonly type: readonly [string, string];
}

/** The kinds in deploy/kubernetes/, by `apiVersion kind`; any other kind fails the test. */
const KINDS: ReadonlyMap<string, Kind> = new Map([
  ["apps/v1 Deployment", {
    validate: (doc) => new Deployment(doc as never).validate(),
    type: ["kubernetes-models/apps/v1/Deployment", "IDeployment"],
  }],
  ["v1 Service", {
    validate: (doc) => new Service(doc as never).validate(),
    type: ["kubernetes-models/v1/Service", "IService"],
  }],
  ["v1 ConfigMap", {
    validate: (doc) => new ConfigMap(doc as never).validate(),
    type: ["kubernetes-models/v1/ConfigMap", "IConfigMap"],
  }],
  ["autoscaling/v2 HorizontalPodAutoscaler", {
    validate: (doc) => new HorizontalPodAutoscaler(doc as never).validate(),
    type: ["kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler", "IHorizontalPodAutoscaler"],
  }],
  ["keda.sh/v1alpha1 ScaledObject", {
    validate: (doc) => new ScaledObject(doc as never).validate(),
    type: ["@kubernetes-models/keda/keda.sh/v1alpha1/ScaledObject", "IScaledObject"],
  }],
]);

/** One YAML document of a manifest file. */
interface Manifest {
  /** Path relative to deploy/kubernetes/. */
  readonly file: string;
  readonly doc: Record<string, unknown> & { apiVersion: string; kind: string };
}

/** Every `.yaml` file under `dir`, recursively, sorted. */
async function yamlFiles(dir: string): Promise<string[]> {
  const files: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    const path = join(dir, entry.name);
    if (entry.isDirectory) files.push(...await yamlFiles(path));
    else if (entry.name.endsWith(".yaml") || entry.name.endsWith(".yml")) files.push(path);
  }
  return files.sort();
}

async function loadManifests(): Promise<Manifest[]> {
  const manifests: Manifest[] = [];
  for (const path of await yamlFiles(KUBERNETES)) {
    const file = relative(KUBERNETES, path);
    for (const doc of parseAllDocuments(await Deno.readTextFile(path))) {
      assert.deepEqual(doc.errors, [], `${file}: YAML syntax`);
      const value = doc.toJS();
      if (value === null) continue;
      assert.equal(typeof value.apiVersion, "string", `${file}: apiVersion`);
      assert.equal(typeof value.kind, "string", `${file}: kind`);
      manifests.push({ file, doc: value });
    }
  }
  return manifests;
}

function kindOf(manifest: Manifest): Kind {
  const key = `${manifest.doc.apiVersion} ${manifest.doc.kind}`;
  const kind = KINDS.get(key);
  assert.ok(kind, `${manifest.file}: no schema for ${key}; add it to KINDS in this test`);
  return kind;
}

/**
 * Type-checks the manifests as object literals of their API types, where
 * TypeScript rejects unknown properties at any depth. Returns deno check's
 * output when it fails, `undefined` when it passes.
 */
async function typeCheck(manifests: readonly Manifest[]): Promise<string | undefined> {
  await using dir = await tempDir("cortex-serve-manifests-");
  const lines = manifests.map((manifest, i) => {
    const [module, name] = kindOf(manifest).type;
    return [
      `import type { ${name} as T${i} } from "${module}";`,
      `// ${manifest.file}`,
      `export const m${i}: T${i} = ${JSON.stringify(manifest.doc, null, 2)};`,
    ].join("\n");
  });
  const file = join(dir.path, "manifests.ts");
  await Deno.writeTextFile(file, lines.join("\n\n") + "\n");
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["check", "--quiet", "--frozen", "--config", join(ROOT, "deno.json"), file],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (output.success) return undefined;
  const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
  return decode(output.stdout) + decode(output.stderr);
}

Deno.test("Kubernetes manifests: every document is a known kind that passes its API schema", async () => {
  const manifests = await loadManifests();
  const files = new Set(manifests.map((m) => m.file));
  for (
    const file of [
      "deployment.yaml",
      "service.yaml",
      "hpa.yaml",
      "autoscaling/keda-scaledobject.yaml",
      "autoscaling/hpa-queue-depth.yaml",
      "autoscaling/prometheus-adapter-rules.yaml",
    ]
  ) assert.ok(files.has(file), `missing ${file}`);
  for (const manifest of manifests) {
    assert.doesNotThrow(() => kindOf(manifest).validate(manifest.doc), `${manifest.file}`);
  }
});

Deno.test("Kubernetes manifests: the schema check rejects a wrong type", () => {
  const bad = { metadata: { name: "x" }, spec: { scaleTargetRef: { name: "x" }, minReplicaCount: "two" } };
  assert.throws(() => KINDS.get("keda.sh/v1alpha1 ScaledObject")!.validate(bad), /minReplicaCount/);
});

Deno.test("Kubernetes manifests: no field the Kubernetes or KEDA API lacks", async () => {
  const manifests = await loadManifests();
  assert.equal(await typeCheck(manifests), undefined);

  // The same check fails on a misspelt field deep in a Deployment and in a ScaledObject.
  const typo = structuredClone(manifests);
  const deployment = typo.find((m) => m.doc.kind === "Deployment")!.doc as unknown as {
    spec: { template: { spec: { containers: Record<string, unknown>[] } } };
  };
  deployment.spec.template.spec.containers[0]!.imagePullPolicyy = "Always";
  const scaled = typo.find((m) => m.doc.kind === "ScaledObject")!.doc as unknown as {
    spec: Record<string, unknown>;
  };
  scaled.spec.maxReplicaCont = 3;
  const output = await typeCheck(typo);
  assert.ok(output !== undefined, "a misspelt field passed the check");
  assert.match(output, /imagePullPolicyy/);
  assert.match(output, /maxReplicaCont/);
});

Deno.test("Kubernetes manifests: queue-depth autoscalers target the Deployment and a metric the server exports", async () => {
  const manifests = await loadManifests();
  const one = (file: string, kind: string) => {
    const found = manifests.filter((m) => m.file === file && m.doc.kind === kind);
    assert.equal(found.length, 1, `${file}: one ${kind}`);
    // deno-lint-ignore no-explicit-any
    return found[0]!.doc as any;
  };
  const deployment = one("deployment.yaml", "Deployment");
  const name = deployment.metadata.name;
  const appLabel = deployment.spec.template.metadata.labels["app.kubernetes.io/name"];

  // The metric exists in a real exposition.
  const pool = new ApiPool({
    api: "classifier",
    queuePerReplica: 1,
    maxReplicas: 1,
    predictTimeoutMs: 1000,
    logger: new Logger({ sink: () => {} }),
  });
  const exposition = new ServerMetrics({ pools: () => [pool] }).render().body;
  const metric = "cortex_serve_queue_depth";
  assert.match(exposition, new RegExp(`^# TYPE ${metric} gauge$`, "m"));
  assert.match(exposition, new RegExp(`^${metric}\\{api="classifier"\\} 0$`, "m"));

  const keda = one("autoscaling/keda-scaledobject.yaml", "ScaledObject");
  assert.deepEqual(keda.spec.scaleTargetRef, { apiVersion: "apps/v1", kind: "Deployment", name });
  assert.ok(keda.spec.minReplicaCount >= 1 && keda.spec.minReplicaCount <= keda.spec.maxReplicaCount);
  const trigger = keda.spec.triggers[0];
  assert.equal(trigger.type, "prometheus");
  assert.match(trigger.metadata.query, new RegExp(`\\b${metric}\\{`));
  // Prometheus' pod-label mapping turns app.kubernetes.io/name into app_kubernetes_io_name.
  assert.ok(trigger.metadata.query.includes(`app_kubernetes_io_name="${appLabel}"`), trigger.metadata.query);
  assert.ok(Number(trigger.metadata.threshold) > 0);

  const hpa = one("autoscaling/hpa-queue-depth.yaml", "HorizontalPodAutoscaler");
  assert.deepEqual(hpa.spec.scaleTargetRef, { apiVersion: "apps/v1", kind: "Deployment", name });
  assert.equal(
    hpa.metadata.name,
    one("hpa.yaml", "HorizontalPodAutoscaler").metadata.name,
    "replaces hpa.yaml",
  );
  const pods = hpa.spec.metrics[0].pods;
  assert.equal(pods.metric.name, metric);
  assert.equal(pods.target.type, "AverageValue");

  // The adapter serves the metric under the name the HPA asks for, per pod.
  const adapter = parse(one("autoscaling/prometheus-adapter-rules.yaml", "ConfigMap").data["config.yaml"]);
  const rule = adapter.rules.find((r: { name: { as: string } }) => r.name.as === pods.metric.name);
  assert.ok(rule, "no adapter rule serves the HPA's metric");
  assert.ok(rule.seriesQuery.startsWith(`${metric}{`));
  assert.deepEqual(rule.resources.overrides.pod, { resource: "pod" });
});

/**
 * Validates a `cortex.yaml` of the Cortex 0.17-0.35 dialects: a plain list
 * of APIs (0.17-0.18, with `networking`/`monitoring`), or a list of
 * `kind: RealtimeAPI` / `SyncAPI` / `AsyncAPI` / `TrafficSplitter`
 * resources (0.19-0.35). `BatchAPI` and `TaskAPI` are refused with why.
 * The default endpoint of every resource is `/<name>`.
 */

import type { ConfigIssue } from "./errors.ts";
import type { IgnoredField, ResolvedApi, ResolvedSplitter } from "./types.ts";
import {
  bySource,
  checkKeys,
  describe,
  get,
  keyPos,
  readInteger,
  readString,
  report,
  type Scope,
} from "./_fields.ts";
import type { PathCheck } from "./_paths.ts";
import { type ApiDraft, readApiName } from "./_validate_api.ts";
import { readNetworking, type RealtimeDialect, validateRealtimeApi } from "./_validate_realtime.ts";
import { reservedProblem } from "./_endpoint.ts";
import { resolveApis } from "./_resolve_apis.ts";
import { type Detection, DIALECT_SHORT, mixingProblem } from "./dialect.ts";
import type { Position, YamlMap, YamlNode } from "./_yaml_nodes.ts";

/** What {@linkcode validateLaterConfig} found (the shape of validate.ts's result). */
export interface LaterResult {
  readonly config:
    | {
      readonly apis: readonly ResolvedApi[];
      readonly splitters: readonly ResolvedSplitter[];
      readonly ignored: readonly IgnoredField[];
    }
    | undefined;
  readonly issues: readonly ConfigIssue[];
  readonly pathChecks: readonly PathCheck[];
}

const _REFUSED_KINDS: Readonly<Record<string, string>> = {
  BatchAPI: "a BatchAPI runs jobs of batches from a queue across a cluster, which cortex-serve does not do",
  TaskAPI: "a TaskAPI runs one-off jobs on a cluster, which cortex-serve does not do",
};
const _SPLITTER_KEYS = ["name", "kind", "apis", "networking"];

interface _SplitterDraft {
  readonly scope: Scope;
  readonly name: string | undefined;
  readonly namePos: Position;
  readonly endpoint: ApiDraft["endpoint"];
  readonly apis:
    | readonly {
      readonly api: string;
      readonly weight: number;
      readonly shadow: boolean;
      readonly pos: Position;
    }[]
    | undefined;
}

/** Validates every resource of a later-dialect file. */
export function validateLaterConfig(
  items: readonly YamlNode[],
  file: string,
  dialect: RealtimeDialect,
  detection: Detection,
): LaterResult {
  const issues: ConfigIssue[] = [];
  const ignored: IgnoredField[] = [];
  const pathChecks: PathCheck[] = [];
  const apis: ApiDraft[] = [];
  const splitters: _SplitterDraft[] = [];
  items.forEach((item, index) => {
    const scope: Scope = { file, resource: `resource #${index + 1}`, issues };
    if (item.kind !== "map") {
      report(scope, item.pos, "", `Each resource must be a map, got ${describe(item)}`, _MAP_FIX[dialect]);
      return;
    }
    const conflict = detection.conflicts.get(index);
    if (conflict !== undefined && detection.first !== undefined) {
      report(_named(scope, item), conflict.pos, "", mixingProblem(conflict, detection.first), _MIXING_FIX);
      return;
    }
    const named = _named(scope, item);
    if (dialect === "0.17") {
      const api = validateRealtimeApi(named, item, dialect, ignored);
      apis.push(api);
      pathChecks.push(...api.pathChecks);
      return;
    }
    const kind = _kind(named, item);
    if (kind === "TrafficSplitter") splitters.push(_splitter(named, item, ignored));
    else if (kind !== undefined) {
      const api = validateRealtimeApi(named, item, dialect, ignored);
      apis.push(api);
      pathChecks.push(...api.pathChecks);
    }
  });
  const top: Scope = { file, resource: undefined, issues };
  if (apis.length === 0 && issues.length === 0) {
    report(top, undefined, "", "No api in the list", _MAP_FIX[dialect]);
  }
  const resolved = resolveApis(apis, (name) => `/${name}`);
  const resolvedSplitters = _resolveSplitters(splitters, apis, resolved ?? []);
  issues.sort(bySource);
  if (issues.length > 0 || resolved === undefined || resolvedSplitters === undefined) {
    return { config: undefined, issues, pathChecks };
  }
  ignored.sort((a, b) => a.line - b.line || a.column - b.column); // source order
  return { config: { apis: resolved, splitters: resolvedSplitters, ignored }, issues, pathChecks };
}

const _MIXING_FIX = "write every resource of one cortex.yaml in one dialect (see docs/dialects-realtime.md)";
const _MAP_FIX: Readonly<Record<RealtimeDialect, string>> = {
  "0.17": 'write "- name: <api>" with "predictor:" ("type: python", "path: <file>") below it',
  "0.19": 'write "- name: <api>", "kind: RealtimeAPI" and "predictor:" ("type: python", "path: <file>")',
};

function _named(scope: Scope, item: YamlMap): Scope {
  const name = get(item, "name")?.value;
  const kind = get(item, "kind")?.value;
  const label = kind?.kind === "scalar" && kind.value === "TrafficSplitter" ? "splitter" : "api";
  return name?.kind === "scalar" && typeof name.value === "string"
    ? { ...scope, resource: `${label} ${JSON.stringify(name.value)}` }
    : scope;
}

/** Reads `kind` of a 0.19+ resource: a served kind, or `undefined` after an issue. */
function _kind(scope: Scope, item: YamlMap): string | undefined {
  const entry = get(item, "kind");
  if (entry === undefined) {
    report(
      scope,
      keyPos(item, "kind"),
      "kind",
      `is required in ${DIALECT_SHORT["0.19"]} files`,
      'add "kind: RealtimeAPI" (or "kind: TrafficSplitter")',
    );
    return undefined;
  }
  const kind = readString(scope, entry, "kind", '"RealtimeAPI"');
  if (kind === undefined) return undefined;
  const refused = Object.hasOwn(_REFUSED_KINDS, kind) ? _REFUSED_KINDS[kind] : undefined;
  if (refused !== undefined) {
    report(
      scope,
      entry.value.pos,
      "kind",
      `${kind} is not served: ${refused}`,
      "serve the same predictor as kind: RealtimeAPI (or AsyncAPI for long jobs), or remove this resource",
    );
    return undefined;
  }
  if (["RealtimeAPI", "SyncAPI", "AsyncAPI", "TrafficSplitter"].includes(kind)) return kind;
  report(
    scope,
    entry.value.pos,
    "kind",
    `must be RealtimeAPI, AsyncAPI or TrafficSplitter, got ${JSON.stringify(kind)}`,
    'write "kind: RealtimeAPI"',
  );
  return undefined;
}

function _splitter(scope: Scope, map: YamlMap, ignored: IgnoredField[]): _SplitterDraft {
  checkKeys(scope, map, "", _SPLITTER_KEYS);
  const { name, pos: namePos } = readApiName(scope, map);
  const endpoint = get(map, "networking") === undefined ? "default" : readNetworking(scope, map, ignored);
  const entry = get(map, "apis");
  if (entry === undefined) {
    report(
      scope,
      keyPos(map, "apis"),
      "apis",
      "is required",
      'add "apis:" with "- name: <api>" and "weight: 50" items',
    );
    return { scope, name, namePos, endpoint, apis: undefined };
  }
  const node = entry.value;
  if (node.kind !== "seq" || node.items.length === 0) {
    report(
      scope,
      node.pos,
      "apis",
      `must be a list of {name, weight}, got ${describe(node)}`,
      'write "- name: <api>" with "weight: 50"',
    );
    return { scope, name, namePos, endpoint, apis: undefined };
  }
  const before = scope.issues.length;
  const apis: { api: string; weight: number; shadow: boolean; pos: Position }[] = [];
  node.items.forEach((item, index) => {
    const at = `apis[${index}]`;
    if (item.kind !== "map") {
      report(scope, item.pos, at, `must be a map, got ${describe(item)}`, 'write "name:" and "weight:"');
      return;
    }
    checkKeys(scope, item, at, ["name", "weight", "shadow"]);
    const shadowEntry = get(item, "shadow");
    const shadowValue = shadowEntry?.value;
    const shadow = shadowValue?.kind === "scalar" && shadowValue.value === true;
    if (
      shadowEntry !== undefined && !(shadowValue?.kind === "scalar" && typeof shadowValue.value === "boolean")
    ) {
      report(scope, shadowEntry.value.pos, `${at}.shadow`, "must be true or false", "write shadow: true");
    }
    const nameEntry = get(item, "name");
    const weightEntry = get(item, "weight");
    const api = nameEntry && readString(scope, nameEntry, `${at}.name`, '"iris-a"');
    if (nameEntry === undefined) report(scope, item.pos, `${at}.name`, "is required", 'add "name: <api>"');
    if (weightEntry === undefined) report(scope, item.pos, `${at}.weight`, "is required", 'add "weight: 50"');
    const weight = weightEntry && readInteger(scope, weightEntry, `${at}.weight`, 0);
    if (weight !== undefined && weight > 100) {
      report(
        scope,
        weightEntry!.value.pos,
        `${at}.weight`,
        `must be at most 100, got ${weight}`,
        "use a percentage",
      );
    }
    if (api !== undefined && weight !== undefined) {
      apis.push({ api, weight, shadow, pos: nameEntry!.value.pos });
    }
  });
  const shadows = apis.filter((a) => a.shadow);
  if (shadows.length > 1) {
    report(scope, shadows[1]!.pos, "apis", "has more than one shadow api", "keep shadow: true on one api");
  }
  // The shadow's weight is the share of traffic it mirrors, outside the sum.
  const total = apis.reduce((sum, a) => sum + (a.shadow ? 0 : a.weight), 0);
  if (scope.issues.length === before && total !== 100) {
    report(
      scope,
      entry.keyPos,
      "apis",
      `the weights must sum to 100, got ${total}`,
      "change the weights so that they add up to 100",
    );
  }
  return { scope, name, namePos, endpoint, apis: scope.issues.length === before ? apis : undefined };
}

/** Splitters against the APIs: targets exist, are realtime, and endpoints are unique. */
function _resolveSplitters(
  drafts: readonly _SplitterDraft[],
  apiDrafts: readonly ApiDraft[],
  apis: readonly ResolvedApi[],
): ResolvedSplitter[] | undefined {
  const byName = new Map(apis.map((api) => [api.name, api]));
  const apiNames = new Map(apiDrafts.map((d) => [d.name, d]));
  const endpoints = new Map(apis.map((api) => [api.endpoint, `api ${JSON.stringify(api.name)}`]));
  const names = new Set<string>();
  const resolved: ResolvedSplitter[] = [];
  for (const draft of drafts) {
    const { scope, name } = draft;
    if (name === undefined || draft.endpoint === "invalid") continue;
    if (apiNames.has(name) || names.has(name)) {
      report(
        scope,
        draft.namePos,
        "name",
        `${JSON.stringify(name)} is already the name of another resource`,
        "give each resource its own name",
      );
      continue;
    }
    names.add(name);
    const endpoint = typeof draft.endpoint === "object" ? draft.endpoint.path : `/${name}`;
    const pos = typeof draft.endpoint === "object" ? draft.endpoint.pos : draft.namePos;
    const reserved = reservedProblem(endpoint, typeof draft.endpoint === "object");
    const taken = endpoints.get(endpoint);
    if (reserved !== undefined || taken !== undefined) {
      report(
        scope,
        pos,
        "networking.endpoint",
        reserved ?? `${JSON.stringify(endpoint)} is already used by ${taken}`,
        "give the splitter its own endpoint",
      );
      continue;
    }
    endpoints.set(endpoint, `splitter ${JSON.stringify(name)}`);
    if (draft.apis === undefined) continue;
    const seen = new Set<string>();
    let ok = true;
    for (const target of draft.apis) {
      const api = byName.get(target.api);
      const problem = seen.has(target.api)
        ? `${JSON.stringify(target.api)} is listed twice`
        : api === undefined && !apiNames.has(target.api)
        ? `names no api of this file: ${JSON.stringify(target.api)}`
        : api?.async === true
        ? `${JSON.stringify(target.api)} is an AsyncAPI; a splitter routes to RealtimeAPIs only`
        : undefined;
      seen.add(target.api);
      if (problem !== undefined) {
        report(
          scope,
          target.pos,
          "apis",
          problem,
          `list the RealtimeAPIs of this file: ${[...byName.keys()].join(", ")}`,
        );
        ok = false;
      }
    }
    if (ok) {
      const apis = draft.apis.map(({ api, weight, shadow }) =>
        shadow ? { api, weight, shadow } : { api, weight }
      );
      resolved.push({ name, endpoint, apis });
    }
  }
  return resolved.length === drafts.length ? resolved : undefined;
}

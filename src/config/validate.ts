/**
 * Validates a parsed `cortex.yaml` and resolves it, without touching the
 * disk: paths that must exist are returned as checks for the caller to run.
 *
 * Every problem found is collected; nothing stops at the first.
 */

import type { ConfigIssue } from "./errors.ts";
import type { Dialect, IgnoredField, ResolvedProject } from "./types.ts";
import { detectDialect, mixingProblem } from "./dialect.ts";
import { validatePredictorApi } from "./_validate_predictor.ts";
import { resolveApis } from "./_resolve_apis.ts";
import { validateLaterConfig } from "./_validate_later.ts";
import {
  bySource,
  checkKeys,
  describe,
  get,
  keyPos,
  readString,
  report,
  type Scope,
  suggest,
} from "./_fields.ts";
import { normalizeProjectPath, type PathCheck } from "./_paths.ts";
import { type ApiDraft, sanitizeName, validateApi } from "./_validate_api.ts";
import type { Position, YamlMap, YamlNode } from "./_yaml_nodes.ts";

/** Most resources a config may hold. */
export const MAX_RESOURCES = 1000;

const _KINDS = ["deployment", "api"];
const _DEPLOYMENT_KEYS = ["kind", "name", "python_root"];
const _DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/** What {@linkcode validateConfig} found. */
export interface ValidationResult {
  /** The resolved config; `undefined` when there are issues. */
  readonly config:
    | Pick<ResolvedProject, "deployment" | "apis" | "dialect" | "ignored" | "splitters">
    | undefined;
  /** The detected dialect (also when there are issues). */
  readonly dialect: Dialect;
  /** Every problem found, in source order. */
  readonly issues: readonly ConfigIssue[];
  /** Paths to check on disk (also returned when there are issues). */
  readonly pathChecks: readonly PathCheck[];
}

interface _Deployment {
  readonly label: string | undefined;
  readonly name: string | undefined;
  readonly pythonRoot: string | undefined;
  readonly pos: Position;
}

/** Options of {@linkcode validateConfig}. */
export interface ValidateOptions {
  /** The deployment name of a Cortex 0.13 file, which has no deployment (default `"cortex"`). */
  readonly defaultDeployment?: string;
}

/**
 * Validates the resources of a config file, in the dialect its shape shows.
 *
 * @param root the parsed document (`undefined` when empty)
 * @param file the config file name, for issues
 * @param options the deployment name for Cortex 0.13 files
 */
export function validateConfig(
  root: YamlNode | undefined,
  file: string,
  options: ValidateOptions = {},
): ValidationResult {
  const issues: ConfigIssue[] = [];
  const dialect: Dialect = root?.kind === "seq" ? detectDialect(root.items).dialect : "python";
  const top: Scope = { file, resource: undefined, issues };
  if (root === undefined) {
    report(
      top,
      undefined,
      "",
      "The file is empty",
      'add a "- kind: deployment" resource with a name and one "- kind: api" resource per API',
    );
    return { config: undefined, dialect, issues, pathChecks: [] };
  }
  if (root.kind !== "seq") {
    const hasKind = root.kind === "map" && root.entries.some((e) => e.key === "kind");
    report(
      top,
      root.pos,
      "",
      `The top level must be a list of resources, got ${describe(root)}`,
      hasKind
        ? 'start each resource with "- ", as in "- kind: deployment"'
        : 'write a list: "- kind: deployment" with a name, then "- kind: api" per API',
    );
    return { config: undefined, dialect, issues, pathChecks: [] };
  }
  if (root.items.length > MAX_RESOURCES) {
    report(
      top,
      root.pos,
      "",
      `Too many resources: ${root.items.length}, at most ${MAX_RESOURCES} are allowed`,
      "split the APIs over several deployments",
    );
    return { config: undefined, dialect, issues, pathChecks: [] };
  }

  const detection = detectDialect(root.items);
  if (dialect === "0.17" || dialect === "0.19") {
    const later = validateLaterConfig(root.items, file, dialect, detection);
    const name = options.defaultDeployment ?? "cortex";
    return {
      config: later.config === undefined ? undefined : {
        dialect,
        ignored: later.config.ignored,
        deployment: { name, pythonRoot: undefined },
        apis: later.config.apis,
        splitters: later.config.splitters,
      },
      dialect,
      issues: later.issues,
      pathChecks: later.pathChecks,
    };
  }
  const deployments: _Deployment[] = [];
  const apis: ApiDraft[] = [];
  const pathChecks: PathCheck[] = [];
  const ignored: IgnoredField[] = [];
  root.items.forEach((item, index) => {
    const scope: Scope = { file, resource: `resource #${index + 1}`, issues };
    const conflict = detection.conflicts.get(index);
    if (dialect === "0.13" && conflict === undefined) {
      if (item.kind === "map" && get(item, "kind") !== undefined) {
        const first = detection.first?.pos.line;
        report(
          _named(scope, item, "resource"),
          keyPos(item, "kind"),
          "kind",
          `is not part of Cortex 0.13 syntax (a plain list of APIs), which line ${first} uses`,
          "remove this resource (a Cortex 0.13 file is a plain list of APIs), or write the whole file with kind:",
        );
        return;
      }
      if (item.kind !== "map") {
        report(scope, item.pos, "", `Each api must be a map, got ${describe(item)}`, _MAP_FIX_013);
        return;
      }
      const api = validatePredictorApi(_named(scope, item, "api"), item, "0.13", ignored);
      apis.push(api);
      pathChecks.push(...api.pathChecks);
      return;
    }
    if (conflict !== undefined && detection.first !== undefined && item.kind === "map") {
      const kindValue = get(item, "kind")?.value;
      const label = kindValue?.kind === "scalar" && kindValue.value === "deployment" ? "deployment" : "api";
      report(
        _named(scope, item, label),
        conflict.pos,
        "",
        mixingProblem(conflict, detection.first),
        _MIXING_FIX,
      );
      return;
    }
    const kind = _kind(scope, item);
    if (kind === undefined || item.kind !== "map") return;
    const named = _named(scope, item, kind);
    if (kind === "deployment") deployments.push(_deployment(named, item, pathChecks));
    else {
      const api = dialect === "python"
        ? validateApi(named, item)
        : validatePredictorApi(named, item, dialect, ignored);
      apis.push(api);
      pathChecks.push(...api.pathChecks);
    }
  });

  const defaultName = options.defaultDeployment ?? "cortex";
  if (dialect === "0.13") {
    if (apis.length === 0) report(top, root.pos, "", "No api in the list", _MAP_FIX_013);
  } else _checkCounts(top, root, deployments, apis, detection.conflicts.size > 0);
  const deploymentName = dialect === "0.13" ? defaultName : deployments[0]?.name;
  const defaultEndpoint = dialect === "0.13"
    ? (name: string) => `/${name}`
    : deploymentName === undefined
    ? undefined
    : (name: string) => `/${deploymentName}/${name}`;
  const resolved = resolveApis(apis, defaultEndpoint);
  issues.sort(bySource);
  if (issues.length > 0 || deploymentName === undefined || resolved === undefined) {
    return { config: undefined, dialect, issues, pathChecks };
  }
  return {
    config: {
      dialect,
      ignored,
      deployment: { name: deploymentName, pythonRoot: deployments[0]?.pythonRoot },
      apis: resolved,
    },
    dialect,
    issues,
    pathChecks,
  };
}

const _MIXING_FIX =
  "write every resource of one cortex.yaml in one dialect (see cortex-serve's docs/configuration.md, dialects)";
const _MAP_FIX_013 = 'write "- name: <api>" with "predictor:" ("type: python", "path: <file>") below it';

/** The scope of a resource, named by its `name` when it has one. */
function _named(scope: Scope, item: YamlMap, kind: string): Scope {
  const name = get(item, "name")?.value;
  const label = name?.kind === "scalar" && typeof name.value === "string"
    ? `${kind} ${JSON.stringify(name.value)}`
    : scope.resource;
  return { ...scope, resource: label };
}

/** Reads `kind`; `undefined` after an issue. */
function _kind(scope: Scope, item: YamlNode): "deployment" | "api" | undefined {
  if (item.kind !== "map") {
    report(
      scope,
      item.pos,
      "",
      `Each resource must be a map with a kind, got ${describe(item)}`,
      'write "kind: deployment" or "kind: api" and the resource\'s keys',
    );
    return undefined;
  }
  const entry = get(item, "kind");
  if (entry === undefined) {
    report(scope, keyPos(item, "kind"), "kind", "is required", 'add "kind: deployment" or "kind: api"');
    return undefined;
  }
  const kind = readString(scope, entry, "kind", '"api"');
  if (kind === "deployment" || kind === "api") return kind;
  if (kind !== undefined) {
    const close = suggest(kind, _KINDS);
    report(
      scope,
      entry.value.pos,
      "kind",
      `must be one of ${_KINDS.join(", ")}, got ${JSON.stringify(kind)}`,
      close === undefined ? 'write "kind: deployment" or "kind: api"' : `write "kind: ${close}"`,
    );
  }
  return undefined;
}

function _deployment(scope: Scope, map: YamlMap, checks: PathCheck[]): _Deployment {
  checkKeys(scope, map, "", _DEPLOYMENT_KEYS);
  const nameEntry = get(map, "name");
  let name: string | undefined;
  if (nameEntry === undefined) {
    report(scope, keyPos(map, "name"), "name", "is required", 'add a name such as "name: iris"');
  } else {
    name = readString(scope, nameEntry, "name", '"iris"');
    if (name !== undefined && !(_DNS_LABEL.test(name) && name.length <= 63)) {
      report(
        scope,
        nameEntry.value.pos,
        "name",
        `must be a DNS-1123 label: at most 63 lower-case letters, digits and "-", ` +
          `starting and ending with a letter or digit, got ${JSON.stringify(name)}`,
        `use e.g. "${sanitizeName(name)}"`,
      );
      name = undefined;
    }
  }
  let pythonRoot: string | undefined;
  const rootEntry = get(map, "python_root");
  const raw = rootEntry && readString(scope, rootEntry, "python_root", '"src"');
  if (rootEntry !== undefined && raw !== undefined) {
    const normalized = normalizeProjectPath(raw);
    if (normalized.ok) {
      pythonRoot = normalized.path;
      const pos = rootEntry.value.pos;
      checks.push({ resource: scope.resource, key: "python_root", pos, path: pythonRoot, want: "directory" });
    } else {
      report(scope, rootEntry.value.pos, "python_root", normalized.problem, normalized.fix);
    }
  }
  return { label: scope.resource, name, pythonRoot, pos: keyPos(map, "kind") };
}

function _checkCounts(
  top: Scope,
  root: YamlNode,
  deployments: readonly _Deployment[],
  apis: readonly ApiDraft[],
  mixed: boolean,
): void {
  const first = deployments[0];
  if (first === undefined) {
    report(
      top,
      undefined,
      "",
      "No deployment resource",
      'add "- kind: deployment" with "name: <deployment name>" at the top of the list',
    );
  }
  for (const extra of deployments.slice(1)) {
    report(
      { ...top, resource: extra.label },
      extra.pos,
      "kind",
      `only one deployment is allowed, the first is at line ${first?.pos.line}`,
      "remove this deployment or move its APIs into its own cortex.yaml",
    );
  }
  if (apis.length === 0 && !mixed) {
    report(top, root.pos, "", "No api resource", 'add "- kind: api" with a name and python.inference');
  }
}

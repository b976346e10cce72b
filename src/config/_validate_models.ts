/**
 * Validates the multi-model settings of a PythonPredictor:
 * `multi_model_reloading: {path | paths: [{name, path}] | dir, cache_size,
 * disk_cache_size}` (Cortex 0.25-0.35) and its predecessors `model_path` and
 * `models: {dir | paths: [{name, model_path}], cache_size, disk_cache_size}`
 * (Cortex 0.22-0.24). Exactly one of path, paths and dir; the two cache sizes
 * both or neither, the memory cache at most the disk cache.
 */

import type { ResolvedModels, ResolvedModelSource } from "./types.ts";
import {
  checkKeys,
  describe,
  get,
  keyPos,
  readInteger,
  readMap,
  readString,
  report,
  type Scope,
} from "./_fields.ts";
import type { PathCheck } from "./_paths.ts";
import { readModelLocation } from "./_validate_predictor.ts";
import type { YamlMap } from "./_yaml_nodes.ts";

const _NAME = /^[A-Za-z0-9][-A-Za-z0-9_.]*$/;

/**
 * Reads the predictor's models.
 *
 * @returns the models, `undefined` when none are configured, `null` after an issue
 */
export function readModels(
  scope: Scope,
  predictor: YamlMap,
  checks: PathCheck[],
  parent = "predictor",
): ResolvedModels | undefined | null {
  const reloading = get(predictor, "multi_model_reloading");
  const models = get(predictor, "models");
  const modelPath = get(predictor, "model_path");
  const given = [reloading, models, modelPath].filter((e) => e !== undefined);
  if (given.length === 0) return undefined;
  if (given.length > 1) {
    report(
      scope,
      given[1]!.keyPos,
      `${parent}.${given[1]!.key}`,
      `cannot be used together with ${parent}.${given[0]!.key}`,
      "keep one way of naming the models",
    );
    return null;
  }
  if (modelPath !== undefined) {
    const location = readModelLocation(scope, modelPath, `${parent}.model_path`, checks);
    return location === null
      ? null
      : { sources: [{ name: "", location }], dir: undefined, cacheSize: undefined, diskCacheSize: undefined };
  }
  const entry = (reloading ?? models)!;
  const prefix = `${parent}.${entry.key}`;
  const map = readMap(scope, entry, prefix, `write "${entry.key}:" with "dir: models/" below it`);
  if (map === undefined) return null;
  const legacy = entry.key === "models";
  const pathKey = legacy ? "model_path" : "path";
  const before = scope.issues.length;
  checkKeys(scope, map, prefix, [
    ...(legacy ? [] : ["path"]),
    "paths",
    "dir",
    "cache_size",
    "disk_cache_size",
  ]);
  const forms = ["path", "paths", "dir"].filter((k) => get(map, k) !== undefined);
  if (forms.length !== 1) {
    report(
      scope,
      forms.length === 0 ? entry.keyPos : keyPos(map, forms[1]!),
      prefix,
      forms.length === 0 ? "names no model" : `has both ${forms[0]} and ${forms[1]}`,
      legacy ? "give exactly one of paths and dir" : "give exactly one of path, paths and dir",
    );
    return null;
  }
  let sources: ResolvedModelSource[] | undefined;
  let dir: ResolvedModels["dir"];
  const form = forms[0]!;
  if (form === "path") {
    const location = readModelLocation(scope, get(map, "path")!, `${prefix}.path`, checks);
    if (location !== null) sources = [{ name: "", location }];
  } else if (form === "dir") {
    dir = readModelLocation(scope, get(map, "dir")!, `${prefix}.dir`, checks) ?? undefined;
  } else {
    sources = _paths(scope, get(map, "paths")!.value, `${prefix}.paths`, pathKey, checks);
  }
  const cache = _size(scope, map, "cache_size", prefix);
  const disk = _size(scope, map, "disk_cache_size", prefix);
  if ((cache === undefined) !== (disk === undefined)) {
    const missing = cache === undefined ? "cache_size" : "disk_cache_size";
    report(
      scope,
      keyPos(map, cache === undefined ? "disk_cache_size" : "cache_size"),
      `${prefix}.${missing}`,
      "must be set together with the other cache size",
      "set both cache_size and disk_cache_size, or neither",
    );
  } else if (cache !== undefined && disk !== undefined && cache > disk) {
    report(
      scope,
      keyPos(map, "cache_size"),
      `${prefix}.cache_size`,
      `must be at most disk_cache_size (${disk}), got ${cache}`,
      "lower cache_size or raise disk_cache_size",
    );
  }
  if (scope.issues.length > before || (sources === undefined && dir === undefined)) return null;
  return { sources, dir, cacheSize: cache, diskCacheSize: disk };
}

function _size(scope: Scope, map: YamlMap, key: string, prefix: string): number | undefined {
  const entry = get(map, key);
  return entry === undefined ? undefined : readInteger(scope, entry, `${prefix}.${key}`, 1);
}

function _paths(
  scope: Scope,
  node: YamlMap["entries"][number]["value"],
  prefix: string,
  pathKey: string,
  checks: PathCheck[],
): ResolvedModelSource[] | undefined {
  if (node.kind !== "seq" || node.items.length === 0) {
    report(
      scope,
      node.pos,
      prefix,
      `must be a list of {name, ${pathKey}}, got ${describe(node)}`,
      `write "- name: <model>" with "${pathKey}: <directory>" for each model`,
    );
    return undefined;
  }
  const sources: ResolvedModelSource[] = [];
  const seen = new Set<string>();
  node.items.forEach((item, index) => {
    const at = `${prefix}[${index}]`;
    if (item.kind !== "map") {
      report(scope, item.pos, at, `must be a map, got ${describe(item)}`, `write "name:" and "${pathKey}:"`);
      return;
    }
    checkKeys(scope, item, at, ["name", pathKey]);
    const nameEntry = get(item, "name");
    const pathEntry = get(item, pathKey);
    const name = nameEntry && readString(scope, nameEntry, `${at}.name`, '"iris"');
    if (nameEntry === undefined) report(scope, item.pos, `${at}.name`, "is required", 'add "name: <model>"');
    else if (name !== undefined && !_NAME.test(name)) {
      report(
        scope,
        nameEntry.value.pos,
        `${at}.name`,
        `is not a valid model name: ${JSON.stringify(name)}`,
        "use letters, digits, '-', '_' and '.'",
      );
    } else if (name !== undefined && seen.has(name)) {
      report(
        scope,
        nameEntry.value.pos,
        `${at}.name`,
        `${JSON.stringify(name)} is listed twice`,
        "give each model its own name",
      );
    }
    if (pathEntry === undefined) {
      report(scope, item.pos, `${at}.${pathKey}`, "is required", `add "${pathKey}: <model directory>"`);
      return;
    }
    const location = readModelLocation(scope, pathEntry, `${at}.${pathKey}`, checks);
    if (name !== undefined && location !== null) {
      seen.add(name);
      sources.push({ name, location });
    }
  });
  return sources;
}

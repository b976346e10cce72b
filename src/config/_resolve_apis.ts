/**
 * Checks across resources: api names and endpoints are unique and no
 * endpoint takes a server route. Builds the resolved API list.
 */

import type { ResolvedApi } from "./types.ts";
import { report } from "./_fields.ts";
import { reservedProblem } from "./_endpoint.ts";
import type { ApiDraft } from "./_validate_api.ts";

/**
 * Checks names and endpoints across APIs and builds the resolved list.
 *
 * @param drafts the APIs in source order
 * @param defaultEndpoint the endpoint of an api without one; `undefined` when it cannot be known
 * @returns the resolved APIs, or `undefined` when any has an issue
 */
export function resolveApis(
  drafts: readonly ApiDraft[],
  defaultEndpoint: ((name: string) => string) | undefined,
): ResolvedApi[] | undefined {
  const names = new Map<string, ApiDraft>();
  const endpoints = new Map<string, ApiDraft>();
  const resolved: ResolvedApi[] = [];
  for (const draft of drafts) {
    const { scope, name } = draft;
    if (name === undefined) continue;
    const twin = names.get(name);
    if (twin !== undefined) {
      report(
        scope,
        draft.namePos,
        "name",
        `${JSON.stringify(name)} is already the name of the api at line ${twin.namePos.line}`,
        "give each api its own name",
      );
    } else names.set(name, draft);

    // A default endpoint needs a valid deployment name and is already
    // reported through a duplicate api name.
    const explicit = typeof draft.endpoint === "object";
    if (draft.endpoint === "invalid") continue;
    if (!explicit && (defaultEndpoint === undefined || twin !== undefined)) continue;
    const endpoint = typeof draft.endpoint === "object" ? draft.endpoint.path : defaultEndpoint!(name);
    const pos = typeof draft.endpoint === "object" ? draft.endpoint.pos : draft.namePos;
    const reserved = reservedProblem(endpoint, explicit);
    if (reserved !== undefined) {
      report(scope, pos, "endpoint", reserved, 'choose another path, such as "/iris/classifier"');
      continue;
    }
    const other = endpoints.get(endpoint);
    if (other !== undefined) {
      report(
        scope,
        pos,
        "endpoint",
        `${JSON.stringify(endpoint)} is already used by ${other.scope.resource ?? "another api"} ` +
          `(line ${_endpointLine(other)})`,
        "give each api its own endpoint",
      );
    } else endpoints.set(endpoint, draft);
    if (draft.rest !== undefined) resolved.push({ name, endpoint, ...draft.rest });
  }
  return resolved.length === drafts.length ? resolved : undefined;
}

function _endpointLine(draft: ApiDraft): number {
  return typeof draft.endpoint === "object" ? draft.endpoint.pos.line : draft.namePos.line;
}

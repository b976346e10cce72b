/** Program version, shown by `--version`. */
import { PROTOCOL_VERSION } from "../python/protocol.ts";

export const VERSION = "0.1.0";

/** `cortex-serve 0.1.0 (deno 2.9.6, worker protocol 1)` */
export function versionText(): string {
  return `cortex-serve ${VERSION} (deno ${Deno.version.deno}, worker protocol ${PROTOCOL_VERSION})`;
}

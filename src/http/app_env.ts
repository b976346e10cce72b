/**
 * The Hono environment of the app: the variables each request carries from
 * middleware to handler and to the access log.
 *
 * @module
 */

import type { StreamEnd } from "./stream_body.ts";

/** Per-request variables. */
export type AppEnv = {
  Variables: {
    requestId: string;
    api: string | undefined;
    keyId: string | undefined;
    /** Time the request waited for a replica, in milliseconds. */
    queueMs: number | undefined;
    /** Set for a streamed answer: resolves when the stream ended (logged then). */
    streamEnd: Promise<StreamEnd> | undefined;
  };
};

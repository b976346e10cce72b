/**
 * The Hono environment of the app: the variables each request carries from
 * middleware to handler and to the access log.
 *
 * @module
 */

import type { Exchange } from "./exchange.ts";

/** Per-request variables. */
export type AppEnv = {
  Variables: {
    /** The request as the access log sees it, filled in by the middleware and the handlers. */
    exchange: Exchange;
  };
};

/**
 * The Hono environment of the app: the variables each request carries from
 * middleware to handler and to the access log.
 *
 * @module
 */

/** Per-request variables. */
export type AppEnv = {
  Variables: {
    requestId: string;
    api: string | undefined;
    keyId: string | undefined;
    /** Time the request waited for a replica, in milliseconds. */
    queueMs: number | undefined;
    /** Requests in the batch this request ran in (server-side batching only). */
    batchSize: number | undefined;
  };
};

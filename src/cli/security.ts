/**
 * The server's security settings at run time: API keys, TLS material and
 * the CORS policy, loaded at startup (a bad setting stops the server) and
 * re-read on SIGHUP (a bad setting is logged and the previous one stays).
 *
 * @module
 */
import { resolve } from "node:path";
import type { Logger } from "../log/logger.ts";
import { keyFileIsShared, KeyStore } from "../security/api_keys.ts";
import { type CorsPolicy, describeCors } from "../http/cors.ts";
import type { HttpListener } from "../http/listener.ts";
import { loadTls, type TlsFiles, type TlsMaterial } from "../security/tls.ts";
import type { SecurityOptions } from "./security_options.ts";

/** Context for {@link Security.load}. */
export interface SecurityContext {
  /** The server's environment, for `CORTEX_API_KEYS_FILE`. */
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly logger: Logger;
  /** The `--host` the server listens on, to warn about an open, keyless server. */
  readonly host: string;
}

/** Loaded security settings; pass `keys` and `cors` to the app, `tls` to the listener. */
export class Security {
  /** Accepted API keys; `undefined` when keys are off. */
  readonly keys: KeyStore | undefined;
  readonly cors: CorsPolicy;
  /** The certificate the listener starts with; `undefined` for plain HTTP. */
  readonly tls: TlsMaterial | undefined;
  readonly #tlsFiles: TlsFiles | undefined;
  readonly #logger: Logger;
  #reloading: Promise<void> = Promise.resolve();

  private constructor(
    parts: { keys: KeyStore | undefined; cors: CorsPolicy; tls: TlsMaterial | undefined },
    tlsFiles: TlsFiles | undefined,
    logger: Logger,
  ) {
    this.keys = parts.keys;
    this.cors = parts.cors;
    this.tls = parts.tls;
    this.#tlsFiles = tlsFiles;
    this.#logger = logger;
  }

  /**
   * Reads the key file and the TLS files and logs what is in effect (key
   * ids, never keys).
   *
   * @throws {SecurityError} when a file is unreadable, empty or invalid
   */
  static async load(options: SecurityOptions, context: SecurityContext): Promise<Security> {
    const { logger } = context;
    const fromEnv = context.env["CORTEX_API_KEYS_FILE"];
    const keyFile = options.apiKeyFile ?? (fromEnv ? resolve(fromEnv) : undefined);
    const keys = keyFile === undefined ? undefined : await KeyStore.load(keyFile);
    if (keys !== undefined) {
      logger.info("api keys on", { file: keys.file, keys: keys.ids.length, key_ids: keys.ids.join(" ") });
      if (await keyFileIsShared(keys.file).catch(() => false)) {
        logger.warn("the API key file is readable by other users: chmod 600 it", { file: keys.file });
      }
    } else if (!_isLoopback(context.host)) {
      logger.warn(
        "api keys off on a non-loopback address: anyone who can connect may predict; " +
          "pass --api-key-file to require a key",
        { host: context.host },
      );
    }
    const tls = options.tls === undefined ? undefined : await loadTls(options.tls);
    if (tls !== undefined) _logTls(logger, "tls on", options.tls, tls);
    logger.info("cors", { origins: describeCors(options.cors) });
    return new Security({ keys, cors: options.cors, tls }, options.tls, logger);
  }

  /**
   * Re-reads the key file and the TLS files (SIGHUP). New keys apply to the
   * next request; a new certificate restarts `listener` on the same
   * address. A setting that fails to load is logged and the previous one
   * stays in effect. Reloads run one after another. Never throws.
   */
  reload(listener: HttpListener): Promise<void> {
    this.#reloading = this.#reloading.then(() => this.#reload(listener));
    return this.#reloading;
  }

  async #reload(listener: HttpListener): Promise<void> {
    const logger = this.#logger;
    if (this.keys !== undefined) {
      try {
        await this.keys.reload();
        logger.info("api keys reloaded", { keys: this.keys.ids.length, key_ids: this.keys.ids.join(" ") });
      } catch (error) {
        logger.error("api keys not reloaded, the previous keys stay in effect", { error: _message(error) });
      }
    }
    if (this.#tlsFiles !== undefined) {
      try {
        const tls = await loadTls(this.#tlsFiles);
        await listener.useTls(tls);
        _logTls(logger, "tls reloaded", this.#tlsFiles, tls);
      } catch (error) {
        logger.error("tls not reloaded, the previous certificate stays in effect", {
          error: _message(error),
        });
      }
    }
  }
}

function _logTls(logger: Logger, msg: string, files: TlsFiles | undefined, tls: TlsMaterial): void {
  const fields = { cert: files?.certFile, subject: tls.subject, not_after: tls.notAfter.toISOString() };
  logger.info(msg, fields);
  if (tls.notAfter.getTime() < Date.now()) {
    logger.warn("the TLS certificate has expired: clients will refuse it", fields);
  }
}

function _isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || host.startsWith("127.");
}

function _message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

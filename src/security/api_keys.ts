/**
 * API keys: the key file (one key per line, `#` comments), a store that
 * keeps only SHA-256 digests of the keys and compares in constant time, and
 * a key id (a digest prefix) that logs may carry instead of the key.
 *
 * @module
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { SecurityError } from "./security_error.ts";

/** Keys shorter than this are refused: without rate limiting they could be guessed. */
export const MIN_KEY_CHARS = 16;
/** A key file larger than this is refused before it is read. */
const MAX_KEY_FILE_BYTES = 1024 * 1024;
const KEY_CHARS = /^[\x21-\x7e]+$/;
const FIX = "generate one with `openssl rand -hex 32`";

/** One key: its digest and its id. The key itself is not kept. */
interface StoredKey {
  readonly digest: Uint8Array;
  readonly id: string;
}

/**
 * The id logged for a key: the first 8 hex digits of its SHA-256, enough to
 * tell keys apart and useless for recovering a key of {@link MIN_KEY_CHARS}
 * or more random characters.
 */
export function keyId(key: string): string {
  return _id(_digest(key));
}

/**
 * Parses the content of a key file: blank lines and lines starting with `#`
 * are ignored, as is a trailing ` # comment` after a key.
 *
 * @param text The file's content.
 * @param file The file's path, for messages.
 * @returns The keys, in file order, without duplicates.
 * @throws {SecurityError} `KEY_INVALID` naming the line (never the key),
 * `KEY_FILE_EMPTY` when no key is left.
 */
export function parseKeyFile(text: string, file: string): string[] {
  const keys = new Set<string>();
  text.split(/\r?\n/).forEach((raw, index) => {
    const line = raw.replace(/(^|\s)#.*$/, "").trim();
    if (line === "") return;
    const where = `Line ${index + 1} of the API key file "${file}"`;
    if (!KEY_CHARS.test(line)) {
      throw new SecurityError(
        "KEY_INVALID",
        `${where} is not a key: a key is one word of printable ASCII characters ` +
          `(a comment after it starts with " #"); ${FIX}`,
      );
    }
    if (line.length < MIN_KEY_CHARS) {
      throw new SecurityError(
        "KEY_INVALID",
        `${where} holds a key of ${line.length} characters: use at least ${MIN_KEY_CHARS}; ${FIX}`,
      );
    }
    keys.add(line);
  });
  if (keys.size === 0) {
    throw new SecurityError(
      "KEY_FILE_EMPTY",
      `The API key file "${file}" holds no key: write one key per line (${FIX}), ` +
        "or leave out --api-key-file and CORTEX_API_KEYS_FILE to serve without keys",
    );
  }
  return [...keys];
}

/** The accepted API keys, re-read from their file by {@link KeyStore.reload}. */
export class KeyStore {
  /** The key file's path. */
  readonly file: string;
  #keys: readonly StoredKey[];

  private constructor(file: string, keys: readonly string[]) {
    this.file = file;
    this.#keys = _store(keys);
  }

  /**
   * Reads the key file.
   *
   * @throws {SecurityError} when it cannot be read, holds no key or a bad line
   */
  static async load(file: string): Promise<KeyStore> {
    return new KeyStore(file, parseKeyFile(await _readKeyFile(file), file));
  }

  /** Ids of the accepted keys, for logs. */
  get ids(): string[] {
    return this.#keys.map((key) => key.id);
  }

  /**
   * Re-reads the key file and swaps the keys in one step. On any error the
   * previous keys stay in effect and the error is thrown for the caller to
   * log.
   *
   * @throws {SecurityError} as {@link KeyStore.load}
   */
  async reload(): Promise<void> {
    this.#keys = _store(parseKeyFile(await _readKeyFile(this.file), this.file));
  }

  /**
   * The id of the key among `presented` that is accepted, or `undefined`.
   * Each candidate is hashed and compared with every key without stopping
   * early, so timing reveals neither which key nor how much of it matched.
   */
  match(presented: readonly string[]): string | undefined {
    let found: string | undefined;
    for (const candidate of presented) {
      const digest = _digest(candidate);
      for (const key of this.#keys) {
        if (timingSafeEqual(digest, key.digest)) found ??= key.id;
      }
    }
    return found;
  }
}

/** Whether a key file can be read by users other than its owner. */
export async function keyFileIsShared(file: string): Promise<boolean> {
  const mode = (await Deno.stat(file)).mode;
  return mode !== null && (mode & 0o077) !== 0;
}

function _store(keys: readonly string[]): StoredKey[] {
  return keys.map((key) => {
    const digest = _digest(key);
    return { digest, id: _id(digest) };
  });
}

function _digest(text: string): Uint8Array {
  return new Uint8Array(createHash("sha256").update(text, "utf8").digest());
}

function _id(digest: Uint8Array): string {
  return Array.from(digest.subarray(0, 4), (byte) => byte.toString(16).padStart(2, "0")).join("");
}

async function _readKeyFile(file: string): Promise<string> {
  try {
    const info = await Deno.stat(file);
    if (!info.isFile) throw new Error("not a regular file");
    if (info.size > MAX_KEY_FILE_BYTES) throw new Error(`larger than ${MAX_KEY_FILE_BYTES} bytes`);
    return await Deno.readTextFile(file);
  } catch (error) {
    throw new SecurityError(
      "KEY_FILE_UNREADABLE",
      `Cannot read the API key file "${file}": ${error instanceof Error ? error.message : error}: ` +
        "check the path (--api-key-file or CORTEX_API_KEYS_FILE) and that the server's user may read it",
      { cause: error },
    );
  }
}

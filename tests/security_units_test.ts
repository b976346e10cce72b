/**
 * The security building blocks on their own: the key file format, the key
 * store (constant-time match, reload), TLS material checks with real
 * certificates from openssl, and the security flags.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { keyId, KeyStore, parseKeyFile } from "../src/security/api_keys.ts";
import { presentedKeys } from "../src/http/auth.ts";
import { SecurityError } from "../src/security/security_error.ts";
import { loadTls } from "../src/security/tls.ts";
import { parseCorsOrigins, parseSecurityFlags } from "../src/cli/security_options.ts";
import { UsageError } from "../src/cli/units.ts";
import { pipEnv, workerEnv } from "../src/python/worker_env.ts";
import { tempDir } from "./_helpers.ts";
import { makeCert } from "./_tls.ts";

const KEY_A = "a".repeat(31) + "1";
const KEY_B = "b".repeat(32);

function assertSecurityError(fn: () => unknown, code: string, message: RegExp): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof SecurityError, String(error));
    assert.equal(error.code, code);
    assert.match(error.message, message);
    return true;
  });
}

Deno.test("parseKeyFile: one key per line, comments and blank lines ignored, duplicates once", () => {
  const text = `# production keys\n\n  ${KEY_A}  # ci pipeline\n${KEY_B}\r\n${KEY_A}\n   # spare\n`;
  assert.deepEqual(parseKeyFile(text, "/etc/keys"), [KEY_A, KEY_B]);
});

Deno.test("parseKeyFile: empty, short or spaced keys are refused naming the line, never the key", () => {
  assertSecurityError(() => parseKeyFile("# nothing yet\n\n", "/k"), "KEY_FILE_EMPTY", /"\/k" holds no key/);
  assertSecurityError(() => parseKeyFile("", "/k"), "KEY_FILE_EMPTY", /openssl rand -hex 32/);
  assertSecurityError(
    () => parseKeyFile(`${KEY_A}\nshortkey\n`, "/k"),
    "KEY_INVALID",
    /^Line 2 of the API key file "\/k" holds a key of 8 characters: use at least 16/,
  );
  assertSecurityError(
    () => parseKeyFile("two words-but-long-enough\n", "/k"),
    "KEY_INVALID",
    /^Line 1 of .* is not a key/,
  );
  try {
    parseKeyFile("two words-but-long-enough\n", "/k");
  } catch (error) {
    assert.doesNotMatch(String(error), /words-but-long-enough/);
  }
});

Deno.test("KeyStore.match: only an exact key matches, by id; both headers are read", async () => {
  await using dir = await tempDir();
  const file = join(dir.path, "keys");
  await Deno.writeTextFile(file, `${KEY_A}\n${KEY_B}\n`);
  const store = await KeyStore.load(file);
  assert.deepEqual(store.ids, [keyId(KEY_A), keyId(KEY_B)]);
  assert.match(keyId(KEY_A), /^[0-9a-f]{8}$/);
  assert.equal(store.match([KEY_B]), keyId(KEY_B));
  assert.equal(store.match(["wrong", KEY_A]), keyId(KEY_A));
  assert.equal(store.match([]), undefined);
  assert.equal(store.match([KEY_A.slice(0, -1) + "2"]), undefined);
  assert.equal(store.match([KEY_A + "x"]), undefined);
  assert.equal(store.match([KEY_A.slice(0, -1)]), undefined);

  const headers = new Headers({ authorization: `bearer  ${KEY_A} `, "x-api-key": KEY_B });
  assert.deepEqual(presentedKeys(headers), [KEY_A, KEY_B]);
  assert.deepEqual(presentedKeys(new Headers({ authorization: `Basic ${KEY_A}` })), []);
});

Deno.test("KeyStore.reload: new keys replace old ones; a broken file keeps the old keys", async () => {
  await using dir = await tempDir();
  const file = join(dir.path, "keys");
  await Deno.writeTextFile(file, `${KEY_A}\n`);
  const store = await KeyStore.load(file);
  await Deno.writeTextFile(file, `${KEY_B}\n`);
  await store.reload();
  assert.equal(store.match([KEY_A]), undefined);
  assert.equal(store.match([KEY_B]), keyId(KEY_B));

  await Deno.writeTextFile(file, "# emptied\n");
  await assert.rejects(
    store.reload(),
    (e: unknown) => e instanceof SecurityError && e.code === "KEY_FILE_EMPTY",
  );
  await Deno.remove(file);
  await assert.rejects(
    store.reload(),
    (e: unknown) => e instanceof SecurityError && e.code === "KEY_FILE_UNREADABLE",
  );
  assert.equal(store.match([KEY_B]), keyId(KEY_B));
  await assert.rejects(KeyStore.load(join(dir.path, "missing")), /Cannot read the API key file .*missing/);
});

Deno.test("loadTls: a matching pair loads; unreadable, non-PEM and mismatched files are named", async () => {
  await using dir = await tempDir();
  const a = await makeCert(dir.path, "a");
  const b = await makeCert(dir.path, "b");
  const tls = await loadTls({ certFile: a.certFile, keyFile: a.keyFile });
  assert.equal(tls.cert, a.cert);
  assert.match(tls.subject, /cortex-serve test a/);
  assert.ok(tls.notAfter.getTime() > Date.now());

  const missing = join(dir.path, "missing.crt");
  await assert.rejects(
    loadTls({ certFile: missing, keyFile: a.keyFile }),
    (e: unknown) => e instanceof SecurityError && e.code === "TLS_UNREADABLE" && e.message.includes(missing),
  );
  await assert.rejects(
    loadTls({ certFile: a.keyFile, keyFile: a.keyFile }),
    (e: unknown) => e instanceof SecurityError && e.code === "TLS_INVALID" && /--tls-cert/.test(e.message),
  );
  await assert.rejects(
    loadTls({ certFile: a.certFile, keyFile: a.certFile }),
    (e: unknown) => e instanceof SecurityError && e.code === "TLS_INVALID" && /--tls-key/.test(e.message),
  );
  await assert.rejects(
    loadTls({ certFile: a.certFile, keyFile: b.keyFile }),
    (e: unknown) =>
      e instanceof SecurityError && e.code === "TLS_MISMATCH" &&
      e.message === `The TLS key "${b.keyFile}" does not belong to the certificate "${a.certFile}": ` +
          "give the key the certificate was issued for",
  );
});

Deno.test("security flags: TLS needs both files, origins are checked, * and none stand alone", () => {
  const none = parseSecurityFlags({});
  assert.deepEqual(none, { apiKeyFile: undefined, tls: undefined, cors: { kind: "any" } });
  const all = parseSecurityFlags({ "api-key-file": "k", "tls-cert": "/c.pem", "tls-key": "/k.pem" });
  assert.ok(all.apiKeyFile?.startsWith("/"));
  assert.deepEqual(all.tls, { certFile: "/c.pem", keyFile: "/k.pem" });
  assert.throws(() => parseSecurityFlags({ "tls-cert": "/c.pem" }), /--tls-cert needs --tls-key/);
  assert.throws(() => parseSecurityFlags({ "tls-key": "/k.pem" }), /--tls-key needs --tls-cert/);

  assert.deepEqual(parseCorsOrigins(["none"]), { kind: "none" });
  assert.deepEqual(parseCorsOrigins(["*"]), { kind: "any" });
  assert.deepEqual(parseCorsOrigins(["https://app.example.com/", "http://localhost:3000"]), {
    kind: "list",
    origins: ["https://app.example.com", "http://localhost:3000"],
  });
  assert.throws(() => parseCorsOrigins(["*", "https://a.example"]), UsageError);
  assert.throws(() => parseCorsOrigins(["https://a.example/path"]), /is not an origin: write scheme/);
  assert.throws(() => parseCorsOrigins(["app.example.com"]), /is not an origin/);
});

Deno.test("pipEnv: pip keeps its configuration, proxies and CA bundles, not the server's secrets", () => {
  const env = pipEnv({
    PATH: "/usr/bin",
    HOME: "/home/svc",
    PIP_INDEX_URL: "https://pypi.internal/simple",
    PIP_NO_INDEX: "1",
    HTTPS_PROXY: "http://proxy:3128",
    no_proxy: "localhost",
    SSL_CERT_FILE: "/etc/ssl/corp.pem",
    XDG_CONFIG_HOME: "/home/svc/.config",
    AWS_SECRET_ACCESS_KEY: "secret",
    DATABASE_URL: "postgres://u:p@db/x",
    CORTEX_API_KEYS_FILE: "/etc/cortex-serve/keys",
  });
  assert.deepEqual(Object.keys(env).sort(), [
    "HOME",
    "HTTPS_PROXY",
    "PATH",
    "PIP_INDEX_URL",
    "PIP_NO_INDEX",
    "SSL_CERT_FILE",
    "XDG_CONFIG_HOME",
    "no_proxy",
  ]);
});

Deno.test("workerEnv: glibc's thresholds set unless the server's environment or the API's python.env sets them", () => {
  const plain = workerEnv({ PATH: "/usr/bin" }, {});
  assert.equal(plain.MALLOC_MMAP_THRESHOLD_, "4194304");
  assert.equal(plain.MALLOC_TRIM_THRESHOLD_, "33554432");
  assert.equal(plain.PYTHONMALLOC, undefined, "Python's own allocator for small objects");
  const operator = workerEnv({ MALLOC_TRIM_THRESHOLD_: "131072", PYTHONMALLOC: "malloc" }, {});
  assert.equal(operator.MALLOC_TRIM_THRESHOLD_, "131072");
  assert.equal(operator.MALLOC_MMAP_THRESHOLD_, "4194304");
  assert.equal(operator.PYTHONMALLOC, "malloc");
  const api = workerEnv({ MALLOC_TRIM_THRESHOLD_: "131072" }, { MALLOC_TRIM_THRESHOLD_: "0" });
  assert.equal(api.MALLOC_TRIM_THRESHOLD_, "0");
});

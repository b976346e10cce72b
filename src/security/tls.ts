/**
 * TLS material for the HTTPS listener: the PEM certificate chain and private key
 * named by `--tls-cert` / `--tls-key`, read and checked (parseable, key
 * belongs to the certificate) before a listener uses them, so a bad pair is
 * a clear message at startup and leaves the old pair serving on SIGHUP.
 *
 * @module
 */
import { createPrivateKey, type KeyObject, X509Certificate } from "node:crypto";
import { SecurityError } from "./security_error.ts";

/** Where the certificate and key are read from. */
export interface TlsFiles {
  /** PEM certificate chain, leaf first. */
  readonly certFile: string;
  /** PEM private key of the leaf certificate. */
  readonly keyFile: string;
}

/** A checked certificate and key, ready for the HTTPS listener. */
export interface TlsMaterial {
  readonly cert: string;
  readonly key: string;
  /** The leaf certificate's subject, for the log. */
  readonly subject: string;
  /** When the leaf certificate expires. */
  readonly notAfter: Date;
}

/** Largest certificate or key file read. */
const MAX_PEM_BYTES = 1024 * 1024;

/**
 * Reads and checks the certificate and key.
 *
 * @throws {SecurityError} `TLS_UNREADABLE`, `TLS_INVALID` or `TLS_MISMATCH`,
 * naming the file and the fix
 */
export async function loadTls(files: TlsFiles): Promise<TlsMaterial> {
  const [cert, key] = await Promise.all([
    _read(files.certFile, "--tls-cert"),
    _read(files.keyFile, "--tls-key"),
  ]);
  let leaf: X509Certificate;
  try {
    if (!cert.includes("-----BEGIN CERTIFICATE-----")) throw new Error("no PEM certificate block");
    leaf = new X509Certificate(cert);
  } catch (error) {
    throw new SecurityError(
      "TLS_INVALID",
      `The TLS certificate "${files.certFile}" is not a PEM certificate: ${_message(error)}: ` +
        'give a file starting with "-----BEGIN CERTIFICATE-----" (--tls-cert)',
      { cause: error },
    );
  }
  let privateKey: KeyObject;
  try {
    if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(key)) throw new Error("no PEM private key block");
    privateKey = createPrivateKey(key);
  } catch (error) {
    throw new SecurityError(
      "TLS_INVALID",
      `The TLS key "${files.keyFile}" is not an unencrypted PEM private key: ${_message(error)}: ` +
        'give a file starting with "-----BEGIN PRIVATE KEY-----" (--tls-key)',
      { cause: error },
    );
  }
  if (!leaf.checkPrivateKey(privateKey)) {
    throw new SecurityError(
      "TLS_MISMATCH",
      `The TLS key "${files.keyFile}" does not belong to the certificate "${files.certFile}": ` +
        "give the key the certificate was issued for",
    );
  }
  return { cert, key, subject: leaf.subject.replaceAll("\n", ", "), notAfter: new Date(leaf.validTo) };
}

async function _read(file: string, flag: string): Promise<string> {
  try {
    const info = await Deno.stat(file);
    if (!info.isFile) throw new Error("not a regular file");
    if (info.size > MAX_PEM_BYTES) throw new Error(`larger than ${MAX_PEM_BYTES} bytes`);
    return await Deno.readTextFile(file);
  } catch (error) {
    throw new SecurityError(
      "TLS_UNREADABLE",
      `Cannot read "${file}" (${flag}): ${
        _message(error)
      }: check the path and that the server's user may read it`,
      { cause: error },
    );
  }
}

function _message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

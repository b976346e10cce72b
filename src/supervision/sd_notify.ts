/**
 * systemd readiness notification (`Type=notify`): tells the service manager
 * `READY=1` once every API has a ready replica, and `STOPPING=1` on shutdown.
 *
 * Deno has no unix datagram client without unstable flags, so the datagram
 * is sent by a short Python program run with the interpreter the server has
 * already checked (it is there by construction; the `systemd-notify` binary
 * may not be, e.g. in a container). Because the sender is a child process,
 * the unit needs `NotifyAccess=all`; the message carries `MAINPID` so systemd
 * keeps tracking the server itself. After sending, the child waits on a
 * `BARRIER=1` (as `systemd-notify` does) so it does not exit before the
 * manager has read the message.
 */

import { flushLogs, type Logger } from "../log/logger.ts";

/** Longest time one notification may take, in milliseconds. */
export const NOTIFY_TIMEOUT_MS = 5000;

const SENDER = `
import array, os, select, socket, sys
address = os.environ["NOTIFY_SOCKET"]
if address.startswith("@"):
    address = "\\0" + address[1:]
sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
sock.connect(address)
sock.sendall(sys.argv[1].encode())
read_end, write_end = os.pipe()
try:
    sock.sendmsg([b"BARRIER=1"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [write_end]))])
    os.close(write_end)
    poller = select.poll()
    poller.register(read_end, select.POLLHUP)
    poller.poll(int(sys.argv[2]))
except OSError:
    pass
`;

/** Sending a notification failed: the socket is missing or refused it. */
export class NotifyError extends Error {
  readonly code = "SD_NOTIFY_FAILED";
  constructor(message: string) {
    super(message);
    this.name = "NotifyError";
  }
}

/** Options of {@link sdNotify}. */
export interface NotifyOptions {
  /** The interpreter that sends the datagram (the server's checked Python). */
  readonly python: string;
  /** `NOTIFY_SOCKET`; nothing is sent when it is undefined or empty. */
  readonly socket: string | undefined;
  /** Aborts the send (e.g. on shutdown). */
  readonly signal?: AbortSignal;
}

/**
 * Sends `state` (newline-separated `KEY=value` pairs, e.g. `READY=1`) to the
 * service manager. Resolves with false when not running under a manager
 * that asked for notifications.
 *
 * @throws {NotifyError} when the socket exists in the environment but the
 *   message could not be sent
 *
 * @example
 * ```ts
 * await sdNotify(`READY=1\nSTATUS=Serving`, { python, socket: Deno.env.get("NOTIFY_SOCKET") });
 * ```
 */
export async function sdNotify(state: string, options: NotifyOptions): Promise<boolean> {
  if (options.socket === undefined || options.socket === "") return false;
  const signals = [AbortSignal.timeout(NOTIFY_TIMEOUT_MS + 1000)];
  if (options.signal !== undefined) signals.push(options.signal);
  const output = await new Deno.Command(options.python, {
    args: ["-c", SENDER, `${state}\nMAINPID=${Deno.pid}`, String(NOTIFY_TIMEOUT_MS)],
    env: { NOTIFY_SOCKET: options.socket },
    clearEnv: true,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
    signal: AbortSignal.any(signals),
  }).output();
  if (!output.success) {
    const last = new TextDecoder().decode(output.stderr).trim().split("\n").at(-1) ?? "";
    throw new NotifyError(
      `Cannot notify systemd at NOTIFY_SOCKET=${options.socket}: ${
        last || `exit code ${output.code}`
      }: check NotifyAccess=all in the unit`,
    );
  }
  return true;
}

/** What {@link ServiceNotifier} needs. */
export interface NotifierOptions {
  readonly python: string;
  /** `NOTIFY_SOCKET` from the environment. */
  readonly socket: string | undefined;
  readonly logger: Logger;
}

/**
 * The server's side of `Type=notify`: `READY=1` once, after startup;
 * `STOPPING=1` on shutdown. Does nothing outside systemd.
 */
export class ServiceNotifier {
  readonly #o: NotifierOptions;
  readonly #abort = new AbortController();
  #sending: Promise<unknown> = Promise.resolve();

  constructor(options: NotifierOptions) {
    this.#o = options;
  }

  /** True when a service manager asked for notifications. */
  get active(): boolean {
    return this.#o.socket !== undefined && this.#o.socket !== "";
  }

  /**
   * Sends `READY=1` (with `status` as `STATUS=`) when `ready` resolves, unless
   * {@link stopping} came first.
   *
   * @param ready resolves when every API is ready; rejects when its signal aborts
   */
  readyWhen(ready: (signal: AbortSignal) => Promise<void>, status: string): void {
    if (!this.active) return;
    this.#sending = ready(this.#abort.signal).then(
      () => this.#send(`READY=1\nSTATUS=${status}`, "ready"),
      () => {}, // Stopped before ready.
    );
  }

  /** Cancels a pending `READY=1` and sends `STOPPING=1`. */
  async stopping(): Promise<void> {
    if (!this.active) return;
    this.#abort.abort();
    await this.#sending;
    await this.#send("STOPPING=1", "stopping");
  }

  async #send(state: string, what: string): Promise<void> {
    // The journal shows what led up to a state change before the change itself.
    flushLogs();
    try {
      await sdNotify(state, { python: this.#o.python, socket: this.#o.socket });
      this.#o.logger.info("notified systemd", { state: what });
    } catch (error) {
      this.#o.logger.warn("systemd notification failed", {
        error: error instanceof Error ? error.message : String(error),
      });
    }
  }
}

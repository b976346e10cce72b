/**
 * `Type=notify`: a real server sends READY=1 to $NOTIFY_SOCKET only after
 * every API finished init, and STOPPING=1 on SIGTERM. The test plays the
 * service manager: a unix datagram socket (bound by a small Python program,
 * since Deno has no stable unix datagram API) that closes the barrier fds
 * like systemd does.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { makeProject, PYTHON, startServer, tempDir } from "./_helpers.ts";

const MANAGER = `
import array, json, os, socket, sys
sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
sock.bind(sys.argv[1])
print(json.dumps({"listening": True}), flush=True)
while True:
    data, ancillary, _flags, _addr = sock.recvmsg(4096, socket.CMSG_SPACE(4 * 8))
    fds = 0
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            ints = array.array("i")
            ints.frombytes(payload[: len(payload) - len(payload) % ints.itemsize])
            for fd in ints:
                os.close(fd)
                fds += 1
    print(json.dumps({"message": data.decode(), "fds": fds}), flush=True)
`;

const SLOW_INIT = `import time

def init(metadata):
    time.sleep(1.5)
    print("init done")

def predict(sample, metadata):
    return 1
`;

interface Datagram {
  readonly message: string;
  readonly fds: number;
  /** Whether /healthz answered 200 when the datagram arrived. */
  healthy?: boolean;
}

/** The fake service manager: bound to `socketPath`, yields each datagram it receives. */
async function startManager(socketPath: string) {
  const manager = new Deno.Command(PYTHON, {
    args: ["-c", MANAGER, socketPath],
    stdin: "null",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const lines = manager.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let buffered = "";
  const nextRecord = async (): Promise<Record<string, unknown>> => {
    while (!buffered.includes("\n")) {
      const { value, done } = await lines.read();
      if (done) throw new Error("The notify listener exited");
      buffered += value;
    }
    const at = buffered.indexOf("\n");
    const line = buffered.slice(0, at);
    buffered = buffered.slice(at + 1);
    return JSON.parse(line);
  };
  assert.deepEqual(await nextRecord(), { listening: true });
  return {
    nextRecord,
    async [Symbol.asyncDispose]() {
      manager.kill("SIGTERM");
      await lines.cancel().catch(() => {});
      await manager.status;
    },
  };
}

Deno.test("a SIGHUP before the first version is ready: READY=1 and 'api ready' come with the reloaded one", async () => {
  await using dir = await tempDir("cortex-serve-notify-");
  const socketPath = join(dir.path, "notify.sock");
  // Init outlasts the time from "listening" to the SIGHUP below by far.
  await using project = await makeProject({
    "inference.py": SLOW_INIT.replace("time.sleep(1.5)", "time.sleep(0.6)"),
  });
  await using manager = await startManager(socketPath);
  await using server = await startServer(project.path, {
    waitReady: false,
    env: { NOTIFY_SOCKET: socketPath },
  });
  server.kill("SIGHUP");
  await server.waitFor((r) => r.msg === "reloading: starting the new version beside the running one");
  let timer: ReturnType<typeof setTimeout> | undefined;
  const record = await Promise.race([
    manager.nextRecord(),
    new Promise<never>((_, reject) =>
      timer = setTimeout(() => reject(new Error("no READY=1 within 15 s")), 15_000)
    ),
  ]).finally(() => clearTimeout(timer));
  assert.match(String(record.message), /^READY=1\n/);
  await server.waitFor((r) => r.msg === "reloaded: new requests go to the new version");
  const announced = await server.waitFor((r) => r.msg === "api ready");
  assert.equal(announced.url, `${server.url}/test/api`);
  await server.waitFor((r) => r.msg === "every api is ready");
  const at = (text: string) => server.lines.findIndex((line) => line.includes(text));
  assert.ok(at('"reloading: ') < at('"worker ready"'), "the SIGHUP came before any worker was ready");
  const res = await fetch(`${server.url}/healthz`);
  assert.equal(res.status, 200);
  await res.body?.cancel();
});

Deno.test("READY=1 only after init, STOPPING=1 on SIGTERM, barrier answered", async () => {
  await using dir = await tempDir("cortex-serve-notify-");
  const socketPath = join(dir.path, "notify.sock");
  await using project = await makeProject({ "inference.py": SLOW_INIT });
  await using manager = await startManager(socketPath);
  const nextRecord = manager.nextRecord;
  const received: Datagram[] = [];
  {
    await using server = await startServer(project.path, {
      waitReady: false,
      env: { NOTIFY_SOCKET: socketPath },
    });
    const health = async () => {
      const res = await fetch(`${server.url}/healthz`);
      await res.body?.cancel();
      return res.status === 200;
    };
    assert.equal(await health(), false, "the API should still be in init");

    const reading = (async () => {
      for (;;) {
        const record = await nextRecord();
        const datagram: Datagram = { message: String(record.message), fds: Number(record.fds) };
        datagram.healthy = await health().catch(() => false);
        received.push(datagram);
        if (datagram.message.startsWith("READY=1") || datagram.message.startsWith("STOPPING=1")) return;
      }
    })();
    await reading;
    const ready = received.find((d) => d.message.startsWith("READY=1"));
    assert.ok(ready, `no READY=1 in ${JSON.stringify(received)}`);
    assert.equal(ready.healthy, true, "READY=1 arrived before every API was ready");
    assert.ok(
      server.lines.some((line) => line.includes('"init done"')),
      "READY=1 arrived before init finished",
    );
    assert.match(
      ready.message,
      new RegExp(`^READY=1\nSTATUS=Serving test at ${server.url}\nMAINPID=${server.pid}$`),
    );

    const barrier = await nextRecord();
    assert.deepEqual(barrier, { message: "BARRIER=1", fds: 1 });
    await server.waitFor((r) => r.msg === "notified systemd" && r.state === "ready");

    server.kill("SIGTERM");
    const stopping = await nextRecord();
    assert.equal(stopping.message, `STOPPING=1\nMAINPID=${server.pid}`);
    assert.equal((await server.status).code, 0);
    assert.ok(
      !server.lines.some((line) => line.includes("systemd notification failed")),
      server.lines.join("\n"),
    );
  }
});

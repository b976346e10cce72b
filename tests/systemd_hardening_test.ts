/**
 * The shipped systemd unit is hardened and valid, as systemd itself judges
 * it: `systemd-analyze security --offline=yes` rates its exposure at 2.5 or
 * lower (with each drop-in too), `systemd-analyze verify` accepts it without
 * a warning, and every system call a real server and its Python worker make
 * (traced with strace) is allowed by the unit's `SystemCallFilter=`.
 * Nothing here starts the unit: there is no running systemd. The unit is
 * copied with `ExecStart=` pointing at an executable that exists.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { CLI, PYTHON, ROOT, tempDir } from "./_helpers.ts";

const SYSTEMD = join(ROOT, "deploy", "systemd");
const UNIT = "cortex-serve.service";
const DROP_INS = ["gpu.conf", "project-mount.conf"] as const;
const MAX_EXPOSURE = 2.5;

interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

async function run(program: string, args: readonly string[], cwd?: string): Promise<Run> {
  const output = await new Deno.Command(program, {
    args: [...args],
    ...(cwd === undefined ? {} : { cwd }),
    env: { SYSTEMD_COLORS: "0", LANG: "C.UTF-8" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(60_000),
  }).output();
  const decoder = new TextDecoder();
  return { code: output.code, stdout: decoder.decode(output.stdout), stderr: decoder.decode(output.stderr) };
}

/** The `Key=value` lines of a unit or drop-in, comments left out. */
function directives(text: string): string[] {
  return text.split("\n").map((line) => line.trim()).filter((line) => /^\w+=/.test(line));
}

/**
 * Copies the unit into a fresh directory with `ExecStart=` running an
 * existing executable (this Deno) and `dropIns` in `cortex-serve.service.d/`.
 */
async function stageUnit(dir: string, dropIns: readonly string[], edit = (unit: string) => unit) {
  const text = await Deno.readTextFile(join(SYSTEMD, UNIT));
  const original = /^ExecStart=(\S+) /m.exec(text);
  assert.equal(original?.[1], "/usr/local/bin/cortex-serve");
  await Deno.writeTextFile(
    join(dir, UNIT),
    edit(text.replace(/^ExecStart=\S+ /m, `ExecStart=${Deno.execPath()} `)),
  );
  await Deno.mkdir(join(dir, `${UNIT}.d`), { recursive: true });
  for (const name of dropIns) await Deno.copyFile(join(SYSTEMD, name), join(dir, `${UNIT}.d`, name));
  return join(dir, UNIT);
}

/** `systemd-analyze verify`: exit code and every line it printed. */
async function verify(unitPath: string): Promise<Run> {
  return await run("systemd-analyze", ["verify", "--man=no", "--generators=no", unitPath]);
}

/** `systemd-analyze security --offline=yes`: the overall exposure and the table. */
async function security(unitPath: string): Promise<{ exposure: number; table: string; stderr: string }> {
  const result = await run("systemd-analyze", ["security", "--offline=yes", "--no-pager", unitPath]);
  assert.equal(result.code, 0, result.stderr);
  const match = /Overall exposure level for cortex-serve\.service: (\d+\.\d+)/.exec(result.stdout);
  assert.ok(match, `no overall exposure in:\n${result.stdout}`);
  return { exposure: Number(match[1]), table: result.stdout, stderr: result.stderr };
}

Deno.test("systemd unit: the settings the server needs, hardening only the GPU drop-in relaxes", async () => {
  const unit = directives(await Deno.readTextFile(join(SYSTEMD, UNIT)));
  for (
    const line of [
      "Type=notify",
      "NotifyAccess=all",
      "StateDirectory=cortex-serve",
      "UMask=0077",
      "PrivateDevices=yes",
      "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
      "SystemCallFilter=@system-service @pkey",
    ]
  ) {
    assert.ok(unit.includes(line), `${UNIT} lacks ${line}`);
  }
  const gpu = directives(await Deno.readTextFile(join(SYSTEMD, "gpu.conf")));
  assert.ok(gpu.includes("PrivateDevices=no") && gpu.includes("DevicePolicy=closed"));
  assert.ok(gpu.includes("DeviceAllow=char-nvidia-uvm rw"));
  const mount = directives(await Deno.readTextFile(join(SYSTEMD, "project-mount.conf")));
  assert.deepEqual(mount, ["TemporaryFileSystem=/mnt:mode=0777"]);
  for (const lines of [unit, gpu, mount]) {
    assert.ok(!lines.some((line) => line.startsWith("MemoryDenyWriteExecute=")), "V8 needs W+X memory");
  }
  assert.ok(!mount.some((line) => line.startsWith("PrivateDevices=")));
});

Deno.test("systemd-analyze verify accepts the unit and each drop-in without a warning", async () => {
  await using dir = await tempDir();
  for (const dropIns of [[], ...DROP_INS.map((name) => [name])]) {
    const result = await verify(await stageUnit(dir.path, dropIns));
    assert.equal(result.code, 0, `${dropIns}: ${result.stderr}`);
    assert.equal(result.stdout + result.stderr, "", `verify with ${dropIns} printed warnings`);
    await Deno.remove(join(dir.path, `${UNIT}.d`), { recursive: true });
  }
  // The check can fail: a misspelt directive is reported.
  const typo = await verify(
    await stageUnit(dir.path, [], (u) => u.replace("UMask=0077", "UMask=0077\nProtectSytem=strict")),
  );
  assert.match(typo.stderr, /Unknown key 'ProtectSytem'/);
});

Deno.test(`systemd-analyze security rates the unit ${MAX_EXPOSURE} or lower, with each drop-in too`, async () => {
  await using dir = await tempDir();
  const plain = await security(await stageUnit(dir.path, []));
  assert.equal(plain.stderr, "");
  assert.ok(plain.exposure <= MAX_EXPOSURE, `exposure ${plain.exposure} > ${MAX_EXPOSURE}:\n${plain.table}`);
  assert.match(plain.table, /✓ PrivateDevices=/);
  await Deno.remove(join(dir.path, `${UNIT}.d`), { recursive: true });

  const gpu = await security(await stageUnit(dir.path, ["gpu.conf"]));
  assert.equal(gpu.stderr, "");
  assert.ok(gpu.exposure <= MAX_EXPOSURE, `with gpu.conf: exposure ${gpu.exposure}:\n${gpu.table}`);
  assert.match(gpu.table, /✗ PrivateDevices=/, "the drop-in was read");
  assert.match(gpu.table, /char-nvidia-uvm:rw/);
  await Deno.remove(join(dir.path, `${UNIT}.d`), { recursive: true });

  const mount = await security(await stageUnit(dir.path, ["project-mount.conf"]));
  assert.equal(mount.stderr, "");
  assert.ok(mount.exposure <= MAX_EXPOSURE, `with project-mount.conf: exposure ${mount.exposure}`);
});

/** System calls in the unit's `SystemCallFilter=` groups, as this systemd defines them. */
async function allowedSyscalls(filter: string): Promise<Set<string>> {
  const listing = await run("systemd-analyze", ["syscall-filter", "--no-pager"]);
  assert.equal(listing.code, 0, listing.stderr);
  const groups = new Map<string, string[]>();
  let current: string[] | undefined;
  for (const raw of listing.stdout.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    if (raw.startsWith("@")) groups.set(line, current = []);
    else current?.push(line);
  }
  const expand = (name: string): string[] => {
    if (!name.startsWith("@")) return [name];
    const members = groups.get(name);
    assert.ok(members, `systemd knows no system call group ${name}`);
    return members.flatMap(expand);
  };
  return new Set(filter.trim().split(/\s+/).flatMap(expand));
}

/** Reads JSON log lines from `stream`, resolving `want` records by message as they arrive. */
function logWatcher(stream: ReadableStream<Uint8Array>) {
  const seen: Record<string, unknown>[] = [];
  const waiters: { msg: string; resolve: (r: Record<string, unknown>) => void }[] = [];
  const done = (async () => {
    let rest = "";
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      const lines = (rest + chunk).split("\n");
      rest = lines.pop() ?? "";
      for (const line of lines) {
        let record: Record<string, unknown>;
        try {
          record = JSON.parse(line);
        } catch {
          record = { msg: line };
        }
        seen.push(record);
        for (const w of waiters.filter((w) => w.msg === record["msg"])) w.resolve(record);
      }
    }
  })();
  const next = (msg: string, timeoutMs = 90_000): Promise<Record<string, unknown>> => {
    const found = seen.find((r) => r["msg"] === msg);
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () =>
          reject(
            new Error(
              `no "${msg}" log line within ${timeoutMs} ms:\n${
                seen.map((r) => JSON.stringify(r)).join("\n")
              }`,
            ),
          ),
        timeoutMs,
      );
      waiters.push({ msg, resolve: (r) => (clearTimeout(timer), resolve(r)) });
    });
  };
  return { next, done };
}

Deno.test("every system call of the server and its workers is allowed by SystemCallFilter=", async () => {
  const unit = directives(await Deno.readTextFile(join(SYSTEMD, UNIT)));
  const filters = unit.filter((line) => line.startsWith("SystemCallFilter="));
  assert.equal(filters.length, 1, "one allow list");
  const allowed = await allowedSyscalls(filters[0]!.slice("SystemCallFilter=".length));
  assert.ok(allowed.has("setpgid") && allowed.has("prctl") && !allowed.has("ptrace"));

  await using work = await tempDir();
  const trace = join(work.path, "strace.log");
  // Start, answer a prediction, reload (new workers beside the old ones),
  // answer again, stop: the paths a service takes in its life.
  const tracer = new Deno.Command("strace", {
    args: [
      "-f",
      "-qq",
      "-e",
      "signal=none",
      "-o",
      trace,
      "--",
      Deno.execPath(),
      ...CLI,
      "serve",
      join(ROOT, "examples", "iris-classifier"),
      "--port=0",
      `--state-dir=${join(work.path, "state")}`,
      `--python=${PYTHON}`,
      "--log-format=json",
    ],
    cwd: ROOT,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const log = logWatcher(tracer.stderr);
  try {
    const url = String((await log.next("listening"))["url"]);
    // strace's first line is the server's own execve.
    const server = Number((await Deno.readTextFile(trace)).split(/\s/, 1)[0]);
    assert.ok(server > 0, "the traced server's pid");
    await log.next("api ready");
    const sample = await Deno.readTextFile(join(ROOT, "examples", "iris-classifier", "sample.json"));
    const predict = async () => {
      const res = await fetch(`${url}/iris/classifier`, { method: "POST", body: sample });
      assert.equal(res.status, 200, await res.text());
    };
    await predict();
    Deno.kill(server, "SIGHUP");
    await log.next("previous version stopped");
    await predict();
    Deno.kill(server, "SIGTERM");
    await log.next("stopped");
    assert.equal((await tracer.status).code, 0);
    await log.done;

    const used = new Set<string>();
    for (const line of (await Deno.readTextFile(trace)).split("\n")) {
      const call = /^\d+\s+([a-z0-9_]+)\(/.exec(line);
      if (call) used.add(call[1]!);
    }
    assert.ok(used.has("setpgid") && used.has("prctl") && used.has("socket"), "the trace covers the worker");
    const refused = [...used].filter((name) => !allowed.has(name)).sort();
    assert.deepEqual(refused, [], `system calls outside ${filters[0]}`);
  } finally {
    try {
      tracer.kill("SIGKILL");
    } catch {
      // Exited already.
    }
  }
});

/** Resident memory of a process, from /proc (Linux). */

/** RSS of `pid` in bytes, or undefined when the process is gone or /proc is unavailable. */
export async function readRssBytes(pid: number): Promise<number | undefined> {
  let status: string;
  try {
    status = await Deno.readTextFile(`/proc/${pid}/status`);
  } catch {
    return undefined;
  }
  const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
  return match?.[1] === undefined ? undefined : Number(match[1]) * 1024;
}

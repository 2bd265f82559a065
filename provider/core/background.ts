// Processes that outlive the call that started them (a local VM, a unikernel under its tender),
// and watching what they print. A process is known by its pid AND its start time, so a pid the
// kernel has since handed to another process is never mistaken for ours.
import { readdirSync, readFileSync } from "node:fs";
import { open } from "node:fs/promises";
import { StringDecoder } from "node:string_decoder";
import { killTree, LineTail, startDetached, TAIL_LINES } from "./exec";

/** Who a background process is: its pid and its start time (clock ticks after boot). */
export interface ProcessIdentity {
  pid: number;
  startTime: number;
}

interface ProcStat {
  state: string;
  startTime: number;
}

/** Fields of /proc/PID/stat, or undefined when there is no such process. */
function procStat(pid: number): ProcStat | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return undefined;
  }
  // Field 2 is the command name in parentheses and may itself hold spaces or parentheses.
  const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
  // fields[0] is field 3 (state); field 22 (starttime) is fields[19].
  return { state: fields[0], startTime: Number(fields[19]) };
}

/** The start time of process `pid` as /proc gives it (field 22 of /proc/PID/stat). */
export function processStartTime(pid: number): number | undefined {
  return procStat(pid)?.startTime;
}

/** True while the process is alive and is still the one that was started (not a reused pid). */
export function isRunning(id: ProcessIdentity): boolean {
  const stat = procStat(id.pid);
  if (!stat || stat.startTime !== id.startTime) return false;
  // A zombie has exited; only its parent has not collected its status yet.
  return stat.state !== "Z" && stat.state !== "X";
}

/** This process's own identity (a record naming its creator must survive our pid's reuse). */
export function selfIdentity(): ProcessIdentity {
  return { pid: process.pid, startTime: processStartTime(process.pid) as number };
}

/**
 * The live processes whose environment holds `entry` (`NAME=value`): a process started with it
 * can be found even when nothing recorded its pid. /proc/PID/environ is the environment the
 * program was started with; a zombie's is empty, and other users' are unreadable (not ours).
 */
export function processesCarrying(entry: string): ProcessIdentity[] {
  const found: ProcessIdentity[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const pid = Number(name);
    let environ: string;
    try {
      environ = readFileSync(`/proc/${pid}/environ`, "latin1");
    } catch {
      continue; // gone since the listing, or another user's
    }
    if (!environ.split("\0").includes(entry)) continue;
    const startTime = processStartTime(pid);
    if (startTime !== undefined) found.push({ pid, startTime });
  }
  return found;
}

export interface StartOptions {
  /** Standard output and standard error are appended to this file. */
  logFile: string;
  cwd?: string;
  /** Extra environment variables, merged over the current environment. */
  env?: Record<string, string | undefined>;
  /**
   * Killed when we end, however we end (a foreground run: `pulumi-mirage run`); default: it
   * keeps running (a resource's run). See exec.ts startDetached.
   */
  endsWithUs?: boolean;
  /** Called with its exit status (or the signal that killed it) when it exits while we run. */
  onEnd?: (status: number | null, signal: NodeJS.Signals | null) => void;
}

/**
 * Starts `file` detached from us (exec.ts startDetached): it keeps running when the calling
 * process exits, unless `endsWithUs`. Resolves with who it is; rejects when the program cannot be
 * started.
 */
export async function startBackground(
  file: string,
  args: readonly string[],
  options: StartOptions,
): Promise<ProcessIdentity> {
  const pid = await startDetached(file, args, options);
  // The start time is fixed at fork, so reading it now is safe even if the program already exited.
  const startTime = processStartTime(pid);
  if (startTime === undefined) throw new Error(`${file} (pid ${pid}) exited at once`);
  return { pid, startTime };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Stops a background process and everything in its process group: SIGTERM, then SIGKILL after
 * `graceMs`. Does nothing when the process is gone or its pid now belongs to another process.
 */
export async function stopBackground(id: ProcessIdentity, graceMs = 3000): Promise<void> {
  if (!isRunning(id)) return;
  killTree(id.pid, "SIGTERM");
  const graceEnd = Date.now() + graceMs;
  while (isRunning(id) && Date.now() < graceEnd) await sleep(50);
  // Also takes whatever the process started and left behind in its group.
  killTree(id.pid, "SIGKILL");
  while (isRunning(id)) await sleep(20);
  // A signal is delivered, not awaited: the group's other members (a shell's subshell, say) may
  // still be on their way out. Done means none is left, as far as SIGKILL can make it so.
  const groupEnd = Date.now() + GROUP_EXIT_MS;
  while (groupExists(id.pid) && Date.now() < groupEnd) await sleep(20);
}

/** How long a killed group's members get to be gone (one stuck in the kernel may take longer). */
const GROUP_EXIT_MS = 5000;

/** Whether process group `pgid` still has a member (a zombie counts until it is reaped). */
function groupExists(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

export interface WatchOptions {
  /**
   * Stop watching as soon as the text so far matches. It is matched line-wise (`^` and `$` match
   * at each line's start and end) with the CRs of serial consoles removed.
   */
  expect?: RegExp;
  timeoutMs: number;
  /** Whether the writer is still running; when it is not, the rest of the file is read and the watch ends. */
  alive: () => boolean;
  /** Called with each piece of new text, as it appears. */
  onOutput?: (text: string) => void;
  /** Why the writer cannot go on although it runs (a stopped guest), or undefined; ends the watch. */
  failed?: () => string | undefined;
}

export interface WatchResult {
  /** What ended the watch: a match, the writer's end, a known failure, or the timeout. */
  outcome: "matched" | "ended" | "failed" | "timeout";
  /** The last lines of the file read so far. */
  tail: string[];
  /** With outcome `failed`: what `failed` said. */
  failure?: string;
}

const POLL_MS = 50;
/** How much of the most recent text a regex is matched against. */
const MATCH_WINDOW = 1 << 20;

/**
 * Follows a log file as another process writes it, until `expect` matches the text, the writer
 * ends, `failed` says why it cannot go on, or the timeout passes. The file may not exist yet when the watch starts.
 */
export async function watchLog(path: string, options: WatchOptions): Promise<WatchResult> {
  // A global or sticky regex would carry state from one test to the next.
  const flags = `${options.expect?.flags.replace(/[gym]/g, "")}m`;
  const expect = options.expect && new RegExp(options.expect.source, flags);
  const deadline = Date.now() + options.timeoutMs;
  const decoder = new StringDecoder("utf8");
  const tail = new LineTail(TAIL_LINES);
  const buffer = Buffer.alloc(64 * 1024);
  let text = "";
  let offset = 0;
  let handle: Awaited<ReturnType<typeof open>> | undefined;

  // Serial consoles end lines with CR LF.
  const lines = () => tail.finish().map((line) => line.replace(/\r$/, ""));
  // Reads everything new; true when the text now matches.
  const readNew = async (): Promise<boolean> => {
    if (!handle) handle = await open(path, "r").catch(() => undefined);
    if (!handle) return false;
    let chunk = "";
    for (;;) {
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, offset);
      if (bytesRead === 0) break;
      offset += bytesRead;
      chunk += decoder.write(buffer.subarray(0, bytesRead));
    }
    if (chunk === "") return false;
    options.onOutput?.(chunk);
    tail.push(chunk);
    text = (text + chunk.replaceAll("\r", "")).slice(-MATCH_WINDOW);
    return expect?.test(text) ?? false;
  };

  try {
    for (;;) {
      // Read the writer's state before reading the file, so nothing written before its end is missed.
      const alive = options.alive();
      if (await readNew()) return { outcome: "matched", tail: lines() };
      if (!alive) return { outcome: "ended", tail: lines() };
      const failure = options.failed?.();
      if (failure !== undefined) return { outcome: "failed", tail: lines(), failure };
      if (Date.now() >= deadline) return { outcome: "timeout", tail: lines() };
      await sleep(POLL_MS);
    }
  } finally {
    await handle?.close();
  }
}

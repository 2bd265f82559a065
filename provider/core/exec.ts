// Running external tools: one place that spawns processes, so every tool run gets the same
// treatment: output kept in a log file, the tail of it in errors, a timeout that kills the whole
// process tree, no tool outliving us, and an error message that names the command. Three ways:
// `run` waits for a tool to finish; `startWatched` starts one to watch while it runs (QEMU in
// `boot`); `startDetached` starts one that outlives us (local runs, background.ts).
import { spawn } from "node:child_process";
import {
  accessSync,
  closeSync,
  constants,
  createWriteStream,
  existsSync,
  openSync,
  statSync,
  type WriteStream,
} from "node:fs";
import { delimiter, join } from "node:path";
import type { Readable } from "node:stream";
import { onExit } from "./on-exit";

/** How many lines of output a failure message shows. */
export const TAIL_LINES = 40;

export interface RunOptions {
  cwd?: string;
  /** Extra environment variables, merged over the current environment. */
  env?: Record<string, string | undefined>;
  /** Data written to the tool's standard input (a stream is sent as it comes). */
  input?: string | Buffer | Readable;
  /** A file descriptor of ours to give the tool as its standard input (instead of `input`). */
  stdin?: number;
  /** Kill the tool and everything it started after this many milliseconds. */
  timeoutMs?: number;
  /** Append everything the tool prints (stdout and stderr, interleaved) to this file. */
  logFile?: string;
  /** Called with each line the tool prints, for progress reporting. */
  onLine?: (line: string) => void;
  /** Aborting kills the tool and everything it started. */
  signal?: AbortSignal;
}

export interface RunResult {
  stdout: string;
  stderr: string;
}

/** A tool that could not be run, failed, or timed out. The message carries the output's tail. */
export class ToolError extends Error {
  constructor(
    readonly command: string,
    readonly reason: string,
    readonly tail: string[],
    readonly logFile: string | undefined,
    options?: { cause?: unknown },
  ) {
    const parts = [`${command}: ${reason}`];
    if (tail.length > 0) parts.push(`last ${tail.length} lines of output:\n${tail.join("\n")}`);
    if (logFile) parts.push(`full log: ${logFile}`);
    super(parts.join("\n"), options);
    this.name = "ToolError";
  }
}

/** Keeps the last `max` lines of a stream of text chunks. */
export class LineTail {
  private lines: string[] = [];
  private partial = "";
  constructor(
    private readonly max: number,
    private readonly onLine?: (line: string) => void,
  ) {}
  push(chunk: string): void {
    const pieces = (this.partial + chunk).split("\n");
    this.partial = pieces.pop() ?? "";
    for (const line of pieces) this.add(line);
  }
  finish(): string[] {
    if (this.partial !== "") this.add(this.partial);
    this.partial = "";
    return this.lines;
  }
  private add(line: string): void {
    this.onLine?.(line);
    this.lines.push(line);
    if (this.lines.length > this.max) this.lines.shift();
  }
}

export function formatCommand(file: string, args: readonly string[]): string {
  const quote = (s: string) => (/^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`);
  return [file, ...args].map(quote).join(" ");
}

/** Signals the tool's whole process group; the tool runs as the leader of its own group. */
export function killTree(pid: number | undefined, signal: NodeJS.Signals): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, signal);
  } catch {
    // Already gone.
  }
}

/**
 * Kills the process group `pid` (a tool we started in a group of its own, which a signal to our
 * group does not reach) if this process ends first (on-exit.ts). Returns the function to call
 * once the group is gone.
 */
export function killOnExit(pid: number): () => void {
  return onExit(() => killTree(pid, "SIGKILL"));
}

/**
 * Runs `file` with `args` and resolves with its output when it exits with status 0.
 * Otherwise rejects with a ToolError that names the command, says why, and shows the tail of its
 * output and the path of the full log.
 */
export async function run(
  file: string,
  args: readonly string[],
  options: RunOptions = {},
): Promise<RunResult> {
  // execa is ESM-only: load it on use, which also keeps this module serializable
  // (docs/platforms.md, Pulumi dynamic providers).
  const { execa } = await import("execa");
  const command = formatCommand(file, args);
  const tail = new LineTail(TAIL_LINES, options.onLine);
  let log: WriteStream | undefined;
  if (options.logFile) {
    log = createWriteStream(options.logFile, { flags: "a" });
    log.write(`$ ${command}\n`);
  }
  const child = execa(file, args, {
    cwd: options.cwd,
    env: options.env,
    extendEnv: true,
    input: options.input,
    // execa's types list only fds 0 and 3-9; any descriptor of ours works (child_process.spawn).
    stdin: options.input !== undefined ? undefined : ((options.stdin ?? "ignore") as "ignore"),
    all: true,
    reject: false,
    detached: true, // its own process group, so a timeout can kill everything it started
    maxBuffer: 256 * 1024 * 1024,
    stripFinalNewline: false,
  });
  const unguard = child.pid === undefined ? () => {} : killOnExit(child.pid);
  child.all?.on("data", (chunk: Buffer) => {
    const text = chunk.toString("utf8");
    tail.push(text);
    log?.write(text);
  });

  let timedOut = false;
  let aborted = false;
  const stop = () => {
    killTree(child.pid, "SIGTERM");
    setTimeout(() => killTree(child.pid, "SIGKILL"), 2000).unref();
  };
  const timer =
    options.timeoutMs === undefined
      ? undefined
      : setTimeout(() => {
          timedOut = true;
          stop();
        }, options.timeoutMs);
  const onAbort = () => {
    aborted = true;
    stop();
  };
  options.signal?.addEventListener("abort", onAbort, { once: true });
  if (options.signal?.aborted) onAbort();

  const result = await child;
  if (timer) clearTimeout(timer);
  options.signal?.removeEventListener("abort", onAbort);
  // Whatever the tool left behind in its group goes with it.
  killTree(child.pid, "SIGKILL");
  unguard();
  const lines = tail.finish();
  if (log) await new Promise<void>((resolve) => log.end(resolve));

  const stdout = String(result.stdout ?? "");
  const stderr = String(result.stderr ?? "");
  let reason: string | undefined;
  if (timedOut)
    reason = `timed out after ${Math.round((options.timeoutMs ?? 0) / 1000)} s and was killed`;
  else if (aborted) reason = "was cancelled";
  else if (result.failed && result.exitCode === undefined && result.signal === undefined)
    reason = `could not be started (${result.shortMessage ?? result.message})`;
  else if (result.signal) reason = `was killed by ${result.signal}`;
  else if (result.exitCode !== 0) reason = `exited with status ${result.exitCode}`;
  if (reason) throw new ToolError(command, reason, lines, options.logFile, { cause: result });
  return { stdout, stderr };
}

/** A program started to be watched while it runs, in a process group of its own. */
export interface Watched {
  pid: number;
  /** True until it exits. */
  alive(): boolean;
  /** Its exit status once it exited by itself, else null. */
  exitCode(): number | null;
  /** What it printed on stderr so far. */
  stderr(): string;
  /** Kills its whole group, and resolves once it is gone. */
  stop(): Promise<void>;
}

/** On Linux, ties the program's life to ours even if we are SIGKILLed (the parent-death signal survives exec). */
function withParentDeathSignal(file: string, args: readonly string[]): [string, string[]] {
  if (!existsSync("/usr/bin/setpriv")) return [file, [...args]];
  return ["/usr/bin/setpriv", ["--pdeathsig", "KILL", "--", file, ...args]];
}

/**
 * Starts `file` to be watched while it runs: stdout ignored, stderr kept, in a process group of
 * its own that is killed when we end, however we end (on-exit.ts, and the parent-death signal for
 * a SIGKILL). Rejects when it cannot be started. Call `stop()` when done with it.
 */
export async function startWatched(
  file: string,
  args: readonly string[],
  options: { cwd?: string; env?: Record<string, string> } = {},
): Promise<Watched> {
  const [command, commandArgs] = withParentDeathSignal(file, args);
  const child = spawn(command, commandArgs, {
    cwd: options.cwd,
    env: { ...process.env, ...options.env },
    detached: true, // its own process group, so killing the group gets everything
    stdio: ["ignore", "ignore", "pipe"],
  });
  const unguard = child.pid === undefined ? () => {} : killOnExit(child.pid);
  const exited = new Promise<void>((resolve) => child.once("close", () => resolve()));
  let stderr = "";
  child.stderr?.on("data", (chunk: Buffer) => {
    stderr += chunk.toString("utf8");
  });
  const stop = async () => {
    killTree(child.pid, "SIGKILL");
    await exited;
    unguard();
  };
  try {
    await new Promise<void>((resolve, reject) => {
      child.once("spawn", resolve);
      child.once("error", (error) =>
        reject(new Error(`could not start ${file}: ${error.message}`, { cause: error })),
      );
    });
  } catch (error) {
    unguard();
    throw error;
  }
  return {
    pid: child.pid as number,
    alive: () => child.exitCode === null && child.signalCode === null,
    exitCode: () => child.exitCode,
    stderr: () => stderr,
    stop,
  };
}

/**
 * Starts `file` detached from us: in its own session, its output appended to `logFile`, its stdin
 * /dev/null. It keeps running when we exit (the Pulumi engine stops the dynamic provider after
 * each operation), unless `endsWithUs`: then the parent-death signal kills it when we end,
 * however we end (the caller stops it on the way out of an ordinary end). Resolves with its pid; rejects when it cannot be started.
 */
export async function startDetached(
  file: string,
  args: readonly string[],
  options: {
    logFile: string;
    cwd?: string;
    env?: Record<string, string | undefined>;
    endsWithUs?: boolean;
    /** Called when it exits, if we are still there (only a foreground run waits for that). */
    onEnd?: (status: number | null, signal: NodeJS.Signals | null) => void;
  },
): Promise<number> {
  const out = openSync(options.logFile, "a");
  const [command, commandArgs] = options.endsWithUs
    ? withParentDeathSignal(file, args)
    : [file, [...args]];
  try {
    const child = spawn(command, commandArgs, {
      cwd: options.cwd,
      env: { ...process.env, ...options.env },
      detached: true, // setsid: no terminal, no signals from our process group
      stdio: ["ignore", out, out],
    });
    await new Promise<void>((resolve, reject) => {
      child.once("spawn", resolve);
      child.once("error", (error) =>
        reject(new Error(`could not start ${file}: ${error.message}`, { cause: error })),
      );
    });
    if (options.onEnd) child.once("exit", options.onEnd);
    child.unref();
    return child.pid as number;
  } finally {
    closeSync(out);
  }
}

/** The path of the executable `name` (a bare name is looked up on PATH), or undefined. */
export function findExecutable(name: string): string | undefined {
  const candidates = name.includes("/")
    ? [name]
    : (process.env.PATH ?? "").split(delimiter).map((dir) => join(dir || ".", name));
  for (const candidate of candidates) {
    try {
      accessSync(candidate, constants.X_OK);
      if (statSync(candidate).isFile()) return candidate;
    } catch {
      // Not here.
    }
  }
  return undefined;
}

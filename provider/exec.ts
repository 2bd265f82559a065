// Running external tools: one place that spawns processes, so every tool run gets the same
// treatment: output kept in a log file, the tail of it in errors, a timeout that kills the whole
// process tree, no tool outliving us, and an error message that names the command.
import { accessSync, constants, createWriteStream, statSync, type WriteStream } from "node:fs";
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

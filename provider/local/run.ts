// What local.Vm and local.Process share: a state directory per resource, the `waitFor` input,
// waiting for a started process's console, and what refresh and delete do to a run. Plain steps:
// checks return Problems, which resources/ turns into check failures.
import { randomBytes } from "node:crypto";
import { mkdir, readFile, rm, stat } from "node:fs/promises";
import { dirname, join } from "node:path";
import type { Problem } from "../../rules/problem";
import { isKnown } from "../../rules/values";
import { type SourceWait, waitProblems } from "../../rules/wait";
import {
  isRunning,
  type ProcessIdentity,
  stopBackground,
  type WatchResult,
  watchLog,
} from "../core/background";
import { cacheDir, privateDir } from "../core/cache";
import { sha256File } from "../core/hash";
import { RUN_TAG, recordRun, removeRun, sweepRuns } from "./run-records";

/** Wait until the console matches `console` (a regex source), for at most `timeoutSeconds`. */
export type WaitFor = Required<SourceWait>;

const DEFAULT_WAIT_SECONDS = 60;
/** How long a process without `waitFor` must stay up for create to call it started. */
const SETTLE_MS = 1000;
/** How many console lines the `console` output keeps. */
const CONSOLE_LINES = 20;

/** A `waitFor` input with its default, and what is wrong with it; undefined when not given. */
export function checkWaitFor(value: unknown): { waitFor?: WaitFor; problems: Problem[] } {
  if (value === undefined || value === null || !isKnown(value)) return { problems: [] };
  const given = value as Partial<WaitFor>;
  if (typeof given !== "object" || typeof given.console !== "string") {
    const reason = 'must be an object like { console: "Hello", timeoutSeconds: 60 }';
    return { problems: [{ property: "waitFor", reason }] };
  }
  const waitFor = {
    console: given.console,
    timeoutSeconds: given.timeoutSeconds ?? DEFAULT_WAIT_SECONDS,
  };
  const problems = waitProblems(
    { pattern: waitFor.console, timeoutSeconds: waitFor.timeoutSeconds },
    { pattern: "waitFor.console", timeoutSeconds: "waitFor.timeoutSeconds" },
  );
  return { waitFor, problems };
}

/** A local run being created: its resource id, its state directory, and what its processes carry. */
export interface NewRun {
  id: string;
  dir: string;
  /** The environment every process the run starts must be given (see run-records.ts). */
  env: Record<string, string>;
}

/** The cache's `run/` directory (`explicitCache`, else the default one: see core/cache.ts). */
const runRoot = (explicitCache?: string) => join(cacheDir(explicitCache), "run");

/**
 * create: a fresh resource id and its state directory under `run/` in the cache, recorded as
 * pending before anything is made (see run-records.ts), then `start`. When `start` fails, every
 * process it started and the directory go. The record goes last, just before returning, once
 * the result (the engine's state for the run) is complete.
 */
export async function createRun<T>(
  prefix: string,
  explicitCache: string | undefined,
  start: (run: NewRun) => Promise<T>,
): Promise<T> {
  const root = await privateDir(runRoot(explicitCache));
  await sweepRuns(root);
  const id = `${prefix}-${randomBytes(8).toString("hex")}`;
  const record = await recordRun(root, id);
  const dir = join(root, id);
  let result: T;
  try {
    await mkdir(dir);
    result = await start({ id, dir, env: { [RUN_TAG]: id } });
  } catch (error) {
    await removeRun(root, id, record);
    throw error;
  }
  await rm(record, { force: true });
  return result;
}

/** The first lines of a console log, without the CRs of a serial console. */
export async function consoleHead(logFile: string): Promise<string[]> {
  const text = await readFile(logFile, "utf8").catch(() => "");
  return text
    .split("\n")
    .map((line) => line.replace(/\r$/, ""))
    .slice(0, CONSOLE_LINES)
    .filter((line, index, lines) => line !== "" || index < lines.length - 1);
}

/**
 * Waits for a process just started: until its console matches `waitFor`, or, without `waitFor`,
 * until it has stayed up a moment. When it does not get there (or `failed` says why it cannot),
 * it is stopped and the error shows the console's tail, `details()` (what the launcher itself
 * printed) and where the logs are.
 */
export async function awaitStarted(
  what: string,
  id: ProcessIdentity,
  logFile: string,
  waitFor: WaitFor | undefined,
  details: () => Promise<string[]>,
  failed?: () => string | undefined,
): Promise<void> {
  const watched: WatchResult = await watchLog(logFile, {
    expect: waitFor ? new RegExp(waitFor.console) : undefined,
    timeoutMs: waitFor ? waitFor.timeoutSeconds * 1000 : SETTLE_MS,
    alive: () => isRunning(id),
    failed,
  });
  if (watched.outcome === "matched") return;
  if (!waitFor && watched.outcome === "timeout") return; // still running: started
  await stopBackground(id);
  const reason =
    watched.outcome === "failed"
      ? `${watched.failure}; it was stopped`
      : watched.outcome === "timeout"
        ? `its console did not match /${waitFor?.console}/ within ${waitFor?.timeoutSeconds} s (waitFor)`
        : waitFor
          ? `it exited before its console matched /${waitFor.console}/ (waitFor)`
          : "it exited at once";
  const stopped = watched.outcome === "timeout" ? "; it was stopped" : "";
  const parts = [`${what} failed to start: ${reason}${stopped}.`];
  if (watched.tail.length > 0)
    parts.push(`last ${watched.tail.length} console lines:\n${watched.tail.join("\n")}`);
  const extra = await details();
  if (extra.length > 0) parts.push(extra.join("\n"));
  parts.push(`console log: ${logFile}`);
  throw new Error(parts.join("\n"));
}

/** The identity outputs every running resource records. */
export interface RunOutputs extends ProcessIdentity {
  stateDir: string;
}

/** Sweeps the `run/` directory that holds a recorded run's state directory (read, delete). */
async function sweepBeside(props: RunOutputs): Promise<void> {
  if (props.stateDir) await sweepRuns(dirname(props.stateDir));
}

/**
 * Whether a recorded run's process still runs (refresh). A run that has died is gone for good:
 * the engine drops the resource and never calls delete, so its files go now.
 */
export async function runStillThere(props: RunOutputs): Promise<boolean> {
  await sweepBeside(props);
  if (isRunning(props)) return true;
  if (props.stateDir) await rm(props.stateDir, { recursive: true, force: true });
  return false;
}

/** delete: stops the process (never another one that reuses its pid) and removes its files. */
export async function deleteRun(props: RunOutputs): Promise<void> {
  await sweepBeside(props);
  await stopBackground(props);
  if (props.stateDir) await rm(props.stateDir, { recursive: true, force: true });
}

/**
 * check: the file a local run starts from (`kernel`, `image`), given by a resource with its
 * sha256, or as a bare path, hashed here so that its content decides replacement. Its sha256 is
 * undefined when there is a problem, or while the path is unknown at preview.
 */
export async function checkRunFile(
  property: string,
  value: unknown,
  sha256: string | undefined,
  expected: string,
): Promise<{ sha256?: string; problems: Problem[] }> {
  if (typeof value !== "string" || value === "")
    return { problems: [{ property, reason: `is required: ${expected}` }] };
  if (!isKnown(value) || sha256) return { sha256, problems: [] };
  const info = await stat(value).catch(() => undefined);
  if (info?.isFile()) return { sha256: await sha256File(value), problems: [] };
  const what = info ? "is not a file" : "does not exist";
  return { problems: [{ property, reason: `${value} ${what}: give ${expected}` }] };
}

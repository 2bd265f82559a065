// What local.Vm and local.Process share: a state directory per resource, the `waitFor` input,
// waiting for a started process's console, and the read/delete half of the lifecycle.
import { randomBytes } from "node:crypto";
import { mkdir, readFile, rm, stat } from "node:fs/promises";
import { dirname, join } from "node:path";
import type * as pulumi from "@pulumi/pulumi";
import {
  isRunning,
  type ProcessIdentity,
  stopBackground,
  type WatchResult,
  watchLog,
} from "./background";
import { cacheDir, privateDir } from "./cache";
import { sha256File } from "./hash";
import { BOUNDS, outOfBounds } from "./resources/bounds";
import { changedKeys, isKnown } from "./resources/inputs";
import { RUN_TAG, recordRun, removeRun, sweepRuns } from "./run-records";

/** Wait until the console matches `console` (a regex source), for at most `timeoutSeconds`. */
export interface WaitFor {
  console: string;
  timeoutSeconds: number;
}

const DEFAULT_WAIT_SECONDS = 60;
/** How long a process without `waitFor` must stay up for create to call it started. */
const SETTLE_MS = 1000;
/** How many console lines the `console` output keeps. */
const CONSOLE_LINES = 20;

/**
 * `value` without its undefined properties: the dynamic provider sends inputs and outputs as a
 * protobuf Struct, which cannot hold undefined ("Unexpected struct type").
 */
export function definedOnly<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as T;
}

/** Checks a `waitFor` input; returns it with defaults, or records why it is wrong. */
export function checkWaitFor(
  value: unknown,
  failures: pulumi.dynamic.CheckFailure[],
): WaitFor | undefined {
  if (value === undefined || value === null || !isKnown(value)) return undefined;
  const given = value as Partial<WaitFor>;
  if (typeof given !== "object" || typeof given.console !== "string") {
    failures.push({
      property: "waitFor",
      reason: 'waitFor must be an object like { console: "Hello", timeoutSeconds: 60 }',
    });
    return undefined;
  }
  if (isKnown(given.console)) {
    try {
      new RegExp(given.console);
    } catch (error) {
      failures.push({
        property: "waitFor.console",
        reason: `waitFor.console is not a valid regular expression: ${(error as Error).message}`,
      });
    }
  }
  const timeoutSeconds = given.timeoutSeconds ?? DEFAULT_WAIT_SECONDS;
  const reason = isKnown(timeoutSeconds) && outOfBounds(timeoutSeconds, BOUNDS.timeoutSeconds);
  if (reason)
    failures.push({
      property: "waitFor.timeoutSeconds",
      reason: `waitFor.timeoutSeconds ${reason}`,
    });
  return { console: given.console, timeoutSeconds };
}

/** A local run being created: its resource id, its state directory, and what its processes carry. */
export interface NewRun {
  id: string;
  dir: string;
  /** The environment every process the run starts must be given (see run-records.ts). */
  env: Record<string, string>;
}

/** The cache's `run/` directory (`explicitCache`, else the default one: see cache.ts). */
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

/** read: the resource as recorded while its process runs; gone (no id) once it has died. */
export async function readRun<T extends RunOutputs>(
  id: string,
  props: T,
): Promise<pulumi.dynamic.ReadResult<T>> {
  await sweepBeside(props);
  if (isRunning(props)) return { id, props };
  // Gone: the engine drops the resource and will never call delete, so its files go now.
  if (props.stateDir) await rm(props.stateDir, { recursive: true, force: true });
  return { id: "" };
}

/** delete: stops the process (never another one that reuses its pid) and removes its files. */
export async function deleteRun(props: RunOutputs): Promise<void> {
  await sweepBeside(props);
  await stopBackground(props);
  if (props.stateDir) await rm(props.stateDir, { recursive: true, force: true });
}

/**
 * diff, read, update and delete, the same for every local run. A running process cannot be
 * changed, so any input in `replacing` replaces it, the old one first (it may hold host ports the
 * new one needs); `waitFor` alone concerns a start that already happened and updates in place.
 */
export function runLifecycle<I extends { waitFor?: unknown }, O extends I & RunOutputs>(
  replacing: readonly (keyof I & string)[],
) {
  return {
    async diff(_id: string, olds: I, news: I): Promise<pulumi.dynamic.DiffResult> {
      const replaces = changedKeys({ ...olds }, { ...news }, replacing);
      const waitFor = changedKeys({ ...olds }, { ...news }, ["waitFor"]);
      return {
        changes: replaces.length > 0 || waitFor.length > 0,
        replaces,
        deleteBeforeReplace: true,
      };
    },
    read: (id: string, props: O) => readRun(id, props),
    async update(_id: string, olds: O, news: I) {
      return { outs: definedOnly({ ...olds, waitFor: news.waitFor }) };
    },
    delete: (_id: string, props: O) => deleteRun(props),
  };
}

/**
 * check: the file a local run starts from (`kernel`, `image`), given by a resource with its
 * sha256, or as a bare path, hashed here so that its content decides replacement. Returns the
 * sha256, or undefined (with a failure pushed, or while the path is unknown at preview).
 */
export async function checkRunFile(
  property: string,
  value: unknown,
  sha256: string | undefined,
  expected: string,
  failures: pulumi.dynamic.CheckFailure[],
): Promise<string | undefined> {
  if (typeof value !== "string" || value === "") {
    failures.push({ property, reason: `${property} is required: ${expected}` });
  } else if (isKnown(value) && !sha256) {
    // Already refused (e.g. not a disk image): nothing to hash.
    if (failures.some((failure) => failure.property === property)) return undefined;
    const info = await stat(value).catch(() => undefined);
    if (info?.isFile()) return sha256File(value);
    const what = info ? "is not a file" : "does not exist";
    failures.push({ property, reason: `${property} ${value} ${what}: give ${expected}` });
  }
  return sha256;
}

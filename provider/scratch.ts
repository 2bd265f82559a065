// Scratch space. Every temporary directory this package makes lives in one directory per process
// and parent directory, the process's "area": `pulumi-mirage-PID-START-XXXXXX` in the system's
// temporary directory, `.scratch-PID-START-XXXXXX` in a directory of the caller's choosing (an
// image's --out, the cache's work/: where results move into place by rename, which needs the
// same file system). PID and START (the process's start time) name the owner, so a pid the kernel
// has handed to another process is not taken for it; the random tail keeps others from making
// the directory before us in a shared /tmp.
//
// An area is made on first use, removed when the process exits (normally, or by SIGINT, SIGTERM
// or SIGHUP, before the signal is raised again so the process still dies of it), and swept by the
// next process that makes an area in the same parent once its owner is gone (kill -9, a crash).
import { rmSync } from "node:fs";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { isRunning, processStartTime } from "./background";
import { processAlive } from "./lock";

const SIGNALS: NodeJS.Signals[] = ["SIGINT", "SIGTERM", "SIGHUP"];

/** In the shared temporary directory the area says whose it is; elsewhere it stays out of sight. */
const prefixFor = (parent: string | undefined) =>
  parent === undefined ? "pulumi-mirage-" : ".scratch-";

/** This process's areas by parent directory, as they are being made. */
const areas = new Map<string, Promise<string>>();
/** The areas made, removed when the process ends. */
const made = new Set<string>();

/** This process's start time; undefined where /proc does not give it (then owners are by pid). */
const startTime = processStartTime(process.pid);

/** Whether the owner of an area named with `pid` and `start` still runs. */
function ownerRuns(pid: number, start: number): boolean {
  return startTime === undefined ? processAlive(pid) : isRunning({ pid, startTime: start });
}

/** Removes the areas in `parent` whose owners are gone; areas it cannot remove are left. */
async function sweep(parent: string, prefix: string): Promise<void> {
  const pattern = new RegExp(`^${prefix.replaceAll(".", "\\.")}(\\d+)-(\\d+)-[A-Za-z0-9]{6}$`);
  for (const name of await readdir(parent).catch(() => [])) {
    const owner = pattern.exec(name);
    if (owner && !ownerRuns(Number(owner[1]), Number(owner[2])))
      await rm(join(parent, name), { recursive: true, force: true }).catch(() => {});
  }
}

/** Removes every area this process made (synchronous: it runs on the way out). */
function removeAreas(): void {
  for (const area of made) rmSync(area, { recursive: true, force: true });
  made.clear();
  areas.clear();
}

/**
 * Listeners that handle a signal themselves (a command that stops its build and exits) keep the
 * process alive, and then the exit hook removes the areas. Listeners that clean up and raise the
 * signal again once no one else listens (killOnExit in background.ts) leave us last: then the
 * process is about to die of the signal, so the areas go now and the signal is raised again. The
 * check waits until every listener of this signal has run, whatever their order.
 */
function onSignal(signal: NodeJS.Signals): void {
  process.nextTick(() => {
    if (process.listeners(signal).some((listener) => listener !== onSignal)) return;
    removeAreas();
    unhook();
    process.kill(process.pid, signal);
  });
}

let hooked = false;
function hook(): void {
  if (hooked) return;
  hooked = true;
  process.on("exit", removeAreas);
  for (const signal of SIGNALS) process.on(signal, onSignal);
}
function unhook(): void {
  hooked = false;
  process.off("exit", removeAreas);
  for (const signal of SIGNALS) process.off(signal, onSignal);
}

/** Makes this process's area in `parent`, sweeping the areas of gone owners there first. */
async function makeArea(parent: string | undefined): Promise<string> {
  const where = resolve(parent ?? tmpdir());
  const prefix = prefixFor(parent);
  await sweep(where, prefix);
  hook();
  const area = await mkdtemp(join(where, `${prefix}${process.pid}-${startTime ?? 0}-`));
  made.add(area);
  return area;
}

/** This process's area in `parent` (default: the system's temporary directory), made on first use. */
export async function scratchArea(parent?: string): Promise<string> {
  const key = resolve(parent ?? tmpdir());
  let area = areas.get(key);
  if (!area) {
    area = makeArea(parent);
    areas.set(key, area);
    // A failure (an unwritable parent) is not remembered: the next call tries again.
    area.catch(() => areas.delete(key));
  }
  return area;
}

/** A scratch directory's name, and the directory its area is in (default: the system's temporary one). */
export interface ScratchPlace {
  name: string;
  parent?: string;
}

/**
 * A fresh directory `NAME-XXXXXX` in this process's area in `parent`. Remove it when done;
 * whatever is left goes with the area.
 */
export async function scratchDir(place: ScratchPlace): Promise<string> {
  return mkdtemp(join(await scratchArea(place.parent), `${place.name}-`));
}

/** Runs `work` in a fresh scratch directory (see scratchDir), removed afterwards whatever happens. */
export async function withScratch<T>(
  place: ScratchPlace,
  work: (dir: string) => Promise<T>,
): Promise<T> {
  const dir = await scratchDir(place);
  try {
    return await work(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

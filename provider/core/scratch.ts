// Scratch space. Every temporary directory this package makes lives in a directory of the
// process's own in its parent directory, the process's "area": `pulumi-mirage-PID-START-XXXXXX` in
// the system's temporary directory, `.scratch-PID-START-XXXXXX` in a directory of the caller's
// choosing (an image's --out, the cache's work/: where results move into place by rename, which
// needs the same file system). PID and START (the process's start time) name the owner, so a pid
// the kernel has handed to another process is not taken for it; the random tail keeps others from
// making the directory before us in a shared /tmp.
//
// An area is made when a scratch directory is first needed there and removed when the last one
// there is done, or when the process ends, a signal included (on-exit.ts). Areas whose owner is
// gone (kill -9, a crash) are swept by the next process that makes an area in the same parent.
import { rmSync } from "node:fs";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { isRunning, processStartTime } from "./background";
import { processAlive } from "./lock";
import { onExit } from "./on-exit";

/** In the shared temporary directory the area says whose it is; elsewhere it stays out of sight. */
const prefixFor = (parent: string | undefined) =>
  parent === undefined ? "pulumi-mirage-" : ".scratch-";

/** An area of this process: once made, its path and what forgets its removal at exit. */
interface Area {
  made: Promise<{ path: string; forget: () => void }>;
  users: number;
}
/** This process's areas, by parent directory and prefix (PARENT/PREFIX). */
const areas = new Map<string, Area>();

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

/** Makes this process's area in `parent`, sweeping the areas of gone owners there first. */
async function makeArea(parent: string, prefix: string): Promise<Awaited<Area["made"]>> {
  await sweep(parent, prefix);
  const path = await mkdtemp(join(parent, `${prefix}${process.pid}-${startTime ?? 0}-`));
  const forget = onExit(() => rmSync(path, { recursive: true, force: true }));
  return { path, forget };
}

/** A scratch directory's name, and the directory its area is in (default: the system's temporary one). */
export interface ScratchPlace {
  name: string;
  parent?: string;
}

/**
 * Runs `work` in a fresh directory `NAME-XXXXXX` in this process's area in `parent`, removed
 * afterwards whatever happens; the area goes too when no other scratch directory is in it.
 */
export async function withScratch<T>(
  place: ScratchPlace,
  work: (dir: string) => Promise<T>,
): Promise<T> {
  const parent = resolve(place.parent ?? tmpdir());
  const prefix = prefixFor(place.parent);
  const key = join(parent, prefix);
  let area = areas.get(key);
  if (!area) {
    area = { made: makeArea(parent, prefix), users: 0 };
    areas.set(key, area);
  }
  area.users++;
  try {
    const dir = await mkdtemp(join((await area.made).path, `${place.name}-`));
    try {
      return await work(dir);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  } finally {
    area.users--;
    // Forgotten at once, so a scratch directory asked for meanwhile gets a new area.
    if (area.users === 0 && areas.get(key) === area) {
      areas.delete(key);
      const made = await area.made.catch(() => undefined);
      if (made !== undefined) {
        await rm(made.path, { recursive: true, force: true });
        made.forget();
      }
    }
  }
}

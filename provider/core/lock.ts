// A lock file guarding a shared directory (the cache, an output folder) across processes: the
// dynamic provider runs many resources at once, and several Pulumi stacks may share one cache.
// The file names its holder by pid and start time (/proc), so a pid the kernel has handed to
// another process since the holder died does not keep holding it.
import { open, readFile, rm } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { isRunning, processStartTime } from "./background";

const POLL_MS = 50;

/** Whether process `pid` still runs (EPERM: it does, as another user). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** What this process writes into a lock it takes: `PID START` (`PID` where /proc says nothing). */
function ownerRecord(): string {
  const start = processStartTime(process.pid);
  return start === undefined ? String(process.pid) : `${process.pid} ${start}`;
}

/** Whether the holder a lock file names is alive: the same pid and, when recorded, start time. */
function holderRuns(record: string): boolean {
  const match = /^(\d+)(?: (\d+))?$/.exec(record.trim());
  // Empty: the holder has made the file and is about to write its name.
  if (!match) return true;
  const pid = Number(match[1]);
  return match[2] === undefined
    ? processAlive(pid)
    : isRunning({ pid, startTime: Number(match[2]) });
}

export interface LockOptions {
  /** Give up with a clear error after this long. Default: an hour. */
  timeoutMs?: number;
  /** Aborting stops the wait at once (Ctrl-C); the lock is not taken. */
  signal?: AbortSignal;
  /** Called once, when the lock is found held by a live process: what we are waiting for. */
  onWait?: (message: string) => void;
}

/**
 * Runs `work` while holding the lock file at `path` (created with O_EXCL, naming this process).
 * Waits for another holder, breaking the lock of one that is gone.
 */
export async function withLock<T>(
  path: string,
  work: () => Promise<T>,
  options: LockOptions = {},
): Promise<T> {
  const { signal, onWait } = options;
  const deadline = Date.now() + (options.timeoutMs ?? 60 * 60 * 1000);
  let told = false;
  for (;;) {
    signal?.throwIfAborted();
    try {
      const handle = await open(path, "wx");
      await handle.writeFile(ownerRecord());
      await handle.close();
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
      const record = await readFile(path, "utf8").catch(() => "");
      if (!holderRuns(record)) {
        await rm(path, { force: true });
        continue;
      }
      if (Date.now() > deadline) {
        throw new Error(
          `timed out waiting for the lock ${path}; if no build is running, remove it`,
        );
      }
      if (!told) {
        told = true;
        const holder = record.trim().split(" ")[0];
        onWait?.(
          `waiting for ${path}, held by ${holder ? `process ${holder}` : "another process"}`,
        );
      }
      await sleep(POLL_MS, undefined, { signal });
    }
  }
  try {
    return await work();
  } finally {
    await rm(path, { force: true });
  }
}

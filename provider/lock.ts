// A lock file guarding a shared directory (the cache, an output folder) across processes: the
// dynamic provider runs many resources at once, and several Pulumi stacks may share one cache.
import { open, readFile, rm } from "node:fs/promises";

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

/** Removes the lock file if the process that wrote it is gone (it crashed holding the lock). */
async function breakIfStale(path: string): Promise<void> {
  const pid = Number.parseInt(await readFile(path, "utf8").catch(() => ""), 10);
  if (Number.isInteger(pid) && pid > 0 && !processAlive(pid)) await rm(path, { force: true });
}

/**
 * Runs `work` while holding the lock file at `path` (created with O_EXCL, holding our pid).
 * Waits for another holder; gives up with a clear error after `timeoutMs`.
 */
export async function withLock<T>(
  path: string,
  work: () => Promise<T>,
  timeoutMs = 60 * 60 * 1000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const handle = await open(path, "wx");
      await handle.writeFile(String(process.pid));
      await handle.close();
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
      await breakIfStale(path);
      if (Date.now() > deadline) {
        throw new Error(
          `timed out waiting for the lock ${path}; if no build is running, remove it`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
  }
  try {
    return await work();
  } finally {
    await rm(path, { force: true });
  }
}

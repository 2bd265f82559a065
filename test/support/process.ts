// Watching processes from tests: whether one is still there, waiting for a condition, and
// killing what a test started when its file ends, passed or failed.
import type { ChildProcess } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { after } from "node:test";
import { processAlive } from "../../provider/core/lock";

/** Whether a process is still there. */
export { processAlive as alive } from "../../provider/core/lock";

/** Polls `condition` every 50 ms until it holds; fails naming `what` after `ms`. */
export async function waitFor(
  what: string,
  condition: () => boolean | Promise<boolean>,
  ms: number,
): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/**
 * Processes other than node whose command line mentions `text`: the tools and QEMUs our code
 * starts are given our paths.
 */
export function processesMentioning(text: string): string[] {
  const found: string[] = [];
  for (const pid of readdirSync("/proc").filter((name) => /^\d+$/.test(name))) {
    let cmdline: string;
    try {
      cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8").replaceAll("\0", " ");
    } catch {
      continue; // gone meanwhile
    }
    if (cmdline.includes(text) && !cmdline.includes("node")) found.push(`${pid}: ${cmdline}`);
  }
  return found;
}

/** Whether process `pid` was started with `entry` (`NAME=value`) in its environment. */
export function carries(pid: number, entry: string): boolean {
  try {
    return readFileSync(`/proc/${pid}/environ`, "latin1").split("\0").includes(entry);
  } catch {
    return false; // gone, or another user's
  }
}

function kill(target: number): void {
  try {
    process.kill(target, "SIGKILL");
  } catch {
    // Already gone.
  }
}

/**
 * Kills (SIGKILL) each of `pids` still running with `entry` in its environment: processes a test
 * learned of but did not start itself (a pid since reused by another process is left alone).
 */
export async function killCarrying(pids: readonly number[], entry: string): Promise<void> {
  const ours = pids.filter((pid) => carries(pid, entry));
  for (const pid of ours) kill(pid);
  await waitFor("killed processes to go", () => !ours.some(processAlive), 10_000).catch(() => {});
}

/** The processes a test file starts, recorded as they start, killed by the file's `after` hook. */
export class Started {
  private readonly children: ChildProcess[] = [];
  private constructor() {}

  static forThisFile(): Started {
    const started = new Started();
    after(() => started.killAll());
    return started;
  }

  /** Records `child` (and its process group, when it leads one); returns it. */
  add<T extends ChildProcess>(child: T): T {
    this.children.push(child);
    return child;
  }

  private async killAll(): Promise<void> {
    // A child not yet reaped still owns its pid, so the kill cannot reach anyone else's process.
    const running = this.children.filter(
      (c) => c.pid !== undefined && c.exitCode === null && c.signalCode === null,
    );
    const exited = running.map((c) => new Promise((resolve) => c.once("exit", resolve)));
    for (const { pid } of running) {
      kill(-(pid as number));
      kill(pid as number);
    }
    await Promise.all(exited);
  }
}

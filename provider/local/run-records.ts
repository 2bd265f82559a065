// Pending records of local runs (local.Vm, local.Process): a create records itself in the cache
// before it makes anything or starts any process, so a provider killed at any moment of a create
// (SIGKILL, the OOM killer) leaves nothing that nobody will ever stop. The Pulumi engine never
// learns the id of a create that died, so it never calls delete for it: the cleanup is ours.
//
//   run/ID.pending.PID.START  the record: an empty file whose name says who creates run ID (the
//                             provider's pid and start time, so a reused pid is not taken for
//                             it). Created with O_EXCL, it is complete the moment it exists: there
//                             is no content to write half, and no temporary file to leave behind.
//   run/ID/                   the run's state directory, made after the record.
//
// Every process a run starts carries RUN_TAG=ID in its environment, which its own children
// inherit, so a sweep finds them through /proc/PID/environ even when the creator died between the
// fork and learning the pid. When create succeeds the record is removed just before it returns,
// and the engine's state owns the run from then on (read, delete); when create fails the run is
// removed as a sweep would remove it.
//
// A sweep (at the start of every local run's create, read and delete) lists `run/`: costless
// when no record is there. For each record whose creator is gone it kills the processes tagged
// with ID (with their process groups), removes run/ID/, and removes the record last, so a sweep
// that dies halfway is finished by the next one. Each step is idempotent: two providers sweeping
// at once are harmless.
//
// One window is left: between removing the record and the engine storing create's response (the
// reply in flight, the engine writing its checkpoint). A provider killed there leaves a run no one
// records. Keeping the record longer would not close it: a sweep could not tell a run the engine
// stored from one it never heard of.
import { open, readdir, rm } from "node:fs/promises";
import { join } from "node:path";
import {
  isRunning,
  type ProcessIdentity,
  processesCarrying,
  selfIdentity,
} from "../core/background";
import { killTree } from "../core/exec";

/** The environment variable naming the run a process was started for. */
export const RUN_TAG = "PULUMI_MIRAGE_RUN";

/** A record's name: run id (PREFIX-16 hex digits, never a path), creator pid and start time. */
const RECORD = /^([a-z]+-[0-9a-f]{16})\.pending\.(\d+)\.(\d+)$/;
/** How long the processes of a dead run get to go after SIGKILL. */
const KILL_WAIT_MS = 10_000;

/** Records run `id` in `root` (the cache's run/) as being created by this process; returns the record's path. */
export async function recordRun(root: string, id: string): Promise<string> {
  const creator = selfIdentity();
  const record = join(root, `${id}.pending.${creator.pid}.${creator.startTime}`);
  await (await open(record, "wx")).close();
  return record;
}

/** Removes what the unfinished runs in `root` whose creator is gone left: processes, files, record. */
export async function sweepRuns(root: string): Promise<void> {
  const names = await readdir(root).catch((error: NodeJS.ErrnoException) => {
    if (error.code === "ENOENT") return [];
    throw error;
  });
  for (const name of names) {
    const match = RECORD.exec(name);
    if (!match) continue;
    const creator: ProcessIdentity = { pid: Number(match[2]), startTime: Number(match[3]) };
    if (!isRunning(creator)) await removeRun(root, match[1], join(root, name));
  }
}

/** Stops every process of run `id`, then removes its directory, then its record. */
export async function removeRun(root: string, id: string, record: string): Promise<void> {
  await killTagged(id);
  await rm(join(root, id), { recursive: true, force: true, maxRetries: 3 });
  await rm(record, { force: true });
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * SIGKILLs the processes tagged with run `id` and their process groups (each started as a group
 * leader), until none is left: a dying one may have forked. A pid is signalled just after its
 * tag was read, so a pid reused by another process is not hit.
 */
async function killTagged(id: string): Promise<void> {
  const deadline = Date.now() + KILL_WAIT_MS;
  for (;;) {
    const tagged = processesCarrying(`${RUN_TAG}=${id}`).filter(isRunning);
    if (tagged.length === 0) return;
    if (Date.now() > deadline)
      throw new Error(
        `the processes of the interrupted run ${id} (pids ${tagged.map((p) => p.pid).join(", ")}) did not stop after SIGKILL`,
      );
    for (const { pid } of tagged) {
      killTree(pid, "SIGKILL"); // its group, when it leads one
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // Gone meanwhile.
      }
    }
    await sleep(50);
  }
}

// kill -9 of the dynamic provider in the middle of a local.Vm or local.Process create: the engine
// never learns the run's id and will never delete it, so the next provider that touches the cache
// (a create, a read or a delete of any other local run) must stop what the dead create started and
// remove its files. The moment to kill is found from outside, as a user would see it: the cache's
// run/ directory, /proc, the console log.
import assert from "node:assert/strict";
import { type Dirent, readdirSync, readFileSync, readlinkSync, statSync } from "node:fs";
import { copyFile, mkdir, mkdtemp, readdir, rm, truncate, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { after, before, describe, test } from "node:test";
import {
  isRunning,
  selfIdentity,
  startBackground,
  stopBackground,
} from "../provider/core/background";
import { run } from "../provider/core/exec";
import { RUN_TAG, recordRun, sweepRuns } from "../provider/local/run-records";
import type { EngineModule } from "../sdk/engine";
import { bootSectorDisk } from "./support/boot-sector";
import { type DynamicProvider, type Props, startDynamicProvider } from "./support/dynamic-provider";
import { testUnixProgram } from "./support/kernels";
import { waitFor } from "./support/process";

/** Generous: QEMU runs under TCG on loaded machines. */
const DEADLINE_MS = 5 * 60 * 1000;
/** A console pattern no guest here prints: create stays in its waitFor until it is killed. */
const NEVER = { console: "this line is never printed", timeoutSeconds: 3600 };

interface Found {
  pid: number;
  command: string;
}

/**
 * The live processes started for a path under `under`: named on their command line (QEMU names
 * its state directory) or running there (a local.Process runs in its state directory).
 */
function processesUnder(under: string): Found[] {
  const found: Found[] = [];
  for (const name of readdirSync("/proc").filter((entry) => /^\d+$/.test(entry))) {
    const pid = Number(name);
    if (pid === process.pid) continue;
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      if (/^[ZX]/.test(stat.slice(stat.lastIndexOf(")") + 2))) continue; // exited
      const command = readFileSync(`/proc/${pid}/cmdline`, "utf8").replaceAll("\0", " ");
      const cwd = readlinkSync(`/proc/${pid}/cwd`);
      if (command.includes(under) || cwd.startsWith(under)) found.push({ pid, command });
    } catch {
      // Gone meanwhile.
    }
  }
  return found;
}

const qemuUnder = (under: string) =>
  processesUnder(under).filter(({ command }) => command.includes("qemu-system"));

/** The entries of the cache's run/ directory (none when it does not exist). */
const runEntries = async (cacheDir: string) =>
  readdir(join(cacheDir, "run")).catch(() => [] as string[]);

/** The text of every run's console log in the cache so far. */
function consoles(cacheDir: string): string {
  const root = join(cacheDir, "run");
  let text = "";
  let entries: Dirent[];
  try {
    entries = readdirSync(root, { withFileTypes: true });
  } catch {
    return ""; // no run/ yet
  }
  for (const entry of entries) {
    if (!entry.isDirectory()) continue;
    try {
      text += readFileSync(join(root, entry.name, "console.log"), "utf8");
    } catch {
      // Not written yet.
    }
  }
  return text;
}

let dir: string;
let forever: string;
/** A gzip'd tar of a disk with 256 MiB of zeros stored as data: extracting it takes a while. */
let slowTarball: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), "faults-crash-"));
  forever = await bootSectorDisk(dir, "forever", "Hello from a VM that keeps running\n", "run");
  const image = join(dir, "image");
  await mkdir(image);
  const disk = join(image, "disk.raw");
  await copyFile(forever, disk);
  // 256 MiB of written zeros (stored: tar finds holes, not zeros), then a hole to 1 GiB, the
  // least a GCE disk.raw may be.
  await run("dd", ["if=/dev/zero", `of=${disk}`, "bs=1M", "seek=1", "count=255", "conv=notrunc"]);
  await truncate(disk, 1024 ** 3);
  slowTarball = join(dir, "slow.tar.gz");
  await run("tar", ["--format=oldgnu", "-Sczf", slowTarball, "-C", image, "disk.raw"]);
  await rm(image, { recursive: true, force: true });
});
after(async () => {
  // A failing test may have left what it checks for: kill it before removing the files.
  const left = processesUnder(dir);
  for (const { pid } of left) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // Gone meanwhile.
    }
  }
  await waitFor("leftover processes to go", () => processesUnder(dir).length === 0, 30_000);
  await rm(dir, { recursive: true, force: true });
  assert.deepEqual(left, []);
});

/**
 * Starts a create of `module` in a provider of its own and SIGKILLs that provider (its pid only,
 * as the OOM killer would) once `moment()` holds. The create must not have finished.
 */
async function killDuringCreate(
  module: EngineModule,
  news: Props,
  moment: () => boolean | Promise<boolean>,
  atKill: () => void = () => {},
): Promise<void> {
  const provider = await startDynamicProvider();
  try {
    const { inputs, failures } = await provider.check(module, {}, news);
    assert.deepEqual(failures, []);
    let settled = false;
    const creating = provider.create(module, inputs).then(
      () => "created",
      (error: Error) => error,
    );
    creating.finally(() => {
      settled = true;
    });
    await waitFor(
      "the moment to kill the provider",
      async () => {
        if (settled) throw new Error(`create ended before the kill: ${await creating}`);
        return moment();
      },
      DEADLINE_MS,
    );
    atKill();
    process.kill(provider.pid, "SIGKILL");
    assert.ok((await creating) instanceof Error, "the killed create did not fail");
  } finally {
    await provider.stop();
  }
}

/** A run that is gone (its process died): reading or deleting it is what a refresh or destroy does. */
const goneRun = (cacheDir: string): Props => ({
  stateDir: join(cacheDir, "run", "vm-0000000000000000"),
  pid: 2 ** 22 + 1, // above Linux's pid_max: no such process
  startTime: 1,
});

/** Nothing of the killed create is left: no process, nothing in the cache's run/. */
async function assertNothingLeft(cacheDir: string): Promise<void> {
  assert.deepEqual(processesUnder(cacheDir), []);
  assert.deepEqual(await runEntries(cacheDir), []);
}

/** Runs `work` with a fresh provider, stopped afterwards. */
async function withProvider(work: (provider: DynamicProvider) => Promise<void>): Promise<void> {
  const provider = await startDynamicProvider();
  try {
    await work(provider);
  } finally {
    await provider.stop();
  }
}

describe("kill -9 of the provider during a local.Vm create", () => {
  test("before QEMU runs: the next create cleans up, and its own VM runs", async () => {
    const cacheDir = join(dir, "cache-before-qemu");
    await killDuringCreate(
      "local-vm",
      { image: slowTarball, waitFor: NEVER, cacheDir },
      async () => (await runEntries(cacheDir)).length > 0,
      () => assert.deepEqual(qemuUnder(cacheDir), [], "QEMU ran before the kill"),
    );
    await withProvider(async (provider) => {
      const { inputs } = await provider.check(
        "local-vm",
        {},
        { image: forever, waitFor: { console: "keeps running", timeoutSeconds: 600 }, cacheDir },
      );
      const { id, outs } = await provider.create("local-vm", inputs);
      // Only the new VM's directory is there; the killed create's is gone.
      assert.deepEqual(await runEntries(cacheDir), [id]);
      await provider.delete("local-vm", id, outs);
    });
    await assertNothingLeft(cacheDir);
  });

  test("once QEMU runs, before its console said anything: a read of another VM cleans up", async () => {
    const cacheDir = join(dir, "cache-qemu-silent");
    await killDuringCreate(
      "local-vm",
      { image: forever, waitFor: NEVER, cacheDir },
      () => qemuUnder(cacheDir).length > 0,
      () => assert.equal(consoles(cacheDir), "", "the console spoke before the kill"),
    );
    await withProvider(async (provider) => {
      const read = await provider.read("local-vm", "vm-0000000000000000", goneRun(cacheDir));
      assert.equal(read.id, "");
    });
    await assertNothingLeft(cacheDir);
  });

  test("while waiting for its console, which has spoken: a delete of another VM cleans up", async () => {
    const cacheDir = join(dir, "cache-qemu-spoke");
    await killDuringCreate("local-vm", { image: forever, waitFor: NEVER, cacheDir }, () =>
      consoles(cacheDir).includes("keeps running"),
    );
    await withProvider((provider) =>
      provider.delete("local-vm", "vm-0000000000000000", goneRun(cacheDir)),
    );
    await assertNothingLeft(cacheDir);
  });
});

describe("kill -9 of the provider during a local.Process create", () => {
  test("once the program runs and printed: the next create cleans up", async () => {
    const cacheDir = join(dir, "cache-process");
    const kernel = await testUnixProgram();
    const news = { kernel, target: "unix", args: ["--serve"], cacheDir };
    await killDuringCreate("local-process", { ...news, waitFor: NEVER }, () =>
      consoles(cacheDir).includes("Command line is: '--serve'"),
    );
    assert.equal(processesUnder(cacheDir).length, 1, "the program did not outlive its provider");
    await withProvider(async (provider) => {
      const { inputs } = await provider.check(
        "local-process",
        {},
        { ...news, waitFor: { console: "^Command line is: '--serve'$", timeoutSeconds: 120 } },
      );
      const { id, outs } = await provider.create("local-process", inputs);
      assert.deepEqual(await runEntries(cacheDir), [id]);
      assert.equal(statSync(join(cacheDir, "run", id)).isDirectory(), true);
      await provider.delete("local-process", id, outs);
    });
    await assertNothingLeft(cacheDir);
  });
});

describe("the sweep of interrupted runs", () => {
  test("removes a dead creator's run, processes first; two at once are harmless; a live creator's run stays", async () => {
    const root = join(dir, "cache-sweep", "run");
    await mkdir(root, { recursive: true });
    const me = selfIdentity();
    // Our own pid with another start time: a creator whose pid the kernel has handed on.
    const gone = { pid: me.pid, startTime: me.startTime + 1 };
    const dead = "vm-00000000000000d1";
    const live = "vm-00000000000000a1";
    await mkdir(join(root, dead));
    await mkdir(join(root, live));
    await writeFile(join(root, `${dead}.pending.${gone.pid}.${gone.startTime}`), "");
    const liveRecord = await recordRun(root, live);
    const start = (id: string) =>
      startBackground("sleep", ["600"], {
        logFile: join(root, id, "console.log"),
        env: { [RUN_TAG]: id },
      });
    const orphan = await start(dead);
    const ours = await start(live);
    try {
      await Promise.all([sweepRuns(root), sweepRuns(root)]);
      assert.equal(isRunning(orphan), false, "the dead creator's process runs on");
      assert.equal(isRunning(ours), true, "a live creator's process was stopped");
      assert.deepEqual((await readdir(root)).sort(), [live, basename(liveRecord)].sort());
    } finally {
      await stopBackground(orphan);
      await stopBackground(ours);
    }
  });
});

// The fault matrix (issue 13), scratch and results: a killed `image` or `boot` leaves its scratch
// area only until the next run sweeps it; a caught signal or a normal end leaves nothing; two
// `image` runs into one --out never leave a disk.raw and an image.tar.gz of different runs; an
// unwritable --out is said in words, naming it. Every CLI run gets a TMPDIR of its own: other
// test files make scratch areas in the run's TMPDIR at the same time.
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { mkdir, readdir } from "node:fs/promises";
import { join } from "node:path";
import { describe, test } from "node:test";
import { promisify } from "node:util";
import { processStartTime } from "../provider/core/background";
import { blockMap, mapDigest } from "../provider/core/block-map";
import { run } from "../provider/core/exec";
import { sha256File } from "../provider/core/hash";
import { withScratch } from "../provider/core/scratch";
import { bootSectorDisk } from "./support/boot-sector";
import { CLI, type CliRun, type Ended, imageArgv, startCli } from "./support/cli";
import { testKernel } from "./support/kernels";
import { processesMentioning, Started, waitFor } from "./support/process";
import { Scratch } from "./support/scratch";

const exec = promisify(execFile);
const scratch = Scratch.forThisFile("faults-scratch-test-");
const started = Started.forThisFile();
/** A safety net for what takes seconds (a TCG boot, a build) on a loaded machine. */
const PATIENCE_MS = 10 * 60 * 1000;

/** Starts `node ARGV...` with `TMPDIR=tmp`; the file's end kills it if it still runs. */
function inTmp(argv: string[], tmp: string): CliRun {
  const cli = startCli(argv, { TMPDIR: tmp });
  started.add(cli.child);
  return cli;
}

/** Waits until what `cli` printed matches `pattern` (failing, with its output, if it ends first). */
async function printed(cli: CliRun, pattern: RegExp): Promise<void> {
  await waitFor(
    `the output to match ${pattern}`,
    () => {
      const { stdout, stderr } = cli.output();
      if (cli.child.exitCode !== null || cli.child.signalCode !== null)
        assert.fail(`the command ended before printing ${pattern}:\n${stdout}\n${stderr}`);
      return pattern.test(stdout);
    },
    PATIENCE_MS,
  );
}

/** Waits until no process (a tool, QEMU) is left working on paths under `dir`. */
async function quiet(dir: string): Promise<void> {
  await waitFor(
    `the processes using ${dir} to end`,
    () => processesMentioning(dir).length === 0,
    PATIENCE_MS,
  );
}

/** The scratch in `dir`: areas (provider/core/scratch.ts) in an --out or a TMPDIR. */
const scratchIn = async (dir: string) =>
  (await readdir(dir)).filter((name) => /^(\.scratch|pulumi-mirage)-/.test(name));

/** Waits until `image` is building: its scratch directory is in its area in `outDir`. */
async function buildUnderWay(image: CliRun, outDir: string): Promise<void> {
  await waitFor(
    "the build's scratch directory",
    async () => {
      if (image.child.exitCode !== null) assert.fail(`image ended first: ${image.output().stderr}`);
      for (const area of await scratchIn(outDir))
        if ((await readdir(join(outDir, area)).catch(() => [])).length > 0) return true;
      return false;
    },
    PATIENCE_MS,
  );
}

/** A GCE-style image.tar.gz whose disk prints "up and running" and keeps running. */
async function foreverArchive(): Promise<string> {
  const dir = await scratch.fresh();
  const disk = await bootSectorDisk(dir, "forever", "up and running\n", "run");
  await run("mkdir", [join(dir, "gce")]);
  await run("cp", ["--sparse=always", disk, join(dir, "gce", "disk.raw")]);
  await run("truncate", ["-s", "1G", join(dir, "gce", "disk.raw")]);
  const archive = join(dir, "image.tar.gz");
  await run("tar", ["--format=oldgnu", "-Sczf", archive, "-C", join(dir, "gce"), "disk.raw"]);
  return archive;
}

describe("scratch areas (case 4, 10)", () => {
  test("a new area sweeps those of gone owners, a reused pid included, and keeps live ones", async () => {
    const parent = await scratch.fresh();
    const sleeper = started.add(spawn("sleep", ["600"], { stdio: "ignore" }));
    const sleeperStart = processStartTime(sleeper.pid as number);
    const mine = processStartTime(process.pid);
    // Owners: a live process, a pid that no process has (pid_max is at most 2^22), and this
    // process's pid with another start time: the pid reused after its owner died.
    const live = `.scratch-${sleeper.pid}-${sleeperStart}-AAAAAA`;
    const gone = `.scratch-${2 ** 22 + 1}-1-BBBBBB`;
    const reused = `.scratch-${process.pid}-${Number(mine) - 1}-CCCCCC`;
    for (const name of [live, gone, reused])
      await mkdir(join(parent, name, "inside"), { recursive: true });
    const during = await withScratch({ name: "x", parent }, () => readdir(parent));
    const own = during.filter((name) => name !== live);
    assert.ok(during.includes(live), during.join(" "));
    assert.equal(own.length, 1, during.join(" "));
    assert.match(own[0], new RegExp(`^\\.scratch-${process.pid}-${mine}-`), "this process's own");
    assert.deepEqual(await readdir(parent), [live], "its own area goes when its work is done");
    sleeper.kill("SIGKILL");
  });

  test("kill -9 of image mid-build leaves its area, which the next image into that --out sweeps", async () => {
    const outDir = await scratch.fresh();
    const kernel = await testKernel("virtio");
    const killed = inTmp(imageArgv(kernel, outDir), await scratch.fresh());
    await buildUnderWay(killed, outDir);
    killed.child.kill("SIGKILL");
    assert.equal((await killed.ended).signal, "SIGKILL", killed.output().stderr);
    // The tools it started run on in their own process groups until they finish.
    await quiet(outDir);
    assert.notDeepEqual(await scratchIn(outDir), [], "the killed build left its scratch");

    await exec("node", imageArgv(kernel, outDir), {
      env: { ...process.env, TMPDIR: await scratch.fresh() },
    });
    assert.deepEqual(await readdir(outDir), ["disk.raw"]);
  });

  test("kill -9 of boot on a .tar.gz leaves its area, which the next boot sweeps", async () => {
    const archive = await foreverArchive();
    const tmp = await scratch.fresh();
    const killed = inTmp([CLI, "boot", archive, "--timeout", "600"], tmp);
    await printed(killed, /up and running/);
    killed.child.kill("SIGKILL");
    assert.equal((await killed.ended).signal, "SIGKILL");
    // QEMU goes by its parent-death signal, asynchronously.
    await quiet(tmp);
    assert.notDeepEqual(await scratchIn(tmp), [], "the killed boot left its extracted disk");

    const next = await inTmp([CLI, "boot", archive, "--expect", "up and", "--timeout", "600"], tmp)
      .ended;
    assert.equal(next.status, 0, next.stderr);
    assert.deepEqual(await readdir(tmp), []);
  });

  for (const signal of ["SIGTERM", "SIGINT", "SIGHUP"] as const) {
    test(`${signal} of boot on a .tar.gz leaves nothing in TMPDIR, and boot dies of it`, async () => {
      const archive = await foreverArchive();
      const tmp = await scratch.fresh();
      const boot = inTmp([CLI, "boot", archive, "--timeout", "600"], tmp);
      await printed(boot, /up and running/);
      boot.child.kill(signal);
      assert.equal((await boot.ended).signal, signal, boot.output().stderr);
      await quiet(tmp);
      assert.deepEqual(await readdir(tmp), []);
    });
  }

  test("SIGTERM of boot while tar extracts the .tar.gz: the tar goes too", async () => {
    // 1 GiB stored without holes: tar is still extracting when the test finds it.
    const dir = await scratch.fresh();
    const disk = await bootSectorDisk(dir, "forever", "up and running\n", "run");
    await run("mkdir", [join(dir, "gce")]);
    await run("cp", [disk, join(dir, "gce", "disk.raw")]);
    await run("truncate", ["-s", "1G", join(dir, "gce", "disk.raw")]);
    const archive = join(dir, "big.tar.gz");
    await run("tar", ["-czf", archive, "-C", join(dir, "gce"), "disk.raw"]);
    const tmp = await scratch.fresh();
    const pidsUsing = () => processesMentioning(tmp).map((line) => Number(line.split(":")[0]));
    try {
      const boot = inTmp([CLI, "boot", archive, "--timeout", "600"], tmp);
      await waitFor("tar to extract the archive", () => pidsUsing().length > 0, PATIENCE_MS);
      // Stopped, tar could never end by itself: only being killed ends it.
      for (const pid of pidsUsing()) process.kill(pid, "SIGSTOP");
      boot.child.kill("SIGTERM");
      assert.equal((await boot.ended).signal, "SIGTERM", boot.output().stderr);
      // Killed on boot's way out: gone within moments (a minute is a safety net).
      await waitFor("the stopped tar to be killed", () => pidsUsing().length === 0, 60_000);
      assert.deepEqual(await readdir(tmp), []);
    } finally {
      for (const pid of pidsUsing()) process.kill(pid, "SIGKILL");
    }
  });

  test("a boot without --log leaves no console behind and names no console file", async () => {
    const archive = await foreverArchive();
    const tmp = await scratch.fresh();
    const boot = await inTmp([CLI, "boot", archive, "--expect", "up and", "--timeout", "600"], tmp)
      .ended;
    assert.equal(boot.status, 0, boot.stderr);
    assert.match(boot.stdout, /up and running/, "the console is streamed");
    assert.doesNotMatch(boot.stderr, /console log:/);
    assert.deepEqual(await readdir(tmp), []);
  });
});

describe("two image runs into one --out (case 10)", () => {
  /** The files `image` printed (its one JSON line). */
  interface Printed {
    disk: { mapDigest: string };
    archive?: { sha256: string };
  }
  /** disk.raw's identity, as `image` prints it. */
  const diskDigest = async (path: string) => mapDigest(await blockMap(path));
  const parse = (ended: Ended): Printed => {
    assert.equal(ended.status, 0, ended.stderr);
    return JSON.parse(ended.stdout) as Printed;
  };

  test("a raw run finishing after a gce run takes the gce run's archive away", async () => {
    const outDir = await scratch.fresh();
    const tmp = await scratch.fresh();
    const kernel = await testKernel("virtio-net");
    const raw = inTmp(imageArgv(kernel, outDir, "--format", "raw", "--", "--run=raw"), tmp);
    // Hold the raw run mid-build (past its start, where it clears --out) while a gce run publishes.
    await buildUnderWay(raw, outDir);
    raw.child.kill("SIGSTOP");
    let gce: Ended;
    try {
      gce = await inTmp(imageArgv(kernel, outDir, "--format", "gce", "--", "--run=gce"), tmp).ended;
    } finally {
      raw.child.kill("SIGCONT");
    }
    parse(gce);
    const rawPrinted = parse(await raw.ended);
    assert.deepEqual((await readdir(outDir)).sort(), ["disk.raw"]);
    assert.equal(await diskDigest(join(outDir, "disk.raw")), rawPrinted.disk.mapDigest);
  });

  test("two gce runs with different boot arguments end with one run's disk.raw and archive", async () => {
    const outDir = await scratch.fresh();
    const tmp = await scratch.fresh();
    const kernel = await testKernel("virtio-net");
    const runs = ["one", "two"].map((name) =>
      inTmp(imageArgv(kernel, outDir, "--format", "gce", "--", `--run=${name}`), tmp),
    );
    const results = (await Promise.all(runs.map((r) => r.ended))).map(parse);
    assert.notEqual(results[0].disk.mapDigest, results[1].disk.mapDigest);
    assert.deepEqual((await readdir(outDir)).sort(), ["disk.raw", "image.tar.gz"]);
    const disk = await diskDigest(join(outDir, "disk.raw"));
    const winner = results.find((r) => r.disk.mapDigest === disk);
    assert.ok(winner, "disk.raw is one run's");
    assert.equal(await sha256File(join(outDir, "image.tar.gz")), winner.archive?.sha256);
  });
});

describe("permission denied (case 6)", () => {
  /** setpriv as nobody, still able to read and search everything (our scratch is root's, 0700). */
  const AS_NOBODY = [
    "--reuid=nobody",
    "--regid=nogroup",
    "--clear-groups",
    "--inh-caps=+dac_read_search",
    "--ambient-caps=+dac_read_search",
  ];

  test("an --out the user may not write to (EACCES) is named, in words", async (t) => {
    if (process.getuid?.() !== 0) return t.skip("needs root, to run the command as nobody");
    const usable = await exec("setpriv", [...AS_NOBODY, "true"]).then(
      () => true,
      () => false,
    );
    if (!usable) return t.skip("setpriv cannot run a command as nobody with dac_read_search here");
    const dir = await scratch.fresh();
    const kernel = await testKernel("virtio");
    for (const out of [dir, join(dir, "new")]) {
      const result = await exec("setpriv", [...AS_NOBODY, "node", ...imageArgv(kernel, out)]).then(
        () => assert.fail(`image into ${out} succeeded as nobody`),
        (error: { code: number; stderr: string }) => error,
      );
      assert.equal(result.code, 1, result.stderr);
      assert.ok(
        result.stderr.includes(
          `writing the image into ${out}: permission denied on ${out}: choose a directory you can write to, or change its permissions`,
        ),
        result.stderr,
      );
      assert.doesNotMatch(result.stderr, /EACCES/);
    }
    assert.deepEqual(await readdir(dir), [], "nothing written");
  });
});

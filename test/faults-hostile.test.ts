// The fault matrix, hostile and careless inputs (issue 24): a kernel built to exhaust memory,
// GCE archives whose disk.raw is a link, a device or a bomb, paths that read as a remote host or a
// QEMU protocol, a host address that smuggles QEMU options, a lock held by a reused pid or waited
// on when the user presses Ctrl-C, an --out no file can live on, a QEMU that cannot start, and
// secret boot arguments on disk. Each is refused at once, in words, at little cost, leaving
// nothing. xen.Domain's (a domainDir it did not make, a 1.9 GB kernel, the remote config's
// mode) are in test/xen-domain.test.ts, which has the sshd they need.
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { readFileSync, statSync } from "node:fs";
import {
  chmod,
  copyFile,
  mkdir,
  readdir,
  readFile,
  stat,
  symlink,
  writeFile,
} from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { describe, test } from "node:test";
import { promisify } from "node:util";
import { processStartTime } from "../provider/core/background";
import { run } from "../provider/core/exec";
import { inspectKernel } from "../provider/kernel/inspect";
import { QEMU, qemuArgs } from "../provider/local/qemu";
import { provider as imageProvider } from "../provider/resources/disk-image";
import { provider as vmProvider } from "../provider/resources/local-vm";
import { bootSectorDisk } from "./support/boot-sector";
import { CLI, imageArgv, startCli } from "./support/cli";
import { testKernel } from "./support/kernels";
import { readAsNobody } from "./support/nobody";
import type { PeakUsage } from "./support/peak-rss";
import { Started, waitFor } from "./support/process";
import { Scratch } from "./support/scratch";

const exec = promisify(execFile);
const scratch = Scratch.forThisFile("faults-hostile-test-");
const started = Started.forThisFile();
const PEAK_RSS = resolve(__dirname, "support", "peak-rss.js");
const GIB = 1024 ** 3;
const isRoot = process.getuid?.() === 0;

interface Ended {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs `node ARGV...` to its end (SIGKILLed after `timeoutMs`: some of the faults made the old
 * code spin for ever, deaf to SIGTERM), with a TMPDIR of its own and `options`.
 */
async function node(
  argv: string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<Ended> {
  const env = { ...process.env, TMPDIR: await scratch.fresh(), ...options.env };
  return exec(process.execPath, argv, {
    cwd: options.cwd,
    env,
    timeout: options.timeoutMs ?? 120_000,
    killSignal: "SIGKILL",
  }).then(
    ({ stdout, stderr }) => ({ code: 0, signal: null, stdout, stderr }),
    (error: Ended) => error,
  );
}

/**
 * An ELF64 file whose `count` PT_NOTE program headers name note areas of `areaBytes`, each
 * holding one Solo5-owned note: all the same area (`shared`) or one area each.
 */
function noteBomb(count: number, areaBytes: number, shared: boolean): Buffer {
  const phoff = 64;
  const areasAt = phoff + count * 56;
  const file = Buffer.alloc(areasAt + (shared ? 1 : count) * areaBytes);
  file.write("\x7fELF", 0, "latin1");
  file.set([2, 1, 1], 4); // ELF64, little-endian, version 1
  file.writeUInt16LE(2, 16); // ET_EXEC
  file.writeUInt16LE(62, 18); // x86_64
  file.writeUInt32LE(1, 20);
  file.writeBigUInt64LE(BigInt(phoff), 32);
  file.writeUInt16LE(64, 52);
  file.writeUInt16LE(56, 54);
  file.writeUInt16LE(count, 56);
  file.writeUInt16LE(64, 58);
  for (let i = 0; i < count; i++) {
    const at = phoff + i * 56;
    const area = areasAt + (shared ? 0 : i * areaBytes);
    file.writeUInt32LE(4, at); // PT_NOTE
    file.writeUInt32LE(4, at + 4);
    file.writeBigUInt64LE(BigInt(area), at + 8);
    file.writeBigUInt64LE(BigInt(areaBytes), at + 32);
    file.writeBigUInt64LE(BigInt(areaBytes), at + 40);
    file.writeBigUInt64LE(4n, at + 48);
  }
  for (let i = 0; i < (shared ? 1 : count); i++) {
    const area = areasAt + i * areaBytes;
    file.writeUInt32LE(6, area);
    file.writeUInt32LE(areaBytes - 20, area + 4);
    file.writeUInt32LE(0x1234, area + 8);
    file.write("Solo5\0", area + 12, "latin1");
  }
  return file;
}

describe("kernels built to exhaust memory (finding 1)", () => {
  test("65535 note headers naming one 1 MiB note: refused in under 1 s of CPU, below 200 MB, by the real process", async () => {
    const dir = await scratch.fresh();
    const kernel = join(dir, "bomb.virtio");
    await writeFile(kernel, noteBomb(65535, 1 << 20, true));
    const peakFile = join(dir, "peak.json");
    const ended = await node(["--require", PEAK_RSS, CLI, "inspect", kernel], {
      env: { PEAK_RSS_FILE: peakFile },
      timeoutMs: 60_000,
    });
    assert.equal(ended.code, 1, `${ended.signal ?? ""} ${ended.stderr}`);
    assert.match(ended.stderr, /bomb\.virtio: 65535 program headers, more than/);
    const peak = JSON.parse(await readFile(peakFile, "utf8")) as PeakUsage;
    assert.ok(peak.maxRssKiB < 200 * 1024, `peak RSS ${peak.maxRssKiB} KiB`);
    assert.ok(peak.cpuMs < 1000, `${peak.cpuMs} ms of CPU`);

    // Fewer headers, each naming a note area of its own: the total is bounded too.
    const spread = join(dir, "spread.virtio");
    await writeFile(spread, noteBomb(200, 8192, false));
    await assert.rejects(inspectKernel(spread), /note areas .* more than/);
  });
});

describe("GCE archives given to boot and local.Vm (findings 2, 3)", () => {
  /** `ARCHIVE.tar.gz` of a directory whose disk.raw `make` puts there. */
  async function archive(name: string, make: (disk: string) => Promise<unknown>) {
    const dir = await scratch.fresh();
    await mkdir(join(dir, "gce"));
    await make(join(dir, "gce", "disk.raw"));
    const path = join(dir, `${name}.tar.gz`);
    await run("tar", ["--format=oldgnu", "-Sczf", path, "-C", join(dir, "gce"), "disk.raw"]);
    return path;
  }

  test("a disk.raw that is a symbolic link, a device, not whole GiB, or 64 GiB is refused at check and by boot, before anything is extracted", async (t) => {
    const dir = await scratch.fresh();
    // What a link would hand the guest: a host file that boots and says so.
    const hostFile = await bootSectorDisk(dir, "host", "HOST FILE BOOTED\n", "poweroff");
    const disk = (size: number) => async (path: string) => {
      await copyFile(hostFile, path);
      await run("truncate", ["-s", String(size), path]);
    };
    const cases: [string, string, RegExp][] = [
      [
        "link",
        await archive("link", (path) => symlink(hostFile, path)),
        /its disk\.raw is a symbolic link, not a regular file/,
      ],
      [
        "1 MiB",
        await archive("small", disk(1024 * 1024)),
        /its disk\.raw is 1048576 bytes, not a whole number of GiB/,
      ],
      [
        "64 GiB",
        await archive("bomb", disk(64 * GIB)),
        /its disk\.raw is 64 GiB, more than the 4 GiB/,
      ],
    ];
    if (isRoot) {
      // /dev/zero's numbers: a device node, which tar would make as root.
      const device = await archive("device", (path) => run("mknod", [path, "c", "1", "5"]));
      cases.push(["device", device, /its disk\.raw is a character device, not a regular file/]);
    } else t.diagnostic("not root: no device node in the archive");
    for (const [what, image, reason] of cases) {
      const { failures } = await vmProvider.check({}, { image });
      assert.equal(failures.length, 1, `${what}: ${JSON.stringify(failures)}`);
      assert.equal(failures[0].property, "image");
      assert.match(failures[0].reason, reason, what);
      const tmp = await scratch.fresh();
      const ended = await node([CLI, "boot", image, "--timeout", "60"], { env: { TMPDIR: tmp } });
      assert.equal(ended.code, 1, `${what}: ${ended.stderr}`);
      assert.match(ended.stderr, reason, what);
      assert.doesNotMatch(ended.stdout, /HOST FILE BOOTED/, what);
      assert.deepEqual(await readdir(tmp), [], `${what}: nothing extracted, nothing left`);
    }
  });

  test("paths with a colon are files, not a remote host or a QEMU protocol", async () => {
    const dir = await scratch.fresh();
    const right = await bootSectorDisk(dir, "right", "RIGHT DISK\n", "poweroff");
    const decoy = await bootSectorDisk(dir, "decoy", "DECOY\n", "poweroff");
    const cwd = await scratch.fresh();
    // tar reads HOST:FILE as a remote archive.
    await mkdir(join(dir, "gce"));
    await copyFile(right, join(dir, "gce", "disk.raw"));
    await run("truncate", ["-s", "1G", join(dir, "gce", "disk.raw")]);
    await run("tar", [
      "--format=oldgnu",
      "-Sczf",
      join(cwd, "host:img.tar.gz"),
      "-C",
      join(dir, "gce"),
      "disk.raw",
    ]);
    // QEMU reads nbd:... as an NBD address, and json:{...} as options naming another file.
    await copyFile(right, join(cwd, "nbd:x.raw"));
    const json = `json:{"file":{"driver":"file","filename":"${decoy}"}}`;
    await mkdir(dirname(join(cwd, json)), { recursive: true });
    await copyFile(right, join(cwd, json));
    for (const image of ["host:img.tar.gz", "nbd:x.raw", json]) {
      const ended = await node([CLI, "boot", image, "--expect", "RIGHT DISK", "--timeout", "120"], {
        cwd,
      });
      assert.equal(ended.code, 0, `${image}: ${ended.stderr}`);
      assert.doesNotMatch(ended.stdout, /DECOY/);
    }
  });
});

describe("QEMU options (finding 6)", () => {
  test("a hostAddress that is not an IPv4 address is refused at check, and never reaches QEMU", async () => {
    const image = await bootSectorDisk(await scratch.fresh(), "d", "hi\n", "poweroff");
    const hostile =
      "0.0.0.0:2222-:22,guestfwd=tcp:10.0.2.100:80-cmd:touch /tmp/owned,hostfwd=tcp:127.0.0.1";
    for (const hostAddress of [hostile, "localhost", "::1", "1.2.3.4.5"]) {
      const { failures } = await vmProvider.check(
        {},
        { image, ports: [{ host: 2222, guest: 22, hostAddress }] },
      );
      assert.deepEqual(
        failures.map((f) => f.property),
        ["ports[0].hostAddress"],
        hostAddress,
      );
      assert.match(
        failures[0].reason,
        / is not an IPv4 address: give one such as 127\.0\.0\.1 \(the default\) or 0\.0\.0\.0/,
      );
      assert.throws(
        () =>
          qemuArgs({
            disk: image,
            consoleFile: "/dev/null",
            kvm: false,
            forwards: [{ host: 2222, guest: 22, hostAddress }],
          }),
        /hostAddress .* is not an IPv4 address/,
      );
    }
    const fine = await vmProvider.check(
      {},
      { image, ports: [{ host: 2222, guest: 22, hostAddress: "0.0.0.0" }] },
    );
    assert.deepEqual(fine.failures, []);
  });
});

describe("locks and waits (finding 8)", () => {
  /** A lock file as a live holder writes it: pid and start time. */
  const lockOf = (pid: number, startTime: number) => `${pid} ${startTime}`;

  test("SIGINT while image waits for another run's --out lock ends it within 1 s, leaving nothing", async () => {
    const outDir = await scratch.fresh();
    const tmp = await scratch.fresh();
    const lock = join(outDir, ".publish.lock");
    // Held by this test process, which stays alive.
    await writeFile(lock, lockOf(process.pid, processStartTime(process.pid) as number));
    const image = startCli(imageArgv(await testKernel("virtio"), outDir), { TMPDIR: tmp });
    started.add(image.child);
    await waitFor(
      "image to say it waits for the lock",
      () => {
        if (image.child.exitCode !== null) assert.fail(`image ended: ${image.output().stderr}`);
        return image.output().stderr.includes(`waiting for ${lock}`);
      },
      60_000,
    );
    const sent = performance.now();
    image.child.kill("SIGINT");
    const ended = await image.ended;
    const ms = performance.now() - sent;
    assert.ok(ms < 1000, `ended ${Math.round(ms)} ms after SIGINT`);
    assert.equal(ended.status, 130, ended.stderr);
    assert.match(ended.stderr, /interrupted by SIGINT; nothing written/);
    assert.deepEqual(await readdir(outDir), [".publish.lock"], "the holder's lock stays");
    assert.deepEqual(await readdir(tmp), []);
  });

  test("a lock whose pid now belongs to another process (another start time) does not hold", async () => {
    const outDir = await scratch.fresh();
    const reused = lockOf(process.pid, (processStartTime(process.pid) as number) - 1);
    await writeFile(join(outDir, ".publish.lock"), reused);
    const ended = await node(imageArgv(await testKernel("virtio"), outDir));
    assert.equal(ended.code, 0, `${ended.signal ?? ""} ${ended.stderr}`);
    assert.deepEqual(await readdir(outDir), ["disk.raw"]);
  });

  test("--out on procfs is refused at once, naming the file system", async () => {
    const ended = await node(imageArgv(await testKernel("virtio"), "/proc/pulumi-mirage-x"), {
      timeoutMs: 30_000,
    });
    assert.equal(ended.code, 1, `${ended.signal ?? ""} ${ended.stderr}`);
    assert.match(
      ended.stderr,
      /writing the image into \/proc\/pulumi-mirage-x: \/proc is on procfs, a kernel file system that cannot hold files: choose a directory on a disk/,
    );
  });
});

describe("QEMU's own failure (finding 9)", () => {
  test("boot of a disk QEMU cannot open exits 1 in QEMU's words, not 0 as a guest's power-off", async () => {
    const dir = await scratch.fresh();
    const disk = await bootSectorDisk(dir, "held", "never booted\n", "poweroff");
    // Another QEMU, paused, has the disk open for writing: QEMU's image locking refuses ours.
    const holder = started.add(
      spawn(
        QEMU,
        [
          "-S",
          "-display",
          "none",
          "-machine",
          "accel=tcg",
          "-nic",
          "none",
          "-drive",
          `file=${disk},format=raw,if=ide`,
        ],
        { stdio: "ignore" },
      ),
    );
    const inode = `:${statSync(disk).ino}`;
    await waitFor(
      "the other QEMU to lock the disk",
      () =>
        readFileSync("/proc/locks", "utf8")
          .split("\n")
          .some((line) => line.split(/\s+/)[5]?.endsWith(inode)),
      60_000,
    );
    try {
      const ended = await node([CLI, "boot", disk, "--timeout", "60"]);
      assert.equal(ended.code, 1, ended.stderr);
      assert.match(
        ended.stderr,
        /QEMU could not run the guest: .*Failed to get shared "write" lock/,
      );
      assert.doesNotMatch(ended.stdout, /never booted/);
    } finally {
      holder.kill("SIGKILL");
    }
  });
});

describe("secret boot arguments on disk (finding 4)", () => {
  const SECRET = "--token=hostile-test-secret";

  test("nobody can read an image holding boot arguments: the --out copy and the cache's", async (t) => {
    if (!isRoot) return t.skip("needs root, to read as nobody");
    const root = await scratch.fresh();
    const control = join(root, "public.txt");
    await writeFile(control, "anyone may read this\n");
    await chmod(control, 0o644);
    assert.deepEqual(await readAsNobody(root, control), { read: true, said: "" }, "the harness");

    const kernel = await testKernel("virtio");
    const out = join(root, "out");
    const ended = await node(imageArgv(kernel, out, "--", SECRET));
    assert.equal(ended.code, 0, ended.stderr);
    const disk = join(out, "disk.raw");
    assert.equal((await stat(disk)).mode & 0o077, 0, "disk.raw is its owner's alone");
    assert.match((await readAsNobody(root, disk)).said, /Permission denied/);

    const cache = join(root, "cache");
    const { inputs, failures } = await imageProvider.check(
      {},
      {
        kernelPath: kernel,
        bootArgs: [SECRET],
        bootArgsSecret: true,
        format: "raw",
        cacheDir: cache,
      },
    );
    assert.deepEqual(failures, []);
    const { outs } = await imageProvider.create(inputs);
    const stored = String(outs.path);
    assert.equal((await stat(cache)).mode & 0o777, 0o700, "the cache is private");
    assert.equal((await stat(stored)).mode & 0o777, 0o400, "the image is read-only, its owner's");
    assert.match((await readAsNobody(root, stored)).said, /Permission denied/);
  });
});

// Booting disk images in QEMU for real, with the accelerator the probe chose (see accel.test.ts):
// the console watcher's endings (match, QEMU exits, a guest that cannot go on, timeout), refusals
// of what is not a disk image, that QEMU never outlives a boot, and the QEMU command line.
import assert from "node:assert/strict";
import { type ChildProcess, spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { findExecutable, run } from "../provider/core/exec";
import { buildImage } from "../provider/image";
import { type AccelChoice, chooseAccel } from "../provider/local/accel";
import { bootAndWatch, isRunning, startVm, startVmAndWait, stopVm } from "../provider/local/boot";
import { QEMU, qemuArgs } from "../provider/local/qemu";
import { bootSectorDisk } from "./support/boot-sector";
import { CLI, startCli } from "./support/cli";
import { testKernel } from "./support/kernels";
import { freePort } from "./support/net";
import { processesMentioning } from "./support/process";

// The probe's answer goes to this file's cache, never the user's; CLI runs inherit it.
let cache: string;
/** What `auto` chose on this host: every boot below must have used it. */
let expected: AccelChoice;
before(async () => {
  cache = await mkdtemp(join(tmpdir(), "boot-test-cache-"));
  process.env.PULUMI_MIRAGE_CACHE = cache;
  expected = await chooseAccel({ qemu: findExecutable(QEMU) ?? QEMU });
});
after(async () => {
  delete process.env.PULUMI_MIRAGE_CACHE;
  await rm(cache, { recursive: true, force: true });
});

/** After-hook cleanup: kills what is left of our processes, removes `dir`, then fails if any were left. */
async function cleanUp(dir: string) {
  const left = processesMentioning(dir);
  for (const entry of left) {
    try {
      process.kill(Number(entry.split(":")[0]), "SIGKILL");
    } catch {
      // Gone meanwhile.
    }
  }
  await rm(dir, { recursive: true, force: true });
  assert.deepEqual(left, []);
}

describe("bootAndWatch", () => {
  let dir: string;
  let poweroff: string;
  let forever: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "boot-test-"));
    poweroff = await bootSectorDisk(dir, "poweroff", "guest says hi\nand goes\n", "poweroff");
    forever = await bootSectorDisk(dir, "forever", "banner of a guest that runs on\n", "run");
  });
  after(() => cleanUp(dir));

  /** Boots `image` until QEMU ends or the guest cannot go on; the timeout is only a safety net. */
  const bootToTheEnd = (image: string) =>
    bootAndWatch({
      image,
      timeoutSeconds: 600,
      expect: /never printed/,
      logFile: join(dir, "end.log"),
    });

  test("resolves as soon as the console matches, stops the guest, and streams the console", async () => {
    const logFile = join(dir, "match.log");
    let streamed = "";
    const result = await bootAndWatch({
      image: forever,
      timeoutSeconds: 120,
      expect: /banner of a guest/,
      logFile,
      onOutput: (text) => {
        streamed += text;
      },
    });
    assert.equal(result.matched, true);
    assert.equal(result.timedOut, false);
    assert.equal(result.accel.accel, expected.accel);
    // The guest never powers off: only our kill ended QEMU.
    assert.equal(result.exitCode, null);
    assert.match(streamed, /banner of a guest that runs on/);
    assert.match(readFileSync(logFile, "utf8"), /banner of a guest that runs on/);
    assert.deepEqual(processesMentioning(forever), []);
  });

  test("times out on a regex that never appears, with the console's tail", async () => {
    const result = await bootAndWatch({
      image: forever,
      timeoutSeconds: 8,
      expect: "never printed",
      logFile: join(dir, "timeout.log"),
    });
    assert.equal(result.matched, false);
    assert.equal(result.timedOut, true);
    assert.deepEqual(result.tail, ["banner of a guest that runs on"]);
    assert.deepEqual(processesMentioning(forever), []);
  });

  test("reports QEMU's exit when the guest powers off or resets, at once, not at the timeout", async () => {
    const reset = await bootSectorDisk(dir, "reset", "about to fault\n", "triple-fault");
    // isa-debug-exit with value 0 gives status 1; a reset (a triple fault) under -no-reboot, 0.
    for (const [image, status, tail] of [
      [poweroff, 1, ["guest says hi", "and goes"]],
      [reset, 0, ["about to fault"]],
    ] as const) {
      const result = await bootToTheEnd(image);
      assert.equal(result.matched, false);
      assert.equal(result.timedOut, false);
      assert.equal(result.exitCode, status);
      assert.deepEqual(result.tail, tail);
      assert.deepEqual(processesMentioning(image), []);
    }
  });

  test("boots from virtio-scsi and with a virtio-net NIC forwarding a port", async () => {
    const result = await bootAndWatch({
      image: poweroff,
      bus: "virtio-scsi",
      forwards: [{ host: await freePort(), guest: 80 }],
      timeoutSeconds: 120,
      expect: /and goes/,
      logFile: join(dir, "scsi.log"),
    });
    assert.equal(result.matched, true, result.qemuMessages.join("\n"));
  });

  test("boots the disk inside a GCE image.tar.gz and removes what it extracted", async () => {
    const tarDir = join(dir, "gce");
    await run("mkdir", ["-p", tarDir]);
    await run("cp", ["--sparse=always", poweroff, join(tarDir, "disk.raw")]);
    await run("truncate", ["-s", "1G", join(tarDir, "disk.raw")]);
    const image = join(dir, "image.tar.gz");
    await run("tar", ["--format=oldgnu", "-Sczf", image, "-C", tarDir, "disk.raw"]);
    const result = await bootAndWatch({
      image,
      timeoutSeconds: 120,
      expect: /guest says hi/,
      logFile: join(dir, "gce.log"),
    });
    assert.equal(result.matched, true);
    // The disk was extracted into this process's scratch area (provider/core/scratch.ts), now gone.
    assert.deepEqual(
      readdirSync(tmpdir()).filter((name) => name.startsWith(`pulumi-mirage-${process.pid}-`)),
      [],
    );
  });

  test("a disk SeaBIOS cannot boot fails at once with SeaBIOS's words", async () => {
    // A GCE archive is taken as it is; the zeroed disk inside has no boot sector.
    const zeroDir = join(dir, "zeroed");
    await run("mkdir", ["-p", zeroDir]);
    await run("truncate", ["-s", "1G", join(zeroDir, "disk.raw")]);
    const image = join(dir, "zeroed.tar.gz");
    await run("tar", ["--format=oldgnu", "-Sczf", image, "-C", zeroDir, "disk.raw"]);
    const result = await bootToTheEnd(image);
    assert.equal(result.timedOut, false);
    assert.match(
      result.failure ?? "",
      /^SeaBIOS found nothing to boot: Boot failed: not a bootable disk.* No bootable device\..*make a bootable image/,
    );
  });

  test("says how to install QEMU when it is missing", async () => {
    await assert.rejects(
      bootAndWatch({
        image: poweroff,
        qemu: join(dir, "no-qemu"),
        timeoutSeconds: 5,
        logFile: join(dir, "q.log"),
      }),
      /no-qemu is not installed .*apt-get install qemu-system-x86/,
    );
  });

  test("refuses a missing image by name", async () => {
    await assert.rejects(
      bootAndWatch({
        image: join(dir, "nope.raw"),
        timeoutSeconds: 5,
        logFile: join(dir, "n.log"),
      }),
      /nope\.raw does not exist/,
    );
  });
});

describe("booting test kernels' disk images", () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "boot-image-test-"));
  });
  after(() => cleanUp(dir));

  const BANNER = "Solo5-like test unikernel (pulumi-mirage) target=virtio";

  test("a raw disk shows the kernel's banner and its boot arguments", async () => {
    const outDir = join(dir, "raw");
    const image = await buildImage({
      kernel: await testKernel("virtio"),
      outDir,
      format: "raw",
      bootArgs: ["--hello=Hi", "--ipv4=10.0.0.2/24"],
    });
    const result = await bootAndWatch({
      image: image.disk.path,
      timeoutSeconds: 120,
      expect: /Command line is: '.*'/,
      logFile: join(dir, "raw.log"),
    });
    assert.equal(result.matched, true, result.tail.join("\n"));
    assert.deepEqual(result.tail.slice(-3), [
      BANNER,
      "Hello, World",
      "Command line is: '--hello=Hi --ipv4=10.0.0.2/24'",
    ]);
    assert.deepEqual(processesMentioning(outDir), []);
  });

  test("a GCE archive of a kernel declaring a network boots with a NIC, from the CLI", async () => {
    const image = await buildImage({
      kernel: await testKernel("virtio-net"),
      outDir: join(dir, "gce"),
      format: "gce",
      bootArgs: ["--ipv4=10.0.0.2/24"],
    });
    assert.ok(image.archive);
    const result = spawnSync(
      process.execPath,
      [
        CLI,
        "boot",
        image.archive.path,
        "--net",
        "--bus",
        "virtio-scsi",
        "--expect",
        "^Hello, World",
        "--timeout",
        "120",
      ],
      { encoding: "utf8", env: { ...process.env, TMPDIR: dir } },
    );
    assert.equal(result.status, 0, result.stderr);
    assert.match(result.stdout, /target=virtio\r?\nHello, World/);
  });
});

describe("pulumi-mirage boot", () => {
  let dir: string;
  let poweroff: string;
  let forever: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "boot-cli-test-"));
    poweroff = await bootSectorDisk(dir, "poweroff", "guest says hi\n", "poweroff");
    forever = await bootSectorDisk(dir, "forever", "up and running\n", "run");
  });
  after(() => cleanUp(dir));

  /** Runs the CLI to its end; resolves with its status, signal and output. */
  function cli(args: string[], onStart?: (child: ChildProcess) => void) {
    // Its scratch (left when it is killed) goes into ours.
    const cliRun = startCli([CLI, ...args], { TMPDIR: dir });
    onStart?.(cliRun.child);
    return cliRun.ended;
  }

  test("exits 0 when the console matches, having streamed it to stdout", async () => {
    const log = join(dir, "cli-match.log");
    const result = await cli([
      "boot",
      forever,
      "--expect",
      "up and",
      "--timeout",
      "120",
      "--log",
      log,
    ]);
    assert.equal(result.status, 0, result.stderr);
    assert.match(result.stdout, /up and running/);
    assert.match(result.stderr, new RegExp(`console log: ${log}`));
  });

  test("exits 1 on timeout; the console is on stdout once, not again on stderr", async () => {
    const result = await cli(["boot", forever, "--expect", "never printed", "--timeout", "8"]);
    assert.equal(result.status, 1);
    assert.match(result.stderr, /timed out after 8 s without the console matching/);
    assert.equal(result.stdout.match(/up and running/g)?.length, 1, result.stdout);
    assert.doesNotMatch(result.stderr, /up and running/);
    assert.match(result.stderr, new RegExp(`accelerator: ${expected.accel} `));
  });

  test("exits 1 when QEMU exits before the console matches", async () => {
    const result = await cli(["boot", poweroff, "--expect", "never printed", "--timeout", "120"]);
    assert.equal(result.status, 1);
    assert.match(result.stderr, /QEMU exited with status 1 before the console matched/);
    assert.equal(result.stdout.match(/guest says hi/g)?.length, 1, result.stdout);
    assert.doesNotMatch(result.stderr, /guest says hi/);
  });

  test("exits 2 on a bad option", async () => {
    const result = await cli(["boot", forever, "--timeout", "soon"]);
    assert.equal(result.status, 2);
    assert.match(
      result.stderr,
      /--timeout must be a positive number of seconds, at most 2147483, not "soon"/,
    );
    const accel = await cli(["boot", forever, "--accel", "fast"]);
    assert.equal(accel.status, 2);
    assert.match(accel.stderr, /--accel is "fast": give auto, kvm or tcg/);
  });

  test("says what it got when that is not a disk image, and what to do", async () => {
    const text = join(dir, "notes.txt");
    await run("sh", ["-c", `echo 'not a disk' > ${text}`]);
    const cases: [string, RegExp][] = [
      [text, /notes\.txt is a text file, not a disk image .*0x55AA.*pulumi-mirage image KERNEL/],
      [dir, /is a directory, not a disk image: give the disk\.raw or image\.tar\.gz in it/],
      [
        await testKernel("virtio"),
        /is a Solo5 virtio kernel, not a disk image: make a disk image .*then boot DIR\/disk\.raw/,
      ],
      [await testKernel("xen"), /is a Solo5 xen kernel, not a disk image: .*needs a Xen host/],
      [
        await testKernel("hvt"),
        /is a Solo5 hvt kernel, not a disk image: .*solo5-hvt.*local\.Process/,
      ],
    ];
    for (const [image, message] of cases) {
      const result = await cli(["boot", image, "--timeout", "600"]);
      assert.equal(result.status, 1, image);
      assert.match(result.stderr, message);
    }
  });

  test("exits 1 at once when the guest resets, saying so", async () => {
    const reset = await bootSectorDisk(dir, "reset", "resetting\n", "triple-fault");
    const result = await cli(["boot", reset, "--expect", "never printed", "--timeout", "600"]);
    assert.equal(result.status, 1);
    assert.match(result.stderr, /QEMU exited with status 0 .*the guest reset or shut down/);
  });

  for (const signal of ["SIGINT", "SIGTERM", "SIGKILL"] as const) {
    test(`takes QEMU down when it gets ${signal}`, async () => {
      const log = join(dir, `cli-${signal}.log`);
      const result = await cli(["boot", forever, "--timeout", "120", "--log", log], (child) => {
        // Signal once the guest is up, so QEMU surely runs.
        const poll = setInterval(() => {
          if (existsSync(log) && readFileSync(log, "utf8").includes("up and running")) {
            clearInterval(poll);
            child.kill(signal);
          }
        }, 50);
      });
      assert.equal(result.signal, signal);
      // SIGKILL leaves QEMU to its parent-death signal, which arrives asynchronously.
      for (let i = 0; i < 100 && processesMentioning(log).length > 0; i++) await sleep(50);
      assert.deepEqual(processesMentioning(log), []);
      // A signal it can catch also takes its scratch area (SIGKILL's is left to the hook).
      const scratches = readdirSync(dir).filter((name) => name.startsWith("pulumi-mirage-"));
      if (signal !== "SIGKILL") assert.deepEqual(scratches, []);
      for (const name of scratches) await rm(join(dir, name), { recursive: true, force: true });
    });
  }
});

describe("background VM", () => {
  test("runs detached until stopped, and is known by pid and start time", async () => {
    const dir = await mkdtemp(join(tmpdir(), "boot-vm-test-"));
    try {
      const disk = await bootSectorDisk(dir, "forever", "still here\n", "run");
      const vm = await startVm({ image: disk, stateDir: join(dir, "state") }, expected);
      try {
        assert.equal(isRunning(vm), true);
        assert.equal(vm.accel.accel, expected.accel);
        // The same pid with another start time is another process.
        assert.equal(isRunning({ pid: vm.pid, startTime: vm.startTime + 1 }), false);
        await stopVm(vm);
        assert.equal(isRunning(vm), false);
      } finally {
        await stopVm(vm);
      }
    } finally {
      await cleanUp(dir);
    }
  });

  test("a guest KVM stopped (QEMU still running) fails the start at once with QEMU's words", async () => {
    const dir = await mkdtemp(join(tmpdir(), "boot-vm-test-"));
    try {
      // A test kernel's disk: syslinux runs protected-mode code, where kvm-pvm stops a guest.
      const image = await buildImage({
        kernel: await testKernel("virtio"),
        outDir: join(dir, "image"),
        format: "raw",
        bootArgs: [],
      });
      const disk = image.disk.path;
      // The stand-in plays QEMU on a kvm-pvm host: the guest stopped, QEMU waiting.
      const qemu = resolve(__dirname, "..", "..", "test", "standins", "qemu", "qemu-system-x86_64");
      const stateDir = join(dir, "state");
      await assert.rejects(
        startVmAndWait(
          { image: disk, stateDir, qemu, accel: "kvm" },
          { console: "Hello, World", timeoutSeconds: 600 },
          "the VM",
        ),
        /the VM failed to start: QEMU stopped the guest: KVM internal error\. Suberror: 1 .*; it was stopped\./,
      );
    } finally {
      await cleanUp(dir);
    }
  });
});

describe("qemuArgs", () => {
  const base = { disk: "/images/disk.raw", consoleFile: "/tmp/console.log", kvm: false };
  const joined = (args: string[]) => args.join(" ");

  test("boots from IDE by default, on TCG without KVM, with no NIC and an untouched image", () => {
    const args = qemuArgs(base);
    assert.match(
      joined(args),
      /-drive file\.driver=file,file\.filename=\/images\/disk\.raw,format=raw,if=ide/,
    );
    assert.match(joined(args), /-machine accel=tcg/);
    assert.match(joined(args), /-nic none/);
    assert.ok(args.includes("-snapshot"));
    assert.ok(args.includes("-no-reboot"));
    assert.match(joined(args), /-serial file:\/tmp\/console\.log/);
    assert.match(joined(args), /-device isa-debug-exit,iobase=0x501/);
    assert.match(joined(args), /-display none -m 128/);
  });

  test("uses KVM only when asked", () => {
    assert.match(joined(qemuArgs({ ...base, kvm: true })), /-machine accel=kvm/);
  });

  test("never puts a disk on virtio-blk, and adds virtio-net only with a network", () => {
    for (const bus of ["ide", "virtio-scsi"] as const) {
      for (const net of [false, true]) {
        const text = joined(qemuArgs({ ...base, bus, net }));
        assert.doesNotMatch(text, /virtio-blk|if=virtio/);
        assert.equal(text.includes("virtio-net-pci"), net);
      }
    }
    assert.match(
      joined(qemuArgs({ ...base, bus: "virtio-scsi" })),
      /virtio-scsi-pci.*scsi-hd,drive=disk0/,
    );
  });

  test("forwards host ports (TCP, or UDP when asked) on loopback, which implies a NIC", () => {
    const text = joined(
      qemuArgs({
        ...base,
        forwards: [
          { host: 8080, guest: 80 },
          { host: 2222, guest: 22, hostAddress: "0.0.0.0" },
          { host: 5353, guest: 53, protocol: "udp" },
        ],
      }),
    );
    assert.match(
      text,
      /-netdev user,id=n0,hostfwd=tcp:127\.0\.0\.1:8080-:80,hostfwd=tcp:0\.0\.0\.0:2222-:22,hostfwd=udp:127\.0\.0\.1:5353-:53 -device virtio-net-pci,netdev=n0/,
    );
  });

  test("escapes commas in the disk path and refuses bad ports and memory sizes", () => {
    assert.match(
      joined(qemuArgs({ ...base, disk: "/a,b/disk.raw" })),
      /file\.filename=\/a,,b\/disk\.raw,format=raw/,
    );
    assert.throws(
      () => qemuArgs({ ...base, forwards: [{ host: 70000, guest: 80 }] }),
      /host port must be a port number from 1 to 65535, not 70000/,
    );
    assert.throws(
      () => qemuArgs({ ...base, memoryMiB: 1.5 }),
      /memoryMiB must be a whole number of MiB from 16 to 1048576, not 1\.5/,
    );
  });
});

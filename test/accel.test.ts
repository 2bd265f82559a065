// The accelerator decision: `auto` follows what a probe boot finds on this host (never a fixed
// answer: these tests pass with working KVM, with a /dev/kvm QEMU cannot use, and without one),
// the answer is remembered per host boot, and a forced `kvm` where it cannot work fails at once
// with QEMU's own words.
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { findExecutable } from "../provider/core/exec";
import { buildImage } from "../provider/image";
import { chooseAccel, parseAccelMode, probeFile, requestedMode } from "../provider/local/accel";
import { bootAndWatch } from "../provider/local/boot";
import { type KvmProbe, probeKvm } from "../provider/local/kvm-probe";
import { kvmUsable, QEMU } from "../provider/local/qemu";
import { testKernel } from "./support/kernels";
import { alive } from "./support/process";
import { Scratch } from "./support/scratch";

/** The stand-in for QEMU on a kvm-pvm host (test/standins/qemu/); QEMU_STANDIN picks the variant. */
const STANDIN = resolve(__dirname, "..", "..", "test", "standins", "qemu", "qemu-system-x86_64");
const scratch = Scratch.forThisFile("accel-test-");
const qemu = findExecutable(QEMU);

/** Runs `work` with the stand-in's environment; afterwards kills every stand-in it started. */
async function withStandin<T>(behaviour: string, work: () => Promise<T>): Promise<T> {
  const pids = join(scratch.path, `standin-pids-${behaviour}`);
  const saved = { ...process.env };
  process.env.QEMU_STANDIN = behaviour;
  process.env.QEMU_STANDIN_PIDS = pids;
  try {
    return await work();
  } finally {
    process.env.QEMU_STANDIN = saved.QEMU_STANDIN;
    process.env.QEMU_STANDIN_PIDS = saved.QEMU_STANDIN_PIDS;
    if (saved.QEMU_STANDIN === undefined) delete process.env.QEMU_STANDIN;
    if (saved.QEMU_STANDIN_PIDS === undefined) delete process.env.QEMU_STANDIN_PIDS;
    const started = existsSync(pids) ? readFileSync(pids, "utf8").split("\n").filter(Boolean) : [];
    for (const pid of started.map(Number)) {
      if (alive(pid)) process.kill(pid, "SIGKILL");
    }
  }
}

describe("the accelerator mode", () => {
  test("is the one given, else PULUMI_MIRAGE_ACCEL, else auto; a bad one is named", () => {
    assert.equal(requestedMode("tcg", { PULUMI_MIRAGE_ACCEL: "kvm" }), "tcg");
    assert.equal(requestedMode(undefined, { PULUMI_MIRAGE_ACCEL: "kvm" }), "kvm");
    assert.equal(requestedMode(undefined, {}), "auto");
    assert.throws(() => parseAccelMode("hvf", "accel"), /accel is "hvf": give auto, kvm or tcg/);
    assert.throws(
      () => requestedMode(undefined, { PULUMI_MIRAGE_ACCEL: "fast" }),
      /PULUMI_MIRAGE_ACCEL is "fast"/,
    );
  });

  test("kvm and tcg are used as asked, without a probe", async () => {
    for (const mode of ["kvm", "tcg"] as const) {
      const choice = await chooseAccel({ mode, qemu: STANDIN, cacheDir: scratch.path });
      assert.equal(choice.accel, mode);
    }
    assert.equal(existsSync(probeFile(scratch.path)), false);
  });
});

describe("the probe, with the real QEMU", { skip: qemu ? false : "QEMU is not installed" }, () => {
  let probe: KvmProbe;
  before(async () => {
    probe = await probeKvm(qemu as string);
  });

  test("auto uses what the probe found, and TCG without a /dev/kvm that opens", async () => {
    const choice = await chooseAccel({ qemu: qemu as string, cacheDir: scratch.path });
    if (!kvmUsable()) {
      assert.deepEqual([choice.accel, choice.mode], ["tcg", "auto"]);
      assert.match(choice.reason, /\/dev\/kvm is missing or does not open read-write/);
      return;
    }
    assert.equal(choice.accel, probe.usable ? "kvm" : "tcg", choice.reason);
    assert.equal(choice.reason, probe.reason);
  });

  test("a probe that finds KVM unusable keeps QEMU's words", () => {
    if (probe.usable) return;
    assert.ok(probe.said.length > 0, probe.reason);
    for (const line of probe.said) assert.ok(probe.reason.includes(line));
  });

  test("a forced kvm where the probe found it unusable fails at once with QEMU's message", async (t) => {
    if (probe.usable) {
      t.skip("QEMU runs guests with KVM on this host");
      return;
    }
    // A real boot loader's protected-mode code, which is where such KVMs stop (real-mode code may run).
    const image = await buildImage({
      kernel: await testKernel("virtio"),
      outDir: join(scratch.path, "image-forced"),
      format: "raw",
      bootArgs: [],
    });
    const result = await bootAndWatch({
      image: image.disk.path,
      accel: "kvm",
      timeoutSeconds: 600,
      expect: /Hello, World/,
      logFile: join(scratch.path, "forced.log"),
      cacheDir: scratch.path,
    });
    assert.equal(result.matched, false);
    assert.equal(result.timedOut, false);
    assert.equal(result.accel.accel, "kvm");
    const said = [result.failure ?? "", ...result.qemuMessages].join("\n");
    assert.ok(said.includes(probe.said[0]), `${said}\ndoes not show: ${probe.said[0]}`);
  });
});

describe("a boot the probe let through, with the real QEMU", {
  skip: qemu ? false : "QEMU is not installed",
}, () => {
  test("auto boots again with TCG when KVM stops the guest, and remembers it", async (t) => {
    if (!kvmUsable()) {
      t.skip("no /dev/kvm that opens: auto uses TCG without a probe");
      return;
    }
    const cacheDir = join(scratch.path, "cache-missed");
    // Plays a probe that missed: what this host boot remembers says KVM runs guests.
    await chooseAccel({ qemu: qemu as string, cacheDir });
    const file = probeFile(cacheDir);
    const remembered = JSON.parse(await readFile(file, "utf8"));
    const missed = { usable: true, reason: "a probe that missed", said: [] };
    await writeFile(file, JSON.stringify({ ...remembered, probe: missed }));

    const image = await buildImage({
      kernel: await testKernel("virtio"),
      outDir: join(scratch.path, "image-missed"),
      format: "raw",
      bootArgs: ["--hello=again"],
    });
    const progress: string[] = [];
    const result = await bootAndWatch({
      image: image.disk.path,
      cacheDir,
      timeoutSeconds: 120,
      expect: /^Command line is: '--hello=again'$/,
      logFile: join(scratch.path, "missed.log"),
      onProgress: (line) => progress.push(line),
    });
    assert.equal(result.matched, true, [result.failure, ...result.qemuMessages].join("\n"));
    if (result.accel.accel === "kvm") {
      // KVM really runs guests here: nothing to fall back from.
      assert.deepEqual(progress, []);
      return;
    }
    // KVM stopped the guest: booted again with TCG, said once, and remembered for the next boots.
    assert.match(
      result.accel.reason,
      /^QEMU with KVM stopped a boot on this host \(.+\): TCG from now on$/,
    );
    assert.equal(progress.length, 1);
    assert.match(progress[0], /: booting .* again$/);
    const now = JSON.parse(await readFile(file, "utf8"));
    assert.deepEqual([now.probe.usable, now.probe.reason], [false, result.accel.reason]);
    const next = await chooseAccel({ qemu: qemu as string, cacheDir });
    assert.deepEqual([next.accel, next.reason], ["tcg", result.accel.reason]);
  });
});

describe("the probe and the fallback, with the stand-in for QEMU on a kvm-pvm host", {
  skip: qemu ? false : "QEMU is not installed",
}, () => {
  /** A test kernel's raw disk image: syslinux runs protected-mode code, where kvm-pvm stops. */
  let kernelDisk: string;
  before(async () => {
    const image = await buildImage({
      kernel: await testKernel("virtio"),
      outDir: join(scratch.path, "image-standin"),
      format: "raw",
      bootArgs: ["--hello=standin"],
    });
    kernelDisk = image.disk.path;
  });

  test("a guest stopped by KVM (QEMU does not exit) ends the probe at once: TCG", async () => {
    const probe = await withStandin("pvm", () => probeKvm(STANDIN));
    assert.equal(probe.usable, false);
    assert.match(probe.reason, /stopped the probe guest: KVM internal error\. Suberror: 1/);
  });

  test("a probe guest that makes no progress and says nothing ends the probe: TCG", async () => {
    const probe = await withStandin("hang", () => probeKvm(STANDIN));
    assert.equal(probe.usable, false);
    assert.match(probe.reason, /made no progress with the probe guest in 5 s/);
  });

  test("the answer is remembered for this host boot, QEMU binary and /dev/kvm", async () => {
    // A file that opens read-write plays /dev/kvm, so auto gets to the probe on any host.
    const device = join(scratch.path, "kvm");
    await writeFile(device, "");
    const cacheDir = join(scratch.path, "cache");
    const choose = () => chooseAccel({ qemu: STANDIN, cacheDir, device });
    const pids = join(scratch.path, "standin-pids-pvm-boot-only");
    const lines = () => readFileSync(pids, "utf8").split("\n").filter(Boolean).length;

    // A host where the probe firmware runs to its end.
    const first = await withStandin("pvm-boot-only", choose);
    assert.deepEqual(
      [first.accel, first.reason],
      ["kvm", "QEMU ran a probe guest with KVM (real, protected and long mode)"],
    );
    const afterFirst = lines();
    assert.ok(afterFirst > 0);
    // The host has not rebooted: no second probe, the same answer.
    const again = await withStandin("pvm-boot-only", choose);
    assert.equal(again.accel, "kvm");
    assert.equal(lines(), afterFirst);

    // Another host boot (another boot_id in the key): probed again, and now KVM fails.
    const file = probeFile(cacheDir);
    const saved = JSON.parse(await readFile(file, "utf8"));
    const key = JSON.parse(saved.key);
    key[0] = "another-boot";
    await writeFile(file, JSON.stringify({ ...saved, key: JSON.stringify(key) }));
    const rebooted = await withStandin("pvm", choose);
    assert.equal(rebooted.accel, "tcg");
    assert.match(rebooted.reason, /KVM internal error/);
    assert.match(readFileSync(file, "utf8"), /KVM internal error/);
  });

  test("a forced kvm whose guest KVM stops fails at once with QEMU's words, and QEMU is gone", async () => {
    const pids = join(scratch.path, "standin-pids-pvm");
    await withStandin("pvm", async () => {
      const result = await bootAndWatch({
        image: kernelDisk,
        qemu: STANDIN,
        accel: "kvm",
        timeoutSeconds: 600,
        expect: /Hello, World/,
        logFile: join(scratch.path, "stopped.log"),
      });
      assert.equal(result.timedOut, false);
      assert.equal(result.matched, false);
      assert.match(
        result.failure ?? "",
        /^QEMU stopped the guest: KVM internal error\. Suberror: 1/,
      );
      assert.match(result.failure ?? "", /PULUMI_MIRAGE_ACCEL=tcg/);
      const started = readFileSync(pids, "utf8").split("\n").filter(Boolean).map(Number);
      assert.ok(started.length > 0);
      // The real QEMU under the stand-in goes with it, by its parent-death signal: soon, not at once.
      for (let i = 0; i < 100 && started.some(alive); i++) await sleep(50);
      for (const pid of started) assert.equal(alive(pid), false, `stand-in ${pid} still runs`);
    });
  });

  for (const variant of ["pvm-boot-only", "hang-boot-only"]) {
    test(`auto, where the probe passes and boots ${variant === "pvm-boot-only" ? "stop" : "hang"}: booted again with TCG, said once, remembered`, async (t) => {
      if (!kvmUsable()) {
        t.skip("no /dev/kvm that opens: auto uses TCG without a probe");
        return;
      }
      const cacheDir = join(scratch.path, `cache-${variant}`);
      const progress: string[] = [];
      const result = await withStandin(variant, () =>
        bootAndWatch({
          image: kernelDisk,
          qemu: STANDIN,
          cacheDir,
          accel: "auto",
          timeoutSeconds: 120,
          expect: /^Command line is: '--hello=standin'$/,
          logFile: join(scratch.path, `${variant}.log`),
          onProgress: (line) => progress.push(line),
        }),
      );
      assert.equal(result.matched, true, [result.failure, ...result.qemuMessages].join("\n"));
      assert.equal(result.accel.accel, "tcg");
      const why = variant === "pvm-boot-only" ? /KVM internal error/ : /made no progress with KVM/;
      assert.match(result.accel.reason, why);
      assert.equal(progress.length, 1);
      const next = await withStandin(variant, () =>
        chooseAccel({ qemu: STANDIN, cacheDir, mode: "auto" }),
      );
      assert.deepEqual([next.accel, next.reason], ["tcg", result.accel.reason]);
    });
  }
});

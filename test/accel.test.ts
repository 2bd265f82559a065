// The accelerator decision: `auto` follows what a probe boot finds on this host (never a fixed
// answer: these tests pass with working KVM, with a /dev/kvm QEMU cannot use, and without one),
// the answer is remembered per host boot, and a forced `kvm` where it cannot work fails at once
// with QEMU's own words.
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { before, describe, test } from "node:test";
import {
  chooseAccel,
  type KvmProbe,
  parseAccelMode,
  probeFile,
  probeKvm,
  requestedMode,
} from "../provider/accel";
import { bootAndWatch } from "../provider/boot";
import { findExecutable } from "../provider/exec";
import { kvmUsable, QEMU } from "../provider/qemu";
import { bootSectorDisk } from "./support/boot-sector";
import { modeGuest } from "./support/mode-guest";
import { alive, waitFor } from "./support/process";
import { Scratch } from "./support/scratch";

const STANDIN = resolve(__dirname, "..", "..", "test", "standins", "qemu", "qemu-system-x86_64");
/** Why the stand-in cannot make today's probe fail: its sector is real-mode code, which kvm-pvm runs. */
const REAL_MODE_PROBE =
  "the probe sector runs only real-mode code, which kvm-pvm runs (issue 20): back with the protected-mode probe";
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
    const disk = await bootSectorDisk(scratch.path, "forced", "booted\n", "run");
    const result = await bootAndWatch({
      image: disk,
      accel: "kvm",
      timeoutSeconds: 600,
      expect: /booted/,
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

describe("the probe, with a stand-in QEMU", () => {
  test("a guest stopped by KVM (QEMU does not exit) ends the probe at once: TCG", {
    skip: REAL_MODE_PROBE,
  }, async () => {
    const probe = await withStandin("pvm", () => probeKvm(STANDIN));
    assert.equal(probe.usable, false);
    assert.match(probe.reason, /stopped the probe guest: KVM internal error\. Suberror: 1/);
  });

  test("the answer is remembered for this host boot, QEMU binary and /dev/kvm", {
    skip: REAL_MODE_PROBE,
  }, async () => {
    // A file that opens read-write plays /dev/kvm, so auto gets to the probe on any host.
    const device = join(scratch.path, "kvm");
    await writeFile(device, "");
    const cacheDir = join(scratch.path, "cache");
    const choose = () => chooseAccel({ qemu: STANDIN, cacheDir, device });
    const pids = join(scratch.path, "standin-pids-pvm-boot-only");

    const first = await withStandin("pvm-boot-only", choose);
    assert.deepEqual([first.accel, first.reason], ["kvm", "QEMU ran a probe guest with KVM"]);
    const probes = () => readFileSync(pids, "utf8").split("\n").filter(Boolean).length;
    assert.equal(probes(), 1);
    // The host has not rebooted: no second probe, the same answer.
    const again = await withStandin("pvm-boot-only", choose);
    assert.equal(again.accel, "kvm");
    assert.equal(probes(), 1);

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

  test("a boot whose guest KVM stops fails at once with QEMU's words, and QEMU is gone", async () => {
    // Its protected-mode iret is where kvm-pvm stops it.
    const disk = await modeGuest(scratch.path, "iret");
    const pids = join(scratch.path, "standin-pids-pvm");
    await withStandin("pvm", async () => {
      const result = await bootAndWatch({
        image: disk,
        qemu: STANDIN,
        accel: "kvm",
        timeoutSeconds: 600,
        expect: /never seen/,
        logFile: join(scratch.path, "stopped.log"),
      });
      assert.equal(result.timedOut, false);
      assert.match(
        result.failure ?? "",
        /^QEMU stopped the guest: KVM internal error\. Suberror: 1/,
      );
      assert.match(result.failure ?? "", /PULUMI_MIRAGE_ACCEL=tcg/);
      const started = readFileSync(pids, "utf8").split("\n").filter(Boolean).map(Number);
      assert.ok(started.length > 0);
      // The real QEMU under the stand-in goes by its parent-death signal, a moment later.
      for (const pid of started) await waitFor(`stand-in ${pid} to go`, () => !alive(pid), 5000);
    });
  });
});

// The stand-in for QEMU on a paravirtual kvm-pvm host (test/standins/qemu/): that it plays what the
// real QEMU 7.2 does on such a host, as measured on one (the comments give the real host's
// answers for the same guests), and leaves runs without KVM to the real QEMU untouched.
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, readFileSync, readlinkSync, realpathSync } from "node:fs";
import { join, resolve } from "node:path";
import { after, before, describe, test } from "node:test";
import { findExecutable } from "../provider/core/exec";
import { buildImage } from "../provider/image";
import { QEMU } from "../provider/local/qemu";
import { bootSectorDisk } from "./support/boot-sector";
import { testKernel } from "./support/kernels";
import { modeGuest } from "./support/mode-guest";
import { alive, waitFor } from "./support/process";
import { TestQmp } from "./support/qmp";
import { Scratch } from "./support/scratch";

const STANDIN = resolve(__dirname, "..", "..", "test", "standins", "qemu", "qemu-system-x86_64");
const scratch = Scratch.forThisFile("qemu-standin-test-");
const real = findExecutable(QEMU);
const PIDS = () => join(scratch.path, "standin-pids");

const PNI =
  "qemu-system-x86_64: warning: host doesn't support requested feature: CPUID.01H:ECX.pni [bit 0]";

interface Started {
  child: ChildProcess;
  stderr: () => string;
  exited: Promise<number | null>;
  qmpPath: string;
}

let runs = 0;
/** Starts the stand-in with `args` (plus QMP and the usual devices) as QEMU_STANDIN=`variant`. */
function start(variant: string, args: string[]): Started {
  const qmpPath = join(scratch.path, `qmp-${runs++}.sock`);
  const child = spawn(
    STANDIN,
    [
      "-display",
      "none",
      "-m",
      "32",
      "-nic",
      "none",
      "-device",
      "isa-debug-exit,iobase=0x501",
      "-qmp",
      `unix:${qmpPath},server=on,wait=off`,
      ...args,
    ],
    {
      stdio: ["ignore", "ignore", "pipe"],
      env: { ...process.env, QEMU_STANDIN: variant, QEMU_STANDIN_PIDS: PIDS() },
    },
  );
  let stderr = "";
  child.stderr?.on("data", (chunk: Buffer) => {
    stderr += chunk.toString("utf8");
  });
  const exited = new Promise<number | null>((done) => child.once("exit", (code) => done(code)));
  return { child, stderr: () => stderr, exited, qmpPath };
}

const disk = (file: string) => ["-drive", `file=${file},format=raw,if=ide`];

/** Waits until the stand-in wrote QEMU's whole internal-error block (its last line is Code=). */
const stopped = (run: Started) =>
  waitFor("KVM's internal error", () => /^Code=.*\n/m.test(run.stderr()), 120_000);

after(() => {
  if (!existsSync(PIDS())) return;
  for (const pid of readFileSync(PIDS(), "utf8").split("\n").filter(Boolean).map(Number))
    if (alive(pid)) process.kill(pid, "SIGKILL");
});

describe("the QEMU stand-in for a kvm-pvm host", {
  skip: real ? false : "QEMU is not installed",
}, () => {
  let iret: string;
  let realMode: string;
  let protectedMode: string;
  before(async () => {
    iret = await modeGuest(scratch.path, "iret");
    realMode = await modeGuest(scratch.path, "real");
    protectedMode = await modeGuest(scratch.path, "protected");
  });

  test("stops a protected-mode iret with QEMU's lines; QEMU stays, QMP says internal-error", async () => {
    const run = start("pvm", ["-accel", "kvm", "-no-reboot", ...disk(iret)]);
    const qmp = await TestQmp.open(run.qmpPath);
    try {
      await stopped(run);
      // The real kvm-pvm here wrote, for the same instructions (EIP differs with the layout):
      // the pni warning, "KVM internal error. Suberror: 1", extra data[0] 0x1, [1] and [2] the
      // length (15) and bytes at EIP, [3] 0x1000, [4]..[7] 0, "emulation failure", the dump with
      // CS =0008 ... 00c09b00 DPL=0 CS32 [-RA], CR0=00000011, and Code=... <cf> ...: the same
      // text byte for byte, but for the GDT's accessed bit inside Code= (KVM marks it in memory).
      const lines = run.stderr().split("\n");
      assert.equal(lines[0], PNI);
      assert.equal(lines[1], "KVM internal error. Suberror: 1");
      assert.equal(lines[2], "extra data[0]: 0x0000000000000001");
      assert.match(lines[3], /^extra data\[1\]: 0x[0-9a-f]{12}cf0f$/);
      assert.equal(lines[5], "extra data[3]: 0x0000000000001000");
      assert.equal(lines[9], "extra data[7]: 0x0000000000000000");
      assert.equal(lines[10], "emulation failure");
      assert.match(lines[11], /^EAX=[0-9a-f]{8} EBX=/);
      assert.match(lines[13], /^EIP=00007c[0-9a-f]{2} EFL=[0-9a-f]{8} \[.{7}\] CPL=0 II=0 A20=1/);
      assert.equal(lines[15], "CS =0008 00000000 ffffffff 00c09b00 DPL=0 CS32 [-RA]");
      assert.match(run.stderr(), /^TR =0000 00000000 0000ffff 00008b00 DPL=0 TSS32-busy$/m);
      assert.match(run.stderr(), /^CR0=00000011 CR2=00000000 CR3=00000000 CR4=00000000$/m);
      assert.match(
        run.stderr(),
        /^EFER=0000000000000000\nCode=(?:[0-9a-f]{2} ){20}<cf> 66 ba 01 05/m,
      );

      assert.deepEqual((await qmp.execute("query-status")).return, {
        status: "internal-error",
        singlestep: false,
        running: false,
      });
      assert.deepEqual(
        qmp.events.map((event) => event.event),
        ["STOP"],
      );
      assert.deepEqual((await qmp.execute("cont")).error, {
        class: "GenericError",
        desc: "Resetting the Virtual Machine is required",
      });
      // QEMU still runs, and answers everything else itself.
      assert.equal(run.child.exitCode, null);
      assert.match(await qmp.hmp("info registers"), /CR0=00000011/);

      // -no-reboot: a reset is a shutdown, as QEMU does it.
      assert.deepEqual((await qmp.execute("system_reset")).return, {});
      assert.equal(await run.exited, 0);
      assert.deepEqual(qmp.events.at(-1)?.data, { guest: false, reason: "host-qmp-system-reset" });
    } finally {
      qmp.close();
    }
  });

  test("lets real-mode and iret-free protected-mode guests power off (status 85), as kvm-pvm does", async () => {
    for (const guest of [realMode, protectedMode]) {
      const run = start("pvm", ["-accel", "kvm", ...disk(guest)]);
      assert.equal(await run.exited, 85);
      assert.equal(run.stderr(), `${PNI}\n`);
    }
  });

  test("leaves TCG runs to the real QEMU, unchanged: the iret guest runs to its end", async () => {
    for (const accel of [["-accel", "tcg"], ["-machine", "accel=tcg"], []]) {
      const run = start("pvm", [...accel, ...disk(iret)]);
      // exec: the process is the real QEMU itself.
      const qemu = realpathSync(real as string);
      await waitFor("the stand-in to exec QEMU", () => processExe(run.child) === qemu, 10_000);
      assert.equal(await run.exited, 85);
      assert.equal(run.stderr(), "");
    }
  });

  test("hang: the guest never runs an instruction, nothing is said, query-status says running", async () => {
    const run = start("hang", ["-accel", "kvm", "-no-reboot", ...disk(realMode)]);
    const qmp = await TestQmp.open(run.qmpPath);
    try {
      const status = await qmp.execute("query-status");
      assert.deepEqual(status.return, { status: "running", singlestep: false, running: true });
      // Held at the reset vector: the BIOS never ran.
      await waitFor(
        "the vCPU to be held",
        async () => /EIP=0000fff0/.test(await qmp.hmp("info registers")),
        10_000,
      );
      assert.equal(run.stderr(), `${PNI}\n`);
      assert.equal(run.child.exitCode, null);
      assert.deepEqual((await qmp.execute("stop")).return, {});
      assert.equal(
        ((await qmp.execute("query-status")).return as { status: string }).status,
        "paused",
      );
      assert.deepEqual((await qmp.execute("quit")).return, {});
      assert.equal(await run.exited, 0);
    } finally {
      qmp.close();
    }
  });

  test("a guest that resets does not come back and QEMU does not exit, even with -no-reboot", async () => {
    // The real kvm-pvm, for this sector (message, then int3 through an empty IDT): status
    // running, QEMU alive, nothing said; the guest sat halted after the int, never reset.
    const guest = await bootSectorDisk(scratch.path, "reset", "going down\n", "triple-fault");
    const consoleFile = join(scratch.path, "reset.console");
    const run = start("pvm", [
      "-accel",
      "kvm",
      "-no-reboot",
      "-serial",
      `file:${consoleFile}`,
      ...disk(guest),
    ]);
    const qmp = await TestQmp.open(run.qmpPath);
    try {
      await waitFor(
        "the message",
        () => readFileSync(consoleFile, "utf8").includes("going down"),
        60_000,
      );
      await waitFor(
        "the reset",
        async () => /EIP=0000fff0/.test(await qmp.hmp("info registers")),
        60_000,
      );
      assert.equal(
        ((await qmp.execute("query-status")).return as { status: string }).status,
        "running",
      );
      assert.deepEqual(qmp.events, []);
      assert.equal(run.stderr(), `${PNI}\n`);
      assert.equal(run.child.exitCode, null);
    } finally {
      qmp.close();
      run.child.kill("SIGTERM");
      await run.exited;
    }
  });

  test("a -bios firmware stays where it enters protected mode, silently; pvm-boot-only lets it pass", async () => {
    // Measured on the real kvm-pvm: a firmware doing lgdt, mov to CR0, ljmpl stays at its ljmpl
    // (CR0=0x60000011), status running, nothing said; the real-mode firmware exits 85.
    const firmware = await modeGuest(scratch.path, "iret", { firmware: true });
    const held = start("pvm", ["-accel", "kvm", "-bios", firmware]);
    const qmp = await TestQmp.open(held.qmpPath);
    try {
      await waitFor(
        "protected mode",
        async () => /CR0=60000011/.test(await qmp.hmp("info registers")),
        10_000,
      );
      assert.equal(
        ((await qmp.execute("query-status")).return as { status: string }).status,
        "running",
      );
      assert.equal(held.stderr(), `${PNI}\n`);
    } finally {
      qmp.close();
      held.child.kill("SIGKILL");
      await held.exited;
    }
    const passes = start("pvm-boot-only", ["-accel", "kvm", "-bios", firmware]);
    assert.equal(await passes.exited, 85);
    const sector = start("pvm-boot-only", ["-accel", "kvm", ...disk(iret)]);
    await stopped(sector);
    sector.child.kill("SIGKILL");
    await sector.exited;
  });

  test("stops syslinux's ldlinux at its iret (EIP 0x8ffc) before any banner", async (t) => {
    // The real kvm-pvm stops this image at the same place: EIP=00008ffc, CS32, extra data[1]
    // 0x9090909090c3cf04 (4 bytes left in the page), after 4-10 s in SeaBIOS.
    const image = await buildImage({
      kernel: await testKernel("virtio"),
      outDir: join(scratch.path, "image"),
      format: "raw",
      bootArgs: [],
    });
    const consoleFile = join(scratch.path, "syslinux.console");
    const began = performance.now();
    const run = start("pvm", [
      "-accel",
      "kvm",
      "-snapshot",
      "-serial",
      `file:${consoleFile}`,
      ...disk(image.disk.path),
    ]);
    try {
      await stopped(run);
      t.diagnostic(`stopped after ${((performance.now() - began) / 1000).toFixed(1)} s`);
      assert.match(run.stderr(), /^extra data\[1\]: 0x9090909090c3cf04$/m);
      assert.match(run.stderr(), /^EIP=00008ffc /m);
      assert.match(run.stderr(), /^CS =0020 00000000 ffffffff 00c09b00 DPL=0 CS32 \[-RA\]$/m);
      assert.equal(readFileSync(consoleFile, "utf8"), "");
    } finally {
      run.child.kill("SIGKILL");
      await run.exited;
    }
  });

  test("dies with its real QEMU, and the real QEMU with it", async () => {
    for (const victim of ["standin", "real"] as const) {
      const run = start("hang", ["-accel", "kvm", ...disk(realMode)]);
      const qmp = await TestQmp.open(run.qmpPath);
      qmp.close();
      const pids = readFileSync(PIDS(), "utf8").split("\n").filter(Boolean).map(Number);
      const qemuPid = pids.at(-1) as number;
      assert.notEqual(qemuPid, run.child.pid);
      process.kill(victim === "standin" ? (run.child.pid as number) : qemuPid, "SIGKILL");
      await run.exited;
      await waitFor("the real QEMU to go", () => !alive(qemuPid), 10_000);
    }
  });

  test("refuses what it does not play, and QEMU refuses commands before negotiation", async () => {
    const tcpQmp = spawn(
      STANDIN,
      ["-accel", "kvm", "-qmp", "tcp:127.0.0.1:4444,server=on,wait=off"],
      {
        stdio: ["ignore", "ignore", "pipe"],
      },
    );
    let said = "";
    tcpQmp.stderr?.on("data", (chunk: Buffer) => {
      said += chunk.toString("utf8");
    });
    assert.equal(await new Promise((done) => tcpQmp.once("exit", done)), 2);
    assert.match(said, /plays one -qmp unix:PATH,server=on,wait=off, got: tcp:/);

    const bogus = start("kvm-works", ["-accel", "kvm", ...disk(realMode)]);
    assert.equal(await bogus.exited, 2);
    assert.match(
      bogus.stderr(),
      /QEMU_STANDIN is "kvm-works": give one of pvm, pvm-boot-only, hang, hang-boot-only/,
    );

    const run = start("pvm", ["-accel", "kvm", ...disk(iret)]);
    await stopped(run);
    const qmp = await TestQmp.open(run.qmpPath, false);
    try {
      const early = await qmp.execute("query-status");
      assert.equal(early.error?.class, "CommandNotFound");
      assert.match(early.error?.desc ?? "", /qmp_capabilities/);
    } finally {
      qmp.close();
      run.child.kill("SIGKILL");
      await run.exited;
    }
  });
});

/** The executable a process runs ("" when it is gone or still starting). */
function processExe(child: ChildProcess): string {
  try {
    return readlinkSync(`/proc/${child.pid}/exe`);
  } catch {
    return "";
  }
}

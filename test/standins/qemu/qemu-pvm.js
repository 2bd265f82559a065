// stand-in for qemu-system-x86_64 (QEMU 7.2) running a guest with KVM on a host whose KVM is a
// paravirtual kvm-pvm (docs/platforms.md, KVM on hosts). test/standins/qemu-system-x86_64 starts
// it for KVM runs: `node qemu-pvm.js REAL_QEMU ARGS...`. It runs the real QEMU with the same
// arguments under TCG and plays what kvm-pvm does to the guest, as measured on such a host:
//   - QEMU warns that the host CPU lacks `pni`, on stderr, first;
//   - the guest runs (SeaBIOS, real-mode code, 32-bit code entered with lgdt and a far jump) until
//     the first iret it would execute in protected mode outside the BIOS (syslinux's ldlinux: at
//     EIP 0x8ffc). There KVM fails to emulate it: QEMU writes "KVM internal error. Suberror: 1",
//     the extra data, "emulation failure" and the register dump on stderr, emits STOP, and stays
//     alive with the guest stopped: QMP query-status answers "internal-error";
//   - a guest that resets (a triple fault) does not come back, and QEMU does not exit, even with
//     -no-reboot: the guest makes no progress and nothing is said;
//   - a -kernel boot makes no progress and says nothing;
//   - a -bios firmware runs its real-mode code from the ROM, but once it enters protected mode
//     there (CR0.PE set), its next instruction never completes (measured: a firmware doing
//     lgdt, mov to CR0, ljmpl stays at the ljmpl, CR0=0x60000011, with or without CD/NW
//     cleared, status running, nothing said). Irets count as for a boot sector once the
//     firmware runs its code from RAM.
// QEMU_STANDIN picks the host (default pvm):
//   pvm             as above;
//   pvm-boot-only   -bios runs run to the end (a host where a probe firmware passes: "a probe
//                   that misses"); disk boots stop at their iret;
//   hang            no KVM run ever makes progress; nothing is said; query-status: running;
//   hang-boot-only  -bios runs run; everything else hangs.
// QEMU_STANDIN_PIDS, when set, is a file the stand-in's pid and the real QEMU's are appended to.
// The real QEMU dies with the stand-in (parent-death signal) and the stand-in with it, with its
// exit status. Only what a caller can see is played; a -qmp other than a unix socket server that
// does not wait, a gdbstub or -daemonize is refused (exit 2), so no test relies on a half-play.
//
// How: the real QEMU runs with -singlestep (one instruction per translation block, so its CPU
// state is exact before each instruction) and a TCG plugin (qemu-pvm-plugin.c) that holds the vCPU
// before every iret outside the BIOS and every return to the reset vector, and asks us. We read
// the state through a private QMP monitor (HMP `info registers`); the caller's QMP socket is served
// by qemu-pvm-qmp.js, relayed to another private monitor.
"use strict";
const { spawn, execFileSync } = require("node:child_process");
const { createHash, randomBytes } = require("node:crypto");
const fs = require("node:fs");
const path = require("node:path");
const { QmpClient, serveQmp, event } = require("./qemu-pvm-qmp");
const { emulationFailure } = require("./qemu-pvm-dump");

const VARIANTS = ["pvm", "pvm-boot-only", "hang", "hang-boot-only"];
const PNI_WARNING =
  "qemu-system-x86_64: warning: host doesn't support requested feature: CPUID.01H:ECX.pni [bit 0]\n";
const ROOT = path.resolve(__dirname, "..", "..", "..");

function refuse(message) {
  process.stderr.write(`qemu-pvm stand-in: ${message}\n`);
  process.exit(2);
}

/** What the caller asked for, and the real QEMU's arguments that play it. */
function parseArgs(args) {
  const real = [];
  const run = { qmp: undefined, noReboot: false, firmware: false, kernel: false };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    const value = args[i + 1];
    if (arg === "-enable-kvm") {
      real.push("-accel", "tcg");
    } else if (arg === "-accel") {
      real.push(arg, value.replace(/^kvm\b/, "tcg"));
      i++;
    } else if (arg === "-machine" || arg === "-M") {
      real.push(arg, value.replace(/(^|,)accel=kvm/, "$1accel=tcg"));
      i++;
    } else if (arg === "-no-reboot") {
      run.noReboot = true; // played here: a reset must not end the real QEMU
    } else if (arg === "-qmp") {
      const match = /^unix:([^,]+),server(=on)?,(nowait|wait=off)$/.exec(value ?? "");
      if (!match || run.qmp) refuse(`plays one -qmp unix:PATH,server=on,wait=off, got: ${value}`);
      run.qmp = match[1];
      i++;
    } else if (["-gdb", "-s", "-daemonize", "-mon", "-singlestep"].includes(arg)) {
      refuse(`does not play ${arg}`);
    } else {
      if (arg === "-bios") run.firmware = true;
      if (arg === "-kernel") run.kernel = true;
      real.push(arg);
    }
  }
  return { real, run };
}

/** What the plugin holds in this run, for `variant`. */
function holds(variant, run) {
  const firmwarePasses = variant.endsWith("-boot-only") && run.firmware;
  if (variant.startsWith("hang") || run.kernel) return firmwarePasses ? [] : ["hold=start"];
  if (firmwarePasses) return [];
  return run.firmware ? ["hold=iret", "boot=bios"] : ["hold=iret"];
}

/** The plugin, built once per source under build/qemu-standin/ (appearing by rename). */
function pluginLibrary() {
  const source = path.join(__dirname, "qemu-pvm-plugin.c");
  const hash = createHash("sha256").update(fs.readFileSync(source)).digest("hex").slice(0, 16);
  const dir = path.join(ROOT, "build", "qemu-standin", hash);
  const library = path.join(dir, "qemu-pvm-plugin.so");
  if (fs.existsSync(library)) return library;
  fs.mkdirSync(dir, { recursive: true });
  const temp = `${library}.${process.pid}.tmp`;
  execFileSync("gcc", ["-shared", "-fPIC", "-O2", "-Wall", "-o", temp, source], {
    stdio: ["ignore", "ignore", "inherit"],
  });
  fs.renameSync(temp, library);
  return library;
}

/** The run state as the caller sees it, and the vCPU's hold (see qemu-pvm-qmp.js). */
class Run {
  constructor(noReboot) {
    this.noReboot = noReboot;
    /** null while the guest runs as QEMU says; else the status played. */
    this.held = null;
    this.channel = undefined;
    this.deciding = Promise.resolve();
    this.waiting = false;
    this.hostReset = false;
    this.child = undefined;
    this.broadcast = () => {};
  }

  idle() {
    return this.deciding;
  }

  /** Lets the held or waiting vCPU run its next instruction. */
  release() {
    if (this.waiting) this.channel.write("g");
    this.waiting = false;
  }

  hold(status) {
    this.held = status;
  }

  resetRequested() {
    this.hostReset = true;
    this.held = null;
  }

  shutDown() {
    this.child.kill("SIGKILL");
    this.exitCode = 0;
  }
}

async function main() {
  const [realQemu, ...args] = process.argv.slice(2);
  const variant = process.env.QEMU_STANDIN || "pvm";
  if (!VARIANTS.includes(variant))
    refuse(`QEMU_STANDIN is "${variant}": give one of ${VARIANTS.join(", ")}`);
  const { real, run } = parseArgs(args);

  // Abstract sockets: nothing on disk to leave behind when we are killed. Node pads their
  // address to the full sun_path, so QEMU must too (tight=off).
  const tag = `qemu-pvm-${process.pid}-${randomBytes(4).toString("hex")}`;
  const control = `\0${tag}-control`;
  const relayed = `\0${tag}-qmp`;
  const plugin = [`file=${pluginLibrary()}`, "fd=3", ...holds(variant, run)].join(",");
  real.push("-singlestep", "-plugin", plugin);
  real.push("-qmp", `unix:${control.slice(1)},server=on,wait=off,abstract=on,tight=off`);
  if (run.qmp)
    real.push("-qmp", `unix:${relayed.slice(1)},server=on,wait=off,abstract=on,tight=off`);

  const state = new Run(run.noReboot);
  process.stderr.write(PNI_WARNING);
  if (run.qmp) {
    // QEMU replaces whatever is at the path, and removes its socket when it exits.
    fs.rmSync(run.qmp, { force: true });
    const { server, broadcast } = serveQmp(relayed, state);
    state.broadcast = broadcast;
    await new Promise((resolve) => server.listen(run.qmp, resolve));
    process.on("exit", () => fs.rmSync(run.qmp, { force: true }));
  }

  const [command, commandArgs] = fs.existsSync("/usr/bin/setpriv")
    ? ["/usr/bin/setpriv", ["--pdeathsig", "KILL", "--", realQemu, ...real]]
    : [realQemu, real];
  const child = spawn(command, commandArgs, { stdio: ["inherit", "inherit", "inherit", "pipe"] });
  state.child = child;
  state.channel = child.stdio[3];
  if (process.env.QEMU_STANDIN_PIDS)
    fs.appendFileSync(process.env.QEMU_STANDIN_PIDS, `${child.pid}\n`);
  for (const signal of ["SIGTERM", "SIGINT", "SIGHUP"]) {
    process.on(signal, () => {
      child.kill(signal);
      state.release(); // QEMU pauses the vCPU on its way out
    });
  }
  child.on("exit", (code, signal) => {
    if (state.exitCode !== undefined) process.exit(state.exitCode);
    if (signal) {
      process.removeAllListeners(signal);
      process.kill(process.pid, signal);
    }
    process.exit(code ?? 1);
  });
  child.on("error", (error) => refuse(`could not start ${realQemu}: ${error.message}`));

  const qmp = QmpClient.connect(control);
  qmp.catch(() => {}); // QEMU failed to start: its exit ends us
  let lines = "";
  state.channel.setEncoding("utf8");
  state.channel.on("data", (chunk) => {
    lines += chunk;
    let end = lines.indexOf("\n");
    while (end >= 0) {
      const request = lines.slice(0, end);
      lines = lines.slice(end + 1);
      state.deciding = state.deciding.then(() => decide(request, state, qmp));
      end = lines.indexOf("\n");
    }
  });
  state.channel.on("error", () => {});
}

/** Answers the plugin's `request` (see qemu-pvm-plugin.c): lets the vCPU go on, or holds it. */
async function decide(request, state, qmpReady) {
  state.waiting = true;
  const what = request.split(" ")[0];
  if (what === "start") {
    state.hold("running");
    return;
  }
  if (what === "reset") {
    if (state.hostReset) {
      state.hostReset = false;
      state.release();
    } else state.hold(state.held ?? "running");
    return;
  }
  const qmp = await qmpReady;
  const registers = await qmp.hmp("info registers");
  const cr0 = Number.parseInt(/CR0=([0-9a-f]+)/.exec(registers)[1], 16);
  if ((cr0 & 1) === 0) {
    state.release();
    return;
  }
  if (what === "cr0") {
    // Protected mode begun in the firmware ROM: kvm-pvm never finishes the next instruction.
    state.hold("running");
    return;
  }
  const block = await emulationFailure(registers, (start, length) => readBytes(qmp, start, length));
  process.stderr.write(block);
  state.hold("internal-error");
  state.broadcast(event("STOP"));
}

/** `length` guest bytes at linear `start` (null where unreadable), as HMP `x` shows them. */
async function readBytes(qmp, start, length) {
  const text = await qmp.hmp(`x /${length}xb 0x${start.toString(16)}`);
  const bytes = [...text.matchAll(/\b0x([0-9a-f]{2})\b/g)].map((m) => Number.parseInt(m[1], 16));
  while (bytes.length < length) bytes.push(null);
  return bytes.slice(0, length);
}

main().catch((error) => refuse(error.stack ?? String(error)));

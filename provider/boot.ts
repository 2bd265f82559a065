// Booting a unikernel disk image in QEMU: in the foreground, watching the serial console until a
// regex appears (the `boot` command, tests), or in the background as a VM that outlives us
// (local.Vm). Either way QEMU runs with `-snapshot`, so the image is never modified.
import { spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { lstat, mkdir, readFile, rm } from "node:fs/promises";
import { join, resolve } from "node:path";
import { type AccelChoice, type AccelMode, chooseAccel } from "./accel";
import {
  isRunning,
  type ProcessIdentity,
  startBackground,
  stopBackground,
  watchLog,
} from "./background";
import { archivedDiskProblem, diskImageFormat, NotADiskImage } from "./disk-check";
import { findExecutable, killOnExit, killTree, run, TAIL_LINES } from "./exec";
import { type DiskBus, guestStopped, type PortForward, QEMU, qemuArgs } from "./qemu";
import { withScratch } from "./scratch";

/** What to boot and how: the parts of the QEMU command line a caller chooses. */
export interface MachineOptions {
  /** A raw disk image (disk.raw), or a GCE image.tar.gz holding one. */
  image: string;
  /** Attach one virtio-net NIC (user-mode network). Default: no NIC. */
  net?: boolean;
  /** Host→guest TCP forwards; implies `net`. */
  forwards?: readonly PortForward[];
  /** Default: ide. */
  bus?: DiskBus;
  /** Default: 128. */
  memoryMiB?: number;
  /** The QEMU binary. Default: qemu-system-x86_64 on PATH. */
  qemu?: string;
  /** Default: $PULUMI_MIRAGE_ACCEL, else auto (see accel.ts). */
  accel?: AccelMode;
  /** The cache directory where `auto` remembers its probe (see cache.ts). */
  cacheDir?: string;
}

/** A file's text, or "" when it is not there (yet). */
const textOf = (path: string) => {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return "";
  }
};

/**
 * The raw disk to boot, as an absolute path (no tool may read `host:x` as a remote or `nbd:x` as
 * a protocol): `image` itself, or the disk.raw inside a gzip'd tar (a GCE image), which
 * diskImageFormat has checked from its tar header and which is extracted into `dir` (fresh, ours)
 * keeping it sparse, then checked again. Anything else is refused, saying what it is.
 * (docs/platforms.md, Names, archives and exit statuses.)
 */
async function diskOf(given: string, dir: string, env?: Record<string, string>): Promise<string> {
  const format = await diskImageFormat(given);
  const image = resolve(given);
  if (format === "raw") return image;
  // Only the first disk.raw: a later member of that name (a link) would replace it. Owner and
  // mode come from us, not from the archive.
  const options = ["--force-local", "--occurrence=1", "--no-same-owner", "--no-same-permissions"];
  await run("tar", ["-xzf", image, ...options, "-C", dir, "disk.raw"], {
    timeoutMs: 10 * 60 * 1000,
    env,
  });
  const disk = join(dir, "disk.raw");
  const info = await lstat(disk);
  const problem = archivedDiskProblem(info.isFile() ? "regular file" : "special file", info.size);
  if (problem) throw new NotADiskImage(`${given}: its disk.raw, extracted, ${problem}`);
  return disk;
}

/** QEMU's command line, and the accelerator it uses. SeaBIOS's debug console goes to `debugLog`. */
async function commandLine(
  options: MachineOptions,
  disk: string,
  consoleFile: string,
  debugLog: string,
  env?: Record<string, string>,
) {
  const qemu = options.qemu ?? QEMU;
  const file = findExecutable(qemu);
  if (!file)
    throw new Error(
      `${qemu} is not installed (not ${qemu.includes("/") ? "an executable file" : "on PATH"}): install QEMU (Debian: apt-get install qemu-system-x86)`,
    );
  const accel = await chooseAccel({
    mode: options.accel,
    qemu: file,
    cacheDir: options.cacheDir,
    env,
  });
  const args = qemuArgs({
    disk,
    consoleFile,
    debugLog,
    kvm: accel.accel === "kvm",
    bus: options.bus,
    memoryMiB: options.memoryMiB,
    net: options.net,
    forwards: options.forwards,
  });
  return { file, args, accel };
}

export interface BootOptions extends MachineOptions {
  /** Give up (and kill QEMU) after this many seconds. */
  timeoutSeconds: number;
  /** Stop as soon as the console matches this. Without it, the boot runs until QEMU exits. */
  expect?: RegExp | string;
  /** The serial console is written here (replacing the file). */
  logFile: string;
  /** Called with console text as it appears. */
  onOutput?: (text: string) => void;
}

export interface BootResult {
  /** The console matched `expect`. */
  matched: boolean;
  /** The timeout passed first. */
  timedOut: boolean;
  /** The last lines of the console. */
  tail: string[];
  /** What QEMU itself printed (errors, warnings). */
  qemuMessages: string[];
  logFile: string;
  /** QEMU's exit status when it exited by itself (the guest powered off); null when we stopped it. */
  exitCode: number | null;
  /**
   * Why the guest could not go on or never ran, in QEMU's or SeaBIOS's words: KVM stopped it,
   * nothing to boot, or QEMU itself failed.
   */
  failure?: string;
  /** The accelerator QEMU ran with, and why. */
  accel: AccelChoice;
}

/**
 * QEMU's own failure (it could not open the disk, an option was wrong), in its words. It exits
 * with status 1, as it does when the guest writes 0 to isa-debug-exit; what tells them apart is
 * that QEMU then says why on stderr (anything but a warning): docs/platforms.md, Names, archives and exit statuses.
 */
function qemuFailed(exitCode: number | null, stderr: string): string | undefined {
  if (exitCode !== 1) return undefined;
  const error = stderr.split("\n").find((line) => line.trim() !== "" && !/\bwarning: /.test(line));
  return error === undefined ? undefined : `QEMU could not run the guest: ${error.trim()}`;
}

/** On Linux, ties QEMU's life to ours even if we are SIGKILLed (the parent-death signal survives exec). */
function withParentDeathSignal(file: string, args: string[]): [string, string[]] {
  if (!existsSync("/usr/bin/setpriv")) return [file, args];
  return ["/usr/bin/setpriv", ["--pdeathsig", "KILL", "--", file, ...args]];
}

/**
 * Boots the image in QEMU in the foreground and watches its serial console. Resolves as soon as
 * the console matches `expect` (QEMU is then killed), when QEMU exits, or at the timeout (QEMU is
 * killed). No QEMU process outlives the call: it is killed on every path, including exceptions and
 * SIGINT/SIGTERM/SIGHUP of this process; what it extracts is in a scratch directory (scratch.ts),
 * which goes on those paths too.
 */
export async function bootAndWatch(options: BootOptions): Promise<BootResult> {
  const expect = typeof options.expect === "string" ? new RegExp(options.expect) : options.expect;
  return withScratch({ name: "boot" }, async (scratch) => {
    const disk = await diskOf(options.image, scratch);
    // A previous run's console must not be read as this one's.
    await rm(options.logFile, { force: true });
    const debugLog = join(scratch, "seabios.log");
    const { file, args, accel } = await commandLine(options, disk, options.logFile, debugLog);
    const [command, commandArgs] = withParentDeathSignal(file, args);
    const child = spawn(command, commandArgs, {
      detached: true, // its own process group, so killing the group gets everything
      stdio: ["ignore", "ignore", "pipe"],
    });
    const stopGuard = child.pid === undefined ? () => {} : killOnExit(child.pid);
    const exited = new Promise<void>((resolve) => child.once("close", () => resolve()));
    let stderr = "";
    child.stderr?.on("data", (chunk: Buffer) => {
      stderr += chunk.toString("utf8");
    });
    try {
      await new Promise<void>((resolve, reject) => {
        child.once("spawn", resolve);
        child.once("error", (error) =>
          reject(new Error(`could not start ${file}: ${error.message}`, { cause: error })),
        );
      });
      const watched = await watchLog(options.logFile, {
        expect,
        timeoutMs: options.timeoutSeconds * 1000,
        alive: () => child.exitCode === null && child.signalCode === null,
        failed: () => guestStopped(stderr, textOf(debugLog)),
        onOutput: options.onOutput,
      });
      const exitCode = watched.outcome === "ended" ? child.exitCode : null;
      killTree(child.pid, "SIGKILL");
      await exited;
      // QEMU may have said why on its way out.
      const failure =
        watched.failure ?? guestStopped(stderr, textOf(debugLog)) ?? qemuFailed(exitCode, stderr);
      return {
        failure,
        accel,
        matched: watched.outcome === "matched",
        timedOut: watched.outcome === "timeout",
        tail: watched.tail,
        qemuMessages: stderr
          .split("\n")
          .filter((line) => line !== "")
          .slice(-TAIL_LINES),
        logFile: options.logFile,
        exitCode,
      };
    } finally {
      killTree(child.pid, "SIGKILL");
      stopGuard();
    }
  });
}

/** A VM running in the background, and where its files are. */
export interface VmProcess extends ProcessIdentity {
  /** The serial console. */
  consoleLog: string;
  /** What QEMU itself printed. */
  qemuLog: string;
  /** SeaBIOS's debug console. */
  debugLog: string;
  /** The accelerator QEMU runs with, and why. */
  accel: AccelChoice;
}

/**
 * Starts QEMU in the background, detached (its own session, output to files in `stateDir`), so it
 * keeps running after this process exits. A GCE tar.gz image is extracted into `stateDir`.
 * Stop it with `stopVm`; `isRunning` tells whether it is still the same process. Every process
 * it starts (QEMU, tar, the KVM probe) gets `env`: local.Vm tags them with its run.
 */
export async function startVm(
  options: MachineOptions & { stateDir: string; env?: Record<string, string> },
): Promise<VmProcess> {
  const env = options.env;
  await mkdir(options.stateDir, { recursive: true });
  const disk = await diskOf(options.image, options.stateDir, env);
  const consoleLog = join(options.stateDir, "console.log");
  const qemuLog = join(options.stateDir, "qemu.log");
  const debugLog = join(options.stateDir, "seabios.log");
  for (const file of [consoleLog, qemuLog, debugLog]) await rm(file, { force: true });
  const { file, args, accel } = await commandLine(options, disk, consoleLog, debugLog, env);
  const id = await startBackground(file, args, { logFile: qemuLog, env });
  return { ...id, consoleLog, qemuLog, debugLog, accel };
}

/** Why a background VM's guest cannot go on, in QEMU's or SeaBIOS's words (see guestStopped). */
export function vmStopped(vm: VmProcess): string | undefined {
  return guestStopped(textOf(vm.qemuLog), textOf(vm.debugLog));
}

export { isRunning };

/** Stops the VM (and nothing else: a reused pid is left alone). */
export async function stopVm(id: ProcessIdentity): Promise<void> {
  await stopBackground(id);
}

/** The last lines QEMU printed about a background VM (why it failed to start, for example). */
export async function qemuMessages(vm: VmProcess): Promise<string[]> {
  const text = await readFile(vm.qemuLog, "utf8").catch(() => "");
  return text
    .split("\n")
    .filter((line) => line !== "")
    .slice(-TAIL_LINES);
}

// Booting a unikernel disk image in QEMU: in the foreground, watching the serial console until a
// regex appears (the `boot` command, tests), or in the background as a VM that outlives us
// (local.Vm). Either way QEMU runs with `-snapshot`, so the image is never modified.
import { readFileSync } from "node:fs";
import { lstat, mkdir, readFile, rm } from "node:fs/promises";
import { join, resolve } from "node:path";
import {
  isRunning,
  type ProcessIdentity,
  type StartOptions,
  startBackground,
  stopBackground,
  watchLog,
} from "../core/background";
import { findExecutable, run, startWatched, TAIL_LINES } from "../core/exec";
import { withScratch } from "../core/scratch";
import { extractDiskKernel } from "../image/disk-kernel";
import { inspectKernel, type KernelInfo } from "../kernel/inspect";
import {
  type AccelChoice,
  type AccelMode,
  type AccelOptions,
  chooseAccel,
  rememberKvmFailure,
} from "./accel";
import { archivedDiskProblem, diskImageFormat, NotADiskImage, xenDisk } from "./disk-check";
import { type GuestSources, type GuestStop, guestStopped, withKvmAdvice } from "./guest-state";
import { type DiskBus, type PortForward, QEMU, qemuArgs } from "./qemu";
import { QMP_SOCKET, QmpSession, qmpPath, queryStatus, stoppedBecause } from "./qmp";
import { awaitStarted, type WaitFor } from "./run";

/** What to boot and how: the parts of the QEMU command line a caller chooses. */
export interface MachineOptions {
  /** A raw disk image (disk.raw), or a GCE image.tar.gz holding one. */
  image: string;
  /** Attach one virtio-net NIC (user-mode network). Default: none for a boot (bootAndWatch); for a
   * background VM (startVm), one when the kernel on the disk declares a network device. */
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
  /** The cache directory where `auto` remembers its probe (see core/cache.ts). */
  cacheDir?: string;
  /** Called with a progress line (a fallback to TCG). Default: console.log. */
  onProgress?: (line: string) => void;
  /**
   * Refuse a disk holding a xen kernel before QEMU starts (the commands): such a kernel prints
   * only to the Xen console. Tests of the xen layout boot them in QEMU (the test kernels print on
   * COM1 too).
   */
  virtioOnly?: boolean;
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
 * (docs/platforms.md, Names, archives and exit statuses.) With it, what the kernel on the disk is,
 * when the disk is one of our layouts; with `virtioOnly`, a disk holding a xen kernel is refused.
 */
async function diskOf(
  options: MachineOptions,
  dir: string,
  env?: Record<string, string>,
): Promise<{ disk: string; kernel?: KernelInfo }> {
  const given = options.image;
  const format = await diskImageFormat(given);
  const image = resolve(given);
  let disk = image;
  if (format === "gzip") {
    // Only the first disk.raw: a later member of that name (a link) would replace it. Owner and
    // mode come from us, not from the archive.
    const flags = ["--force-local", "--occurrence=1", "--no-same-owner", "--no-same-permissions"];
    await run("tar", ["-xzf", image, ...flags, "-C", dir, "disk.raw"], {
      timeoutMs: 10 * 60 * 1000,
      env,
    });
    disk = join(dir, "disk.raw");
    const info = await lstat(disk);
    const problem = archivedDiskProblem(info.isFile() ? "regular file" : "special file", info.size);
    if (problem) throw new NotADiskImage(`${given}: its disk.raw, extracted, ${problem}`);
  }
  const kernel = await diskKernel(disk, dir);
  if (options.virtioOnly && kernel?.solo5.target === "xen") throw new NotADiskImage(xenDisk(given));
  return { disk, kernel };
}

/** What the kernel on a disk of ours is; undefined for another disk, or a kernel we cannot read. */
async function diskKernel(disk: string, dir: string): Promise<KernelInfo | undefined> {
  const extracted = await extractDiskKernel(disk, dir);
  if (extracted === undefined) return undefined;
  try {
    return await inspectKernel(extracted).catch(() => undefined);
  } finally {
    await rm(extracted, { force: true });
  }
}

/** The QEMU binary's path, or an error that says how to install it. */
function qemuBinary(qemu = QEMU): string {
  const file = findExecutable(qemu);
  if (!file)
    throw new Error(
      `${qemu} is not installed (not ${qemu.includes("/") ? "an executable file" : "on PATH"}): install QEMU (Debian: apt-get install qemu-system-x86)`,
    );
  return file;
}

/** What chooseAccel and rememberKvmFailure need for a machine. */
function accelOptions(options: MachineOptions, env?: Record<string, string>): AccelOptions {
  return { mode: options.accel, qemu: qemuBinary(options.qemu), cacheDir: options.cacheDir, env };
}

/**
 * QEMU's arguments for booting `disk` with `accel`, with a QMP monitor in its working directory.
 * SeaBIOS's debug console goes to `debugLog`.
 */
function machineArgs(
  options: MachineOptions,
  accel: AccelChoice,
  disk: string,
  consoleFile: string,
  debugLog: string,
): string[] {
  return qemuArgs({
    disk,
    consoleFile,
    debugLog,
    kvm: accel.accel === "kvm",
    qmp: true,
    bus: options.bus,
    memoryMiB: options.memoryMiB,
    net: options.net,
    forwards: options.forwards,
  });
}

/** A guest's state sources (guest-state.ts); `close()` ends the QMP session. */
type GuestWatch = GuestSources & { close(): void };

/**
 * Starts watching a guest. Its QMP session opens in the background, once QEMU has made the socket:
 * until then, and if it never does, stderr and SeaBIOS still tell.
 */
function openWatch(
  accel: AccelChoice,
  qemuDir: string,
  pid: number,
  alive: () => boolean,
  qemuOutput: () => string,
  debugLog: string,
): GuestWatch {
  let closed = false;
  const watch: GuestWatch = {
    accel,
    startedAt: Date.now(),
    qemuOutput,
    seabiosOutput: () => textOf(debugLog),
    close: () => {
      closed = true;
      watch.qmp?.close();
    },
  };
  QmpSession.open(qmpPath(qemuDir, pid), QMP_OPEN_MS, () => alive() && !closed).then(
    (session) => {
      if (closed) session.close();
      else watch.qmp = session;
    },
    () => {},
  );
  return watch;
}

/** QEMU makes its QMP socket as it starts, in well under a second. */
const QMP_OPEN_MS = 5_000;

/** The sentence for a stop: with a forced `kvm`, how to do without. */
const stopText = (stop: GuestStop, accel: AccelChoice) =>
  accel.mode === "auto" ? stop.why : withKvmAdvice(stop);

/** A progress line, where the caller wants them (default: the provider's stdout, which Pulumi shows). */
function progress(options: MachineOptions, line: string): void {
  (options.onProgress ?? console.log)(line);
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
  /** What the kernel on the disk is, when the disk is one of our layouts. */
  kernel?: KernelInfo;
}

/**
 * QEMU's own failure (it could not open the disk, an option was wrong), in its words. It exits
 * with status 1, as it does when the guest writes 0 to isa-debug-exit; what tells them apart is
 * that QEMU then says why on stderr (anything but a warning): docs/platforms.md, Names, archives
 * and exit statuses.
 */
function qemuFailed(exitCode: number | null, stderr: string): string | undefined {
  if (exitCode !== 1) return undefined;
  const error = stderr.split("\n").find((line) => line.trim() !== "" && !/\bwarning: /.test(line));
  return error === undefined ? undefined : `QEMU could not run the guest: ${error.trim()}`;
}

/**
 * Boots the image in QEMU in the foreground and watches its serial console. Resolves as soon as
 * the console matches `expect` (QEMU is then killed), when QEMU exits, when the guest cannot go on
 * (guest-state.ts), or at the timeout (QEMU is killed). In `auto`, a boot that KVM stopped is
 * booted again with TCG, and TCG stays the choice on this host (accel.ts). No QEMU process
 * outlives the call: it is killed on every path, including exceptions and SIGINT/SIGTERM/SIGHUP
 * of this process; what it extracts is in a scratch directory (core/scratch.ts), which goes on those
 * paths too.
 */
export async function bootAndWatch(options: BootOptions): Promise<BootResult> {
  return withScratch({ name: "boot" }, async (scratch) => {
    const { disk, kernel } = await diskOf(options, scratch);
    const accelFor = accelOptions(options);
    const first = await bootOnce(options, disk, scratch, await chooseAccel(accelFor));
    if (!(first.stop?.kvm && first.result.accel.mode === "auto"))
      return { ...first.result, kernel };
    const accel = await rememberKvmFailure(accelFor, first.stop.why);
    progress(options, `${accel.reason}: booting ${options.image} again`);
    return { ...(await bootOnce(options, disk, scratch, accel)).result, kernel };
  });
}

/** One boot of `disk` with `accel`, QEMU running in `dir`; `stop` says why the guest could not go on. */
async function bootOnce(
  options: BootOptions,
  disk: string,
  dir: string,
  accel: AccelChoice,
): Promise<{ result: BootResult; stop?: GuestStop }> {
  const expect = typeof options.expect === "string" ? new RegExp(options.expect) : options.expect;
  const debugLog = join(dir, "seabios.log");
  // A previous run's console, debug console or monitor must not be read as this one's.
  for (const file of [options.logFile, debugLog, join(dir, QMP_SOCKET)])
    await rm(file, { force: true });
  const file = qemuBinary(options.qemu);
  const qemu = await startWatched(
    file,
    machineArgs(options, accel, disk, options.logFile, debugLog),
    { cwd: dir },
  );
  const watch = openWatch(accel, dir, qemu.pid, qemu.alive, qemu.stderr, debugLog);
  try {
    let stop: GuestStop | undefined;
    const watched = await watchLog(options.logFile, {
      expect,
      timeoutMs: options.timeoutSeconds * 1000,
      alive: qemu.alive,
      failed: () => {
        watch.qmp?.poll();
        stop = guestStopped(watch);
        return stop && stopText(stop, accel);
      },
      onOutput: options.onOutput,
    });
    const exitCode = watched.outcome === "ended" ? qemu.exitCode() : null;
    await qemu.stop();
    // QEMU may have said why on its way out.
    stop ??= guestStopped({ ...watch, qmp: undefined });
    return {
      stop,
      result: {
        failure: stop ? stopText(stop, accel) : qemuFailed(exitCode, qemu.stderr()),
        accel,
        matched: watched.outcome === "matched",
        timedOut: watched.outcome === "timeout",
        tail: watched.tail,
        qemuMessages: qemu
          .stderr()
          .split("\n")
          .filter((line) => line !== "")
          .slice(-TAIL_LINES),
        logFile: options.logFile,
        exitCode,
      },
    };
  } finally {
    watch.close();
    await qemu.stop();
  }
}

/** A VM running in the background, and where its files are. */
export interface VmProcess extends ProcessIdentity {
  /** The serial console. */
  consoleLog: string;
  /** What QEMU itself printed. */
  qemuLog: string;
  /** SeaBIOS's debug console. */
  debugLog: string;
  /** QEMU's working directory, where its QMP socket is (qmp.ts). */
  stateDir: string;
  /** The accelerator QEMU runs with, and why. */
  accel: AccelChoice;
  /** What the kernel on the disk is, when the disk is one of our layouts. */
  kernel?: KernelInfo;
}

/** What a background VM is started from: the machine, where its files go, what its processes carry. */
export interface VmOptions extends MachineOptions {
  stateDir: string;
  /** Every process the VM's start runs (QEMU, tar, the KVM probe) gets it: local.Vm tags them with its run. */
  env?: Record<string, string>;
  /** QEMU is killed when we end, however we end (a foreground run); default: it outlives us. */
  endsWithUs?: boolean;
  /** Called with QEMU's exit status (or the signal that killed it) when it exits while we run. */
  onEnd?: StartOptions["onEnd"];
}

/**
 * Starts QEMU in the background with `accel`, detached (its own session, output to files in
 * `stateDir`, its working directory), so it keeps running after this process exits. A GCE tar.gz
 * image is extracted into `stateDir`. Stop it with `stopVm`; `isRunning` tells whether it is
 * still the same process.
 */
export async function startVm(options: VmOptions, accel: AccelChoice): Promise<VmProcess> {
  const { env, stateDir } = options;
  await mkdir(stateDir, { recursive: true });
  const { disk, kernel } = await diskOf(options, stateDir, env);
  const consoleLog = join(stateDir, "console.log");
  const qemuLog = join(stateDir, "qemu.log");
  const debugLog = join(stateDir, "seabios.log");
  for (const file of [consoleLog, qemuLog, debugLog, join(stateDir, QMP_SOCKET)])
    await rm(file, { force: true });
  const file = qemuBinary(options.qemu);
  // A NIC when asked, else when the kernel declares a network device (it cannot start without).
  const net = options.net ?? kernel?.manifest.devices.some((device) => device.type === "net");
  const args = machineArgs({ ...options, net }, accel, disk, consoleLog, debugLog);
  const id = await startBackground(file, args, {
    logFile: qemuLog,
    env,
    cwd: stateDir,
    endsWithUs: options.endsWithUs,
    onEnd: options.onEnd,
  });
  return { ...id, consoleLog, qemuLog, debugLog, stateDir, accel, kernel };
}

/** What watches a VM `watchVm` started, with `failed`, which says why its guest cannot go on. */
export type VmWatcher<T> = (vm: VmProcess, failed: () => string | undefined) => Promise<T>;

/**
 * Starts a background VM with the accelerator `auto` (or the mode given) chooses and hands it
 * to `watch`; when `watch` throws, the VM is stopped. In `auto`, a VM that KVM stopped while
 * `watch` watched it (`failed` said so, or `watch` threw and QEMU's last words say so) is
 * stopped and started again with TCG, which stays the choice on this host (accel.ts). What
 * local.Vm's create (startVmAndWait) and `pulumi-mirage run` share. `what` names the VM in
 * progress lines.
 */
export async function watchVm<T>(
  options: VmOptions,
  what: string,
  watch: VmWatcher<T>,
): Promise<T> {
  const accelFor = accelOptions(options, options.env);
  let accel = await chooseAccel(accelFor);
  for (;;) {
    const vm = await startVm(options, accel);
    const guest = openWatch(
      accel,
      vm.stateDir,
      vm.pid,
      () => isRunning(vm),
      () => textOf(vm.qemuLog),
      vm.debugLog,
    );
    let stop: GuestStop | undefined;
    const failed = () => {
      guest.qmp?.poll();
      stop = guestStopped(guest);
      return stop && stopText(stop, accel);
    };
    try {
      const result = await watch(vm, failed);
      if (!(stop?.kvm && accel.mode === "auto")) return result;
    } catch (error) {
      // A watcher that gives up leaves no VM behind.
      await stopBackground(vm);
      // QEMU may have said why on its way out (KVM that would not start).
      stop ??= guestStopped({ ...guest, qmp: undefined });
      // A second round runs with TCG, where no stop is KVM's: this loop runs at most twice.
      if (!(stop?.kvm && accel.mode === "auto")) throw error;
    } finally {
      guest.close();
    }
    await stopBackground(vm);
    accel = await rememberKvmFailure(accelFor, stop.why);
    progress(options, `${accel.reason}: starting ${what} again`);
  }
}

/**
 * Starts a background VM (watchVm) and waits until it started (run.ts awaitStarted: its console
 * matched `waitFor`, or it stayed up a moment). `what` names the VM in errors.
 */
export function startVmAndWait(
  options: VmOptions,
  waitFor: WaitFor | undefined,
  what: string,
): Promise<VmProcess> {
  return watchVm(options, what, async (vm, failed) => {
    await awaitStarted(what, vm, vm.consoleLog, waitFor, () => qemuSaid(vm), failed);
    return vm;
  });
}

/** QEMU's own last lines about a background VM, for an error. */
async function qemuSaid(vm: VmProcess): Promise<string[]> {
  const messages = await qemuMessages(vm);
  return messages.length > 0 ? [`QEMU said:\n${messages.join("\n")}`] : [];
}

/**
 * Why a background VM that is still running cannot go on, asked of QEMU itself (QMP): a guest KVM
 * stopped is not running. Undefined when it can, or when its QEMU has no monitor to ask (a VM
 * started by an older version).
 */
export async function vmHalted(
  vm: Pick<VmProcess, "pid" | "stateDir">,
): Promise<string | undefined> {
  const status = await queryStatus(qmpPath(vm.stateDir, vm.pid));
  return status && stoppedBecause(status.status);
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

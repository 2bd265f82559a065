// `pulumi-mirage boot IMAGE`: the test harness. Boots a disk image in QEMU in the foreground
// (local/boot.ts bootAndWatch), its console on stdout, until a pattern matches, the guest powers
// off, it cannot go on, or a timeout; then says why on stderr, once, with QEMU's own words and a
// hint where the cause is known. A xen or aws disk is refused before QEMU starts.
import { join } from "node:path";
import { BOUNDS, outOfBounds } from "../../rules/bounds";
import { describeProblem } from "../../rules/problem";
import { withScratch } from "../core/scratch";
import { type AccelMode, requestedMode } from "../local/accel";
import { type BootResult, bootAndWatch } from "../local/boot";
import type { DiskBus } from "../local/qemu";
import {
  type CommandLine,
  type CommandSpec,
  flagValue,
  readCommandLine,
  UsageError,
} from "./usage";

/** How long `boot` waits without --timeout. */
const DEFAULT_TIMEOUT_SECONDS = 60;

export const BOOT_COMMAND: CommandSpec = {
  args: "IMAGE",
  summary:
    "The test harness: boot a disk.raw or image.tar.gz in QEMU, streaming its serial console " +
    "to stdout, and exit 0 as soon as --expect matches (without --expect: when the guest " +
    "powers off by itself), 1 on --timeout, when QEMU exits first, or as soon as the guest " +
    "cannot go on (KVM stopped it, nothing to boot). A xen or aws image is refused: it runs " +
    "only on Xen. To run a unikernel until you stop it, use `pulumi-mirage run`.",
  flags: [
    {
      name: "timeout",
      value: "S",
      help: `give up after S seconds (default ${DEFAULT_TIMEOUT_SECONDS}).`,
    },
    {
      name: "expect",
      value: "REGEX",
      help: "succeed as soon as the console matches REGEX (a JavaScript regular expression, matched line-wise).",
    },
    {
      name: "net",
      help: "attach a virtio-net NIC (user-mode network); a unikernel that declares a network device stops at start without one.",
    },
    { name: "bus", value: "BUS", help: "the disk's bus: ide (default) or virtio-scsi." },
    {
      name: "accel",
      value: "MODE",
      help: "auto, kvm or tcg (default: $PULUMI_MIRAGE_ACCEL, else auto: KVM where QEMU has been seen to run a guest with it here, else TCG; a guest KVM stops is booted again with TCG).",
    },
    { name: "log", value: "FILE", help: "keep a copy of the console in FILE." },
  ],
  examples: [
    "pulumi-mirage boot out/disk.raw --expect 'Hello, World'",
    "pulumi-mirage boot out/image.tar.gz --net --timeout 120 --log console.txt",
  ],
};

/** The `boot` command's arguments, checked. */
export interface BootCommandArgs {
  image: string;
  timeoutSeconds: number;
  expect?: RegExp;
  net: boolean;
  bus: DiskBus;
  accel: AccelMode;
  log?: string;
}

/** Parses the arguments after `boot`; throws UsageError, in the rules' words, on wrong ones. */
export function parseBootCommand(args: string[]): BootCommandArgs {
  return bootArgs(readCommandLine(args, BOOT_COMMAND));
}

export function bootArgs(line: CommandLine): BootCommandArgs {
  if (line.positionals.length !== 1)
    throw new UsageError(line.positionals.length === 0 ? "IMAGE is missing" : "give one IMAGE");
  const given = flagValue(line, "timeout");
  const timeoutSeconds = timeoutValue(given);
  const timeoutProblem = outOfBounds(timeoutSeconds, BOUNDS.timeoutSeconds);
  if (timeoutProblem !== undefined)
    throw new UsageError(describeProblem({ property: "--timeout", reason: timeoutProblem }));
  const pattern = flagValue(line, "expect");
  let expect: RegExp | undefined;
  try {
    expect = pattern === undefined ? undefined : new RegExp(pattern);
  } catch (error) {
    throw new UsageError(`--expect is not a valid regular expression: ${(error as Error).message}`);
  }
  const bus = flagValue(line, "bus") ?? "ide";
  if (bus !== "ide" && bus !== "virtio-scsi")
    throw new UsageError(`--bus ${bus}: give ide or virtio-scsi`);
  let accel: AccelMode;
  try {
    accel = requestedMode(flagValue(line, "accel"));
  } catch (error) {
    throw new UsageError(`--${(error as Error).message}`);
  }
  return {
    image: line.positionals[0],
    // A number: the bound accepts nothing else.
    timeoutSeconds: timeoutSeconds as number,
    expect,
    net: line.values.has("net"),
    bus,
    accel,
    log: flagValue(line, "log"),
  };
}

/** --timeout as the bound sees it: the number it spells, else the text itself (refused as given). */
function timeoutValue(given: string | undefined): unknown {
  if (given === undefined) return DEFAULT_TIMEOUT_SECONDS;
  const seconds = Number(given);
  return given.trim() !== "" && Number.isFinite(seconds) ? seconds : given;
}

export async function bootCommand(args: BootCommandArgs): Promise<number> {
  const { image, timeoutSeconds, expect, net, bus, accel, log } = args;
  const boot = (logFile: string) =>
    bootAndWatch({
      image,
      accel,
      timeoutSeconds,
      expect,
      net,
      bus,
      logFile,
      virtioOnly: true,
      onOutput: (text) => process.stdout.write(text),
      // stdout is the guest's console.
      onProgress: (line) => process.stderr.write(`pulumi-mirage boot: ${line}\n`),
    });
  // Without --log, the console (streamed to stdout) is scratch, gone when the boot is over.
  const result =
    log !== undefined
      ? await boot(log)
      : await withScratch({ name: "console" }, (dir) => boot(join(dir, "console.log")));
  const ok = expect ? result.matched : result.exitCode !== null && result.failure === undefined;
  const outcome = result.matched
    ? `the console matched /${expect?.source}/`
    : (result.failure ??
      (result.timedOut
        ? `timed out after ${timeoutSeconds} s${expect ? ` without the console matching /${expect.source}/` : ""}`
        : `QEMU exited with status ${result.exitCode}${expect ? ` before the console matched /${expect.source}/` : ""}${exitMeaning(result.exitCode)}`));
  const report = [`pulumi-mirage boot: ${outcome}`];
  // The console went to stdout as it came: only QEMU's own words are repeated here.
  if (!ok && result.qemuMessages.length > 0) report.push("QEMU said:", ...result.qemuMessages);
  const hint = netHint(result, net);
  if (hint) report.push(hint);
  report.push(`accelerator: ${result.accel.accel} (${result.accel.reason})`);
  if (log !== undefined) report.push(`console log: ${result.logFile}`);
  process.stderr.write(`${report.join("\n")}\n`);
  return ok ? 0 : 1;
}

/**
 * QEMU's exit status whenever a Solo5 virtio kernel exits: it writes 41 to isa-debug-exit
 * (bindings/virtio/platform.c), which QEMU turns into 41 << 1 | 1, whatever the kernel's status.
 */
export const SOLO5_VIRTIO_EXIT = 83;

/**
 * A hint when a kernel that declares a network exited, booted without a NIC: Solo5 then aborts
 * at start, which QEMU reports with the same 83 as any other exit.
 */
function netHint(result: BootResult, net: boolean): string | undefined {
  const nets = result.kernel?.manifest.devices.filter((device) => device.type === "net") ?? [];
  if (net || result.exitCode !== SOLO5_VIRTIO_EXIT || nets.length === 0) return undefined;
  const names = nets.map((device) => device.name).join(", ");
  return `hint: the unikernel declares network device ${names} and was booted without a NIC; Solo5 exits at start when a declared device is missing ("not attached" on its console): add --net`;
}

/** What QEMU's exit status says about the guest: isa-debug-exit statuses are odd, a reset gives 0. */
export function exitMeaning(status: number | null): string {
  if (status === 0)
    return " (the guest reset or shut down: QEMU runs with -no-reboot, so a triple fault or a reboot ends it)";
  if (status === SOLO5_VIRTIO_EXIT)
    return " (the guest powered off: a Solo5 virtio kernel ends so whatever its own status)";
  return " (the guest powered off)";
}

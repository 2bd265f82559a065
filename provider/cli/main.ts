#!/usr/bin/env node
// The `pulumi-mirage` command: a dispatcher over subcommands. Each subcommand is one entry in
// COMMANDS and does its work through a provider module, so the CLI and the Pulumi resources run
// the same code.
import { join } from "node:path";
import { parseArgs } from "node:util";
import { BOUNDS, outOfBounds } from "../../rules/bounds";
import { describeProblem } from "../../rules/problem";
import { withScratch } from "../core/scratch";
import { inspectKernel } from "../kernel/inspect";
import { type AccelMode, requestedMode } from "../local/accel";
import { bootAndWatch } from "../local/boot";
import type { DiskBus } from "../local/qemu";
import { configuredKernel, defaultProgramCanRun, diagnose, formatFindings } from "./doctor";
import { parseImageArgs, runImageCommand } from "./image";

/** Wrong arguments: the dispatcher prints the usage and exits with status 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** How long `boot` waits without --timeout. */
const DEFAULT_TIMEOUT_SECONDS = 60;

interface Command {
  /** Argument synopsis, after the command name. */
  args: string;
  summary: string;
  /** Runs with the arguments after the command name; resolves with the exit status. */
  run(args: string[]): Promise<number>;
}

const COMMANDS: Record<string, Command> = {
  boot: {
    args: "IMAGE [--timeout S] [--expect REGEX] [--net] [--bus ide|virtio-scsi] [--accel auto|kvm|tcg] [--log FILE]",
    summary:
      "Boot a disk.raw or image.tar.gz in QEMU, streaming the serial console; exit 0 as soon as " +
      `REGEX appears (without --expect: when the guest powers off), 1 on timeout (default ${DEFAULT_TIMEOUT_SECONDS} s), ` +
      "when QEMU exits first or as soon as the guest cannot go on (KVM stopped it, nothing to " +
      "boot). --accel (default $PULUMI_MIRAGE_ACCEL, else auto): auto uses KVM where QEMU has " +
      "been seen to run a guest with it here, else TCG, and boots again with TCG when KVM " +
      "stops the guest. --log FILE keeps a copy of the console",
    run: bootCommand,
  },
  doctor: {
    args: "[--kernel PATH]",
    summary:
      "List each prerequisite with its version, or what is missing and how to install it; " +
      "exit 0 only when the default program (examples/local) can run. With a prebuilt kernel " +
      "(--kernel, or `kernel` in a Pulumi.*.yaml stack config of the current directory) mirage " +
      "and opam are not required",
    async run(args) {
      let kernel: string | undefined;
      try {
        const { values } = parseArgs({
          args,
          strict: true,
          options: { kernel: { type: "string" } },
        });
        kernel = values.kernel ?? (await configuredKernel(process.cwd()));
      } catch (error) {
        throw new UsageError((error as Error).message);
      }
      const findings = await diagnose({ kernel });
      process.stdout.write(`${formatFindings(findings)}\n`);
      return defaultProgramCanRun(findings) ? 0 : 1;
    },
  },
  inspect: {
    args: "KERNEL",
    summary:
      "Show what a unikernel binary is (Solo5 target, ABI version, declared devices, " +
      "multiboot and Xen PVH entry points) as JSON",
    async run(args) {
      if (args.length !== 1) throw new UsageError("inspect takes exactly one argument, KERNEL");
      const info = await inspectKernel(args[0]);
      process.stdout.write(`${JSON.stringify(info, null, 2)}\n`);
      return 0;
    },
  },
  image: {
    args: "KERNEL --out DIR [--format raw|gce|aws] [-- BOOTARG...]",
    summary:
      "Make a bootable BIOS disk (DIR/disk.raw; gce adds DIR/image.tar.gz) from a virtio kernel " +
      "(raw, gce) or a xen kernel (raw, aws), passing BOOTARGs to it, after the checks DiskImage " +
      "makes; prints each file's path, sha256 and size as JSON (progress goes to stderr)",
    run: (args) => runImageCommand(parseImageArgs(args, (message) => new UsageError(message))),
  },
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
  let parsed: ReturnType<typeof parseBootArgs>;
  try {
    parsed = parseBootArgs(args);
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  const { values, positionals } = parsed;
  if (positionals.length !== 1) throw new UsageError("boot takes exactly one IMAGE");
  const timeoutSeconds = timeoutValue(values.timeout);
  const timeoutProblem = outOfBounds(timeoutSeconds, BOUNDS.timeoutSeconds);
  if (timeoutProblem !== undefined)
    throw new UsageError(describeProblem({ property: "--timeout", reason: timeoutProblem }));
  let expect: RegExp | undefined;
  try {
    expect = values.expect === undefined ? undefined : new RegExp(values.expect);
  } catch (error) {
    throw new UsageError(`--expect is not a valid regular expression: ${(error as Error).message}`);
  }
  const bus = values.bus ?? "ide";
  if (bus !== "ide" && bus !== "virtio-scsi")
    throw new UsageError(`--bus ${bus}: give ide or virtio-scsi`);
  let accel: AccelMode;
  try {
    accel = requestedMode(values.accel);
  } catch (error) {
    throw new UsageError(`--${(error as Error).message}`);
  }
  return {
    image: positionals[0],
    // A number: the bound accepts nothing else.
    timeoutSeconds: timeoutSeconds as number,
    expect,
    net: values.net,
    bus,
    accel,
    log: values.log,
  };
}

/** --timeout as the bound sees it: the number it spells, else the text itself (refused as given). */
function timeoutValue(given: string | undefined): unknown {
  if (given === undefined) return DEFAULT_TIMEOUT_SECONDS;
  const seconds = Number(given);
  return given.trim() !== "" && Number.isFinite(seconds) ? seconds : given;
}

async function bootCommand(args: string[]): Promise<number> {
  const { image, timeoutSeconds, expect, net, bus, accel, log } = parseBootCommand(args);
  const boot = (logFile: string) =>
    bootAndWatch({
      image,
      accel,
      timeoutSeconds,
      expect,
      net,
      bus,
      logFile,
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
  if (!ok) {
    if (result.tail.length > 0)
      report.push(`last ${result.tail.length} console lines:`, ...result.tail);
    if (result.qemuMessages.length > 0) report.push("QEMU said:", ...result.qemuMessages);
  }
  report.push(`accelerator: ${result.accel.accel} (${result.accel.reason})`);
  if (log !== undefined) report.push(`console log: ${result.logFile}`);
  process.stderr.write(`${report.join("\n")}\n`);
  return ok ? 0 : 1;
}

/** What QEMU's exit status says about the guest: isa-debug-exit statuses are odd, a reset gives 0. */
function exitMeaning(status: number | null): string {
  if (status === 0)
    return " (the guest reset or shut down: QEMU runs with -no-reboot, so a triple fault or a reboot ends it)";
  return " (the guest powered off)";
}

function parseBootArgs(args: string[]) {
  return parseArgs({
    args,
    allowPositionals: true,
    strict: true,
    options: {
      timeout: { type: "string" },
      expect: { type: "string" },
      net: { type: "boolean", default: false },
      bus: { type: "string" },
      accel: { type: "string" },
      log: { type: "string" },
    },
  });
}

function usage(): string {
  const width = Math.max(...Object.entries(COMMANDS).map(([n, c]) => `${n} ${c.args}`.length));
  const lines = Object.entries(COMMANDS).map(
    ([name, c]) => `  ${`${name} ${c.args}`.padEnd(width)}  ${c.summary}`,
  );
  return [
    "usage: pulumi-mirage COMMAND [ARGS...]",
    "",
    "Commands:",
    ...lines,
    "",
    "pulumi-mirage COMMAND --help shows one command's usage.",
    "",
  ].join("\n");
}

const isHelp = (arg: string | undefined) => arg === "--help" || arg === "-h" || arg === "help";

/** Runs the command line `argv` (without node and the script); resolves with the exit status. */
export async function main(argv: string[]): Promise<number> {
  const [name, ...args] = argv;
  if (name === undefined || isHelp(name)) {
    (name === undefined ? process.stderr : process.stdout).write(usage());
    return name === undefined ? 2 : 0;
  }
  const command = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  if (!command) {
    process.stderr.write(`pulumi-mirage: unknown command '${name}'\n\n${usage()}`);
    return 2;
  }
  if (isHelp(args[0])) {
    process.stdout.write(`usage: pulumi-mirage ${name} ${command.args}\n\n${command.summary}\n`);
    return 0;
  }
  try {
    return await command.run(args);
  } catch (error) {
    if (error instanceof UsageError) {
      process.stderr.write(
        `pulumi-mirage: ${error.message}\nusage: pulumi-mirage ${name} ${command.args}\n`,
      );
      return 2;
    }
    const message = error instanceof Error ? error.message : String(error);
    process.stderr.write(`pulumi-mirage ${name}: ${message}\n`);
    return 1;
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then((status) => {
    process.exitCode = status;
  });
}

#!/usr/bin/env node
// The `pulumi-mirage` command: a dispatcher over subcommands. Each subcommand is one entry in
// COMMANDS and does its work through a provider module, so the CLI and the Pulumi resources run
// the same code.
import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { BOUNDS, outOfBounds } from "../../rules/bounds";
import { describeProblem } from "../../rules/problem";
import { withScratch } from "../core/scratch";
import { inspectKernel } from "../kernel/inspect";
import { type AccelMode, requestedMode } from "../local/accel";
import { type BootResult, bootAndWatch } from "../local/boot";
import type { DiskBus } from "../local/qemu";
import { configuredKernel, defaultProgramCanRun, diagnose, formatFindings } from "./doctor";
import { IMAGE_COMMAND, parseImageArgs, runImageCommand } from "./image";
import { RUN_COMMAND, runCommand } from "./run";
import {
  type CommandLine,
  type CommandSpec,
  commandHelp,
  flagValue,
  readCommandLine,
  synopsis,
  UsageError,
  wrap,
} from "./usage";

export { UsageError };

/** How long `boot` waits without --timeout. */
const DEFAULT_TIMEOUT_SECONDS = 60;

interface Command extends CommandSpec {
  /** Runs with the command line read; resolves with the exit status. */
  run(line: CommandLine, args: string[]): Promise<number>;
}

const BOOT_COMMAND: CommandSpec = {
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

const COMMANDS: Record<string, Command> = {
  run: { ...RUN_COMMAND, run: runCommand },
  boot: { ...BOOT_COMMAND, run: (line) => bootCommand(bootArgs(line)) },
  image: {
    ...IMAGE_COMMAND,
    run: (_line, args) =>
      runImageCommand(parseImageArgs(args, (message) => new UsageError(message))),
  },
  inspect: {
    args: "KERNEL",
    summary:
      "Show what a unikernel binary is, as JSON: its Solo5 target and ABI version, the devices " +
      "it declares (each needs a NIC, tap or file to run), and its multiboot and Xen PVH " +
      "entry points (what boots it from a disk).",
    flags: [],
    examples: ["pulumi-mirage inspect dist/hello.virtio"],
    async run(line) {
      if (line.positionals.length !== 1)
        throw new UsageError(
          line.positionals.length === 0 ? "KERNEL is missing" : "give one KERNEL",
        );
      const info = await inspectKernel(line.positionals[0]);
      process.stdout.write(`${JSON.stringify(info, null, 2)}\n`);
      return 0;
    },
  },
  doctor: {
    args: "",
    summary:
      "Check this machine for what pulumi-mirage drives: each tool with its version, or what " +
      "is missing and how to install it. REQUIRED tools are needed to run your program here; " +
      "optional ones only for some targets and clouds. With a prebuilt kernel (--kernel, or " +
      "`kernel` in a Pulumi.*.yaml stack config of the current directory) nothing is built, " +
      "so mirage and opam are not required. Exits 0 when everything required is there.",
    flags: [
      {
        name: "kernel",
        value: "PATH",
        help: "the prebuilt kernel your program uses (default: the stack config's `kernel`).",
      },
    ],
    examples: ["pulumi-mirage doctor", "pulumi-mirage doctor --kernel dist/hello.virtio"],
    async run(line) {
      if (line.positionals.length > 0)
        throw new UsageError(`unexpected argument ${line.positionals[0]}`);
      let kernel = flagValue(line, "kernel");
      try {
        kernel ??= await configuredKernel(process.cwd());
      } catch (error) {
        throw new UsageError((error as Error).message);
      }
      const findings = await diagnose({ kernel });
      process.stdout.write(`${formatFindings(findings)}\n`);
      return defaultProgramCanRun(findings) ? 0 : 1;
    },
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
  return bootArgs(readCommandLine(args, BOOT_COMMAND));
}

function bootArgs(line: CommandLine): BootCommandArgs {
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

async function bootCommand(args: BootCommandArgs): Promise<number> {
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
  if (!ok && hint) report.push(hint);
  report.push(`accelerator: ${result.accel.accel} (${result.accel.reason})`);
  if (log !== undefined) report.push(`console log: ${result.logFile}`);
  process.stderr.write(`${report.join("\n")}\n`);
  return ok ? 0 : 1;
}

/**
 * QEMU's exit status whenever a Solo5 virtio kernel exits: it writes 41 to isa-debug-exit
 * (bindings/virtio/platform.c), which QEMU turns into 41 << 1 | 1, whatever the kernel's status.
 */
const SOLO5_VIRTIO_EXIT = 83;

/** A hint when a kernel that declares a network exited, booted without a NIC. */
function netHint(result: BootResult, net: boolean): string | undefined {
  const nets = result.kernel?.manifest.devices.filter((device) => device.type === "net") ?? [];
  if (net || result.exitCode !== SOLO5_VIRTIO_EXIT || nets.length === 0) return undefined;
  const names = nets.map((device) => device.name).join(", ");
  return `hint: the unikernel declares network device ${names} and was booted without a NIC; Solo5 exits at start when a declared device is missing ("not attached" on its console): add --net`;
}

/** What QEMU's exit status says about the guest: isa-debug-exit statuses are odd, a reset gives 0. */
function exitMeaning(status: number | null): string {
  if (status === 0)
    return " (the guest reset or shut down: QEMU runs with -no-reboot, so a triple fault or a reboot ends it)";
  return " (the guest powered off)";
}

/** The package's version, from its package.json (two levels above build/provider/cli/). */
function version(): string {
  for (const up of ["../..", "../../.."]) {
    try {
      const manifest = JSON.parse(readFileSync(resolve(__dirname, up, "package.json"), "utf8"));
      if (manifest.name === "pulumi-mirage") return manifest.version;
    } catch {
      // Not here: one level up.
    }
  }
  return "unknown";
}

function usage(): string {
  const lines = [
    "usage: pulumi-mirage COMMAND [ARGS...]",
    "       pulumi-mirage --version",
    "",
    ...wrap(
      "Run MirageOS unikernels here, and make the disk images pulumi-mirage's resources upload.",
    ),
    "",
    "Commands:",
  ];
  for (const [name, command] of Object.entries(COMMANDS)) {
    lines.push(`  ${synopsis(name, command).replace("pulumi-mirage ", "")}`);
    lines.push(...wrap(command.summary.split(/(?<=\.) /)[0], "      "));
  }
  lines.push("", "pulumi-mirage COMMAND --help shows a command's options and examples.", "");
  return lines.join("\n");
}

const isHelp = (arg: string | undefined) => arg === "--help" || arg === "-h";

/** Runs the command line `argv` (without node and the script); resolves with the exit status. */
export async function main(argv: string[]): Promise<number> {
  const [name, ...args] = argv;
  if (name === undefined || isHelp(name) || name === "help") {
    (name === undefined ? process.stderr : process.stdout).write(usage());
    return name === undefined ? 2 : 0;
  }
  if (name === "--version" || name === "-V") {
    process.stdout.write(`pulumi-mirage ${version()}\n`);
    return 0;
  }
  const command = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  if (!command) {
    const what = name.startsWith("-") ? "option" : "command";
    process.stderr.write(`pulumi-mirage: unknown ${what} ${name}\n\n${usage()}`);
    return 2;
  }
  if (args.some((arg, index) => isHelp(arg) && !args.slice(0, index).includes("--"))) {
    process.stdout.write(commandHelp(name, command));
    return 0;
  }
  try {
    return await command.run(readCommandLine(args, command), args);
  } catch (error) {
    if (error instanceof UsageError) {
      process.stderr.write(
        `pulumi-mirage ${name}: ${error.message}\n${wrap(synopsis(name, command), "    ", 80, "usage: ").join("\n")}\n(pulumi-mirage ${name} --help shows every option)\n`,
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

#!/usr/bin/env node
// The `pulumi-mirage` command: a dispatcher over subcommands. Each subcommand is one entry in
// COMMANDS and does its work through a provider module, so the CLI and the Pulumi resources run
// the same code.
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { inspectKernel } from "../kernel/inspect";
import { BOOT_COMMAND, bootArgs, bootCommand } from "./boot";
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

export { type BootCommandArgs, parseBootCommand } from "./boot";
export { UsageError };

interface Command extends CommandSpec {
  /** Runs with the command line read; resolves with the exit status. */
  run(line: CommandLine, args: string[]): Promise<number>;
}

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

#!/usr/bin/env node
// The `pulumi-mirage` command: a dispatcher over subcommands. Each subcommand is one entry in
// COMMANDS and does its work through a provider module, so the CLI and the Pulumi resources run
// the same code.
import { inspectKernel } from "./inspect";

/** Wrong arguments: the dispatcher prints the usage and exits with status 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

interface Command {
  /** Argument synopsis, after the command name. */
  args: string;
  summary: string;
  /** Runs with the arguments after the command name; resolves with the exit status. */
  run(args: string[]): Promise<number>;
}

const COMMANDS: Record<string, Command> = {
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
};

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

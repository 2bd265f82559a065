// What every `pulumi-mirage` command shares: its help (a synopsis, what it does, one line per flag,
// examples; wrapped at 80 columns), and reading its command line against its flags, so that an
// unknown option is named as such whatever the command.

/** Wrong arguments: the dispatcher prints the message and the usage and exits with status 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** A flag a command takes. */
export interface Flag {
  /** The long name, without the dashes. */
  name: string;
  /** A one-letter alias, without the dash. */
  short?: string;
  /** The value's name in help (`--out DIR`); a flag without one is a switch. */
  value?: string;
  /** Given more than once, each value counts. */
  repeatable?: boolean;
  /** What it does, with its default. */
  help: string;
}

export interface CommandSpec {
  /** The positional arguments, as help shows them (`KERNEL`, `IMAGE|KERNEL`). */
  args: string;
  /** What the command does, a few sentences. */
  summary: string;
  flags: Flag[];
  /** What follows `--`, as help shows it (`BOOTARG...`); without it, `--` is refused. */
  rest?: string;
  /** Whole command lines, each shown after `$ `. */
  examples: string[];
}

/** A command line read against a command's flags. */
export interface CommandLine {
  /** Each flag given: its values (a switch's is "true"), in order. */
  values: Map<string, string[]>;
  positionals: string[];
  /** What came after `--`. */
  rest: string[];
}

const WIDTH = 80;

/** `text` in lines of at most `width` columns (a longer word stays whole), each after `indent`. */
export function wrap(text: string, indent = "", width = WIDTH, first = indent): string[] {
  const lines: string[] = [];
  let line = first;
  let empty = true;
  for (const word of text.split(/\s+/).filter((w) => w !== "")) {
    if (!empty && line.length + 1 + word.length > width) {
      lines.push(line);
      line = indent;
      empty = true;
    }
    line += empty ? word : ` ${word}`;
    empty = false;
  }
  lines.push(line);
  return lines;
}

const flagSpelling = (flag: Flag) =>
  `${flag.short ? `-${flag.short}, ` : ""}--${flag.name}${flag.value ? ` ${flag.value}` : ""}`;

/** The synopsis line: `usage: pulumi-mirage NAME ARGS [flags] [-- REST]`. */
export function synopsis(name: string, spec: CommandSpec): string {
  const rest = spec.rest ? ` [-- ${spec.rest}]` : "";
  const flags = spec.flags.length > 0 ? " [OPTIONS]" : "";
  return `pulumi-mirage ${name}${spec.args ? ` ${spec.args}` : ""}${flags}${rest}`;
}

/** A command's whole help. */
export function commandHelp(name: string, spec: CommandSpec): string {
  const lines = [...wrap(synopsis(name, spec), "    ", WIDTH, "usage: "), ""];
  lines.push(...wrap(spec.summary), "");
  if (spec.flags.length > 0) {
    lines.push("Options:");
    const column = Math.min(26, Math.max(...spec.flags.map((f) => flagSpelling(f).length)) + 4);
    for (const flag of spec.flags) {
      const head = `  ${flagSpelling(flag)}`;
      const indent = " ".repeat(column);
      if (head.length + 2 > column) lines.push(head, ...wrap(flag.help, indent));
      else lines.push(...wrap(flag.help, indent, WIDTH, head.padEnd(column)));
    }
    lines.push("");
  }
  if (spec.examples.length > 0) {
    lines.push("Examples:");
    for (const example of spec.examples) lines.push(...wrap(example, "      ", WIDTH, "  $ "));
    lines.push("");
  }
  return lines.join("\n");
}

/**
 * Reads `args` (after the command's name) against `spec`'s flags: `--name VALUE`,
 * `--name=VALUE`, `-s VALUE`, `-sVALUE`, switches, positionals, and what follows `--`. Throws a
 * UsageError naming an unknown option, a missing value, a repeated flag that is not repeatable,
 * or a `--` the command does not take.
 */
export function readCommandLine(args: readonly string[], spec: CommandSpec): CommandLine {
  const values = new Map<string, string[]>();
  const positionals: string[] = [];
  const separator = args.indexOf("--");
  const own = separator === -1 ? args : args.slice(0, separator);
  const rest = separator === -1 ? [] : args.slice(separator + 1);
  if (separator !== -1 && !spec.rest)
    throw new UsageError("unexpected -- (this command takes nothing after --)");
  for (let i = 0; i < own.length; i++) {
    const arg = own[i];
    if (!arg.startsWith("-") || arg === "-") {
      positionals.push(arg);
      continue;
    }
    const long = arg.startsWith("--");
    const [key, inline] = long
      ? (arg.slice(2).split(/=(.*)/s, 2) as [string, string | undefined])
      : [arg.slice(1, 2), arg.length > 2 ? arg.slice(2) : undefined];
    const flag = spec.flags.find((f) => (long ? f.name === key : f.short === key));
    const spelled = long ? `--${key}` : `-${key}`;
    if (!flag)
      throw new UsageError(
        `unknown option ${spelled}${spec.rest ? ` (${spec.rest} go after --)` : ""}`,
      );
    let value = "true";
    if (flag.value) {
      if (inline !== undefined) value = inline;
      else if (i + 1 < own.length) value = own[++i];
      else throw new UsageError(`${spelled} needs a value (${flagSpelling(flag)})`);
    } else if (inline !== undefined) {
      throw new UsageError(`${spelled} takes no value`);
    }
    const given = values.get(flag.name) ?? [];
    if (given.length > 0 && !flag.repeatable)
      throw new UsageError(`--${flag.name} is given twice: give it once`);
    values.set(flag.name, [...given, value]);
  }
  return { values, positionals, rest };
}

/** The one value of flag `name`, or undefined. */
export const flagValue = (line: CommandLine, name: string) => line.values.get(name)?.[0];

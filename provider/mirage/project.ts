// What a unikernel's source tree says about its build: its name and the file a target produces
// (docs/platforms.md, MirageOS build contract).
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import type { Target } from "../../rules/targets";

/**
 * The long option an argument spells, as cmdliner reads it: `--NAME` or `--NAME=VALUE`, where
 * NAME may be any unambiguous prefix of the option's name (`--tar` is `--target`).
 */
function spellsLong(arg: string, name: string, minPrefix: number): boolean {
  if (!arg.startsWith("--")) return false;
  const given = arg.slice(2).split("=")[0] as string;
  return given.length >= Math.min(minPrefix, name.length) && name.startsWith(given);
}

/** Whether `arg` is the short option `-X`, alone or with its value attached (`-Xvalue`). */
const spellsShort = (arg: string, letter: string) => arg.startsWith(`-${letter}`);

/** The value of `-o NAME` / `-oNAME` / `--output NAME` / `--output=NAME` in configure arguments. */
function outputArg(configureArgs: readonly string[]): string | undefined {
  let name: string | undefined;
  configureArgs.forEach((arg, i) => {
    const long = spellsLong(arg, "output", 2);
    if (!long && !spellsShort(arg, "o")) return;
    const attached = long ? arg.split("=").slice(1).join("=") : arg.slice(2);
    name = long
      ? arg.includes("=")
        ? attached
        : configureArgs[i + 1]
      : attached || configureArgs[i + 1];
  });
  return name;
}

/**
 * Why configure arguments would break the build's contract, naming the argument; undefined when
 * they do not. The target has its own property (the kernel's extension and the checks depend on
 * it), and the build runs config.ml of the source directory: another configuration file would
 * make the fingerprint describe the wrong sources. (`-o NAME` is honoured: it names the kernel.)
 */
export function configureArgsProblem(configureArgs: readonly string[]): string | undefined {
  for (const arg of configureArgs) {
    if (spellsShort(arg, "t") || spellsLong(arg, "target", 2))
      return `${JSON.stringify(arg)} sets the target: use the target property instead of -t/--target in configureArgs`;
    if (spellsShort(arg, "f") || spellsLong(arg, "file", 2) || spellsLong(arg, "config-file", 4))
      return `${JSON.stringify(arg)} names another configuration file: the build uses config.ml in the source directory; point source at the directory holding the configuration you want (as config.ml) instead of -f/--file`;
    if (arg === "--no-depext" || arg === "--depext")
      return `${JSON.stringify(arg)} is set by the depexts property: use depexts instead`;
  }
  return undefined;
}

/** The name in config.ml's `register "NAME" [...]`, if there is one. */
export function registeredName(configMl: string): string | undefined {
  const withoutComments = configMl.replace(/\(\*[\s\S]*?\*\)/g, "");
  return /\bregister\b[^"]*"([^"]+)"/.exec(withoutComments)?.[1];
}

/**
 * The unikernel's name: `-o NAME` in the configure arguments, else config.ml's `register "NAME"`.
 * Throws when neither gives one.
 */
export async function unikernelName(
  source: string,
  configureArgs: readonly string[],
): Promise<string> {
  const fromArgs = outputArg(configureArgs);
  if (fromArgs) return fromArgs;
  const configMl = join(source, "config.ml");
  const name = registeredName(await readFile(configMl, "utf8"));
  if (!name) {
    throw new Error(
      `${configMl} has no \`register "NAME"\`: name the unikernel there, or pass -o NAME in configureArgs`,
    );
  }
  return name;
}

/** A name made safe for a file or object name: letters, digits, `.`, `_`, `-`. */
export function plainName(name: string): string {
  const plain = name.replace(/[^A-Za-z0-9._-]+/g, "-").replace(/^[^A-Za-z0-9]+/, "");
  return plain === "" ? "unikernel" : plain;
}

/** Where `make build` leaves the kernel: `dist/NAME.TARGET`, or `dist/NAME` for unix. */
export function distFile(name: string, target: Target): string {
  return join("dist", target === "unix" ? name : `${name}.${target}`);
}

// What a unikernel's source tree says about its build: its name and the file a target produces
// (docs/platforms.md, MirageOS build contract).
import { readFile } from "node:fs/promises";
import { join } from "node:path";

/** The targets `mirage configure -t` accepts that this package builds for. */
export const TARGETS = ["unix", "hvt", "spt", "virtio", "muen", "genode", "xen"] as const;
export type Target = (typeof TARGETS)[number];

export function isTarget(value: unknown): value is Target {
  return typeof value === "string" && (TARGETS as readonly string[]).includes(value);
}

/** The value of `-o NAME` / `--output NAME` / `--output=NAME` in configure arguments, if any. */
function outputArg(configureArgs: readonly string[]): string | undefined {
  let name: string | undefined;
  configureArgs.forEach((arg, i) => {
    if (arg === "-o" || arg === "--output") name = configureArgs[i + 1];
    else if (arg.startsWith("--output=")) name = arg.slice("--output=".length);
    else if (arg.startsWith("-o") && arg.length > 2) name = arg.slice(2);
  });
  return name;
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

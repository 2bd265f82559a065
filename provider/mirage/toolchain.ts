// The MirageOS toolchain command: where it is and which version it is. The version is part of
// every source fingerprint, so it is asked on every preview; a process remembers the answer per
// command path and modification time (a reinstalled mirage is asked again).
import { stat } from "node:fs/promises";
import { resolve } from "node:path";
import { findExecutable, run } from "../exec";

const NOT_FOUND =
  "mirage was not found on PATH: install it with `opam install mirage` or set the `mirage` property";

/**
 * The absolute path of the mirage command: `command` itself when it names a file (absolute, or
 * relative to the working directory), else the first match on PATH. Throws saying how to fix it.
 */
export async function findMirage(command = "mirage"): Promise<string> {
  const found = findExecutable(command);
  // Absolute: the build runs in another directory.
  if (found) return resolve(found);
  if (command.includes("/"))
    throw new Error(
      `the mirage property names ${resolve(command)}, which is not an executable file: give the path of the mirage command, or leave it unset to use mirage on PATH`,
    );
  throw new Error(
    command === "mirage" ? NOT_FOUND : `${command} was not found on PATH (the mirage property)`,
  );
}

const versions = new Map<string, string>();

/** `mirage --version`, e.g. `v4.11.0`. */
export async function mirageVersion(path: string): Promise<string> {
  const key = `${path}\0${(await stat(path)).mtimeMs}`;
  const known = versions.get(key);
  if (known !== undefined) return known;
  const { stdout } = await run(path, ["--version"], { timeoutMs: 60_000 });
  const version = stdout.trim().split("\n")[0] ?? "";
  if (version === "") throw new Error(`${path} --version printed nothing: is it mirage?`);
  versions.set(key, version);
  return version;
}

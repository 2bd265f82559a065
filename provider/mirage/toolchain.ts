// The MirageOS toolchain: where the mirage command is, which version it is, and the versions of
// Solo5 and ocaml-solo5 in its opam switch. All are part of every source fingerprint, so they are
// asked on every preview; a process remembers the answers per file and modification time (a
// reinstalled mirage, a switch that changed, is asked again).
import { readFile, realpath, stat } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { findExecutable, run } from "../core/exec";

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

/**
 * The opam switch a mirage command belongs to: the directory above its bin/ when that holds an
 * opam switch (`.opam-switch/`), else `$OPAM_SWITCH_PREFIX` (set by `eval $(opam env)`), else
 * none (a mirage outside opam).
 */
export async function switchPrefix(
  mirage: string,
  env: NodeJS.ProcessEnv = process.env,
): Promise<string | undefined> {
  const above = dirname(dirname(await realpath(mirage).catch(() => mirage)));
  if (await isDirectory(join(above, ".opam-switch"))) return above;
  const fromEnv = env.OPAM_SWITCH_PREFIX;
  return fromEnv && (await isDirectory(join(fromEnv, ".opam-switch"))) ? fromEnv : undefined;
}

function isDirectory(path: string): Promise<boolean> {
  return stat(path).then(
    (s) => s.isDirectory(),
    () => false,
  );
}

/** The switch packages besides mirage whose versions decide a unikernel's binary. */
const TOOLCHAIN_PACKAGES = ["solo5", "ocaml-solo5"];

const switchVersionsCache = new Map<string, Record<string, string>>();

/**
 * The installed versions of Solo5 and ocaml-solo5 in `prefix`'s switch (e.g. `{ solo5: "0.12.1",
 * "ocaml-solo5": "1.1.0" }`; a package not installed is absent), read from opam's own record,
 * `.opam-switch/switch-state`: one small file, where `opam list` takes seconds. Remembered per
 * switch and that file's modification time, which opam changes with every install.
 */
export async function switchVersions(prefix: string): Promise<Record<string, string>> {
  const state = join(prefix, ".opam-switch", "switch-state");
  const key = `${state}\0${(await stat(state)).mtimeMs}`;
  const known = switchVersionsCache.get(key);
  if (known) return known;
  const text = await readFile(state, "utf8");
  const installed = /^installed:\s*\[([^\]]*)\]/m.exec(text)?.[1] ?? "";
  const versions: Record<string, string> = {};
  for (const [, name, version] of installed.matchAll(/"([^".]+)\.([^"]+)"/g))
    if (TOOLCHAIN_PACKAGES.includes(name as string)) versions[name as string] = version as string;
  switchVersionsCache.set(key, versions);
  return versions;
}

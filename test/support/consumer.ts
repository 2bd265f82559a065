// A Pulumi program's view of this package: the `npm pack` tarball installed into a consumer
// project. The dynamic provider loads our engine code by package name (sdk/engine.ts), so tests
// must go through the packed files, `exports` map and `files` list, not through a link to the
// repository (FACTS.md).
import { existsSync } from "node:fs";
import { copyFile, mkdir, mkdtemp, readdir, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { produceAtomically } from "../../provider/atomic";
import { run } from "../../provider/exec";
import { sha256File } from "../../provider/hash";
import { withLock } from "../../provider/lock";

/** The repository root (this file runs from build/test/support/). */
export const repoRoot = resolve(__dirname, "../../..");

/** Consumer projects, one per tarball content, shared by concurrent test processes. */
const consumersDir = join(repoRoot, ".pulumi-mirage-test", "consumers");

async function pack(): Promise<string> {
  const destination = await mkdtemp(join(tmpdir(), "pulumi-mirage-pack-"));
  // npm prints the tarball's file name as the last line.
  const { stdout } = await run("npm", ["pack", "--silent", "--pack-destination", destination], {
    cwd: repoRoot,
  });
  const name = stdout.trim().split("\n").pop() ?? "";
  return join(destination, name);
}

/** Lays out `dir`: the unpacked tarball as a real copy, every other dependency linked. */
async function install(tarball: string, dir: string): Promise<void> {
  await mkdir(dir);
  await copyFile(tarball, join(dir, "pulumi-mirage.tgz"));
  const modules = join(dir, "node_modules");
  const self = join(modules, "pulumi-mirage");
  await mkdir(self, { recursive: true });
  await run("tar", ["-xzf", tarball, "-C", self, "--strip-components=1"]);
  const repoModules = join(repoRoot, "node_modules");
  for (const entry of await readdir(repoModules)) {
    if (entry.startsWith(".") || entry === "pulumi-mirage") continue;
    await symlink(join(repoModules, entry), join(modules, entry));
  }
  await writeFile(
    join(dir, "package.json"),
    `${JSON.stringify(
      {
        name: "pulumi-mirage-test-consumer",
        private: true,
        main: "index.js",
        dependencies: { "pulumi-mirage": "file:pulumi-mirage.tgz" },
      },
      null,
      2,
    )}\n`,
  );
}

let prepared: Promise<string> | undefined;

/**
 * Packs the repository (build/ must be current: tests run after `tsc`) and returns a consumer
 * project directory with the tarball installed. Packs once per test process; the consumer is
 * keyed by the tarball's sha256, so concurrent test processes share one.
 */
export function consumerProject(): Promise<string> {
  prepared ??= (async () => {
    const tarball = await pack();
    try {
      const sha = await sha256File(tarball);
      const dir = join(consumersDir, sha.slice(0, 16));
      await mkdir(consumersDir, { recursive: true });
      await withLock(`${dir}.lock`, async () => {
        if (!existsSync(dir)) await produceAtomically(dir, (temp) => install(tarball, temp));
      });
      return dir;
    } finally {
      await rm(resolve(tarball, ".."), { recursive: true, force: true });
    }
  })();
  return prepared;
}

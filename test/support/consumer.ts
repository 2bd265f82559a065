// A Pulumi program's view of this package: the `npm pack` tarball installed into a consumer
// project. The dynamic provider loads our engine code by package name (sdk/engine.ts), so tests
// must go through the packed files, `exports` map and `files` list, not through a link to the
// repository (docs/platforms.md, "Pulumi dynamic providers").
//
// A consumer project lives outside the repository (a per-user cache directory), so Node cannot
// resolve anything from the repository's node_modules by walking up the tree: the package finds
// only what a user would have installed. That is the packed package itself (a real copy), its
// own dependencies as its package.json lists them, and the peers of the kind of user the project
// plays, each with its dependency closure, linked from the repository's node_modules (a real
// `npm install` of the peers takes 40 s and more, and needs the registry).
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, utimes } from "node:fs/promises";
import { homedir, tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { produceAtomically, writeFileAtomic } from "../../provider/core/atomic";
import { run } from "../../provider/core/exec";
import { sha256, sha256File } from "../../provider/core/hash";
import { withLock } from "../../provider/core/lock";

/** The repository root (this file runs from build/test/support/). */
export const repoRoot = resolve(__dirname, "../../..");

const repoModules = join(repoRoot, "node_modules");

/**
 * Which user a consumer project plays: `pulumi-only` installed @pulumi/pulumi alone (local, xen);
 * `all-peers` installed @pulumi/pulumi, @pulumi/gcp and @pulumi/aws, and writes TypeScript
 * (@types/node, for type-checking programs).
 */
export type ConsumerKind = "pulumi-only" | "all-peers";

const userPackages: Record<ConsumerKind, string[]> = {
  "pulumi-only": ["@pulumi/pulumi"],
  "all-peers": ["@pulumi/pulumi", "@pulumi/gcp", "@pulumi/aws", "@types/node"],
};

/** Consumer projects, one per tarball content, checkout and kind, shared by test processes. */
const consumersDir = join(
  process.env.XDG_CACHE_HOME || join(homedir(), ".cache"),
  "pulumi-mirage-test",
  "consumers",
);

/** Consumer projects unused for this long are removed when a test run makes a new one. */
const STALE_MS = 24 * 60 * 60 * 1000;

async function pack(destination: string): Promise<string> {
  // build/ is current (tests run after `tsc`): the prepare script need not run again.
  const { stdout } = await run(
    "npm",
    ["pack", "--silent", "--ignore-scripts", "--pack-destination", destination],
    { cwd: repoRoot },
  );
  // npm prints the tarball's file name as the last line.
  return join(destination, stdout.trim().split("\n").pop() ?? "");
}

type Manifest = {
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
  peerDependenciesMeta?: Record<string, { optional?: boolean }>;
};

async function readManifest(dir: string): Promise<Manifest> {
  return JSON.parse(await readFile(join(dir, "package.json"), "utf8"));
}

/** What npm installs for a package: its dependencies, optional ones, and non-optional peers. */
function installedWith(manifest: Manifest): string[] {
  const peers = Object.keys(manifest.peerDependencies ?? {}).filter(
    (name) => !manifest.peerDependenciesMeta?.[name]?.optional,
  );
  return [
    ...Object.keys(manifest.dependencies ?? {}),
    ...Object.keys(manifest.optionalDependencies ?? {}),
    ...peers,
  ];
}

/** Where Node finds `name` from `from` inside the repository's node_modules, if anywhere. */
function locate(name: string, from: string): string | undefined {
  for (let dir = from; dir.startsWith(repoModules); dir = dirname(dir)) {
    const candidate = join(dir, "node_modules", name);
    if (existsSync(join(candidate, "package.json"))) return candidate;
  }
  const top = join(repoModules, name);
  return existsSync(join(top, "package.json")) ? top : undefined;
}

/**
 * The top-level entries of the repository's node_modules that `names` need: the packages and
 * everything they depend on, found as Node would. Nested copies come along with their parent.
 */
async function dependencyClosure(names: string[]): Promise<Set<string>> {
  const top = new Set<string>();
  const seen = new Set<string>();
  const visit = async (name: string, from: string): Promise<void> => {
    const dir = locate(name, from);
    if (dir === undefined || seen.has(dir)) return; // an optional dependency not installed
    seen.add(dir);
    if (dir === join(repoModules, name)) top.add(name);
    for (const dependency of installedWith(await readManifest(dir))) await visit(dependency, dir);
  };
  for (const name of names) {
    if (locate(name, repoModules) === undefined)
      throw new Error(`consumer project: ${name} is not installed in ${repoModules}: run npm ci`);
    await visit(name, repoModules);
  }
  return top;
}

/** Lays out `dir`: the unpacked tarball as a real copy, what `kind` of user has linked. */
async function install(tarball: string, kind: ConsumerKind, dir: string): Promise<void> {
  const modules = join(dir, "node_modules");
  const self = join(modules, "pulumi-mirage");
  await mkdir(self, { recursive: true });
  await run("tar", ["-xzf", tarball, "-C", self, "--strip-components=1"]);
  const own = Object.keys((await readManifest(self)).dependencies ?? {});
  for (const name of await dependencyClosure([...own, ...userPackages[kind]])) {
    await mkdir(dirname(join(modules, name)), { recursive: true });
    await symlink(join(repoModules, name), join(modules, name));
  }
  const dependencies = Object.fromEntries(
    [...userPackages[kind], "pulumi-mirage"].map((name) => [name, "*"]),
  );
  await writeFileAtomic(
    join(dir, "package.json"),
    `${JSON.stringify({ name: `pulumi-mirage-consumer-${kind}`, private: true, dependencies }, null, 2)}\n`,
  );
}

/** Removes consumer projects nobody has used for a day (other checkouts, older builds). */
async function pruneStale(keep: string): Promise<void> {
  for (const entry of await readdir(consumersDir)) {
    const path = join(consumersDir, entry);
    if (path === keep || entry.endsWith(".lock")) continue;
    const { mtimeMs } = await stat(path).catch(() => ({ mtimeMs: Date.now() }));
    if (Date.now() - mtimeMs > STALE_MS)
      await withLock(`${path}.lock`, () => rm(path, { recursive: true, force: true }));
  }
}

const prepared = new Map<ConsumerKind, Promise<string>>();

/**
 * Packs the repository (build/ must be current: tests run after `tsc`) and returns a consumer
 * project directory, outside the repository, with the tarball installed as a `kind` user has it.
 * Packs once per test process and kind; the project is keyed by the tarball's sha256 and this
 * checkout (its links point into this checkout's node_modules), so concurrent test processes
 * share one.
 */
export function consumerProject(kind: ConsumerKind = "all-peers"): Promise<string> {
  let project = prepared.get(kind);
  if (project === undefined) {
    project = (async () => {
      const destination = await mkdtemp(join(tmpdir(), "pulumi-mirage-pack-"));
      try {
        const tarball = await pack(destination);
        const key = sha256(`${await sha256File(tarball)}\n${repoRoot}`).slice(0, 16);
        const dir = join(consumersDir, `${key}-${kind}`);
        await mkdir(consumersDir, { recursive: true });
        await withLock(`${dir}.lock`, async () => {
          if (!existsSync(dir))
            await produceAtomically(dir, (temp) => install(tarball, kind, temp));
          const now = new Date();
          await utimes(dir, now, now); // in use: not stale
        });
        await pruneStale(dir);
        return dir;
      } finally {
        await rm(destination, { recursive: true, force: true });
      }
    })();
    prepared.set(kind, project);
  }
  return project;
}

/** The TypeScript versions a consumer program is checked with, and their packages here. */
export const typescripts = [
  { version: "5.9", compiler: "typescript" },
  { version: "6", compiler: "typescript6" },
] as const;

/**
 * `pulumi new typescript`'s tsconfig.json (github.com/pulumi/templates, typescript/): `node` is
 * what the template wrote from 2018 to March 2026 and what most Pulumi projects still have;
 * `nodenext` is what it writes since. Type-checks add `--noEmit`; nothing else is changed, in
 * particular there is no skipLibCheck: the package's declarations are checked too.
 */
export const pulumiTemplate = (resolution: "node" | "nodenext", files = ["index.ts"]) => ({
  compilerOptions: {
    strict: true,
    outDir: "bin",
    target: "es2020",
    module: resolution === "node" ? "commonjs" : "nodenext",
    moduleResolution: resolution,
    sourceMap: true,
    experimentalDecorators: true,
    pretty: true,
    noFallthroughCasesInSwitch: true,
    noImplicitReturns: true,
    forceConsistentCasingInFileNames: true,
  },
  files,
});

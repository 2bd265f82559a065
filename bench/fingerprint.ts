// Benchmark: the source fingerprint (it runs on every preview) and a cache-hit create.
//
// For source trees of 100, 1,000 and 10,000 files of 4 KiB, it times hashSourceTree beside the
// floor: walking the same tree and reading every file (same order, same concurrency), with no
// hashing. Goal: within 1.5× the floor. Peak RSS is measured per tree size in fresh processes
// (the growth of the maximum resident set over three runs), for the fingerprint and the floor:
// files are streamed, so it should stay flat as the tree grows. Then it times a Unikernel create served from the cache
// (goal: within 100 ms) beside the cost of hashing the kernel, and the cache's verification of a
// 16 MiB kernel, the size of a real MirageOS unikernel. Last, reading the opam switch's Solo5
// and ocaml-solo5 versions (part of every fingerprint): first read, then remembered.
//
// Run: node build/bench/fingerprint.js
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { lookup, store } from "../provider/core/cache";
import { sha256File } from "../provider/core/hash";
import { hashSourceTree } from "../provider/mirage/fingerprint";
import { switchVersions } from "../provider/mirage/toolchain";
import { provider } from "../provider/resources/unikernel";
import { STANDIN, Standin } from "../test/support/standin";

const SIZES = [100, 1_000, 10_000];
const FILE_BYTES = 4096;
const FILES_PER_DIR = 100;
const RUNS = 5;
const CONCURRENCY = 8;

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] as number;
}

async function time(work: () => Promise<unknown>): Promise<number> {
  const started = process.hrtime.bigint();
  await work();
  return Number(process.hrtime.bigint() - started) / 1e6;
}

/** A source tree of `count` random 4 KiB files, FILES_PER_DIR to a directory. */
async function makeTree(root: string, count: number): Promise<void> {
  await writeFile(join(root, "config.ml"), 'open Mirage\nlet () = register "bench" []\n');
  for (let i = 0; i < count; i++) {
    const dir = join(root, `lib${Math.floor(i / FILES_PER_DIR)}`);
    if (i % FILES_PER_DIR === 0) await mkdir(dir, { recursive: true });
    await writeFile(join(dir, `module${i}.ml`), randomBytes(FILE_BYTES));
  }
}

/** The floor: the same walk (sorted, recursive) and a read of every file, nothing else. */
async function readAll(root: string): Promise<void> {
  const files: string[] = [];
  const walk = async (dir: string) => {
    const entries = (await readdir(dir, { withFileTypes: true })).sort((a, b) =>
      a.name < b.name ? -1 : 1,
    );
    for (const entry of entries) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) await walk(path);
      else files.push(path);
    }
  };
  await walk(root);
  let next = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < files.length) await readFile(files[next++] as string);
    }),
  );
}

/** Timing runs per tree size: more for small trees, whose times are short and noisy. */
const RUNS_FOR: Record<number, number> = { 100: 41, 1000: 11, 10000: 5 };

/** In a fresh process: the median time of both, warmed up, alternating run by run. */
async function measureTime(root: string, runs: number): Promise<void> {
  for (let i = 0; i < 2; i++) {
    await readAll(root);
    await hashSourceTree(root);
  }
  const fingerprint: number[] = [];
  const floor: number[] = [];
  for (let i = 0; i < runs; i++) {
    floor.push(await time(() => readAll(root)));
    fingerprint.push(await time(() => hashSourceTree(root)));
  }
  console.log(JSON.stringify({ fingerprint: median(fingerprint), floor: median(floor) }));
}

/** In a fresh process: how much the peak resident set grows over three runs of one of them. */
async function measurePeak(root: string, which: string): Promise<void> {
  const before = process.resourceUsage().maxRSS;
  for (let i = 0; i < 3; i++) await (which === "floor" ? readAll(root) : hashSourceTree(root));
  console.log(JSON.stringify({ peakKiB: process.resourceUsage().maxRSS - before }));
}

function inChild<T>(...args: string[]): T {
  const child = spawnSync(process.execPath, [__filename, ...args], { encoding: "utf8" });
  if (child.status !== 0) throw new Error(`${args.join(" ")} failed:\n${child.stderr}`);
  return JSON.parse(child.stdout) as T;
}

async function treeRows(scratch: string): Promise<boolean> {
  console.log(
    "| files | fingerprint (ms) | read-all floor (ms) | ratio | goal | peak RSS growth: fingerprint | floor |",
  );
  console.log(
    "| ----: | ---------------: | ------------------: | ----: | ---: | ---------------------------: | ----: |",
  );
  let ok = true;
  const mib = (kib: number) => `${(kib / 1024).toFixed(1)} MiB`;
  for (const size of SIZES) {
    const root = join(scratch, `tree-${size}`);
    await mkdir(root);
    await makeTree(root, size);
    const runs = String(RUNS_FOR[size] ?? RUNS);
    const times = inChild<{ fingerprint: number; floor: number }>("--time", root, runs);
    const peak = inChild<{ peakKiB: number }>("--peak", root, "fingerprint").peakKiB;
    const floorPeak = inChild<{ peakKiB: number }>("--peak", root, "floor").peakKiB;
    const ratio = times.fingerprint / times.floor;
    ok &&= ratio <= 1.5;
    console.log(
      `| ${size} | ${times.fingerprint.toFixed(1)} | ${times.floor.toFixed(1)} | ${ratio.toFixed(2)}× | ≤ 1.5× | ${mib(peak)} | ${mib(floorPeak)} |`,
    );
    await rm(root, { recursive: true, force: true });
  }
  return ok;
}

async function cacheRows(standin: Standin): Promise<boolean> {
  const inputs = (
    await provider.check(
      {},
      {
        source: await standin.source("bench", { net: true }),
        target: "virtio",
        mirage: STANDIN,
        cacheDir: standin.path("cache"),
        resourceName: "bench",
      },
    )
  ).inputs;
  const { outs } = await provider.create(inputs); // builds once with the stand-in
  const createMs: number[] = [];
  const hashMs: number[] = [];
  for (let i = 0; i < RUNS * 4; i++) {
    createMs.push(await time(() => provider.create(inputs)));
    hashMs.push(await time(() => sha256File(String(outs.kernelPath))));
  }
  const create = median(createMs);

  // The verification a hit pays grows with the kernel: a real one is some MiB.
  const big = standin.path("big-kernel");
  await writeFile(big, randomBytes(16 * 1024 * 1024));
  const dir = standin.path("cache");
  await store(dir, "kernel", "big", big, { fileName: "big.virtio", meta: {} });
  const lookupMs: number[] = [];
  for (let i = 0; i < RUNS * 4; i++) lookupMs.push(await time(() => lookup(dir, "kernel", "big")));
  const verify = median(lookupMs);

  console.log("\n| operation | median (ms) | baseline: hashing the kernel (ms) | goal |");
  console.log("| --------- | ----------: | --------------------------------: | ---: |");
  console.log(
    `| cache-hit create (${outs.size} B test kernel) | ${create.toFixed(2)} | ${median(hashMs).toFixed(2)} | ≤ 100 ms |`,
  );
  console.log(`| cache lookup + verify, 16 MiB kernel | ${verify.toFixed(2)} | — | ≤ 100 ms |`);
  return create <= 100 && verify <= 100;
}

/**
 * Reading the switch's Solo5 and ocaml-solo5 versions, which every preview does: once from a
 * switch-state of 300 packages (a typical MirageOS switch has 200-400), then remembered.
 */
async function switchRows(scratch: string): Promise<boolean> {
  const prefix = join(scratch, "switch");
  await mkdir(join(prefix, ".opam-switch"), { recursive: true });
  const packages = Array.from({ length: 298 }, (_, i) => `  "package-${i}.1.${i}.0"`);
  packages.push('  "ocaml-solo5.1.1.0"', '  "solo5.0.12.1"');
  await writeFile(
    join(prefix, ".opam-switch", "switch-state"),
    `opam-version: "2.0"\ninstalled: [\n${packages.join("\n")}\n]\n`,
  );
  const first = await time(() => switchVersions(prefix));
  const again: number[] = [];
  for (let i = 0; i < RUNS * 4; i++) again.push(await time(() => switchVersions(prefix)));
  const cached = median(again);
  console.log("\n| switch versions (300 packages) | ms | goal |");
  console.log("| ------------------------------ | -: | ---: |");
  console.log(`| first read of switch-state | ${first.toFixed(2)} | ≤ 10 ms |`);
  console.log(`| remembered (stat only) | ${cached.toFixed(3)} | ≤ 1 ms |`);
  return first <= 10 && cached <= 1;
}

async function main(): Promise<void> {
  const [mode, root, arg] = process.argv.slice(2);
  if (mode === "--time") return measureTime(root as string, Number(arg));
  if (mode === "--peak") return measurePeak(root as string, arg as string);
  const scratch = await mkdtemp(join(tmpdir(), "bench-fingerprint-"));
  const standin = await Standin.setUp();
  try {
    const treesOk = await treeRows(scratch);
    const cacheOk = await cacheRows(standin);
    const switchOk = await switchRows(scratch);
    console.log(`\ngoals ${treesOk && cacheOk && switchOk ? "met" : "NOT met"}`);
  } finally {
    await rm(scratch, { recursive: true, force: true });
    await standin.tearDown();
  }
}

main().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});

// Benchmark: a xen disk image (1 GiB raw) on its way to an EBS snapshot, in one run:
// - what is sent: the EBS direct path (measured against the local EBS/EC2 server of the tests:
//   request bodies and requests) next to the S3 path, which uploads the whole disk as one object
//   (then ImportSnapshot reads it from S3);
// - the block map pass (provider/core/block-map.ts) next to sha256 of the whole file, GNU tar -S (which
//   also finds holes with SEEK_DATA) and the block map's full-read fallback (no perl);
// - a cache hit on the raw image: lookup, which verifies it by its block map.
// Goals (issue 15): bytes sent ≤ 1.1× the non-zero blocks; block map ≤ 3× tar -S; a cached raw
// image verified in ≤ 50 ms. Run alone with `node build/bench/ebs.js [RUNS]`.
import { execFile } from "node:child_process";
import { mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { uploadSnapshot } from "../provider/aws/ebs-snapshot";
import { BLOCK_SIZE, blockMap } from "../provider/core/block-map";
import { lookup, store } from "../provider/core/cache";
import { sha256File } from "../provider/core/hash";
import { buildImage } from "../provider/image";
import { FakeAws } from "../test/support/fake-aws";
import { testKernel } from "../test/support/kernels";
import { median, printTable, seconds } from "./support/table";

const exec = promisify(execFile);
const RUNS = Number(process.argv[2] ?? 5);
const MIB = 1024 * 1024;

async function times(work: () => Promise<unknown>): Promise<number> {
  const runs: number[] = [];
  for (let i = 0; i < RUNS; i++) runs.push(await seconds(work));
  return median(runs);
}

const ms = (s: number) => `${(s * 1000).toFixed(1)} ms`;

async function main(): Promise<void> {
  const root = await mkdtemp(join(tmpdir(), "bench-ebs-"));
  const fake = new FakeAws();
  const saved = { ...process.env };
  const rows: string[][] = [];
  try {
    const { disk } = await buildImage({
      kernel: await testKernel("xen"),
      outDir: join(root, "image"),
      format: "raw",
      bootArgs: ["--hello=bench"],
    });
    const size = (await stat(disk.path)).size;
    const map = await blockMap(disk.path);
    const blockBytes = map.blocks.length * BLOCK_SIZE;
    const nonZero4k = map.regions.reduce((sum, r) => sum + r.length, 0);

    Object.assign(process.env, fake.env(await fake.start()));
    await uploadSnapshot({ path: disk.path, description: "bench", pollMs: 20 });
    const sent = fake.bytesReceived;
    const requests = fake.requests.length;
    rows.push(
      [
        `EBS direct: bytes sent (${requests} requests)`,
        `${(sent / MIB).toFixed(2)} MiB`,
        `non-zero 512 KiB blocks ${(blockBytes / MIB).toFixed(2)} MiB (${map.blocks.length}); non-zero 4 KiB data ${(nonZero4k / MIB).toFixed(2)} MiB`,
        `${(sent / blockBytes).toFixed(3)}× blocks`,
        `≤ 1.1×: ${sent / blockBytes <= 1.1 ? "met" : "missed"}`,
      ],
      [
        "S3 + ImportSnapshot: bytes sent (1 object, then import polls)",
        `${(size / MIB).toFixed(0)} MiB`,
        `EBS direct ${(sent / MIB).toFixed(2)} MiB`,
        `${(size / sent).toFixed(0)}× EBS direct`,
        "",
      ],
    );

    const tarOut = join(root, "disk.tar");
    const mapTime = await times(() => blockMap(disk.path));
    const tarTime = await times(() =>
      exec("tar", ["--format=oldgnu", "-Scf", tarOut, "disk.raw"], { cwd: join(root, "image") }),
    );
    const shaTime = await times(() => sha256File(disk.path));
    process.env.PATH = "/nonexistent";
    const fallback = await times(() => blockMap(disk.path));
    process.env.PATH = saved.PATH;
    rows.push(
      [
        "block map of disk.raw (SEEK_DATA via perl)",
        ms(mapTime),
        `tar -S ${ms(tarTime)}; sha256 ${ms(shaTime)}`,
        `${(mapTime / tarTime).toFixed(2)}× tar -S; ${(mapTime / shaTime).toFixed(3)}× sha256`,
        `≤ 3× tar -S: ${mapTime <= 3 * tarTime ? "met" : "missed"}`,
      ],
      [
        "block map, full-read fallback (no perl)",
        ms(fallback),
        `tar -S ${ms(tarTime)}; sha256 ${ms(shaTime)}`,
        `${(fallback / tarTime).toFixed(2)}× tar -S; ${(fallback / shaTime).toFixed(3)}× sha256`,
        "",
      ],
    );

    // Moved in, as DiskImage stores its images (a copy would not keep the holes).
    const cache = join(root, "cache");
    await store(cache, "image", "bench.raw", disk.path, {
      fileName: "bench.raw",
      meta: {},
      sha256: await sha256File(disk.path),
      mapDigest: disk.mapDigest,
      move: true,
    });
    const hit = await times(async () => {
      if (!(await lookup(cache, "image", "bench.raw"))) throw new Error("cache miss");
    });
    rows.push([
      `cached raw image (${size / 1024 ** 3} GiB) verified: lookup`,
      ms(hit),
      `sha256 of the file ${ms(shaTime)}`,
      `${(hit / shaTime).toFixed(3)}× sha256`,
      `≤ 50 ms: ${hit <= 0.05 ? "met" : "missed"}`,
    ]);
  } finally {
    process.env = saved;
    await fake.stop();
    await rm(root, { recursive: true, force: true });
  }
  printTable(
    [`measure (median of ${RUNS})`, "value", "baseline (same run)", "ratio", "goal"],
    rows,
  );
}

main().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});

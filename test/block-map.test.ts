import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { open, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, it } from "node:test";
import {
  BLOCK_SIZE,
  blockMap,
  dataSegments,
  linearChecksum,
  mapDigest,
  parseSegments,
} from "../provider/core/block-map";
import { Scratch } from "./support/scratch";

const scratch = Scratch.forThisFile("block-map-test-");
const MIB = 1024 * 1024;
let counter = 0;

/**
 * A file of `size` bytes holding `writes` (position → bytes). Sparse: only the writes are stored,
 * the rest are holes. Dense: every byte is written, zeros included.
 */
async function disk(
  size: number,
  writes: [number, Buffer][],
  layout: "sparse" | "dense",
): Promise<string> {
  const path = join(scratch.path, `disk-${counter++}.raw`);
  await writeFile(path, "");
  const file = await open(path, "r+");
  try {
    if (layout === "dense") {
      const zeros = Buffer.alloc(MIB);
      for (let at = 0; at < size; at += MIB)
        await file.write(zeros, 0, Math.min(MIB, size - at), at);
    } else {
      await file.truncate(size);
    }
    for (const [position, bytes] of writes) await file.write(bytes, 0, bytes.length, position);
  } finally {
    await file.close();
  }
  return path;
}

const sha = (data: Buffer) => createHash("sha256").update(data).digest();

/** The block the test expects: BLOCK_SIZE bytes with `bytes` at `offset`. */
function block(offsets: [number, Buffer][]): Buffer {
  const data = Buffer.alloc(BLOCK_SIZE);
  for (const [offset, bytes] of offsets) bytes.copy(data, offset);
  return data;
}

describe("blockMap", () => {
  it("maps an all-zero disk to no blocks, reading none of it when it is all holes", async () => {
    const path = await disk(64 * MIB, [], "sparse");
    const map = await blockMap(path);
    assert.deepEqual(map.blocks, []);
    assert.equal(map.size, 64 * MIB);
    if ((await stat(path)).blocks === 0) assert.equal(map.bytesRead, 0);
    const dense = await blockMap(await disk(64 * MIB, [], "dense"));
    assert.deepEqual(dense.blocks, []);
    assert.equal(mapDigest(dense), mapDigest(map));
  });

  it("finds data in the last block, with the block's hash and index", async () => {
    const size = 16 * MIB;
    const tail = Buffer.from("the very end");
    const path = await disk(size, [[size - tail.length, tail]], "sparse");
    const map = await blockMap(path);
    const last = size / BLOCK_SIZE - 1;
    assert.deepEqual(
      map.blocks.map((b) => [b.index, b.sha256.toString("hex")]),
      [[last, sha(block([[BLOCK_SIZE - tail.length, tail]])).toString("hex")]],
    );
  });

  it("hashes a block with a hole inside it as the whole block, zeros included", async () => {
    const head = Buffer.from("head");
    const end = Buffer.from("end");
    const at = 3 * BLOCK_SIZE;
    const path = await disk(
      8 * MIB,
      [
        [at, head],
        [at + BLOCK_SIZE - end.length, end],
      ],
      "sparse",
    );
    const map = await blockMap(path);
    assert.equal(map.blocks.length, 1);
    assert.equal(map.blocks[0].index, 3);
    assert.deepEqual(
      map.blocks[0].sha256,
      sha(
        block([
          [0, head],
          [BLOCK_SIZE - end.length, end],
        ]),
      ),
    );
  });

  it("gives identical maps however the same content is laid out (holes or written zeros)", async () => {
    const writes: [number, Buffer][] = [
      [0, Buffer.from("boot sector")],
      [MIB + 5, Buffer.alloc(600_000, 7)], // spans two blocks
      [20 * MIB - 1, Buffer.from("x")],
    ];
    const sparse = await blockMap(await disk(32 * MIB, writes, "sparse"));
    const dense = await blockMap(await disk(32 * MIB, writes, "dense"));
    assert.deepEqual(
      sparse.blocks.map((b) => b.index),
      [0, 2, 3, 39],
    );
    assert.deepEqual(sparse.blocks, dense.blocks);
    assert.equal(mapDigest(sparse), mapDigest(dense));
    assert.equal(linearChecksum(sparse.blocks), linearChecksum(dense.blocks));
    // A single changed byte changes the digest.
    const other = await blockMap(
      await disk(32 * MIB, [...writes, [20 * MIB - 2, Buffer.from("y")]], "sparse"),
    );
    assert.notEqual(mapDigest(other), mapDigest(sparse));
    // And so does the size alone.
    const longer = await blockMap(await disk(33 * MIB, writes, "sparse"));
    assert.notEqual(mapDigest(longer), mapDigest(sparse));
  });

  it("gives the non-zero 4 KiB runs in the same pass, merged, and none past the end", async () => {
    const size = 16 * MIB + 100; // a short last 4 KiB block
    const writes: [number, Buffer][] = [
      [10, Buffer.from("a")],
      [4096 + 5, Buffer.from("b")], // joins the first run
      [BLOCK_SIZE - 1, Buffer.from("cd")], // across a 512 KiB boundary: one run
      [3 * MIB, Buffer.alloc(3 * 4096, 1)],
      [size - 1, Buffer.from("z")],
    ];
    for (const layout of ["sparse", "dense"] as const) {
      const map = await blockMap(await disk(size, writes, layout));
      assert.deepEqual(map.regions, [
        { offset: 0, length: 2 * 4096 },
        { offset: BLOCK_SIZE - 4096, length: 2 * 4096 },
        { offset: 3 * MIB, length: 3 * 4096 },
        { offset: 16 * MIB, length: 100 },
      ]);
    }
  });

  it("reads only around the data of a sparse file", async () => {
    const path = await disk(256 * MIB, [[100 * MIB, Buffer.from("data")]], "sparse");
    const segments = await dataSegments(path, 256 * MIB);
    // Where the file system keeps holes (this one, if the file takes less room than its size).
    if ((await stat(path)).blocks * 512 < 256 * MIB) {
      const covered = segments.reduce((sum, s) => sum + s.end - s.start, 0);
      assert.ok(covered < 16 * MIB, `data segments cover ${covered} bytes`);
      assert.ok((await blockMap(path)).bytesRead <= 2 * BLOCK_SIZE);
    }
  });

  it("refuses a data segment list that is out of order or outside the file", () => {
    assert.deepEqual(parseSegments("0 4096\n8192 12288\n", 10_000), [
      { start: 0, end: 4096 },
      { start: 8192, end: 10_000 },
    ]);
    assert.throws(() => parseSegments("8192 12288\n0 4096\n", 20_000), /unexpected data segment/);
    assert.throws(() => parseSegments("0 x\n", 20_000), /unexpected data segment/);
  });
});

describe("linearChecksum", () => {
  it("is the sha256 of the block checksums concatenated in order, in base64", () => {
    const a = sha(Buffer.from("a"));
    const b = sha(Buffer.from("b"));
    assert.equal(
      linearChecksum([
        { index: 1, sha256: a },
        { index: 9, sha256: b },
      ]),
      createHash("sha256")
        .update(Buffer.concat([a, b]))
        .digest("base64"),
    );
  });
});

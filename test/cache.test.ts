import assert from "node:assert/strict";
import {
  chmod,
  open,
  readdir,
  readFile,
  rm,
  stat,
  truncate,
  utimes,
  writeFile,
} from "node:fs/promises";
import { homedir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { cacheDir, lookup, store, withEntryLock } from "../provider/core/cache";
import { sha256 } from "../provider/core/hash";
import { Scratch } from "./support/scratch";

const scratch = Scratch.forThisFile("cache-test-");
let counter = 0;

async function freshCache(): Promise<string> {
  return join(scratch.path, `cache-${counter++}`);
}

async function file(content: string | Buffer): Promise<string> {
  const path = join(scratch.path, `file-${counter++}`);
  await writeFile(path, content);
  return path;
}

/** Writes `text` at byte `position` of the file at `path`, leaving the rest as it is. */
async function writeAt(path: string, position: number, text: string): Promise<void> {
  const handle = await open(path, "r+");
  await handle.write(text, position);
  await handle.close();
}

/** Rewrites a stored (read-only) file as a user or a broken disk might. */
async function tamper(path: string, content: string | Buffer): Promise<void> {
  await chmod(path, 0o644);
  await writeFile(path, content);
}

describe("cacheDir", () => {
  it("prefers the explicit directory, then PULUMI_MIRAGE_CACHE, XDG_CACHE_HOME, ~/.cache", () => {
    const env = { PULUMI_MIRAGE_CACHE: "/a/cache", XDG_CACHE_HOME: "/xdg" };
    assert.equal(cacheDir("/explicit", env), "/explicit");
    assert.equal(cacheDir(undefined, env), "/a/cache");
    assert.equal(cacheDir(undefined, { XDG_CACHE_HOME: "/xdg" }), "/xdg/pulumi-mirage");
    assert.equal(cacheDir(undefined, {}), join(homedir(), ".cache", "pulumi-mirage"));
  });
});

describe("kernels", () => {
  it("serves what was stored, by content, read-only, with its metadata", async () => {
    const dir = await freshCache();
    const kernel = await file("kernel bytes");
    const stored = await store(dir, "kernel", "f1", kernel, {
      fileName: "hello.virtio",
      meta: { name: "hello" },
    });
    assert.equal(stored.sha256, sha256("kernel bytes"));
    assert.equal(stored.path, join(dir, "kernels", sha256("kernel bytes"), "hello.virtio"));
    assert.equal((await stat(stored.path)).mode & 0o222, 0, "stored read-only");
    const hit = await lookup(dir, "kernel", "f1");
    assert.deepEqual(hit, {
      path: stored.path,
      sha256: stored.sha256,
      size: 12,
      meta: { name: "hello" },
    });
    assert.equal(await lookup(dir, "kernel", "f2"), undefined);
  });

  it("discards an entry whose file changed, even at the same size, or is gone", async () => {
    const dir = await freshCache();
    const stored = await store(dir, "kernel", "f1", await file("kernel bytes"), {
      fileName: "hello.virtio",
      meta: {},
    });
    await tamper(stored.path, "kernel BYTES");
    assert.equal(await lookup(dir, "kernel", "f1"), undefined);
    await assert.rejects(stat(stored.path), "the bad file is removed");
    assert.deepEqual(await readdir(join(dir, "index", "kernels")), [], "and its index entry");

    const again = await store(dir, "kernel", "f1", await file("kernel bytes"), {
      fileName: "hello.virtio",
      meta: {},
    });
    await rm(again.path, { force: true });
    assert.equal(await lookup(dir, "kernel", "f1"), undefined);
  });

  it("serves nothing for a file that has no index entry (an interrupted build)", async () => {
    const dir = await freshCache();
    const stored = await store(dir, "kernel", "f1", await file("k"), {
      fileName: "k.hvt",
      meta: {},
    });
    await rm(join(dir, "index", "kernels", "f1.json"));
    await stat(stored.path);
    assert.equal(await lookup(dir, "kernel", "f1"), undefined);
  });

  it("lets two keys share one stored file", async () => {
    const dir = await freshCache();
    const a = await store(dir, "kernel", "fa", await file("same"), { fileName: "x.xen", meta: {} });
    const b = await store(dir, "kernel", "fb", await file("same"), { fileName: "x.xen", meta: {} });
    assert.equal(a.path, b.path);
    assert.equal((await lookup(dir, "kernel", "fa"))?.path, a.path);
    assert.equal((await lookup(dir, "kernel", "fb"))?.path, a.path);
  });

  it("moves the file in when asked, copies it otherwise", async () => {
    const dir = await freshCache();
    const copied = await file("copy me");
    await store(dir, "kernel", "c", copied, { fileName: "c.spt", meta: {} });
    await stat(copied);
    const moved = await file("move me");
    await store(dir, "kernel", "m", moved, { fileName: "m.spt", meta: {}, move: true });
    await assert.rejects(stat(moved));
  });

  it("refuses keys and file names that are not one plain path component", async () => {
    const dir = await freshCache();
    const f = await file("x");
    await assert.rejects(store(dir, "kernel", "../evil", f, { fileName: "a", meta: {} }), /key/);
    await assert.rejects(store(dir, "kernel", "k", f, { fileName: "a/b", meta: {} }), /file name/);
  });
});

describe("images", () => {
  it("detect a changed block of a sparse image, even with its times set back", async () => {
    const dir = await freshCache();
    const path = join(scratch.path, `sparse-${counter++}.raw`);
    await writeFile(path, "");
    await truncate(path, 64 * 1024 * 1024);
    await writeAt(path, 40 * 1024 * 1024 + 7, "data deep inside");
    const stored = await store(dir, "image", "hello-0123456789ab.raw", path, {
      fileName: "hello-0123456789ab.raw",
      meta: {},
    });
    assert.equal((await lookup(dir, "image", "hello-0123456789ab.raw"))?.path, stored.path);
    const before = await stat(stored.path);
    await chmod(stored.path, 0o644);
    await writeAt(stored.path, 40 * 1024 * 1024 + 7, "DATA");
    await utimes(stored.path, before.atime, before.mtime);
    assert.equal(await lookup(dir, "image", "hello-0123456789ab.raw"), undefined);
  });

  it("do not serve an image entry recorded without a block map (an older cache)", async () => {
    const dir = await freshCache();
    await store(dir, "image", "old.raw", await file("image"), { fileName: "old.raw", meta: {} });
    const index = join(dir, "index", "images", "old.raw.json");
    const { blockMap: _, ...older } = JSON.parse(await readFile(index, "utf8"));
    await writeFile(index, JSON.stringify(older));
    assert.equal(await lookup(dir, "image", "old.raw"), undefined);
  });

  it("share a stored file of the same bytes, but never a damaged one", async () => {
    const dir = await freshCache();
    const image = async () => {
      const path = join(scratch.path, `shared-${counter++}.raw`);
      await writeFile(path, "");
      await truncate(path, 8 * 1024 * 1024);
      await writeAt(path, 5 * 1024 * 1024, "the same data");
      return path;
    };
    const options = { fileName: "same.raw", meta: {} };
    const first = await store(dir, "image", "a.raw", await image(), options);
    const shared = await store(dir, "image", "b.raw", await image(), options);
    assert.equal(shared.path, first.path);
    await chmod(first.path, 0o644);
    await writeAt(first.path, 5 * 1024 * 1024, "THE");
    const third = await store(dir, "image", "c.raw", await image(), options);
    assert.equal(third.path, first.path);
    assert.equal(
      (await readFile(third.path)).subarray(5 * 1024 * 1024, 5 * 1024 * 1024 + 3).toString(),
      "the",
    );
    assert.equal((await lookup(dir, "image", "c.raw"))?.path, third.path);
  });

  it("keep serving an image whose stat changed but whose content did not", async () => {
    const dir = await freshCache();
    const stored = await store(dir, "image", "i.raw", await file("image"), {
      fileName: "i.raw",
      meta: {},
    });
    await chmod(stored.path, 0o400); // changes ctime only
    assert.equal((await lookup(dir, "image", "i.raw"))?.path, stored.path);
  });
});

describe("withEntryLock", () => {
  it("runs the holders of one entry one at a time", async () => {
    const dir = await freshCache();
    let inside = 0;
    let most = 0;
    const work = async () => {
      inside++;
      most = Math.max(most, inside);
      await new Promise((resolve) => setTimeout(resolve, 30));
      inside--;
    };
    await Promise.all([1, 2, 3].map(() => withEntryLock(dir, "kernel", "k", work)));
    assert.equal(most, 1);
  });
});

import assert from "node:assert/strict";
import { chmod, mkdir, readdir, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { run } from "../provider/exec";
import {
  combineFingerprint,
  copySourceTree,
  hashSourceTree,
  isGenerated,
} from "../provider/mirage/fingerprint";
import { STANDIN, Standin } from "./support/standin";

const CONFIG_ML = `open Mirage
let main = main "Unikernel.Hello" (time @-> job) ~packages:[package "duration"]
let () = register "hello" [main $ default_time]
`;

let scratch: string;
let counter = 0;

/** A fresh unikernel source tree: config.ml, unikernel.ml, a user dune file, a script. */
async function sourceTree(): Promise<string> {
  const dir = join(scratch, `src-${counter++}`);
  await mkdir(join(dir, "lib"), { recursive: true });
  await writeFile(join(dir, "config.ml"), CONFIG_ML);
  await writeFile(
    join(dir, "unikernel.ml"),
    "module Hello = struct let start _ = Lwt.return_unit end\n",
  );
  await writeFile(join(dir, "lib", "dune"), "(library (name helpers))\n");
  await writeFile(join(dir, "lib", "helpers.ml"), "let x = 1\n");
  await writeFile(join(dir, "Makefile.user"), "extra:\n\ttrue\n");
  return dir;
}

let standin: Standin;

before(async () => {
  standin = await Standin.setUp();
  scratch = standin.scratch;
});
after(async () => {
  await standin?.tearDown();
});

describe("hashSourceTree", () => {
  it("is the same after mirage configure, make depend and make build ran in the tree", async () => {
    const dir = await sourceTree();
    const before = await hashSourceTree(dir);
    await run(STANDIN, ["configure", "-t", "unix"], { cwd: dir });
    await run("make", ["depend"], { cwd: dir });
    await run("make", ["build"], { cwd: dir });
    const made = await readdir(dir);
    for (const file of [
      "Makefile",
      "dune",
      "dune-project",
      "mirage",
      "dist",
      "_build",
      "duniverse",
    ]) {
      assert.ok(made.includes(file), `the stand-in made ${file}`);
    }
    assert.equal(await hashSourceTree(dir), before);
  });

  it("ignores version control, node_modules and editor junk", async () => {
    const dir = await sourceTree();
    const before = await hashSourceTree(dir);
    await mkdir(join(dir, ".git", "objects"), { recursive: true });
    await writeFile(join(dir, ".git", "HEAD"), "ref: refs/heads/main\n");
    await mkdir(join(dir, "node_modules", "x"), { recursive: true });
    await writeFile(join(dir, "node_modules", "x", "index.js"), "1\n");
    await writeFile(join(dir, "unikernel.ml~"), "backup\n");
    await writeFile(join(dir, ".unikernel.ml.swp"), "swap\n");
    await writeFile(join(dir, "#unikernel.ml#"), "autosave\n");
    await writeFile(join(dir, ".#unikernel.ml"), "lock\n");
    await mkdir(join(dir, "lib", "_build"), { recursive: true });
    await writeFile(join(dir, "lib", "_build", "log"), "dune\n");
    assert.equal(await hashSourceTree(dir), before);
  });

  it("changes when a file's content, name or executable bit changes, or a file is added", async () => {
    const dir = await sourceTree();
    const seen = new Set([await hashSourceTree(dir)]);
    const expectNew = async (what: string) => {
      const hash = await hashSourceTree(dir);
      assert.ok(!seen.has(hash), `${what} changes the hash`);
      seen.add(hash);
    };
    await writeFile(
      join(dir, "unikernel.ml"),
      "module Hello = struct let start _ = Lwt.return () end\n",
    );
    await expectNew("editing unikernel.ml");
    await writeFile(join(dir, "lib", "more.ml"), "let y = 2\n");
    await expectNew("adding lib/more.ml");
    await writeFile(join(dir, "lib", "renamed.ml"), await readFile(join(dir, "lib", "more.ml")));
    await rm(join(dir, "lib", "more.ml"));
    await expectNew("renaming lib/more.ml");
    await chmod(join(dir, "lib", "renamed.ml"), 0o755);
    await expectNew("making lib/renamed.ml executable");
    await writeFile(join(dir, "Makefile.user"), "extra:\n\tfalse\n");
    await expectNew("editing Makefile.user");
    // A user-written file in a directory mirage does not own counts, even if named like one.
    await mkdir(join(dir, "lib", "dist"), { recursive: true });
    await writeFile(join(dir, "lib", "dist", "data.ml"), "let d = 3\n");
    await expectNew("adding lib/dist/data.ml");
  });

  it("does not depend on where the tree is", async () => {
    assert.equal(
      await hashSourceTree(await sourceTree()),
      await hashSourceTree(await sourceTree()),
    );
  });

  it("streams files larger than one read", async () => {
    const dir = await sourceTree();
    const before = await hashSourceTree(dir);
    const big = Buffer.alloc(3 * 1024 * 1024 + 17, 7);
    await writeFile(join(dir, "big.bin"), big);
    const withBig = await hashSourceTree(dir);
    big[big.length - 1] = 8;
    await writeFile(join(dir, "big.bin"), big);
    const changedAtTheEnd = await hashSourceTree(dir);
    assert.notEqual(withBig, before);
    assert.notEqual(changedAtTheEnd, withBig);
  });

  it("follows symbolic links, and refuses one that loops", async () => {
    const dir = await sourceTree();
    const before = await hashSourceTree(dir);
    await symlink(join(dir, "lib"), join(dir, "shared"));
    const linked = await hashSourceTree(dir);
    assert.notEqual(linked, before, "the linked directory's files count");
    await symlink("..", join(dir, "lib", "up"));
    await assert.rejects(
      hashSourceTree(dir),
      /lib\/up is a symbolic link to a directory that contains it/,
    );
  });

  it("names the directory when it does not exist", async () => {
    await assert.rejects(hashSourceTree(join(scratch, "nope")), /nope/);
  });
});

describe("isGenerated", () => {
  it("recognises mirage's header in the first lines only", () => {
    assert.ok(
      isGenerated(Buffer.from(";; Generated by mirage configure -t hvt\n(lang dune 3.0)\n")),
    );
    assert.ok(isGenerated(Buffer.from("\n\n(* Generated by mirage configure *)\n")));
    const late = `${"let x = 1\n".repeat(10)}(* Generated by mirage *)\n`;
    assert.ok(!isGenerated(Buffer.from(late)));
  });
});

describe("copySourceTree", () => {
  it("copies the source without generated files, keeps executable bits, returns the same hash", async () => {
    const dir = await sourceTree();
    await writeFile(join(dir, "run.sh"), "#!/bin/sh\n");
    await chmod(join(dir, "run.sh"), 0o755);
    const expected = await hashSourceTree(dir);
    await run(STANDIN, ["configure", "-t", "hvt"], { cwd: dir });
    const copy = join(scratch, `copy-${counter++}`);
    await mkdir(copy);
    assert.equal(await copySourceTree(dir, copy), expected);
    assert.deepEqual((await readdir(copy)).sort(), [
      "Makefile.user",
      "config.ml",
      "lib",
      "run.sh",
      "unikernel.ml",
    ]);
    assert.equal(await readFile(join(copy, "config.ml"), "utf8"), CONFIG_ML);
    assert.equal(await hashSourceTree(copy), expected);
  });
});

describe("combineFingerprint", () => {
  it("changes with the target, each configure argument and the toolchain version", () => {
    const base = {
      tree: "a".repeat(64),
      target: "virtio",
      configureArgs: ["--net=direct"],
      mirageVersion: "v4.11.0",
    };
    const variants = [
      base,
      { ...base, tree: "b".repeat(64) },
      { ...base, target: "hvt" },
      { ...base, configureArgs: [] },
      { ...base, configureArgs: ["--net=socket"] },
      { ...base, configureArgs: ["--net", "=direct"] },
      { ...base, mirageVersion: "v4.10.0" },
    ];
    const fingerprints = new Set(variants.map(combineFingerprint));
    assert.equal(fingerprints.size, variants.length);
    assert.equal(combineFingerprint({ ...base }), combineFingerprint(base));
  });
});

// The fault matrix (issue 13): what a user sees when the file system says no (full, read-only,
// not a directory...), when a secret is refused, and that nothing is left behind afterwards.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdir, readdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, test } from "node:test";
import { promisify } from "node:util";
import { inspectKernel } from "../provider/kernel/inspect";
import { provider as imageProvider } from "../provider/resources/disk-image";
import { provider as vmProvider } from "../provider/resources/local-vm";
import { provider as unikernelProvider } from "../provider/resources/unikernel";
import { CLI, imageArgv } from "./support/cli";
import { testKernel } from "./support/kernels";
import { Scratch } from "./support/scratch";

const exec = promisify(execFile);
const scratch = Scratch.forThisFile("faults-test-");

let dirs = 0;
async function freshDir(): Promise<string> {
  const dir = join(scratch.path, `d${dirs++}`);
  await mkdir(dir);
  return dir;
}

interface Failed {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command expected to fail; its status and output. */
async function failing(file: string, args: string[], env?: NodeJS.ProcessEnv): Promise<Failed> {
  return exec(file, args, { env: { ...process.env, ...env } }).then(
    (result) => assert.fail(`${file} ${args.join(" ")} succeeded: ${result.stdout}`),
    (error: Failed) => error,
  );
}

/** `sh -c SCRIPT` in a private mount namespace: mounts it makes vanish with it. */
const inMountNamespace = (script: string) => failing("unshare", ["-m", "sh", "-ec", script]);

const q = (word: string) => `'${word.replaceAll("'", "'\\''")}'`;

describe("file-system errors are sentences naming the path (case 5, 6)", () => {
  test("--out naming an existing file", async () => {
    const dir = await freshDir();
    const file = join(dir, "taken");
    await writeFile(file, "a file");
    const { code, stderr } = await failing("node", imageArgv(await testKernel("virtio"), file));
    assert.equal(code, 1, stderr);
    assert.ok(
      stderr.includes(
        `writing the image into ${file}: ${file} already exists and is not a directory`,
      ),
      stderr,
    );
    assert.doesNotMatch(stderr, /EEXIST/);
  });

  test("--out under a file (ENOTDIR)", async () => {
    const dir = await freshDir();
    const file = join(dir, "plain");
    await writeFile(file, "a file");
    const out = join(file, "out");
    const { stderr } = await failing("node", imageArgv(await testKernel("virtio"), out));
    assert.ok(stderr.includes(`${file} is not a directory`), stderr);
    assert.doesNotMatch(stderr, /ENOTDIR|ENOENT/);
  });

  test("--out under a read-only parent: EROFS, not Node's ENOENT", async () => {
    const dir = await freshDir();
    const readOnly = join(dir, "ro");
    await mkdir(readOnly);
    const out = join(readOnly, "a", "b");
    const kernel = await testKernel("virtio");
    const { stderr } = await inMountNamespace(
      `mount --bind ${q(readOnly)} ${q(readOnly)}; mount -o remount,ro,bind ${q(readOnly)}; ` +
        `exec node ${imageArgv(kernel, out).map(q).join(" ")}`,
    );
    assert.ok(
      stderr.includes(`${readOnly} is on a read-only file system: choose a writable directory`),
      stderr,
    );
    assert.doesNotMatch(stderr, /ENOENT|EROFS/);
  });

  test("a full disk: no space left on the device, and nothing partial in --out", async () => {
    const dir = await freshDir();
    const out = join(dir, "out");
    const kernel = await testKernel("virtio");
    // 1 MiB holds the kernel but not a 1 GiB FAT32's two FATs: mkfs.fat fails writing them.
    const { stdout, stderr } = await inMountNamespace(
      `mount -t tmpfs -o size=1m tmpfs ${q(dir)}; ` +
        `node ${imageArgv(kernel, out).map(q).join(" ")} || status=$?; ` +
        `echo "left: [$(ls -A ${q(out)})]"; exit \${status:-0}`,
    );
    assert.ok(
      stderr.includes(`writing the image into ${out}: no space left on the device holding ${out}`),
      stderr,
    );
    assert.ok(stdout.includes("left: []"), stdout);
  });

  test("boot of a directory says it is one (EISDIR)", async () => {
    const dir = await freshDir();
    // A TMPDIR of its own: other test files make scratch areas in the run's at the same time.
    const tmp = await freshDir();
    const { code, stderr } = await failing("node", [CLI, "boot", dir], { TMPDIR: tmp });
    assert.equal(code, 1, stderr);
    assert.ok(stderr.includes(`${dir} is a directory, not a disk image`), stderr);
    assert.doesNotMatch(stderr, /EISDIR/);
    assert.deepEqual(await readdir(tmp), [], "no scratch left for a boot that never started");
  });

  test("local.Vm with a directory as image: a check failure on image, not a thrown error", async () => {
    const dir = await freshDir();
    const { failures } = await vmProvider.check({}, { image: dir });
    assert.ok(
      failures.some((f) => f.property === "image" && f.reason.includes(`${dir} is a directory`)),
      JSON.stringify(failures),
    );
  });
});

describe("secret boot arguments (case 7, 9)", () => {
  // Characters the refusal's own words never use, so any of them in a message came from the value.
  const secret = "€¥£ß";

  test("a refused secret is named by position and rule, never by a character of it", async () => {
    const dir = await freshDir();
    const kernel = await testKernel("virtio");
    const { stderr } = await failing(
      "node",
      imageArgv(kernel, join(dir, "out"), "--", "-l", secret),
    );
    const { failures } = await imageProvider.check(
      {},
      { kernelPath: kernel, bootArgs: ["-l", secret] },
    );
    const reasons = (failures ?? []).map((f) => f.reason).join("\n");
    for (const message of [stderr, reasons]) {
      assert.match(message, /boot argument 1 is refused at character 1 of 4: only printable ASCII/);
      for (const char of secret) assert.ok(!message.includes(char), `${char} in: ${message}`);
    }
  });

  test("with a secret boot argument, objectName is salted: no offline guess, stable across updates", async () => {
    const kernel = await testKernel("virtio");
    const news = { kernelPath: kernel, bootArgs: ["--pin=4711"], format: "raw" };
    const name = async (olds: Record<string, unknown>, extra: Record<string, unknown>) =>
      (await imageProvider.check(olds, { ...news, ...extra })).inputs as Record<string, unknown>;
    const plain = await name({}, {});
    const first = await name({}, { bootArgsSecret: true, nameSalt: "" });
    const second = await name({}, { bootArgsSecret: true, nameSalt: "" });
    // Anyone can compute the plain name from a guess; the salted one they cannot.
    assert.notEqual(first.objectName, plain.objectName);
    assert.notEqual(first.objectName, second.objectName, "the salt is random per resource");
    assert.match(String(first.nameSalt), /^[0-9a-f]{32}$/);
    const updated = await name(first, { bootArgsSecret: true, nameSalt: "" });
    assert.equal(updated.objectName, first.objectName, "the salt in the state keeps the name");
    assert.equal(plain.nameSalt, undefined, "no salt without a secret");
  });
});

describe("numeric inputs have bounds checked at check time (case 3)", () => {
  const reasonFor = async (
    check: (
      olds: object,
      news: Record<string, unknown>,
    ) => Promise<{ failures?: { property: string; reason: string }[] }>,
    news: Record<string, unknown>,
    property: string,
  ) => (await check({}, news)).failures?.find((f) => f.property === property)?.reason;

  test("buildTimeoutMinutes beyond Node's timer (2^31 ms) is refused, saying the bound", async () => {
    const kernel = await testKernel("virtio");
    const news = (minutes: number) => ({ kernel, target: "virtio", buildTimeoutMinutes: minutes });
    assert.match(
      String(await reasonFor(unikernelProvider.check, news(40000), "buildTimeoutMinutes")),
      /at most 35791, not 40000/,
    );
    assert.equal(
      await reasonFor(unikernelProvider.check, news(35791), "buildTimeoutMinutes"),
      undefined,
    );
  });

  test("local.Vm memoryMiB and waitFor.timeoutSeconds have upper bounds too", async () => {
    const image = join(await freshDir(), "nowhere.raw");
    assert.match(
      String(await reasonFor(vmProvider.check, { image, memoryMiB: 2 ** 40 }, "memoryMiB")),
      /from 16 to 1048576/,
    );
    const waitFor = { console: "x", timeoutSeconds: 3e6 };
    assert.match(
      String(await reasonFor(vmProvider.check, { image, waitFor }, "waitFor.timeoutSeconds")),
      /at most 2147483/,
    );
  });
});

describe("kernels (case 10)", () => {
  test("a 32-bit ELF carrying Solo5 notes is refused, saying its class and machine", async () => {
    const dir = await freshDir();
    const source = join(dir, "abi.s");
    // Solo5's ABI1 note (target 3, virtio; ABI version 1), in a 32-bit x86 object.
    await writeFile(
      source,
      [
        '.section .note.solo5.abi, "a", @note',
        ".balign 4",
        ".long 6, 16, 0x31494241",
        '.asciz "Solo5"',
        ".balign 4",
        ".long 3, 1, 0, 0",
        "",
      ].join("\n"),
    );
    const object = join(dir, "abi32.o");
    await exec("as", ["--32", "-o", object, source]);
    await assert.rejects(
      inspectKernel(object),
      /carries Solo5 notes but is an ELF32 x86 binary: Solo5 kernels are ELF64 for x86_64 or aarch64/,
    );
    const { stderr } = await failing("node", imageArgv(object, join(dir, "out")));
    assert.match(stderr, /ELF32 x86 binary/);
  });
});

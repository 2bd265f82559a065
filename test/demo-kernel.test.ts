// The demo unikernel the package ships (build/kernels/demo.virtio, made by kernels/build-demo.sh
// from kernels/): the file is what its source makes, byte for byte, every time; it is a Solo5
// virtio kernel to our code; and booted with `pulumi-mirage boot` it prints its banner and its
// boot arguments.
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { after, describe, test } from "node:test";
import { run } from "../provider/core/exec";
import { inspectKernel } from "../provider/kernel/inspect";
import { CLI, imageArgv, startCli } from "./support/cli";
import { processesMentioning } from "./support/process";
import { Scratch } from "./support/scratch";

/** build/test/demo-kernel.js → the repository root. */
const ROOT = resolve(__dirname, "..", "..");
const SHIPPED = join(ROOT, "build", "kernels", "demo.virtio");
const SCRIPT = join(ROOT, "kernels", "build-demo.sh");

const scratch = Scratch.forThisFile("demo-kernel-test-");
// Nothing a test started (QEMU, the CLI) may outlive it: its command line names the directory.
after(() => assert.deepEqual(processesMentioning(scratch.path), []));

describe("the demo kernel", () => {
  test("is what kernels/build-demo.sh makes of its source, the same bytes every time", async () => {
    const dir = await scratch.fresh();
    const first = join(dir, "first.virtio");
    const second = join(dir, "second.virtio");
    await run("sh", [SCRIPT, first]);
    await run("sh", [SCRIPT, second]);
    const shipped = await readFile(SHIPPED);
    assert.ok(
      shipped.equals(await readFile(first)),
      "the shipped kernel is not its source's build",
    );
    assert.ok(shipped.equals(await readFile(second)), "two builds differ");
    // A few KB, as shipped in the package.
    assert.ok(shipped.length < 64 * 1024, `${shipped.length} bytes`);
  });

  test("is a Solo5 virtio kernel with a multiboot entry, to inspect", async () => {
    const info = await inspectKernel(SHIPPED);
    assert.equal(info.solo5?.target, "virtio");
    assert.equal(info.solo5?.abiVersion, 1);
    assert.equal(info.multiboot?.aout, true);
  });

  test("boots with `pulumi-mirage boot`, printing its banner and its boot arguments", async () => {
    const dir = await scratch.fresh();
    const out = join(dir, "image");
    const env = { PULUMI_MIRAGE_CACHE: join(dir, "cache"), TMPDIR: dir };
    const image = await startCli(imageArgv(SHIPPED, out, "--", "--hello=demo"), env).ended;
    assert.equal(image.status, 0, image.stderr);
    const boot = await startCli(
      [CLI, "boot", join(out, "disk.raw"), "--expect", "^Command line is: ", "--timeout", "120"],
      env,
    ).ended;
    assert.equal(boot.status, 0, boot.stderr);
    const lines = boot.stdout.split(/\r?\n/);
    const banner = lines.indexOf("pulumi-mirage demo unikernel (Solo5-like) target=virtio");
    assert.ok(banner >= 0, boot.stdout);
    assert.deepEqual(lines.slice(banner + 1, banner + 3), [
      "Hello, World",
      "Command line is: '--hello=demo'",
    ]);
  });
});

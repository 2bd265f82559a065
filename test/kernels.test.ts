// The test kernels themselves: other tests rely on them behaving like a Solo5 hello, so boot
// them the way QEMU's own multiboot loader does (-kernel uses the a.out kludge) and check the
// serial console, and run the unix stand-in program.
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { promisify } from "node:util";
import { type TestKernelName, testKernel, testUnixProgram } from "./support/kernels";
import { Started } from "./support/process";
import { Scratch } from "./support/scratch";

const exec = promisify(execFile);

const scratch = Scratch.forThisFile("kernels-test-");
const started = Started.forThisFile();

/** Boots `kernel` with QEMU -kernel; resolves with QEMU's exit status, serial log and stderr. */
async function boot(kernel: string, append: string) {
  const log = join(scratch.path, `${Math.random().toString(36).slice(2)}.log`);
  const { status, stderr } = await new Promise<{ status: number | null; stderr: string }>(
    (resolve, reject) => {
      const qemu = started.add(
        spawn(
          "qemu-system-x86_64",
          [
            ...["-display", "none", "-m", "128", "-no-reboot", "-kernel", kernel],
            ...["-append", append, "-serial", `file:${log}`],
            ...["-device", "isa-debug-exit,iobase=0x501"],
          ],
          { stdio: ["ignore", "ignore", "pipe"] },
        ),
      );
      let stderr = "";
      qemu.stderr.on("data", (chunk) => {
        stderr += chunk;
      });
      const timer = setTimeout(() => qemu.kill("SIGKILL"), 120_000);
      qemu.on("error", reject);
      qemu.on("exit", (status) => {
        clearTimeout(timer);
        resolve({ status, stderr });
      });
    },
  );
  const serial = await readFile(log, "utf8").catch(() => "");
  return { status, stderr, lines: serial.split(/\r?\n/) };
}

for (const [name, target] of [
  ["virtio-net", "virtio"],
  ["xen", "xen"],
] as [TestKernelName, string][]) {
  test(`${name} boots from a multiboot loader, prints its arguments and powers off`, async () => {
    const kernel = await testKernel(name);
    // QEMU passes "KERNEL-PATH ARGS" as the multiboot command line. Like Solo5, the virtio
    // kernel drops the first word and the xen kernel keeps the command line as given.
    const { status, lines } = await boot(kernel, "--ipv4=10.0.0.2/24 -l '*:debug'");
    const first = target === "xen" ? `${kernel} ` : "";
    assert.deepEqual(lines.slice(0, 3), [
      `Solo5-like test unikernel (pulumi-mirage) target=${target}`,
      "Hello, World",
      `Command line is: '${first}--ipv4=10.0.0.2/24 -l '*:debug''`,
    ]);
    assert.equal(status, 1, "powered off through isa-debug-exit");
  });
}

test("virtio-net-exit83 powers off as Solo5 virtio does: QEMU exits with status 83", async () => {
  const { status, lines } = await boot(await testKernel("virtio-net-exit83"), "");
  assert.equal(lines[1], "Hello, World");
  assert.equal(status, 83);
});

test("virtio-nomb has no multiboot header, so QEMU cannot boot it", async () => {
  const { status, stderr, lines } = await boot(await testKernel("virtio-nomb"), "");
  assert.notEqual(status, 0);
  assert.match(stderr, /Error loading/);
  assert.ok(!lines.includes("Hello, World"));
});

test("the unix stand-in prints its arguments and exits, or serves until killed", async () => {
  const program = await testUnixProgram();
  const { stdout } = await exec(program, ["--hello=world", "a b"]);
  assert.equal(
    stdout,
    "Solo5-like test unikernel (pulumi-mirage) target=unix\nHello, World\n" +
      "Command line is: '--hello=world a b'\n",
  );

  const child = started.add(
    spawn(program, ["--serve", "x"], { stdio: ["ignore", "pipe", "ignore"] }),
  );
  let output = "";
  await new Promise<void>((resolve) =>
    child.stdout.on("data", (chunk) => {
      output += chunk;
      if (output.includes("Command line is: '--serve x'\n")) resolve();
    }),
  );
  assert.equal(child.exitCode, null, "still running after printing");
  const exited = new Promise((resolve) => child.on("exit", (_code, signal) => resolve(signal)));
  child.kill("SIGTERM");
  assert.equal(await exited, "SIGTERM");
});

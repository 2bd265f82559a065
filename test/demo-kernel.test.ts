// The demo unikernel the package ships (build/kernels/demo.virtio, made by kernels/build-demo.sh
// from kernels/): the file is what its source makes, byte for byte, every time; it is a Solo5
// virtio kernel declaring one network device; booted with `pulumi-mirage boot` it prints its
// banner and its boot arguments, and halts without a NIC; with one, HTTP requests through a QEMU
// port forward reach it (which also takes its ARP answer: QEMU's user network asks first).
// Its ICMP echo answers need a tap and a ping, which CI does not install: they were checked by
// hand (README, "The demo kernel").
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { after, describe, test } from "node:test";
import { run } from "../provider/core/exec";
import { inspectKernel } from "../provider/kernel/inspect";
import { startVmAndWait, stopVm, type VmProcess } from "../provider/local/boot";
import { CLI, imageArgv, startCli } from "./support/cli";
import { freePort } from "./support/net";
import { processesMentioning } from "./support/process";
import { Scratch } from "./support/scratch";

/** build/test/demo-kernel.js → the repository root. */
const ROOT = resolve(__dirname, "..", "..");
const SHIPPED = join(ROOT, "build", "kernels", "demo.virtio");
const SCRIPT = join(ROOT, "kernels", "build-demo.sh");

const scratch = Scratch.forThisFile("demo-kernel-test-");
// Nothing a test started (QEMU, the CLI) may outlive it: its command line names the directory.
after(() => assert.deepEqual(processesMentioning(scratch.path), []));

/** The demo kernel's disk image with `bootArgs`, made by `pulumi-mirage image` in `dir`. */
async function demoImage(dir: string, ...bootArgs: string[]): Promise<string> {
  const out = join(dir, "image");
  const made = await startCli(imageArgv(SHIPPED, out, "--", ...bootArgs), { TMPDIR: dir }).ended;
  assert.equal(made.status, 0, made.stderr);
  return join(out, "disk.raw");
}

/** The console's lines from the demo kernel's banner on. */
function fromBanner(console: string): string[] {
  const lines = console.split(/\r?\n/);
  const banner = lines.indexOf("pulumi-mirage demo unikernel (Solo5-like) target=virtio");
  assert.ok(banner >= 0, console);
  return lines.slice(banner);
}

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

  test("is a Solo5 virtio kernel with a multiboot entry, declaring one network device", async () => {
    const info = await inspectKernel(SHIPPED);
    assert.equal(info.solo5?.target, "virtio");
    assert.equal(info.solo5?.abiVersion, 1);
    assert.equal(info.multiboot?.aout, true);
    assert.deepEqual(info.manifest?.devices, [{ name: "service", type: "net" }]);
  });

  test("boots with `pulumi-mirage boot`, prints its banner and arguments, and halts without a NIC", async () => {
    const dir = await scratch.fresh();
    const disk = await demoImage(dir, "--hello=demo");
    const env = { PULUMI_MIRAGE_CACHE: join(dir, "cache"), TMPDIR: dir };
    const boot = await startCli(
      [CLI, "boot", disk, "--expect", "^demo: no virtio-net NIC", "--timeout", "120"],
      env,
    ).ended;
    assert.equal(boot.status, 0, boot.stderr);
    assert.deepEqual(fromBanner(boot.stdout).slice(1, 4), [
      "Hello, World",
      "Command line is: '--hello=demo'",
      "demo: no virtio-net NIC, nothing to serve: halted (boot it with a NIC to reach it)",
    ]);
  });

  test("with a NIC, answers HTTP through a port forward, request after request", async () => {
    const dir = await scratch.fresh();
    const disk = await demoImage(dir);
    const port = await freePort();
    let vm: VmProcess | undefined;
    try {
      vm = await startVmAndWait(
        {
          image: disk,
          stateDir: join(dir, "vm"),
          forwards: [{ host: port, guest: 8080 }],
          cacheDir: join(dir, "cache"),
          onProgress: () => {},
        },
        { console: "^demo: serving on ", timeoutSeconds: 120 },
        "the demo VM",
      );
      for (const request of [1, 2]) {
        const response = await fetch(`http://127.0.0.1:${port}/hello`);
        assert.equal(response.status, 200);
        assert.equal(response.headers.get("content-type"), "text/plain");
        assert.equal(
          await response.text(),
          `Hello, World: the pulumi-mirage demo unikernel served request ${request}\n`,
        );
      }
      const lines = fromBanner(await readFile(vm.consoleLog, "utf8"));
      assert.match(lines[3], /^demo: virtio-net NIC at PCI 00:[0-9a-f]{2}\.0, MAC 52:54:00:/);
      assert.deepEqual(lines.slice(4, 7), [
        "demo: serving on 10.0.2.15: ARP, ping, and HTTP on TCP port 8080",
        "demo: HTTP request 1 from 10.0.2.2: GET /hello HTTP/1.1",
        "demo: HTTP request 2 from 10.0.2.2: GET /hello HTTP/1.1",
      ]);
    } finally {
      if (vm) await stopVm(vm);
    }
  });
});

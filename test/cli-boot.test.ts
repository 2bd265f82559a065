// `pulumi-mirage boot`, the test harness, where it knows the cause: a xen or aws disk is refused
// before QEMU starts (it would only print GRUB's screen until the timeout), and a kernel that
// declares a network, booted without --net, is told to add it when it powers off. Booted with the
// accelerator the probe chose; each run has a TMPDIR of its own, empty once it has ended.
import assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { buildImage } from "../provider/image";
import { CLI, type Ended, startCli } from "./support/cli";
import { testKernel } from "./support/kernels";
import { processesMentioning } from "./support/process";

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), "cli-boot-test-"));
});
after(async () => {
  const left = processesMentioning(dir);
  await rm(dir, { recursive: true, force: true });
  assert.deepEqual(left, []);
});

let runs = 0;
async function boot(...args: string[]): Promise<Ended> {
  const tmp = join(dir, `tmp-${++runs}`);
  await mkdir(tmp);
  const ended = await startCli([CLI, "boot", ...args], {
    TMPDIR: tmp,
    PULUMI_MIRAGE_CACHE: join(dir, "cache"),
  }).ended;
  assert.deepEqual(readdirSync(tmp), []);
  return ended;
}

describe("pulumi-mirage boot", () => {
  test("refuses a xen or aws disk at once, saying what runs it", async () => {
    const kernel = await testKernel("xen-net");
    for (const format of ["raw", "aws"] as const) {
      const image = await buildImage({ kernel, outDir: join(dir, format), format, bootArgs: [] });
      const started = Date.now();
      const ended = await boot(image.disk.path, "--timeout", "600");
      assert.equal(ended.status, 1);
      assert.match(
        ended.stderr,
        /holds a Solo5 xen kernel \(a xen or aws image\), which prints only to the Xen console and does not run in QEMU: run it on a Xen host with xen\.Domain, or on EC2 with aws\.UnikernelService/,
      );
      assert.equal(ended.stdout, "", "no console: QEMU never started");
      // Not a timeout: said before any boot could have happened (generous for a busy machine).
      assert.ok(Date.now() - started < 30_000);
    }
  });

  test("hints --net when a kernel declaring a network powers off without a NIC, not with one", async () => {
    // This test kernel exits as Solo5 virtio does (QEMU status 83), as a real one that finds its
    // declared network device missing does at start.
    const image = await buildImage({
      kernel: await testKernel("virtio-net-exit83"),
      outDir: join(dir, "gce"),
      format: "gce",
      bootArgs: [],
    });
    assert.ok(image.archive);
    const bare = await boot(image.archive.path, "--timeout", "120");
    assert.match(
      bare.stderr,
      /QEMU exited with status 83 \(the guest powered off: a Solo5 virtio kernel/,
    );
    assert.match(
      bare.stderr,
      /hint: the unikernel declares network device service and was booted without a NIC; .*add --net/,
    );
    const withNic = await boot(image.archive.path, "--net", "--timeout", "120");
    assert.match(withNic.stderr, /QEMU exited with status 83/);
    assert.doesNotMatch(withNic.stderr, /hint:/);
  });
});

// `pulumi-mirage image` makes the checks DiskImage makes (rules/platform.ts): what each
// refusal says, that nothing is written then, and that `--format aws` is DiskImage's aws image.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdir, readdir } from "node:fs/promises";
import { join } from "node:path";
import { describe, test } from "node:test";
import { promisify } from "node:util";
import { blockMap, mapDigest } from "../provider/core/block-map";
import { sha256File } from "../provider/core/hash";
import { provider } from "../provider/resources/disk-image";
import { imageArgv } from "./support/cli";
import { type TestKernelName, testKernel } from "./support/kernels";
import { Scratch } from "./support/scratch";

const exec = promisify(execFile);
const scratch = Scratch.forThisFile("cli-image-test-");

let dirs = 0;
async function freshDir(): Promise<string> {
  const dir = join(scratch.path, `d${dirs++}`);
  await mkdir(dir);
  return dir;
}

/** Runs `image` on a test kernel expected to be refused: its stderr, once checked that it exited
 * 1 and wrote nothing. */
async function refused(name: TestKernelName, format: string): Promise<string> {
  const outDir = await freshDir();
  const kernel = await testKernel(name);
  const result = await exec("node", imageArgv(kernel, outDir, "--format", format)).then(
    () => assert.fail(`image of a ${name} kernel as ${format} succeeded`),
    (error: { code: number; stderr: string }) => error,
  );
  assert.equal(result.code, 1, result.stderr);
  assert.deepEqual(await readdir(outDir), [], "nothing written");
  assert.ok(result.stderr.startsWith("pulumi-mirage image: "), result.stderr);
  return result.stderr;
}

describe("pulumi-mirage image refuses", () => {
  test("a xen kernel as gce, naming --format and what fits", async () => {
    assert.match(
      await refused("xen-net", "gce"),
      /--format gce: a xen kernel cannot go into a gce image \(Compute Engine boots virtio kernels\): use --format aws or raw, or build the unikernel for virtio/,
    );
  });

  test("a virtio kernel as aws, naming --format and what fits", async () => {
    assert.match(
      await refused("virtio-net", "aws"),
      /--format aws: a virtio kernel cannot go into an aws image \(EC2 boots xen kernels\): use --format gce or raw/,
    );
  });

  test("a virtio kernel without a network device as gce, naming the kernel", async () => {
    const kernel = await testKernel("virtio");
    const stderr = await refused("virtio", "gce");
    assert.ok(stderr.includes(`${kernel}: Compute Engine always attaches one network interface`));
    assert.match(
      stderr,
      /must declare exactly one network device; this one declares none: use one network stack \(netif\/stackv4v6\) in config\.ml, or --format raw/,
    );
  });

  test("a virtio kernel with a block device and no network: refused, and warned about the block device", async () => {
    const stderr = await refused("virtio-block", "gce");
    assert.match(stderr, /warning: the unikernel declares block device storage, which cannot work/);
    assert.match(stderr, /exactly one network device; this one declares none/);
  });

  for (const format of ["raw", "gce", "aws"]) {
    test(`an hvt kernel as ${format}, saying what runs it and what to build instead`, async () => {
      assert.match(
        await refused("hvt", format),
        /hvt\.hvt: an hvt kernel cannot boot from a disk image: it runs under the solo5-hvt tender .*local\.Process.*; for a disk image, build the unikernel with `mirage configure -t virtio` \(gce, raw; QEMU\) or `-t xen` \(aws, raw; Xen\)/,
      );
    });
  }
});

describe("pulumi-mirage image --format aws", () => {
  test("writes the raw disk a DiskImage of format aws holds, byte for byte", async () => {
    const kernel = await testKernel("xen-net");
    const bootArgs = ["--ipv4=10.0.0.2/24"];
    const outDir = join(await freshDir(), "out");
    const { stdout } = await exec(
      "node",
      imageArgv(kernel, outDir, "--format", "aws", "--", ...bootArgs),
    );
    const printed = JSON.parse(stdout);
    assert.deepEqual(Object.keys(printed), ["disk", "seconds"], "no archive: EC2 imports the disk");
    assert.deepEqual(await readdir(outDir), ["disk.raw"]);

    const checked = await provider.check(
      {},
      { kernelPath: kernel, format: "aws", bootArgs, cacheDir: join(scratch.path, "cache") },
    );
    assert.deepEqual(checked.failures, []);
    const { outs } = await provider.create(checked.inputs);
    assert.match(String(outs.objectName), /\.raw$/);
    assert.equal(await sha256File(printed.disk.path), outs.sha256);
    assert.equal(printed.disk.mapDigest, mapDigest(await blockMap(String(outs.path))));
  });
});

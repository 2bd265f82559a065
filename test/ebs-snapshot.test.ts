// The EBS direct upload against a local server playing EBS and EC2 (test/support/fake-aws.ts):
// the snapshot it makes holds exactly disk.raw and boots; failures complete nothing.
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { deleteSnapshot, uploadSnapshot } from "../provider/aws/ebs-snapshot";
import { sha256File } from "../provider/core/hash";
import { buildImage } from "../provider/image";
import { bootAndWatch } from "../provider/local/boot";
import { startDynamicProvider } from "./support/dynamic-provider";
import { FakeAws } from "./support/fake-aws";
import { testKernel } from "./support/kernels";
import { Scratch } from "./support/scratch";

const scratch = Scratch.forThisFile("ebs-snapshot-test-");
const ARGS = ["--hello=EBS", "-l", "*:debug"];
const fake = new FakeAws();
let endpoint: string;
let disk: string;
const saved = { ...process.env };

before(async () => {
  endpoint = await fake.start();
  Object.assign(process.env, fake.env(endpoint));
  const result = await buildImage({
    kernel: await testKernel("xen"),
    outDir: join(scratch.path, "image"),
    format: "raw",
    bootArgs: ARGS,
  });
  disk = result.disk.path;
});

after(async () => {
  process.env = saved;
  await fake.stop();
});

function puts(id: string) {
  return fake.requests.filter((r) => r.action === "PutSnapshotBlock" && r.path.includes(id));
}

describe("the fake EBS and EC2", () => {
  test("refuse requests signed with a wrong secret key, as the services do", async () => {
    const secret = process.env.AWS_SECRET_ACCESS_KEY;
    process.env.AWS_SECRET_ACCESS_KEY = "not-the-secret";
    try {
      await assert.rejects(
        uploadSnapshot({
          path: disk,
          description: "refused",
          tags: {},
          pollMs: 50,
          maxAttempts: 1,
        }),
        /InvalidSignatureException|signature we calculated does not match/,
      );
      await assert.rejects(
        deleteSnapshot("snap-0123456789abcdef", { maxAttempts: 1 }),
        /SignatureDoesNotMatch|signature we calculated does not match/,
      );
    } finally {
      process.env.AWS_SECRET_ACCESS_KEY = secret;
    }
    assert.equal(fake.snapshots.size, 0, "nothing was started");
  });
});

describe("uploadSnapshot", () => {
  test("writes only the non-zero blocks, checked by EBS, and the snapshot is disk.raw and boots", async () => {
    fake.throttleNextPuts = 1;
    const progress: string[] = [];
    const before = fake.requests.length;
    const uploaded = await uploadSnapshot({
      path: disk,
      description: "test image",
      tags: { stack: "test" },
      pollMs: 50,
      onProgress: (line) => progress.push(line),
    });
    const snapshot = fake.snapshots.get(uploaded.snapshotId);
    assert.ok(snapshot);
    assert.equal(snapshot.state, "completed");
    assert.deepEqual(snapshot.tags, [{ Key: "stack", Value: "test" }]);
    assert.equal(uploaded.volumeSize, 1);
    assert.equal(uploaded.blockCount, 2048);
    assert.equal(uploaded.blocksWritten, snapshot.blocks.size);
    assert.ok(
      uploaded.blocksWritten > 0 && uploaded.blocksWritten < 64,
      `${uploaded.blocksWritten} blocks`,
    );
    // One throttled answer, retried: one more PUT than blocks.
    assert.equal(puts(uploaded.snapshotId).length, uploaded.blocksWritten + 1);
    const mine = fake.requests.slice(before);
    assert.ok(mine.every((r) => r.authorization.includes("Credential=AKIDPULUMIMIRAGETEST/")));
    assert.deepEqual(
      [...new Set(mine.map((r) => r.action))],
      ["StartSnapshot", "PutSnapshotBlock", "CompleteSnapshot", "DescribeSnapshots"],
    );
    assert.match(
      progress.at(-1) ?? "",
      new RegExp(`^blocks written ${uploaded.blocksWritten}/${uploaded.blocksWritten}, [\\d.]+ s$`),
    );

    const volume = join(scratch.path, "volume.raw");
    await fake.reassemble(uploaded.snapshotId, volume);
    assert.equal(await sha256File(volume), await sha256File(disk));
    const booted = await bootAndWatch({
      image: volume,
      timeoutSeconds: 300,
      expect: /Command line is: '.*'/,
      logFile: join(scratch.path, "volume.console"),
    });
    const console = await readFile(join(scratch.path, "volume.console"), "utf8");
    assert.equal(booted.matched, true, console);
    assert.match(console, /Hello, World/);
    assert.ok(console.includes(`Command line is: '${ARGS.join(" ")}'`), console);

    await deleteSnapshot(uploaded.snapshotId);
    assert.equal(snapshot.deleted, true);
    // Deleting what is already gone is fine (a destroy after a manual delete).
    await deleteSnapshot(uploaded.snapshotId);
  });

  test("a block corrupted on the way fails with EBS's reason, and nothing is completed", async () => {
    const from = fake.requests.length;
    fake.corruptPutsOf.add(0);
    try {
      await assert.rejects(
        uploadSnapshot({ path: disk, description: "bad", pollMs: 50, maxAttempts: 2 }),
        (error: Error) => {
          assert.match(
            error.message,
            /uploading .*disk\.raw to EBS snapshot snap-\w+ failed: ValidationException: The checksum does not match the data \(INVALID_BLOCK\); the unfinished snapshot was deleted/,
          );
          return true;
        },
      );
    } finally {
      fake.corruptPutsOf.clear();
    }
    assertNothingCompletedSince(from, "bad");
  });

  test("an upload whose connection keeps dropping fails after its retries, and nothing is completed", async () => {
    const from = fake.requests.length;
    fake.dropPutsOf.add(0);
    try {
      await assert.rejects(
        uploadSnapshot({ path: disk, description: "dropped", pollMs: 50, maxAttempts: 3 }),
        /uploading .* failed: .*; the unfinished snapshot was deleted/,
      );
    } finally {
      fake.dropPutsOf.clear();
    }
    assertNothingCompletedSince(from, "dropped");
  });
});

/** No snapshot completed since request number `from`, and none is left unfinished. */
function assertNothingCompletedSince(from: number, what: string): void {
  const requests = fake.requests.slice(from);
  assert.equal(
    requests.filter((r) => r.action === "CompleteSnapshot").length,
    0,
    `${what}: CompleteSnapshot was called`,
  );
  const pending = [...fake.snapshots.values()].filter((s) => !s.deleted && s.state !== "completed");
  assert.deepEqual(
    pending.map((s) => s.id),
    [],
    `${what}: snapshots left`,
  );
}

describe("EbsSnapshot through the dynamic-provider process", () => {
  test("create writes the snapshot from the packed package, delete removes it", async () => {
    const provider = await startDynamicProvider({ env: fake.env(endpoint) });
    try {
      const imageSha256 = await sha256File(disk);
      const checked = await provider.check(
        "ebs-snapshot",
        {},
        { imagePath: disk, imageSha256, tags: { app: "hello" }, resourceName: "snap" },
      );
      assert.deepEqual(checked.failures, []);
      const { id, outs } = await provider.create("ebs-snapshot", checked.inputs);
      assert.match(id, /^snap-/);
      assert.equal(fake.snapshots.get(id)?.state, "completed");
      assert.equal(outs.snapshotId, id);
      assert.equal(outs.blocksWritten, fake.snapshots.get(id)?.blocks.size);
      assert.ok(provider.logs.some((l) => l.includes(`[ebs-snapshot snap] ${id} completed`)));
      const diff = await provider.diff("ebs-snapshot", id, outs, {
        ...checked.inputs,
        imageSha256: "0".repeat(64),
      });
      assert.deepEqual(diff.replaces, ["imageSha256"]);
      await provider.delete("ebs-snapshot", id, outs);
      assert.equal(fake.snapshots.get(id)?.deleted, true);
    } finally {
      await provider.stop();
    }
  });

  test("Ec2ConsoleWait waits until each console matches, and names the instance and the CLI command when not", async () => {
    fake.consoles.set("i-0abc", {
      shown: "",
      pieces: ["pulumi-mirage[web]: fetching\n", "", "solo5-spt: serving on port 8080\n"],
    });
    fake.consoles.set("i-0def", { shown: "", pieces: ["nothing useful\n"] });
    const provider = await startDynamicProvider({ env: fake.env(endpoint) });
    try {
      const inputs = {
        instances: ["i-0abc"],
        pattern: "serving on port \\d+",
        timeoutSeconds: 120,
      };
      assert.deepEqual((await provider.check("ec2-console-wait", {}, inputs)).failures, []);
      const { outs } = await provider.create("ec2-console-wait", inputs);
      assert.deepEqual(outs.matched, { "i-0abc": "serving on port 8080" });
      await assert.rejects(
        provider.create("ec2-console-wait", {
          ...inputs,
          instances: ["i-0def"],
          timeoutSeconds: 1,
        }),
        /the console of i-0def did not match .* within 1 s\.[\s\S]*nothing useful[\s\S]*aws ec2 get-console-output --instance-id i-0def --latest/,
      );
      const bad = await provider.check(
        "ec2-console-wait",
        {},
        { instances: ["web-1"], pattern: "(", timeoutSeconds: 0 },
      );
      assert.deepEqual(bad.failures.map((f) => f.property).sort(), [
        "instances",
        "pattern",
        "timeoutSeconds",
      ]);
    } finally {
      await provider.stop();
    }
  });

  test("check names a malformed KMS key ARN and region", async () => {
    const provider = await startDynamicProvider({ env: fake.env(endpoint) });
    try {
      const checked = await provider.check(
        "ebs-snapshot",
        {},
        { imagePath: disk, imageSha256: "x", kmsKeyArn: "my-key", region: "Ireland" },
      );
      assert.deepEqual(
        checked.failures.map((f) => f.property),
        ["kmsKeyArn", "region"],
      );
    } finally {
      await provider.stop();
    }
  });
});

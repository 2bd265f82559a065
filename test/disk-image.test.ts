// The DiskImage resource's engine code, called as the dynamic-provider process calls it. Images
// are really built (provider/image) from the test kernels.
import assert from "node:assert/strict";
import { chmod, open, readdir, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { describe, it } from "node:test";
import { lookup } from "../provider/core/cache";
import { sha256File } from "../provider/core/hash";
import { provider } from "../provider/resources/disk-image";
import { provider as unikernels } from "../provider/resources/unikernel";
import { UNKNOWN } from "../rules/values";
import { unikernelInputs } from "../sdk/disk-image";
import { testKernel } from "./support/kernels";
import { STANDIN, Standin } from "./support/standin";

type Props = Record<string, unknown>;

const standin = Standin.forThisFile();

/** Inputs as the SDK sends them for a kernel given by path. */
function pathInputs(kernelPath: string, extra: Props = {}): Props {
  return {
    kernelPath,
    format: "raw",
    bootArgs: [],
    cacheDir: standin.path("cache"),
    resourceName: "image",
    ...extra,
  };
}

/** Inputs as the SDK sends them for a Unikernel resource's outputs. */
function resourceInputs(unikernel: Props, extra: Props = {}): Props {
  // What a preview sends: outputs known only once the kernel is built are unknown.
  const { kernelPath = UNKNOWN, sha256 = UNKNOWN, manifest = UNKNOWN } = unikernel;
  return {
    ...unikernelInputs({ ...unikernel, kernelPath, sha256, manifest }),
    format: "gce",
    bootArgs: [],
    cacheDir: unikernel.cacheDir,
    resourceName: "image",
    ...extra,
  };
}

async function checked(news: Props): Promise<Props> {
  const result = await provider.check({}, news);
  assert.deepEqual(result.failures, [], "check passes");
  return result.inputs;
}

async function failures(news: Props): Promise<Record<string, string>> {
  const result = await provider.check({}, news);
  return Object.fromEntries((result.failures ?? []).map((f) => [f.property, f.reason]));
}

/** Runs `work`, returning what it printed with console.log as well. */
async function printed<T>(work: () => Promise<T>): Promise<{ result: T; lines: string[] }> {
  const lines: string[] = [];
  const log = console.log;
  console.log = (...args: unknown[]) => lines.push(args.map(String).join(" "));
  try {
    return { result: await work(), lines };
  } finally {
    console.log = log;
  }
}

describe("check", () => {
  it("refuses kernels a format cannot boot, saying what would work", async () => {
    const xen = await failures(pathInputs(await testKernel("xen-net"), { format: "gce" }));
    assert.match(xen.format, /a xen kernel cannot go into a gce image.*use format "aws" or "raw"/);
    const virtio = await failures(pathInputs(await testKernel("virtio-net"), { format: "aws" }));
    assert.match(
      virtio.format,
      /a virtio kernel cannot go into an aws image.*use format "gce" or "raw"/,
    );
    const hvt = await failures(pathInputs(await testKernel("hvt")));
    assert.match(hvt.kernel, /an? hvt kernel cannot boot from a disk image/);
    const unknownFormat = await failures(pathInputs(await testKernel("virtio"), { format: "vhd" }));
    assert.match(unknownFormat.format, /"vhd" is not an image format: use one of raw, gce, aws/);
  });

  it("wants exactly one network device for GCE", async () => {
    const none = await failures(pathInputs(await testKernel("virtio"), { format: "gce" }));
    assert.match(none.kernel, /exactly one network device; this one declares none/);
    await checked(pathInputs(await testKernel("virtio-net"), { format: "gce" }));
    const two = await failures(
      resourceInputs(
        {
          fingerprint: "f".repeat(64),
          name: "two",
          target: "virtio",
          manifest: [
            { name: "service", type: "net" },
            { name: "management", type: "net" },
          ],
        },
        { kernelPath: UNKNOWN },
      ),
    );
    assert.match(two.kernel, /this one declares 2 \(service, management\)/);
  });

  it("warns about block devices on GCE", async () => {
    const manifest = [
      { name: "service", type: "net" },
      { name: "storage", type: "block" },
    ];
    const news = resourceInputs({
      fingerprint: "f".repeat(64),
      name: "db",
      target: "virtio",
      manifest,
    });
    const { lines } = await printed(() => checked(news));
    assert.equal(lines.length, 1);
    assert.match(lines[0] as string, /^\[disk-image image\] warning: .*block device storage/);
  });

  it("refuses a boot argument the bootloaders would change, without quoting it", async () => {
    const secret = "--token=hunter2 hunter3";
    const reasons = await failures(
      pathInputs(await testKernel("virtio"), { bootArgs: ["-l", secret] }),
    );
    assert.match(reasons.bootArgs, /boot argument 1/);
    assert.match(reasons.bootArgs, /space/);
    assert.ok(!reasons.bootArgs.includes("hunter"), reasons.bootArgs);
  });

  it("computes the objectName from a Unikernel's fingerprint at preview, before any build", async () => {
    const news = resourceInputs({ fingerprint: "a".repeat(64), name: "web", target: "virtio" });
    const inputs = await checked(news);
    assert.match(String(inputs.objectName), /^web-[0-9a-f]{12}\.tar\.gz$/);
    assert.equal(inputs.name, "web");
    const raw = await checked(
      resourceInputs(
        { fingerprint: "a".repeat(64), name: "web", target: "virtio" },
        { format: "raw" },
      ),
    );
    assert.match(String(raw.objectName), /^web-[0-9a-f]{12}\.raw$/);
  });

  it("keeps unknown inputs unknown instead of failing", async () => {
    const kernel = { fingerprint: "a".repeat(64), name: "web", target: "virtio" };
    for (const news of [
      pathInputs(UNKNOWN),
      resourceInputs(kernel, { bootArgs: ["--ipv4=10.0.0.2/24", UNKNOWN] }),
      resourceInputs(kernel, { bootArgs: UNKNOWN }),
      resourceInputs({ ...kernel, fingerprint: UNKNOWN, name: UNKNOWN, target: UNKNOWN }),
      resourceInputs(kernel, { format: UNKNOWN }),
    ]) {
      const inputs = await checked(news);
      assert.equal(inputs.objectName, UNKNOWN, JSON.stringify(news));
    }
  });

  it("gives the same objectName for the same inputs and a new one when a boot argument changes", async () => {
    const kernel = await testKernel("virtio-net");
    const name = async (bootArgs: string[], format = "gce") =>
      (await checked(pathInputs(kernel, { bootArgs, format }))).objectName;
    const base = await name(["--ipv4=10.0.0.2/24"]);
    assert.equal(await name(["--ipv4=10.0.0.2/24"]), base);
    assert.match(String(base), /^virtio-net-[0-9a-f]{12}\.tar\.gz$/);
    const others = [
      await name(["--ipv4=10.0.0.3/24"]),
      await name([]),
      await name(["--ipv4=10.0.0.2/24", "-l", "debug"]),
      await name(["--ipv4=10.0.0.2/24"], "raw"),
    ];
    assert.equal(new Set([base, ...others]).size, 5);
  });
});

describe("create", () => {
  it("builds a GCE archive into the cache under its objectName; the same inputs give the same bytes", async () => {
    const kernel = await testKernel("virtio-net");
    const news = pathInputs(kernel, { format: "gce", bootArgs: ["--ipv4=10.0.0.2/24"] });
    const inputs = await checked(news);
    const { id, outs } = await provider.create(inputs);
    assert.equal(id, inputs.objectName);
    const path = String(outs.path);
    assert.ok(path.startsWith(String(inputs.cacheDir)));
    assert.equal(outs.sha256, await sha256File(path));
    assert.equal(outs.size, (await stat(path)).size);
    assert.deepEqual(outs.manifest, [{ name: "service", type: "net" }]);
    assert.deepEqual(JSON.parse(JSON.stringify(outs)), outs, "outputs are plain JSON");
    const magic = Buffer.alloc(2);
    const file = await open(path);
    await file.read(magic, 0, 2, 0);
    await file.close();
    assert.deepEqual([...magic], [0x1f, 0x8b], "a gzip file");

    // Elsewhere, from scratch: the same name and the same bytes.
    const elsewhere = await checked({ ...news, cacheDir: standin.path("cache") });
    assert.equal(elsewhere.objectName, inputs.objectName);
    const again = await provider.create(elsewhere);
    assert.equal(again.outs.sha256, outs.sha256);

    // A redeploy with no change: no diff, and a create would be served from the cache.
    assert.deepEqual(await provider.diff("id", outs, await checked(news)), {
      changes: false,
      replaces: [],
      deleteBeforeReplace: false,
    });
    const logs = await readdir(join(String(inputs.cacheDir), "logs"));
    const hit = await provider.create(await checked(news));
    assert.equal(hit.outs.path, path);
    assert.deepEqual(
      await readdir(join(String(inputs.cacheDir), "logs")),
      logs,
      "nothing was built",
    );
  });

  it("makes a raw disk of a xen kernel for aws", async () => {
    const inputs = await checked(pathInputs(await testKernel("xen-net"), { format: "aws" }));
    assert.match(String(inputs.objectName), /^xen-net-[0-9a-f]{12}\.raw$/);
    const { outs } = await provider.create(inputs);
    assert.equal(outs.target, "xen");
    assert.equal((await stat(String(outs.path))).size % 2 ** 30, 0, "a whole number of GiB");
  });

  it("takes a Unikernel's outputs: the objectName of the preview is the one created", async () => {
    const source = await standin.source("web", { net: true });
    const unikernelInputs = {
      source,
      target: "virtio",
      mirage: STANDIN,
      cacheDir: standin.path("cache"),
      resourceName: "web",
    };
    const planned = (await unikernels.check({}, unikernelInputs)).inputs;
    const preview = await checked(resourceInputs(planned, { bootArgs: ["--ipv4=10.0.0.2/24"] }));
    assert.match(String(preview.objectName), /^web-[0-9a-f]{12}\.tar\.gz$/);

    const built = (await unikernels.create(planned)).outs;
    const inputs = await checked(resourceInputs(built, { bootArgs: ["--ipv4=10.0.0.2/24"] }));
    assert.equal(inputs.objectName, preview.objectName);
    const { outs } = await provider.create(inputs);
    assert.equal(outs.name, "web");
    assert.equal(outs.objectName, preview.objectName);
  });

  it("keeps boot arguments out of progress lines and error messages", async () => {
    const secret = "--token=s3cr3t-value";
    const inputs = await checked(pathInputs(await testKernel("virtio"), { bootArgs: [secret] }));
    const { lines } = await printed(() => provider.create(inputs));
    assert.ok(lines.length > 0, "progress was printed");
    assert.ok(
      lines.every((line) => !line.includes("s3cr3t")),
      lines.join("\n"),
    );

    // An argument check has not seen (check was bypassed) fails in the image builder, whose
    // message names the argument: the error must not quote it.
    const unchecked = { ...inputs, bootArgs: ["--token=s3cr3t value"], objectName: "virtio-0.raw" };
    const { result } = await printed(() =>
      provider.create(unchecked).then(
        () => undefined,
        (e: Error) => e,
      ),
    );
    assert.ok(result instanceof Error);
    assert.match(result.message, /boot argument 0/);
    assert.ok(!result.message.includes("s3cr3t"), result.message);
  });
});

describe("read, update and delete", () => {
  it("read reports a removed image; diff then replaces it; delete keeps the cache entry", async () => {
    const news = pathInputs(await testKernel("virtio"));
    const inputs = await checked(news);
    const { outs } = await provider.create(inputs);
    assert.deepEqual((await provider.read("id", outs)).props, outs, "no drift");

    await provider.delete("id", outs);
    assert.equal(
      (await lookup(String(inputs.cacheDir), "image", String(inputs.objectName)))?.path,
      outs.path,
    );

    await rm(String(outs.path));
    const gone = (await provider.read("id", outs)).props as Props;
    assert.equal(gone.sha256, "");
    assert.deepEqual((await provider.diff("id", gone, inputs)).replaces, ["sha256"]);
    const rebuilt = await provider.create(inputs);
    assert.equal(rebuilt.outs.sha256, outs.sha256);
  });

  it("read finds a cached image whose data changed, and diff then replaces it", async () => {
    const inputs = await checked(pathInputs(await testKernel("virtio"), { bootArgs: ["-x"] }));
    const { outs } = await provider.create(inputs);
    const path = String(outs.path);
    await chmod(path, 0o644);
    const file = await open(path, "r+");
    // A byte inside the partition's data, where a damaged copy would differ.
    await file.write(Buffer.from([0xff]), 0, 1, 1024 * 1024 + 4096 * 100);
    await file.close();
    const changed = (await provider.read("id", outs)).props as Props;
    assert.notEqual(changed.sha256, outs.sha256);
    assert.deepEqual((await provider.diff("id", changed, inputs)).replaces, ["sha256"]);
    const rebuilt = await provider.create(inputs);
    assert.equal(rebuilt.outs.sha256, outs.sha256);
    assert.equal(await sha256File(String(rebuilt.outs.path)), outs.sha256);
  });

  it("with secret boot arguments (the image kept apart): unchanged is not replaced, gone is", async () => {
    const news = pathInputs(await testKernel("virtio"), {
      bootArgs: ["--token=s3cr3t"],
      bootArgsSecret: true,
    });
    const inputs = await checked(news);
    const { outs } = await provider.create(inputs);
    assert.ok(!String(outs.path).includes(String(outs.sha256)), "the path does not show the hash");
    const refreshed = (await provider.read("id", outs)).props as Props;
    assert.deepEqual(refreshed, outs, "no drift");
    const again = await checked({ ...news, nameSalt: inputs.nameSalt });
    assert.deepEqual(await provider.diff("id", refreshed, again), {
      changes: false,
      replaces: [],
      deleteBeforeReplace: false,
    });
    await rm(String(outs.path));
    const gone = (await provider.read("id", outs)).props as Props;
    assert.deepEqual((await provider.diff("id", gone, again)).replaces, ["sha256"]);
  });

  it("a new cacheDir updates in place; new boot arguments replace", async () => {
    const kernel = await testKernel("virtio");
    const olds = (await provider.create(await checked(pathInputs(kernel)))).outs;
    const moved = await checked(pathInputs(kernel, { cacheDir: standin.path("cache") }));
    const move = await provider.diff("id", olds, moved);
    assert.equal(move.changes, true);
    assert.deepEqual(move.replaces, []);
    const updated = await provider.update("id", olds, moved);
    assert.equal(updated.outs?.sha256, olds.sha256);
    const args = await provider.diff(
      "id",
      olds,
      await checked(pathInputs(kernel, { bootArgs: ["-l", "debug"] })),
    );
    assert.deepEqual(args.replaces, ["objectName", "bootArgs"]);
  });
});

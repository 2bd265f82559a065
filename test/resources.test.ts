// Unikernel and DiskImage as a Pulumi deployment drives them: through the real dynamic-provider
// process over gRPC, from the packed package (test/support/dynamic-provider.ts), building the
// examples with the stand-in mirage (test/standins/mirage).
import assert from "node:assert/strict";
import { cp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { run } from "../provider/core/exec";
import { sha256File } from "../provider/core/hash";
import { unikernelInputs } from "../sdk/disk-image";
import { repoRoot } from "./support/consumer";
import {
  type DynamicProvider,
  isSecret,
  type Props,
  ProviderCallError,
  reveal,
  secret,
  startDynamicProvider,
  UNKNOWN,
} from "./support/dynamic-provider";
import { alive, waitFor } from "./support/process";
import { Standin } from "./support/standin";

let standin: Standin;
let p: DynamicProvider;

before(async () => {
  // Sets MIRAGE_STANDIN_KERNELS and MIRAGE_STANDIN_LOG in this process's environment, which the
  // provider process inherits and passes on to mirage.
  standin = await Standin.setUp();
  p = await startDynamicProvider();
});
after(async () => {
  await p?.stop();
  await standin?.tearDown();
});

/** A private copy of examples/NAME, free to edit. */
async function example(name: "hello" | "web"): Promise<string> {
  const dir = standin.path(name);
  await cp(join(repoRoot, "examples", name), dir, { recursive: true });
  return dir;
}

/** Unikernel inputs as the SDK sends them, built with the stand-in into a fresh cache. */
const unikernelArgs = (source: string, extra: Props = {}) => standin.unikernelInputs(source, extra);

async function checked(
  provider: DynamicProvider,
  module: "unikernel" | "disk-image",
  news: Props,
  olds: Props = {},
): Promise<Props> {
  const { inputs, failures } = await provider.check(module, olds, news);
  assert.deepEqual(failures, [], "check passes");
  return inputs;
}

/** The build steps (configure, depend, build) the stand-in ran for builds in `cacheDir`. */
async function buildSteps(cacheDir: unknown): Promise<string[]> {
  return (await standin.invocations())
    .filter((i) => i.step !== "version" && i.cwd.startsWith(String(cacheDir)))
    .map((i) => i.step);
}

describe("Unikernel through the dynamic provider", () => {
  it("builds examples/hello: check, create, read, diff, delete", async () => {
    const news = unikernelArgs(await example("hello"));
    const inputs = await checked(p, "unikernel", news);
    assert.match(String(inputs.fingerprint), /^[0-9a-f]{64}$/);
    assert.equal(inputs.name, "hello");
    assert.equal(inputs.mirageVersion, "v4.11.1");
    assert.deepEqual(await buildSteps(news.cacheDir), [], "check builds nothing");

    const { id, outs } = await p.create("unikernel", inputs);
    assert.equal(id, inputs.fingerprint);
    assert.deepEqual(await buildSteps(news.cacheDir), ["configure", "depend", "build"]);
    const kernelPath = String(outs.kernelPath);
    assert.ok(kernelPath.startsWith(String(news.cacheDir)), kernelPath);
    assert.equal(outs.sha256, await sha256File(kernelPath));
    assert.equal(outs.size, (await stat(kernelPath)).size);
    assert.equal(outs.target, "virtio");
    assert.equal(outs.name, "hello");
    assert.deepEqual(outs.manifest, []);

    const read = await p.read("unikernel", id, outs);
    assert.equal(read.id, id);
    assert.deepEqual(read.props, outs);

    const again = await checked(p, "unikernel", news, inputs);
    assert.deepEqual(await p.diff("unikernel", id, outs, again), {
      changes: false,
      replaces: [],
      deleteBeforeReplace: false,
    });

    await p.delete("unikernel", id, outs);
    // Another stack may share the cached kernel.
    assert.equal(await sha256File(kernelPath), outs.sha256);
  });

  it("updates in place, keeping the kernel, when only a setting outside the build changes", async () => {
    const news = unikernelArgs(await example("hello"));
    const inputs = await checked(p, "unikernel", news);
    const { id, outs } = await p.create("unikernel", inputs);

    const longer = await checked(p, "unikernel", { ...news, buildTimeoutMinutes: 90 }, inputs);
    assert.equal(longer.fingerprint, inputs.fingerprint);
    const diff = await p.diff("unikernel", id, outs, longer);
    assert.equal(diff.changes, true);
    assert.deepEqual(diff.replaces, [], "an update, not a replacement");

    const updated = await p.update("unikernel", id, outs, longer);
    assert.equal(updated.outs.buildTimeoutMinutes, 90);
    assert.equal(updated.outs.kernelPath, outs.kernelPath);
    assert.equal(updated.outs.sha256, outs.sha256);
    assert.deepEqual(updated.outs.manifest, outs.manifest);
    assert.deepEqual(await buildSteps(news.cacheDir), ["configure", "depend", "build"]);
  });

  it("reports a cached kernel that went missing on refresh, and replaces it", async () => {
    const news = unikernelArgs(await example("hello"));
    const inputs = await checked(p, "unikernel", news);
    const { id, outs } = await p.create("unikernel", inputs);
    await rm(String(outs.kernelPath), { force: true });

    const refreshed = await p.read("unikernel", id, outs);
    assert.equal(refreshed.props.sha256, "");
    const diff = await p.diff("unikernel", id, refreshed.props, inputs);
    assert.ok(diff.replaces.includes("sha256"), JSON.stringify(diff));
  });

  it("reports the one network device examples/web declares", async () => {
    const inputs = await checked(p, "unikernel", unikernelArgs(await example("web")));
    const { outs } = await p.create("unikernel", inputs);
    assert.equal(outs.name, "web");
    assert.deepEqual(outs.manifest, [{ name: "service", type: "net" }]);
  });

  it("refuses bad inputs in check, naming the property", async () => {
    const { failures } = await p.check(
      "unikernel",
      {},
      unikernelArgs(join(standin.scratch, "nowhere")),
    );
    assert.equal(failures.length, 1);
    assert.equal(failures[0].property, "source");
    assert.match(failures[0].reason, /nowhere does not exist/);
  });

  it("previews with unknown inputs: nothing built, fingerprint unknown until source is known", async () => {
    const source = await example("hello");
    const unknownSource = await checked(p, "unikernel", unikernelArgs(UNKNOWN));
    assert.equal(unknownSource.fingerprint, UNKNOWN);
    const unknownArgs = await checked(
      p,
      "unikernel",
      unikernelArgs(source, { configureArgs: UNKNOWN }),
    );
    assert.equal(unknownArgs.fingerprint, UNKNOWN);
    const known = unikernelArgs(source, { buildTimeoutMinutes: UNKNOWN });
    const inputs = await checked(p, "unikernel", known);
    assert.match(String(inputs.fingerprint), /^[0-9a-f]{64}$/);
    assert.deepEqual(await buildSteps(known.cacheDir), []);
  });

  it("serves a kernel from the cache in a new provider process without running mirage", async () => {
    const news = unikernelArgs(await example("hello"));
    const first = await p.create("unikernel", await checked(p, "unikernel", news));
    assert.equal((await buildSteps(news.cacheDir)).length, 3);

    const fresh = await startDynamicProvider();
    try {
      const inputs = await checked(fresh, "unikernel", { ...news, resourceName: "other" });
      const second = await fresh.create("unikernel", inputs);
      assert.equal(second.outs.kernelPath, first.outs.kernelPath);
      assert.equal(second.outs.sha256, first.outs.sha256);
    } finally {
      await fresh.stop();
    }
    assert.equal((await buildSteps(news.cacheDir)).length, 3, "no build step ran again");
  });

  it("builds once for two concurrent creates from one source", async () => {
    const news = unikernelArgs(await example("hello"));
    const inputs = await checked(p, "unikernel", news);
    const [a, b] = await Promise.all([
      p.create("unikernel", inputs),
      p.create("unikernel", { ...inputs, resourceName: "twin" }),
    ]);
    assert.equal(a.outs.kernelPath, b.outs.kernelPath);
    assert.equal(a.outs.sha256, b.outs.sha256);
    assert.deepEqual(await buildSteps(news.cacheDir), ["configure", "depend", "build"]);
  });

  it("replaces the resource when the source changes, and only then", async () => {
    const source = await example("hello");
    const news = unikernelArgs(source);
    const inputs = await checked(p, "unikernel", news);
    const { id, outs } = await p.create("unikernel", inputs);

    // mirage's generated files are not source: configuring in the user's tree changes nothing.
    await writeFile(join(source, "Makefile"), "# Generated by mirage configure\nall:\n");
    const unchanged = await checked(p, "unikernel", news, inputs);
    assert.equal((await p.diff("unikernel", id, outs, unchanged)).changes, false);

    const unikernelMl = join(source, "unikernel.ml");
    await writeFile(unikernelMl, `${await readFile(unikernelMl, "utf8")}(* edited *)\n`);
    const edited = await checked(p, "unikernel", news, inputs);
    assert.notEqual(edited.fingerprint, inputs.fingerprint);
    const diff = await p.diff("unikernel", id, outs, edited);
    assert.equal(diff.changes, true);
    assert.ok(diff.replaces.includes("fingerprint"), JSON.stringify(diff));
  });
});

describe("Unikernel builds that fail", () => {
  it("returns a failing build's message with the tail of its output and the log path", async () => {
    const failing = await startDynamicProvider({ env: { MIRAGE_STANDIN_FAIL: "build" } });
    try {
      const inputs = await checked(failing, "unikernel", unikernelArgs(await example("hello")));
      const error = await failing.create("unikernel", inputs).then(
        () => assert.fail("the build should fail"),
        (e: unknown) => e,
      );
      assert.ok(error instanceof ProviderCallError, String(error));
      assert.match(error.message, /mirage build failed at step "make build"/);
      assert.match(error.message, /build output line 60/);
      const log = /full log: (\S+)/.exec(error.message)?.[1];
      assert.ok(log, error.message);
      assert.match(await readFile(log, "utf8"), /build output line 1\n/);
    } finally {
      await failing.stop();
    }
  });

  it("kills a build that outlives buildTimeoutMinutes, with everything it started", async () => {
    // The sleep is in the first step and the limit is 15 s, so even a loaded machine starts the
    // sleeping child before the limit strikes.
    const slow = await startDynamicProvider({ env: { MIRAGE_STANDIN_SLEEP: "configure:600" } });
    try {
      const news = unikernelArgs(await example("hello"), { buildTimeoutMinutes: 0.25 });
      const inputs = await checked(slow, "unikernel", news);
      await assert.rejects(
        slow.create("unikernel", inputs),
        (error: unknown) =>
          error instanceof ProviderCallError &&
          /longer than 0\.25 minutes \(buildTimeoutMinutes\) and was killed/.test(error.message),
      );
      const sleeper = (await standin.invocations()).find(
        (i) => i.child !== undefined && i.cwd.startsWith(String(news.cacheDir)),
      );
      assert.ok(sleeper?.child, "the stand-in started its sleeping child");
      const child = sleeper.child;
      await waitFor(`the build's child ${child} to be gone`, () => !alive(child), 20_000);
    } finally {
      await slow.stop();
    }
  });
});

describe("DiskImage through the dynamic provider", () => {
  let kernel: Props;
  let cacheDir: string;

  before(async () => {
    cacheDir = standin.path("cache");
    const inputs = await checked(
      p,
      "unikernel",
      unikernelArgs(await example("hello"), { cacheDir }),
    );
    kernel = (await p.create("unikernel", inputs)).outs;
  });

  /** DiskImage inputs as the SDK sends them for `kernel: unikernel`. */
  function imageArgs(extra: Props = {}): Props {
    return {
      ...unikernelInputs(kernel),
      format: "raw",
      bootArgs: [],
      cacheDir,
      resourceName: "hello",
      ...extra,
    };
  }

  it("makes a raw disk: check, create, read, diff, delete", async () => {
    const inputs = await checked(p, "disk-image", imageArgs({ bootArgs: ["--hello=Hi"] }));
    assert.match(String(inputs.objectName), /^hello-/);

    const { id, outs } = await p.create("disk-image", inputs);
    const path = String(outs.path);
    assert.equal(outs.sha256, await sha256File(path));
    assert.equal(outs.size, (await stat(path)).size);
    assert.equal(outs.objectName, inputs.objectName);
    assert.equal(outs.format, "raw");
    assert.equal(outs.name, "hello");
    assert.equal(outs.target, "virtio");
    assert.deepEqual(outs.bootArgs, ["--hello=Hi"]);

    const read = await p.read("disk-image", id, outs);
    assert.deepEqual(read.props, outs);

    // Renaming the resource changes no byte of the image: an update that keeps it.
    const renamed = await checked(
      p,
      "disk-image",
      imageArgs({ bootArgs: ["--hello=Hi"], resourceName: "renamed" }),
      inputs,
    );
    assert.deepEqual((await p.diff("disk-image", id, outs, renamed)).replaces, []);
    const updated = await p.update("disk-image", id, outs, renamed);
    assert.equal(updated.outs.path, outs.path);
    assert.equal(updated.outs.objectName, outs.objectName);

    const again = await checked(p, "disk-image", imageArgs({ bootArgs: ["--hello=Hi"] }), inputs);
    assert.equal((await p.diff("disk-image", id, outs, again)).changes, false);

    await p.delete("disk-image", id, outs);
    assert.equal(await sha256File(path), outs.sha256, "the cached image stays");
  });

  it("knows the objectName at preview, before the kernel is built", async () => {
    const full = await checked(p, "disk-image", imageArgs());
    const preview = await checked(
      p,
      "disk-image",
      imageArgs({ kernelPath: UNKNOWN, kernelSha256: UNKNOWN, manifest: UNKNOWN }),
    );
    assert.notEqual(preview.objectName, UNKNOWN);
    assert.equal(preview.objectName, full.objectName);
  });

  it("gives changed boot arguments a new objectName and replaces the image", async () => {
    const first = await checked(p, "disk-image", imageArgs({ bootArgs: ["--hello=one"] }));
    const { id, outs } = await p.create("disk-image", first);
    const second = await checked(p, "disk-image", imageArgs({ bootArgs: ["--hello=two"] }), first);
    assert.notEqual(second.objectName, first.objectName);
    const diff = await p.diff("disk-image", id, outs, second);
    assert.equal(diff.changes, true);
    assert.ok(diff.replaces.length > 0, JSON.stringify(diff));
  });

  it("packs examples/web for Compute Engine: a tar.gz holding disk.raw", async () => {
    const inputs = await checked(
      p,
      "unikernel",
      unikernelArgs(await example("web"), { cacheDir, resourceName: "web" }),
    );
    const web = (await p.create("unikernel", inputs)).outs;
    const image = await checked(p, "disk-image", {
      ...imageArgs({ format: "gce", resourceName: "web" }),
      kernelPath: web.kernelPath,
      kernelSha256: web.sha256,
      kernelId: web.fingerprint,
      unikernelName: web.name,
      manifest: web.manifest,
    });
    assert.match(String(image.objectName), /^web-[0-9a-f]{12}\.tar\.gz$/);
    const { outs } = await p.create("disk-image", image);
    const { stdout } = await run("tar", ["-tzf", String(outs.path)]);
    assert.equal(stdout, "disk.raw\n");
  });

  it("refuses a GCE image of a unikernel without a network device, naming kernel", async () => {
    const { failures } = await p.check("disk-image", {}, imageArgs({ format: "gce" }));
    assert.equal(failures[0]?.property, "kernel", JSON.stringify(failures));
    assert.match(failures[0].reason, /exactly one network device/);
  });

  it("refuses a boot argument the kernel could not receive as given, naming bootArgs", async () => {
    const { failures } = await p.check("disk-image", {}, imageArgs({ bootArgs: ["--a=b c"] }));
    assert.equal(failures[0]?.property, "bootArgs", JSON.stringify(failures));
  });

  it("refuses a bad secret boot argument without quoting it", async () => {
    const token = `hunter2 ${Date.now()}`;
    const { failures } = await p.check(
      "disk-image",
      {},
      imageArgs({ bootArgs: secret([`--token=${token}`]) }),
    );
    assert.equal(failures[0]?.property, "bootArgs", JSON.stringify(failures));
    assert.ok(!failures[0].reason.includes(token), failures[0].reason);
    assert.deepEqual(
      p.logs.filter((line) => line.includes(token)),
      [],
    );
  });

  it("keeps secret boot arguments secret in its outputs and out of every log", async () => {
    const token = `hunter2-${Date.now()}`;
    // As the SDK sends them: a salt to pick and a sha256 placeholder, secret like the arguments.
    const news = imageArgs({
      bootArgs: secret(["--hello=Hi", `--token=${token}`]),
      bootArgsSecret: true,
      nameSalt: secret(""),
      sha256: secret(""),
    });
    const inputs = await checked(p, "disk-image", news);
    assert.ok(isSecret(inputs.bootArgs));
    const { outs } = await p.create("disk-image", inputs);
    assert.ok(isSecret(outs.bootArgs));
    // The image holds the boot arguments: its public hash would let a guess be checked offline.
    assert.ok(isSecret(outs.sha256), JSON.stringify(outs.sha256));
    assert.match(String(reveal(outs.sha256)), /^[0-9a-f]{64}$/);
    // Nor may the path in the cache, public too, hold the hash.
    assert.ok(!String(outs.path).includes(String(reveal(outs.sha256))), String(outs.path));
    assert.deepEqual(reveal(outs.bootArgs), ["--hello=Hi", `--token=${token}`]);
    const { bootArgs: _, ...others } = outs;
    assert.ok(!JSON.stringify(others).includes(token), JSON.stringify(others));

    assert.deepEqual(
      p.logs.filter((line) => line.includes(token)),
      [],
      "no provider log line shows the secret",
    );
    const logs = join(cacheDir, "logs");
    for (const file of await readdir(logs).catch(() => [])) {
      const text = await readFile(join(logs, file), "utf8");
      assert.ok(!text.includes(token), `${file} shows the secret`);
    }
  });
});

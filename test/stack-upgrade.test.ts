// Existing stacks keep working: a stack's state recorded with an earlier version
// (test/fixtures/stack-e9e19a6.json, made by test/fixtures/record-stack.ts) is driven through the
// real dynamic-provider process of this version, as `pulumi refresh`, `pulumi up` and
// `pulumi destroy` would after an upgrade. The state's serialized providers are the recorded
// text, so each call loads `pulumi-mirage/provider/resources/NAME` as old stacks ask for it.
// What depends on the machine is made here as that version made it: the cache (the kernels, the
// image built from them, the index files as recorded) and the running local.Process.
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { openSync } from "node:fs";
import { chmod, copyFile, mkdir, readdir, readFile, stat, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { after, before, describe, it } from "node:test";
import { processStartTime } from "../provider/core/background";
import { blockMap, mapDigest } from "../provider/core/block-map";
import { sha256File } from "../provider/core/hash";
import { buildImage } from "../provider/image";
import { unikernelInputs } from "../sdk/disk-image";
import type { EngineModule } from "../sdk/engine";
import { repoRoot } from "./support/consumer";
import { type DynamicProvider, type Props, startDynamicProvider } from "./support/dynamic-provider";
import { testKernel, testUnixProgram } from "./support/kernels";
import { alive, Started, waitFor } from "./support/process";
import {
  fromTemplate,
  type RecordedResource,
  type StackFixture,
  type Vars,
} from "./support/stack-fixture";
import { STANDIN, Standin } from "./support/standin";

/** The version that recorded the state. */
const RECORDED_WITH = "e9e19a6";
const FIXTURE = join(repoRoot, "test", "fixtures", `stack-${RECORDED_WITH}.json`);
/** The stand-in's run tag (provider/local/run-records.ts): every process of a local run carries it. */
const RUN_TAG = "PULUMI_MIRAGE_RUN";

const started = Started.forThisFile();
let standin: Standin;
let p: DynamicProvider;
let fixture: StackFixture;
let vars: Vars;
let state: Record<"virtio" | "unix" | "image" | "running", RecordedResource>;
let processChild: ChildProcess;

async function fileFacts(path: string): Promise<{ sha256: string; size: number }> {
  return { sha256: await sha256File(path), size: (await stat(path)).size };
}

/** Puts `source` at `path` in the cache, read-only as the cache stores files. */
async function stored(source: string, cache: string, path: string, mode: number): Promise<void> {
  const target = join(cache, path);
  await mkdir(dirname(target), { recursive: true });
  await copyFile(source, target);
  await chmod(target, mode);
}

/**
 * The machine-specific values, with what they stand for made on this machine: the source tree,
 * the kernels the stand-in mirage builds (copies of the test kernels), the image of the virtio
 * one, the cache's index files, and the local.Process's running program.
 */
async function madeHere(): Promise<Vars> {
  const cache = standin.path("cache");
  const source = standin.path("src");
  for (const [file, text] of Object.entries(fixture.source)) {
    await mkdir(dirname(join(source, file)), { recursive: true });
    await writeFile(join(source, file), text);
  }
  const virtio = await fileFacts(await testKernel("virtio"));
  const unix = await fileFacts(await testUnixProgram());
  const recorded = fixture.resources.image.inputs;
  const { disk } = await buildImage({
    kernel: await testKernel("virtio"),
    outDir: standin.path("image"),
    format: recorded.format as "raw",
    bootArgs: recorded.bootArgs as string[],
  });
  const made: Vars = {
    cache,
    source,
    mirage: STANDIN,
    virtioSha256: virtio.sha256,
    virtioSize: virtio.size,
    unixSha256: unix.sha256,
    unixSize: unix.size,
    imageSha256: (await fileFacts(disk.path)).sha256,
    imageMapDigest: mapDigest(await blockMap(disk.path)),
  };
  const files: Record<string, readonly [string, number]> = {
    [virtio.sha256]: [await testKernel("virtio"), 0o444] as const,
    [unix.sha256]: [await testUnixProgram(), 0o555] as const,
    [made.imageSha256]: [disk.path, 0o444] as const,
  };
  for (const [path, record] of Object.entries(fromTemplate(fixture.cacheIndex, made))) {
    const { file, sha256 } = record as { file: string; sha256: string };
    const [from, mode] = files[sha256];
    await stored(from, cache, file, mode);
    await mkdir(dirname(join(cache, path)), { recursive: true });
    await writeFile(join(cache, path), JSON.stringify(record));
  }
  return { ...made, ...(await runningProcess(made)) };
}

/** Starts the local.Process's program as that version's create did: pid and start time. */
async function runningProcess(made: Vars): Promise<Vars> {
  const { id, outputs } = fixture.resources.running;
  const stateDir = fromTemplate(outputs.stateDir as string, made);
  const kernel = fromTemplate(outputs.kernel as string, made);
  const consoleLog = fromTemplate(outputs.consoleLog as string, made);
  await mkdir(stateDir, { recursive: true });
  const out = openSync(consoleLog, "a");
  processChild = started.add(
    spawn(kernel, outputs.args as string[], {
      cwd: stateDir,
      env: { ...process.env, [RUN_TAG]: id },
      detached: true,
      stdio: ["ignore", out, out],
    }),
  );
  const pid = processChild.pid as number;
  await waitFor(
    "the program to print",
    async () => (await readFile(consoleLog)).length > 0,
    10_000,
  );
  return { pid, startTime: processStartTime(pid) as number };
}

/** A property bag as the state holds it: with the recorded provider. */
const recorded = (r: RecordedResource, props: Props) => ({
  ...props,
  __provider: fixture.providers[r.module],
});
const engine = (r: RecordedResource) => r.module as EngineModule;

/** check as `pulumi up` calls it: the old inputs with their provider, the program's new ones. */
async function checked(r: RecordedResource, sent: Props): Promise<Props> {
  const { inputs, failures } = await p.check(engine(r), recorded(r, r.inputs), sent);
  assert.deepEqual(failures, [], `${r.module}: check passes`);
  return inputs;
}

/** The stand-in's build steps so far: an upgrade must build nothing. */
async function builds(): Promise<string[]> {
  return (await standin.buildSteps()).map((i) => i.step);
}

before(async () => {
  standin = await Standin.setUp();
  fixture = JSON.parse(await readFile(FIXTURE, "utf8"));
  vars = await madeHere();
  state = fromTemplate(fixture.resources, vars) as typeof state;
  p = await startDynamicProvider();
});
after(async () => {
  await p?.stop();
  await standin?.tearDown();
});

describe(`a stack recorded with ${RECORDED_WITH}, after the upgrade`, () => {
  it("keeps the serialized providers of that version, which load engine modules by package path", () => {
    for (const r of Object.values(state))
      assert.match(
        fixture.providers[r.module],
        /require\(`pulumi-mirage\/provider\/resources\/\$\{name\}`\)/,
      );
  });

  it("refresh: read finds every resource as recorded", async () => {
    for (const [name, r] of Object.entries(state)) {
      const read = await p.read(engine(r), r.id, recorded(r, r.outputs));
      assert.equal(read.id, r.id, name);
      assert.deepEqual(read.props, r.outputs, name);
    }
  });

  it("up with the same program: nothing changes, nothing is built", async () => {
    // The dependents get their inputs from the refreshed outputs, as a program does.
    const refreshed = async (r: RecordedResource) =>
      (await p.read(engine(r), r.id, recorded(r, r.outputs))).props;
    const virtio = await refreshed(state.virtio);
    const unix = await refreshed(state.unix);
    const sent: Record<keyof typeof state, Props> = {
      virtio: state.virtio.sent,
      unix: state.unix.sent,
      image: { ...state.image.sent, ...unikernelInputs(virtio) },
      running: {
        ...state.running.sent,
        kernel: unix.kernelPath,
        kernelSha256: unix.sha256,
        target: unix.target,
        manifest: unix.manifest,
      },
    };
    for (const [name, r] of Object.entries(state)) {
      const news = await checked(r, sent[name as keyof typeof state]);
      const diff = await p.diff(engine(r), r.id, recorded(r, r.outputs), news);
      assert.deepEqual(diff.replaces, [], name);
      assert.equal(diff.changes, false, `${name}: ${JSON.stringify(diff)}`);
    }
    assert.deepEqual(await builds(), []);
  });

  it("up with a change outside every identity: updated in place, nothing rebuilt", async () => {
    const images = await readdir(join(String(vars.cache), "images"), { recursive: true });
    const changes: [RecordedResource, Props, string[]][] = [
      [state.virtio, { buildTimeoutMinutes: 90 }, ["kernelPath", "sha256", "size", "fingerprint"]],
      [state.image, { resourceName: "renamed" }, ["path", "sha256", "size", "objectName"]],
      [state.running, { waitFor: { console: "Hello", timeoutSeconds: 30 } }, ["pid", "startTime"]],
    ];
    for (const [r, change, kept] of changes) {
      const news = await checked(r, { ...r.sent, ...change });
      const diff = await p.diff(engine(r), r.id, recorded(r, r.outputs), news);
      assert.equal(diff.changes, true, r.module);
      assert.deepEqual(diff.replaces, [], r.module);
      const { outs } = await p.update(engine(r), r.id, recorded(r, r.outputs), news);
      for (const key of kept) assert.deepEqual(outs[key], r.outputs[key], `${r.module} ${key}`);
    }
    assert.deepEqual(await builds(), []);
    assert.deepEqual(
      await readdir(join(String(vars.cache), "images"), { recursive: true }),
      images,
      "no image was made",
    );
    assert.ok(alive(vars.pid as number), "the process was left running");
  });

  it("destroy: delete stops the process and leaves the cache to other stacks", async () => {
    const exited = new Promise((resolve) => processChild.once("exit", resolve));
    for (const r of Object.values(state)) await p.delete(engine(r), r.id, recorded(r, r.outputs));
    await exited;
    await assert.rejects(stat(String(state.running.outputs.stateDir)), { code: "ENOENT" });
    for (const r of [state.virtio, state.unix])
      assert.equal(await sha256File(String(r.outputs.kernelPath)), r.outputs.sha256);
    assert.equal((await stat(String(state.image.outputs.path))).size, state.image.outputs.size);
  });
});

describe("the fixture", () => {
  it("holds no path of the machine that recorded it: those are made here", async () => {
    const text = await readFile(FIXTURE, "utf8");
    assert.doesNotMatch(text, /"\/(tmp|root|home|work)\//);
    assert.equal(fixture.recordedWith, RECORDED_WITH);
  });
});

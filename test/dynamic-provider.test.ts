// The dynamic-provider harness itself: the packed package in a consumer project, `__provider`
// serialized as the sdk's resources send it, the real provider process over gRPC, errors, logs
// and secrets as the engine sees them. The resources' behaviour is in resources.test.ts.
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { lstat, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { consumerProject } from "./support/consumer";
import {
  type DynamicProvider,
  dynamicType,
  ENGINE_MODULES,
  isSecret,
  ProviderCallError,
  secret,
  serializeInConsumer,
  startDynamicProvider,
} from "./support/dynamic-provider";
import { alive } from "./support/process";

/** A hand-written provider, sent as `__provider` text the way the serializer's output is loaded. */
const echoProvider = `exports.handler = () => ({
  async check(olds, news) {
    if (news.fail) throw new Error("check refused: " + news.fail);
    if (news.say) await require("@pulumi/pulumi").log.info("provider says " + news.say);
    return { inputs: news };
  },
  async create(inputs) {
    return { id: "echo-1", outs: { ...inputs, sawToken: typeof inputs.token } };
  },
});`;

describe("the consumer project", () => {
  it("installs a real copy of the packed files, not a link to the repository", async () => {
    const dir = await consumerProject();
    const installed = join(dir, "node_modules", "pulumi-mirage");
    assert.equal((await lstat(installed)).isSymbolicLink(), false);
    const manifest = JSON.parse(await readFile(join(installed, "package.json"), "utf8"));
    assert.equal(manifest.name, "pulumi-mirage");
    assert.ok((await stat(join(installed, "build", "sdk", "engine.js"))).isFile());
    // The `files` list keeps tests out of the package.
    await assert.rejects(stat(join(installed, "build", "test")), { code: "ENOENT" });
  });

  it("serializes __provider exactly as the sdk's Unikernel and DiskImage send it", async () => {
    const dir = await consumerProject();
    const sent = await serializeInConsumer(dir, ["resources"]);
    const ours = await serializeInConsumer(dir, ["engine", "unikernel", "disk-image"]);
    assert.equal(sent[dynamicType("unikernel")], ours.unikernel);
    assert.equal(sent[dynamicType("disk-image")], ours["disk-image"]);
    assert.match(ours.unikernel, /pulumi-mirage\/provider\/resources\//);
  });
});

describe("the dynamic provider process", () => {
  let p: DynamicProvider;
  before(async () => {
    p = await startDynamicProvider();
  });
  after(async () => {
    await p?.stop();
  });

  it("runs a __provider it is sent and returns its outputs", async () => {
    const { inputs } = await p.check("unikernel", {}, { __provider: echoProvider, n: 1 });
    assert.deepEqual(inputs, { n: 1 });
    const { id, outs } = await p.create("unikernel", { __provider: echoProvider, n: 1 });
    assert.equal(id, "echo-1");
    assert.deepEqual(outs, { n: 1, sawToken: "undefined" });
  });

  it("returns a provider's error message, and the provider logs it", async () => {
    await assert.rejects(
      p.check("unikernel", {}, { __provider: echoProvider, fail: "bad input" }),
      (error: unknown) =>
        error instanceof ProviderCallError && /check refused: bad input/.test(error.message),
    );
    assert.ok(p.logs.some((line) => line.includes("check refused: bad input")));
  });

  it("records pulumi.log calls made by provider code through the Engine service", async () => {
    await p.check("unikernel", {}, { __provider: echoProvider, say: "hello" });
    assert.ok(p.logs.includes("info: provider says hello"), p.logs.join("\n"));
  });

  it("sends secrets as plaintext and marks same-named outputs secret, as the engine does", async () => {
    const { outs } = await p.create("unikernel", {
      __provider: echoProvider,
      token: secret("s3cr3t"),
    });
    assert.deepEqual(outs.token, secret("s3cr3t"));
    assert.equal(outs.sawToken, "string");
    assert.equal(isSecret(outs.sawToken), false);
  });
});

describe("the packed engine modules", () => {
  it("are all packed, and each loads by package name in the provider process, through the exports map", async () => {
    const dir = await consumerProject();
    const resources = join(dir, "node_modules", "pulumi-mirage", "build", "provider", "resources");
    // A name in sdk/engine.ts that is not its module's file name would be lost here.
    const unpacked = ENGINE_MODULES.filter((name) => !existsSync(join(resources, `${name}.js`)));
    assert.deepEqual(unpacked, [], "engine modules missing from the package");
    const p = await startDynamicProvider();
    try {
      for (const module of ENGINE_MODULES) {
        // Empty inputs: the module answers (failures or an error about its inputs) only if the
        // provider process could load it.
        const answer = await p.check(module, {}, {}).then(
          (result) => JSON.stringify(result.failures),
          (error: unknown) => String(error),
        );
        assert.doesNotMatch(
          answer,
          /Cannot find module|not defined by "exports"|ERR_PACKAGE_PATH_NOT_EXPORTED/,
          module,
        );
      }
    } finally {
      await p.stop();
    }
  });
});

describe("stopping the provider", () => {
  it("leaves no provider process behind", async () => {
    const p = await startDynamicProvider();
    assert.ok(alive(p.pid));
    await p.stop();
    assert.equal(alive(p.pid), false);
  });
});

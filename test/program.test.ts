// A Pulumi program using the sdk, run under pulumi.runtime.setMocks: what it registers with the
// engine (type tokens, inputs, secrets). Under mocks the provider is serialized but never run, and
// a serialization error leaves outputs unresolved forever (docs/platforms.md, Pulumi dynamic
// providers), so every wait is bounded.
import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import * as pulumi from "@pulumi/pulumi";
import { DiskImage, Unikernel } from "../sdk/index";
import { settled } from "./support/example";

interface Registration {
  type: string;
  name: string;
  inputs: Record<string, unknown>;
}
const registered: Registration[] = [];

const SECRET_SIG_KEY = "4dabf18193072939515e22adb298388d";
const SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270";
const isWireSecret = (value: unknown) =>
  typeof value === "object" &&
  value !== null &&
  (value as Record<string, unknown>)[SECRET_SIG_KEY] === SECRET_SIG;

/** What a built unikernel's provider would return, so dependents see realistic outputs. */
const builtKernel = {
  kernelPath: "/cache/kernels/0123abcd/hello.virtio",
  sha256: "ab".repeat(32),
  size: 1_234_567,
  name: "hello",
  manifest: [{ name: "service", type: "net" }],
  fingerprint: "cd".repeat(32),
  mirageVersion: "4.11.0",
};

function registration(type: string, name: string): Registration {
  const found = registered.find((r) => r.type === type && r.name === name);
  assert.ok(
    found,
    `${type} "${name}" was not registered; registered: ${JSON.stringify(registered.map((r) => [r.type, r.name]))}`,
  );
  return found;
}

describe("a program declaring a Unikernel and its DiskImage", () => {
  let unikernel: Unikernel;
  let image: DiskImage;
  let prebuilt: DiskImage;

  before(async () => {
    await pulumi.runtime.setMocks(
      {
        newResource: (args) => {
          registered.push({ type: args.type, name: args.name, inputs: args.inputs });
          const state = args.type.endsWith(":Unikernel")
            ? { ...args.inputs, ...builtKernel }
            : {
                ...args.inputs,
                path: "/cache/images/ef01/disk.raw",
                objectName: "hello-0123456789ab.raw",
              };
          return { id: `${args.name}-id`, state };
        },
        call: (args) => args.inputs,
      },
      "program",
      "test",
      false,
    );
    unikernel = new Unikernel("hello", {
      source: "/src/hello",
      target: "virtio",
      configureArgs: ["--net=direct"],
      buildTimeoutMinutes: 5,
    });
    image = new DiskImage("hello", {
      kernel: unikernel,
      format: "gce",
      bootArgs: ["--ipv4=10.0.0.2/24", pulumi.secret("--token=hunter2")],
    });
    prebuilt = new DiskImage("prebuilt", { kernel: "/dist/hello.virtio" });
  });

  it("registers dynamic resources with their type tokens", async () => {
    assert.equal(
      await settled(unikernel.urn, "Unikernel urn"),
      "urn:pulumi:test::program::pulumi-nodejs:dynamic/pulumi-mirage:Unikernel::hello",
    );
    assert.equal(
      await settled(image.urn, "DiskImage urn"),
      "urn:pulumi:test::program::pulumi-nodejs:dynamic/pulumi-mirage:DiskImage::hello",
    );
  });

  it("sends the Unikernel's arguments and a serialized provider", async () => {
    await settled(unikernel.id, "Unikernel id");
    const { inputs } = registration("pulumi-nodejs:dynamic/pulumi-mirage:Unikernel", "hello");
    assert.equal(inputs.source, "/src/hello");
    assert.equal(inputs.target, "virtio");
    assert.deepEqual(inputs.configureArgs, ["--net=direct"]);
    assert.equal(inputs.buildTimeoutMinutes, 5);
    assert.match(String(inputs.__provider), /pulumi-mirage\/provider\/resources\//);
    assert.match(String(inputs.__provider), /"unikernel"/);
  });

  it("gives the DiskImage the Unikernel's outputs", async () => {
    await settled(image.id, "DiskImage id");
    const { inputs } = registration("pulumi-nodejs:dynamic/pulumi-mirage:DiskImage", "hello");
    assert.equal(inputs.kernelPath, builtKernel.kernelPath);
    assert.equal(inputs.kernelSha256, builtKernel.sha256);
    assert.equal(inputs.kernelId, builtKernel.fingerprint);
    assert.equal(inputs.unikernelName, builtKernel.name);
    assert.equal(inputs.target, "virtio");
    assert.deepEqual(inputs.manifest, builtKernel.manifest);
    assert.equal(inputs.format, "gce");
    assert.match(String(inputs.__provider), /"disk-image"/);
    assert.equal(await settled(image.objectName, "DiskImage objectName"), "hello-0123456789ab.raw");
  });

  it("sends a secret boot argument as a secret and keeps the bootArgs output secret", async () => {
    await settled(image.id, "DiskImage id");
    const { inputs } = registration("pulumi-nodejs:dynamic/pulumi-mirage:DiskImage", "hello");
    assert.ok(isWireSecret(inputs.bootArgs), `bootArgs sent as ${JSON.stringify(inputs.bootArgs)}`);
    assert.equal(await pulumi.isSecret(image.bootArgs), true);
    assert.deepEqual(await settled(image.bootArgs, "DiskImage bootArgs"), [
      "--ipv4=10.0.0.2/24",
      "--token=hunter2",
    ]);
    assert.equal(await pulumi.isSecret(image.path), false);
  });

  it("keeps the image's sha256 secret when a boot argument is (the image holds them)", async () => {
    await Promise.all([settled(image.id, "DiskImage id"), settled(prebuilt.id, "prebuilt id")]);
    // The engine keeps an output secret when an input of the same name was.
    const secretOne = registration("pulumi-nodejs:dynamic/pulumi-mirage:DiskImage", "hello");
    assert.ok(isWireSecret(secretOne.inputs.sha256), JSON.stringify(secretOne.inputs.sha256));
    assert.equal(await pulumi.isSecret(image.sha256), true);
    const plain = registration("pulumi-nodejs:dynamic/pulumi-mirage:DiskImage", "prebuilt");
    assert.equal(plain.inputs.sha256, "");
    // (The SDK answers "" here: falsy.)
    assert.ok(!(await pulumi.isSecret(prebuilt.sha256)));
  });

  it("takes a prebuilt kernel path with defaults: raw format, no boot arguments", async () => {
    await settled(prebuilt.id, "prebuilt DiskImage id");
    const { inputs } = registration("pulumi-nodejs:dynamic/pulumi-mirage:DiskImage", "prebuilt");
    assert.equal(inputs.kernelPath, "/dist/hello.virtio");
    assert.equal(inputs.format, "raw");
    assert.deepEqual(inputs.bootArgs, []);
    assert.equal(inputs.kernelSha256, undefined);
    assert.equal(await pulumi.isSecret(prebuilt.bootArgs), false);
  });
});

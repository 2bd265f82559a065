// The default program (the repository's Pulumi.yaml runs examples/local) as `pulumi up` runs it
// with no `kernel` or `source` in the stack config: under Pulumi's mocks, where every resource it
// declares is checked and created by the real dynamic-provider process as the engine would
// (test/support/dynamic-provider.ts), and deleted after. It boots the demo kernel the package
// ships, with no MirageOS toolchain, exports its console lines and a URL, and an HTTP request to
// that URL reaches the kernel through QEMU's port forward. (The only config set is `port`, a free
// one: the default, 8080, may be taken on the machine running the tests.)
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import * as pulumi from "@pulumi/pulumi";
import type { EngineModule } from "../sdk/engine";
import { demoKernel } from "../sdk/index";
import {
  type DynamicProvider,
  dynamicType,
  ENGINE_MODULES,
  type Props,
  startDynamicProvider,
} from "./support/dynamic-provider";
import { runExample, settled } from "./support/example";
import { freePort } from "./support/net";
import { processesMentioning } from "./support/process";

interface Created {
  module: EngineModule;
  inputs: Props;
  id: string;
  outs: Props;
}
const created: Created[] = [];
const refused: string[] = [];
const MODULES = new Map(ENGINE_MODULES.map((module) => [dynamicType(module), module]));

let dir: string;
let provider: DynamicProvider;
let port: number;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "default-program-test-"));
  provider = await startDynamicProvider({ env: { PULUMI_MIRAGE_CACHE: join(dir, "cache") } });
  port = await freePort();
  await pulumi.runtime.setMocks(
    {
      newResource: async (args) => {
        const module = MODULES.get(args.type);
        try {
          if (!module) throw new Error(`${args.type} is no dynamic resource of ours`);
          const { __provider, ...news } = args.inputs;
          const { inputs, failures } = await provider.check(module, {}, news);
          if (failures.length > 0) throw new Error(JSON.stringify(failures));
          const { id, outs } = await provider.create(module, inputs);
          created.push({ module, inputs, id, outs });
          return { id, state: outs };
        } catch (error) {
          refused.push(`${args.type} ${args.name}: ${error}`);
          throw error;
        }
      },
      call: (args) => args.inputs,
    },
    "pulumi-mirage-local",
    "dev",
    false,
  );
  pulumi.runtime.setConfig("pulumi-mirage-local:port", String(port));
});

after(async () => {
  try {
    // What `pulumi destroy` does: dependents first.
    for (const { module, id, outs } of created.reverse()) await provider.delete(module, id, outs);
  } finally {
    await provider.stop();
    const left = processesMentioning(dir);
    await rm(dir, { recursive: true, force: true });
    assert.deepEqual(left, []);
  }
});

test("boots the demo kernel, exports its console lines and a URL that reaches it", async () => {
  const outputs = runExample("local");
  const why = () => `the resources failed: ${refused.join("; ") || "none did"}`;
  const lines = (await settled(outputs.consoleLines, "consoleLines", 300_000, why)) as string[];
  const banner = lines.indexOf("pulumi-mirage demo unikernel (Solo5-like) target=virtio");
  assert.ok(banner >= 0, lines.join("\n"));
  assert.equal(lines[banner + 1], "Hello, World");
  assert.equal(lines.at(-1), "demo: serving on 10.0.2.15: ARP, ping, and HTTP on TCP port 8080");
  // The package's own kernel, prebuilt: nothing was built.
  const unikernel = created.find((c) => c.module === "unikernel");
  assert.equal(unikernel?.inputs.kernel, demoKernel);
  assert.equal(unikernel?.inputs.source, undefined);
  // Known before anything runs: a plain value.
  const url = outputs.url as unknown;
  assert.equal(url, `http://127.0.0.1:${port}/`);
  const response = await fetch(url);
  assert.equal(response.status, 200);
  assert.match(await response.text(), /^Hello, World: the pulumi-mirage demo unikernel served/);
});

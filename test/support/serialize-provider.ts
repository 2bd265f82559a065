// Run by the dynamic-provider harness as `node serialize-provider.js MODE ...` with the consumer
// project as cwd: Pulumi's closure serializer records module paths relative to cwd, and the
// package and @pulumi/pulumi must be the consumer's installed copies, as in a real program.
// Prints a JSON object mapping each name to the `__provider` text.
//   engine NAME...   `__provider` for engineProvider(NAME), serialized as pulumi.dynamic.Resource
//                    does: serializeFunction(() => provider, { allowSecrets: true }).text
//   resources        `__provider` that the sdk's Unikernel and DiskImage actually send, captured
//                    under pulumi.runtime.setMocks, keyed by resource type token
import { createRequire } from "node:module";
import { join } from "node:path";
import type * as pulumiType from "@pulumi/pulumi";
import type * as engineType from "../../sdk/engine";
import type * as sdkType from "../../sdk/index";

const consumerRequire = createRequire(join(process.cwd(), "package.json"));
const pulumi = consumerRequire("@pulumi/pulumi") as typeof pulumiType;

async function fromEngine(names: string[]): Promise<Record<string, string>> {
  const { engineProvider } = consumerRequire(
    "pulumi-mirage/build/sdk/engine.js",
  ) as typeof engineType;
  const result: Record<string, string> = {};
  for (const name of names) {
    const provider = engineProvider(name as engineType.EngineModule);
    const serialized = await pulumi.runtime.serializeFunction(() => provider, {
      allowSecrets: true,
    });
    result[name] = serialized.text;
  }
  return result;
}

async function fromResources(): Promise<Record<string, string>> {
  const result: Record<string, string> = {};
  await pulumi.runtime.setMocks(
    {
      newResource: (args) => {
        result[args.type] = args.inputs.__provider;
        return { id: `${args.name}-id`, state: args.inputs };
      },
      call: (args) => args.inputs,
    },
    "consumer",
    "test",
    false,
  );
  const sdk = consumerRequire("pulumi-mirage") as typeof sdkType;
  const unikernel = new sdk.Unikernel("hello", { source: "/src/hello", target: "virtio" });
  const image = new sdk.DiskImage("hello", { kernel: unikernel, format: "raw" });
  // A serialization error would leave the urn unresolved forever (docs/platforms.md, Pulumi dynamic
  // providers): bound the wait.
  const registered = Promise.all(
    [unikernel, image].map((r) => new Promise((done) => r.urn.apply(done))),
  );
  const timeout = new Promise((_, reject) =>
    setTimeout(
      () => reject(new Error("resources were not registered within 30 s")),
      30_000,
    ).unref(),
  );
  await Promise.race([registered, timeout]);
  return result;
}

async function main(): Promise<void> {
  const [mode, ...names] = process.argv.slice(2);
  const result = mode === "resources" ? await fromResources() : await fromEngine(names);
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

main().catch((error) => {
  console.error(error instanceof Error ? (error.stack ?? error.message) : String(error));
  process.exit(1);
});

// The package as users install it: the packed tarball in a project outside the repository, with
// only the peers that user has. A local/xen user installs @pulumi/pulumi alone; gcp and aws users
// add their provider SDK; every example type-checks against the tarball on TypeScript 5.9 and 6.
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { cp, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, it } from "node:test";
import { run } from "../provider/core/exec";
import { consumerProject, pulumiTemplate, repoRoot, typescripts } from "./support/consumer";

/**
 * Runs `program` (CommonJS) with node in `dir`, a consumer project, and returns what it printed
 * as JSON on its last line. Pulumi runs under mocks: resources register, no engine is needed.
 */
async function runIn(dir: string, program: string): Promise<Record<string, unknown>> {
  const { stdout } = await run(process.execPath, ["-e", program], { cwd: dir });
  return JSON.parse(stdout.trim().split("\n").pop() ?? "");
}

const mocks = `
const pulumi = require("@pulumi/pulumi");
pulumi.runtime.setMocks({
  newResource: (args) => ({ id: args.name + "-id", state: args.inputs }),
  call: (args) => args.inputs,
});
const urn = (resource) => new Promise((resolve) => resource.urn.apply(resolve));
const thrown = (f) => { try { f(); return ""; } catch (error) { return String(error.message); } };
`;

describe("a user with @pulumi/pulumi alone", { timeout: 10 * 60_000 }, () => {
  it("loads the package and builds local, xen, Unikernel and DiskImage resources", async () => {
    const dir = await consumerProject("pulumi-only");
    const result = await runIn(
      dir,
      `${mocks}
(async () => {
  const { DiskImage, Unikernel, local, xen } = require("pulumi-mirage");
  const kernel = new Unikernel("k", { kernel: "/kernels/hello.virtio", target: "virtio" });
  const image = new DiskImage("i", { kernel, format: "raw" });
  const vm = new local.Vm("vm", { image });
  const domain = new xen.Domain("d", {
    connection: { host: "xen.example", user: "root" },
    kernel: new Unikernel("x", { kernel: "/kernels/hello.xen", target: "xen" }),
  });
  // Registering serializes each dynamic provider from the installed copy (a serialization
  // error would leave the URN unresolved).
  const urns = await Promise.all([kernel, image, vm, domain].map(urn));
  let gcpFound = true;
  try { require.resolve("@pulumi/gcp"); } catch { gcpFound = false; }
  console.log(JSON.stringify({ urns, gcpFound }));
})();`,
    );
    assert.equal(result.gcpFound, false, "the consumer must not see the repository's packages");
    assert.deepEqual(
      (result.urns as string[]).map((u) => u.split("::").slice(2).join("::")),
      [
        "pulumi-nodejs:dynamic/pulumi-mirage:Unikernel::k",
        "pulumi-nodejs:dynamic/pulumi-mirage:DiskImage::i",
        "pulumi-nodejs:dynamic/pulumi-mirage:LocalVm::vm",
        "pulumi-nodejs:dynamic/pulumi-mirage:Domain::d",
      ],
    );
  });

  it("ships the demo kernel: `demoKernel` is the installed copy of the one the build made", async () => {
    const dir = await consumerProject("pulumi-only");
    const result = await runIn(
      dir,
      `const { demoKernel } = require("pulumi-mirage");
console.log(JSON.stringify({ demoKernel, bytes: require("node:fs").readFileSync(demoKernel).toString("base64") }));`,
    );
    assert.equal(
      result.demoKernel,
      join(dir, "node_modules", "pulumi-mirage", "build", "kernels", "demo.virtio"),
    );
    const built = await readFile(join(repoRoot, "build", "kernels", "demo.virtio"));
    assert.equal(result.bytes, built.toString("base64"));
  });

  it("gets an error naming the package to install from gcp and aws, at the root and subpaths", async () => {
    const dir = await consumerProject("pulumi-only");
    const result = await runIn(
      dir,
      `${mocks}
const root = require("pulumi-mirage");
const gcp = require("pulumi-mirage/gcp");
const aws = require("pulumi-mirage/aws");
console.log(JSON.stringify({
  rootGcp: thrown(() => new root.gcp.UnikernelService("s", {})),
  gcp: thrown(() => new gcp.UnikernelService("s", {})),
  rootAws: thrown(() => new root.aws.UnikernelService("s", {})),
  aws: thrown(() => new aws.UnikernelService("s", {})),
  pureHelper: aws.instanceTypeProblem("t2.micro") ?? "none",
}));`,
    );
    const gcpMessage =
      'gcp.UnikernelService needs @pulumi/gcp (^9.0.0), an optional peer dependency of pulumi-mirage that is not installed: run `npm install @pulumi/gcp@"^9.0.0"` in your Pulumi project';
    assert.equal(result.rootGcp, gcpMessage);
    assert.equal(result.gcp, gcpMessage);
    const awsMessage = gcpMessage.replaceAll("gcp", "aws").replaceAll("^9.0.0", "^7.0.0");
    assert.equal(result.rootAws, awsMessage);
    assert.equal(result.aws, awsMessage);
    assert.equal(result.pureHelper, "none", "aws's plain helpers need no SDK");
  });
  it("type-checks a local program without skipLibCheck: no gcp or aws types needed", async () => {
    const dir = await consumerProject("pulumi-only");
    const work = await mkdtemp(join(dir, `.program-${process.pid}-`));
    try {
      await writeFile(
        join(work, "index.ts"),
        `import { DiskImage, local, Unikernel } from "pulumi-mirage";
import * as gcp from "pulumi-mirage/gcp";
const kernel = new Unikernel("k", { kernel: "/kernels/hello.virtio", target: "virtio" });
export const vm = new local.Vm("vm", { image: new DiskImage("i", { kernel }) });
export const port: gcp.Port = 8080;
`,
      );
      const options = { strict: true, module: "node16", moduleResolution: "node16", noEmit: true };
      await writeFile(
        join(work, "tsconfig.json"),
        JSON.stringify({ compilerOptions: options, files: ["index.ts"] }),
      );
      const tsc = join(repoRoot, "node_modules", "typescript", "bin", "tsc");
      await run(process.execPath, [tsc, "-p", work]);
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  });
});

/**
 * A program using every entry point. Each `@ts-expect-error` fails the check when the line
 * compiles, so an entry point whose types resolved to nothing (`any`) fails too.
 */
const everyEntryPoint = `import * as pulumi from "@pulumi/pulumi";
import { DiskImage, local, Unikernel, xen } from "pulumi-mirage";
import * as root from "pulumi-mirage";
import * as aws from "pulumi-mirage/aws";
import * as gcp from "pulumi-mirage/gcp";

const kernel = new Unikernel("k", { kernel: "/kernels/hello.virtio" });
export const vm = new local.Vm("vm", {
  image: new DiskImage("i", { kernel }),
  ports: [8080, { port: 80, host: 8081 }],
  waitFor: { console: /^Hello/, timeoutSeconds: 30 },
});
export const domain = new xen.Domain("d", {
  connection: { host: "xen.example", user: "root", privateKey: "/keys/xen" },
  kernel: new Unikernel("x", { kernel: "/kernels/hello.xen" }),
});
export const service = new gcp.UnikernelService("web", {
  unikernel: new DiskImage("web", { kernel, format: "gce" }),
  ports: [8080, { port: 53, protocol: "udp" }],
  waitFor: { console: "^ready$" },
});
export const address: pulumi.Output<string | undefined> = service.address;
export const sameGcp: typeof gcp.UnikernelService = root.gcp.UnikernelService;
export const sameAws: typeof aws.UnikernelService = root.aws.UnikernelService;
export const sizeProblem: string | undefined = aws.instanceTypeProblem("t3.micro");
// @ts-expect-error: a Unikernel takes a source or a kernel, not neither
new Unikernel("none", {});
// @ts-expect-error: nor both
new Unikernel("both", { source: "src", kernel: "k.hvt", target: "hvt" });
// @ts-expect-error: a build from source names its target
new Unikernel("untargeted", { source: "src" });
// @ts-expect-error: a port is a number or an object
export const badPort: gcp.Port = "8080";
// @ts-expect-error: an instance type is a string
aws.instanceTypeProblem(3);
`;

describe("a user with all three peers", { timeout: 10 * 60_000 }, () => {
  it("gets the same gcp and aws modules from the root and from the subpaths", async () => {
    const dir = await consumerProject("all-peers");
    const result = await runIn(
      dir,
      `const root = require("pulumi-mirage");
console.log(JSON.stringify({
  gcp: root.gcp.UnikernelService === require("pulumi-mirage/gcp").UnikernelService,
  aws: root.aws.UnikernelService === require("pulumi-mirage/aws").UnikernelService,
}));`,
    );
    assert.deepEqual(result, { gcp: true, aws: true });
  });

  for (const { version, compiler } of typescripts) {
    for (const resolution of ["node", "nodenext"] as const) {
      it(`type-checks a program using every entry point, with Pulumi's ${resolution} template tsconfig, on TypeScript ${version}`, async () => {
        const dir = await consumerProject("all-peers");
        const tsc = join(repoRoot, "node_modules", compiler, "bin", "tsc");
        const work = await mkdtemp(join(dir, `.template-${process.pid}-`));
        try {
          await writeFile(join(work, "index.ts"), everyEntryPoint);
          const config = pulumiTemplate(resolution);
          const write = () =>
            writeFile(join(work, "tsconfig.json"), JSON.stringify(config, null, 2));
          await write();
          if (version === "6" && resolution === "node") {
            // TypeScript 6 deprecates `node` (node10): the README tells users to add this.
            const refused = await run(process.execPath, [tsc, "--noEmit", "-p", work]).then(
              () => "",
              (error: Error) => error.message,
            );
            assert.match(refused, /TS5107.*moduleResolution=node10.*"ignoreDeprecations": "6\.0"/s);
            Object.assign(config.compilerOptions, { ignoreDeprecations: "6.0" });
            await write();
          }
          await run(process.execPath, [tsc, "--noEmit", "-p", work]);
        } finally {
          await rm(work, { recursive: true, force: true });
        }
      });
    }

    it(`type-checks every example against the packed package with TypeScript ${version}`, async () => {
      const dir = await consumerProject("all-peers");
      const tsc = join(repoRoot, "node_modules", compiler, "bin", "tsc");
      const { stdout } = await run(process.execPath, [tsc, "--version"]);
      assert.match(stdout, new RegExp(`^Version ${version.replace(".", "\\.")}\\.`));
      // A private copy inside the consumer project, so `pulumi-mirage` resolves to the tarball.
      const work = await mkdtemp(join(dir, `.examples-${process.pid}-`));
      try {
        // Every Pulumi program among the examples (the others are MirageOS sources).
        const examples = (await readdir(join(repoRoot, "examples"))).filter((example) =>
          existsSync(join(repoRoot, "examples", example, "Pulumi.yaml")),
        );
        assert.ok(examples.includes("local"), examples.join(", "));
        for (const example of examples) {
          await cp(join(repoRoot, "examples", example), join(work, example), { recursive: true });
          await run(process.execPath, [tsc, "--noEmit", "-p", join(work, example)]);
        }
      } finally {
        await rm(work, { recursive: true, force: true });
      }
    });
  }
});

// gcp.UnikernelService under Pulumi's mocks, shared by its test files: providers' outputs
// computed from the inputs as the real ones compute them, a stack that records every registration
// with the options the mocks API hides, and ways to read outputs and the registrations. The gcp
// provider plugin cannot run here (docs/platforms.md, Pulumi dynamic providers).
import assert from "node:assert/strict";
import * as pulumi from "@pulumi/pulumi";

export { runExample } from "./example";

export const PROJECT = "demo-project";
export const ZONE = "europe-west1-b";
export const KERNEL_SHA = "9f".repeat(32);

// biome-ignore lint/suspicious/noExplicitAny: mocks see untyped provider inputs and the raw gRPC request
export type Loose = any;

export interface Registration {
  type: string;
  name: string;
  inputs: Record<string, unknown>;
  parent: string;
  deleteBeforeReplace: boolean;
  replaceOnChanges: string[];
  dependencies: string[];
}

/** What the mocked Unikernel reports; a test changes it to present another kernel. */
export interface KernelFacts {
  target: string;
  manifest?: { name: string; type: string }[];
  sha256?: string;
  /** The kernel's ELF machine (x86_64, aarch64). */
  architecture?: string;
}

/** The project number Secret Manager names versions with. */
export const PROJECT_NUMBER = "123456789012";

export const link = (kind: string, name: string) =>
  `https://www.googleapis.com/compute/v1/projects/${PROJECT}/${kind}/${name}`;

/** Outputs like the real providers', computed from the inputs. */
function state(type: string, name: string, inputs: Record<string, Loose>, kernel: KernelFacts) {
  // Auto-naming happens in the provider; the mock plays it.
  const physical = (inputs.name as string | undefined) ?? `${name}-1a2b3c4`;
  switch (type) {
    case "pulumi-nodejs:dynamic/pulumi-mirage:Unikernel":
      return {
        ...inputs,
        target: kernel.target,
        name: "web",
        kernelPath: `/cache/kernels/web.${kernel.target}`,
        ...(kernel.sha256 === undefined ? {} : { sha256: kernel.sha256 }),
        ...(kernel.manifest === undefined ? {} : { manifest: kernel.manifest }),
        ...(kernel.architecture === undefined ? {} : { architecture: kernel.architecture }),
        mirageVersion: "4.11.0",
      };
    case "pulumi-nodejs:dynamic/pulumi-mirage:DiskImage":
      // objectName is computed in check, so it is known at preview too.
      return {
        ...inputs,
        objectName: "web-0123456789ab.tar.gz",
        path: "/cache/images/0123456789ab/image.tar.gz",
        name: "web",
      };
    case "gcp:storage/bucket:Bucket":
      return { ...inputs, name: physical };
    case "gcp:serviceaccount/account:Account":
      return { ...inputs, email: `${inputs.accountId}@${PROJECT}.iam.gserviceaccount.com` };
    case "gcp:secretmanager/secret:Secret":
      return { ...inputs, project: inputs.project ?? PROJECT };
    case "gcp:secretmanager/secretVersion:SecretVersion":
      // The id of its secret is `projects/P/secrets/ID`; the mock's ids are NAME-id.
      return { ...inputs, name: `projects/${PROJECT_NUMBER}/secrets/${inputs.secret}/versions/3` };
    case "gcp:compute/image:Image":
      return { ...inputs, name: physical, selfLink: link("global/images", physical) };
    case "gcp:compute/network:Network":
      return { ...inputs, name: physical, selfLink: link("global/networks", physical) };
    case "gcp:compute/instance:Instance":
      return {
        ...inputs,
        name: physical,
        zone: ZONE,
        selfLink: link(`zones/${ZONE}/instances`, physical),
        networkInterfaces: inputs.networkInterfaces.map((nic: Loose) => ({
          ...nic,
          accessConfigs: nic.accessConfigs.map((a: Loose) => ({ natIp: a.natIp ?? "203.0.113.7" })),
        })),
      };
    case "gcp:compute/instanceTemplate:InstanceTemplate":
      return {
        ...inputs,
        name: physical,
        selfLinkUnique: `${link("global/instanceTemplates", physical)}?uniqueId=42`,
      };
    case "gcp:compute/regionInstanceGroupManager:RegionInstanceGroupManager":
      return {
        ...inputs,
        instanceGroup: link("regions/europe-west1/instanceGroups", inputs.baseInstanceName),
        selfLink: link("regions/europe-west1/instanceGroupManagers", physical),
      };
    case "gcp:compute/healthCheck:HealthCheck":
      return { ...inputs, selfLink: link("global/healthChecks", physical) };
    case "gcp:compute/address:Address":
      return { ...inputs, address: "203.0.113.50" };
    case "gcp:compute/globalAddress:GlobalAddress":
      return { ...inputs, address: "198.51.100.99" };
    case "gcp:compute/backendService:BackendService":
      return { ...inputs, selfLink: link("global/backendServices", physical) };
    case "gcp:compute/targetTCPProxy:TargetTCPProxy":
      return { ...inputs, selfLink: link("global/targetTcpProxies", physical) };
    case "pulumi-nodejs:dynamic/pulumi-mirage:GceSerialWait":
      // The engine reports the VMs it waited for: for a group, the new ones it found.
      return {
        ...inputs,
        waited:
          inputs.instances ??
          ["web-n1", "web-n2", "web-n3"].map((n, i) =>
            link(`zones/europe-west1-${"bcd"[i]}/instances`, n),
          ),
      };
    default:
      return inputs;
  }
}

function call(token: string, inputs: Record<string, Loose>) {
  if (token === "gcp:compute/getRegionInstanceGroup:getRegionInstanceGroup") {
    assert.match(inputs.selfLink, /regions\/europe-west1\/instanceGroups\//);
    return {
      instances: ["web-x2k9", "web-a7b1", "web-q3zz"].map((n, i) => ({
        instance: link(`zones/europe-west1-${"bcd"[i]}/instances`, n),
        status: "RUNNING",
        namedPorts: [],
      })),
    };
  }
  if (token === "gcp:compute/getInstance:getInstance") {
    const name = String(inputs.selfLink).split("/").at(-1) ?? "";
    const natIp = { "web-x2k9": "198.51.100.11", "web-a7b1": "198.51.100.12" }[name];
    // web-q3zz has no public IP: it is left out of externalIps.
    return { networkInterfaces: [{ accessConfigs: natIp ? [{ natIp }] : [] }] };
  }
  throw new Error(`unexpected call ${token}`);
}

/** Sets up mocks that record every registration, with the options the mocks API hides. */
export async function mockStack(
  kernel: KernelFacts,
  preview = false,
  project = "proj",
): Promise<Registration[]> {
  const seen: Registration[] = [];
  // A new stack: a component of the same name in an earlier one has not registered here.
  outputsRegistered.clear();
  await pulumi.runtime.setMocks(
    {
      newResource: (args) => {
        const r = seen.find((s) => s.type === args.type && s.name === args.name);
        if (r) r.inputs = args.inputs;
        // Preview: nothing the provider computes is known yet.
        const outs =
          preview && args.type.startsWith("gcp:")
            ? args.inputs
            : state(args.type, args.name, args.inputs, kernel);
        return { id: args.custom ? `${args.name}-id` : undefined, state: outs };
      },
      call: (args) => call(args.token, args.inputs),
    },
    project,
    "dev",
    preview,
  );
  const monitor = pulumi.runtime.getMonitor() as Loose;
  const register = monitor.registerResource.bind(monitor);
  monitor.registerResource = (req: Loose, callback: Loose) => {
    seen.push({
      type: req.getType(),
      name: req.getName(),
      inputs: {},
      parent: req.getParent(),
      deleteBeforeReplace: req.getDeletebeforereplace(),
      replaceOnChanges: req.getReplaceonchangesList(),
      dependencies: req.getDependenciesList(),
    });
    return register(req, callback);
  };
  const registerOutputs = monitor.registerResourceOutputs.bind(monitor);
  monitor.registerResourceOutputs = (req: Loose, callback: Loose) => {
    outputsRegistered.add(req.getUrn());
    return registerOutputs(req, callback);
  };
  return seen;
}

/** Components whose registerOutputs reached the (mock) engine. */
const outputsRegistered = new Set<string>();

/**
 * Waits until the component registered its outputs, which happens once all of them resolve: a
 * test that ended earlier would let that call reach the next test's mocks.
 */
export async function outputsDone(componentUrn: pulumi.Input<string>): Promise<void> {
  const urn = await value(componentUrn, "component urn");
  const deadline = Date.now() + 5000;
  while (!outputsRegistered.has(urn)) {
    if (Date.now() > deadline) throw new Error(`${urn} never registered its outputs`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/**
 * An output's value; fails instead of hanging when it never resolves (docs/platforms.md, Pulumi
 * dynamic providers).
 */
export function value<T>(output: pulumi.Output<T> | pulumi.Input<T>, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what} never resolved`)), 5000);
    pulumi.output(output).apply((v) => {
      clearTimeout(timer);
      resolve(v as T);
    });
  });
}

export const GOOD_KERNEL: KernelFacts = {
  target: "virtio",
  manifest: [{ name: "service", type: "net" }],
  sha256: KERNEL_SHA,
};

/** How the mocks present a secret input. */
export const secretValue = (value: unknown) => ({
  "4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270",
  value,
});

/** How the mocks present a value preview does not know. */
export const unknown = (v: unknown) =>
  (v as { __pulumiUnknown?: boolean } | undefined)?.__pulumiUnknown === true;
export const byType = (seen: Registration[], type: string) => seen.filter((r) => r.type === type);
export const one = (seen: Registration[], type: string) => {
  const found = byType(seen, type);
  assert.equal(found.length, 1, `exactly one ${type}`);
  return found[0];
};

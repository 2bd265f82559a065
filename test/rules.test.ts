// One rule, one place: every rule of rules/, with bad values, against every place that applies
// it: SDK components, which refuse before anything is registered, and the engine's checks. Each
// place must refuse each bad value, naming its property, in the rule's own words, so that a
// preview refuses exactly what `up` would and says the same thing wherever it is found. And
// rules/ stays pure: it imports nothing but itself.
import assert from "node:assert/strict";
import { readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import * as pulumi from "@pulumi/pulumi";
import { parseImageArgs } from "../provider/cli/image";
import { parseBootCommand } from "../provider/cli/main";
import { requestedMode } from "../provider/local/accel";
import { provider as diskImage } from "../provider/resources/disk-image";
import { provider as ec2ConsoleWait } from "../provider/resources/ec2-console-wait";
import { provider as gceSerialWait } from "../provider/resources/gce-serial-wait";
import { provider as localProcess } from "../provider/resources/local-process";
import { provider as localVm } from "../provider/resources/local-vm";
import { provider as unikernel } from "../provider/resources/unikernel";
import { provider as xenDomain } from "../provider/resources/xen-domain";
import { accelModeProblem } from "../rules/accel";
import { BOUNDS, outOfBounds } from "../rules/bounds";
import {
  architectureProblem,
  hostMachineTypeProblem,
  virtioMachineTypeProblem,
} from "../rules/gce-machines";
import { hostDevicesProblem, hostTargetProblem } from "../rules/host";
import { checkPlatform, imageFormatProblem } from "../rules/platform";
import { servicePortProblems } from "../rules/ports";
import { describeProblem } from "../rules/problem";
import { patternProblem } from "../rules/wait";
import * as aws from "../sdk/aws";
import * as gcp from "../sdk/gcp";
import * as local from "../sdk/local";
import { repoRoot } from "./support/consumer";
import { elfHeader } from "./support/elf-header";
import { programErrors } from "./support/program-errors";

// Components that accept a value go on to register resources: the mocks take them.
pulumi.runtime.setMocks(
  {
    newResource: (args) => ({ id: `${args.name}-id`, state: args.inputs }),
    call: (args) => args.inputs,
  },
  "rules",
  "test",
  true,
);

type Props = Record<string, unknown>;

/** A place that applies a rule: what it is, the property it names, and how to give it a value. */
interface Place {
  where: string;
  property: string;
  /** What the place says about `bad`: one "PROPERTY REASON" sentence per problem. */
  sentences(bad: unknown): Promise<string[]>;
}

/** A component, refusing in its constructor: the sentences of its error (none when it accepts). */
function sdk(where: string, property: string, make: (bad: unknown) => unknown): Place {
  return {
    where,
    property,
    async sentences(bad) {
      try {
        make(bad);
        return [];
      } catch (error) {
        const text = (error as Error).message;
        const prefix = /^((gcp|aws)\.UnikernelService|local\.(Vm|Process)) rule: /;
        assert.match(text, prefix, `${where} names itself and the resource`);
        return text.replace(prefix, "").split("; ");
      }
    },
  };
}

/** An engine module's check: the sentences of its failures. */
function engine(
  where: string,
  property: string,
  check: (olds: Props, news: Props) => Promise<unknown> | unknown,
  news: (bad: unknown) => Props,
): Place {
  return {
    where,
    property,
    async sentences(bad) {
      const result = (await check({}, news(bad))) as {
        failures?: { property: string; reason: string }[];
      };
      return (result.failures ?? []).map(describeProblem);
    },
  };
}

/**
 * A component refusing at preview, once an output it depends on is known: the sentences of the
 * errors the program fails with.
 */
function preview(where: string, property: string, make: (bad: unknown) => unknown): Place {
  return {
    where,
    property,
    async sentences(bad) {
      const errors = await programErrors(() => make(bad));
      const prefix = /^(gcp|aws)\.UnikernelService rule: /;
      return errors.flatMap((text) => text.replace(prefix, "").split("; "));
    },
  };
}

/** A function that throws `PROPERTY REASON` for a value it refuses. */
function thrower(where: string, property: string, use: (bad: unknown) => unknown): Place {
  return {
    where,
    property,
    async sentences(bad) {
      try {
        use(bad);
        return [];
      } catch (error) {
        return [(error as Error).message];
      }
    },
  };
}

const gcpService = (args: Omit<gcp.UnikernelServiceArgs, "unikernel">) =>
  new gcp.UnikernelService("rule", { unikernel: {} as never, bucket: "b", ...args });
const awsHost = (args: Omit<aws.UnikernelServiceArgs, "unikernel" | "host">, host = {}) =>
  new aws.UnikernelService("rule", {
    unikernel: {} as never,
    host: { tender: "/opt/solo5-spt", ...host },
    ...args,
  });
const awsAmi = (args: Omit<aws.UnikernelServiceArgs, "unikernel" | "ami">) =>
  new aws.UnikernelService("rule", { unikernel: {} as never, ami: {}, ...args });

/** An x86_64 tender: the ELF header, all a component reads of it. */
const TENDER = join(tmpdir(), `pulumi-mirage-rules-tender-${process.pid}`);
writeFileSync(TENDER, elfHeader(62));
after(() => rmSync(TENDER, { force: true }));

interface Kernel {
  target?: string;
  manifest?: { name: string; type: "net" | "block" }[];
  architecture?: string;
}

/** A Unikernel as a component reads it: its outputs, here known values. */
const unikernelOf = ({ target = "spt", manifest = [], architecture = "x86_64" }: Kernel) =>
  ({
    target: pulumi.output(target),
    manifest: pulumi.output(manifest),
    architecture: pulumi.output(architecture),
    name: pulumi.output("web"),
    sha256: pulumi.output("ab".repeat(32)),
    kernelPath: pulumi.output(`/cache/web.${target}`),
    mirageVersion: pulumi.output("4.11.0"),
  }) as never;
const gcpHost = (args: Omit<gcp.UnikernelServiceArgs, "unikernel" | "host">, kernel: Kernel = {}) =>
  new gcp.UnikernelService("rule", {
    unikernel: unikernelOf(kernel),
    host: { tender: TENDER },
    ...args,
  });
const awsHostOf = (kernel: Kernel) =>
  new aws.UnikernelService("rule", {
    unikernel: unikernelOf(kernel),
    host: { tender: TENDER },
  });

const INSTANCE = "projects/p/zones/europe-west1-b/instances/web";
const GROUP = "projects/p/regions/europe-west1/instanceGroupManagers/web";
const MISSING = "/nonexistent/pulumi-mirage-rules";
/** A local.Process whose kernel needs no file and no tender (the value under test aside). */
const unixProcess = (extra: Props) => ({ kernel: MISSING, target: "unix", ...extra });
const sptProcess = (extra: Props) => ({ kernel: MISSING, target: "spt", ...extra });
const xenDomainInputs = (extra: Props) => ({ host: "xen1", name: "web", ...extra });

interface Rule {
  rule: string;
  bad: unknown[];
  /** The rule's own reason for a bad value. */
  reason(bad: unknown): string | undefined;
  places: Place[];
}

const RULES: Rule[] = [
  {
    rule: "BOUNDS.timeoutSeconds (every boot wait)",
    bad: [3_000_000, 0, -1, "soon"],
    reason: (bad) => outOfBounds(bad, BOUNDS.timeoutSeconds),
    places: [
      thrower("pulumi-mirage boot", "--timeout", (bad) =>
        parseBootCommand(["disk.raw", `--timeout=${bad}`]),
      ),
      sdk("gcp.UnikernelService", "waitFor.timeoutSeconds", (bad) =>
        gcpService({ waitFor: { console: "x", timeoutSeconds: bad as number } }),
      ),
      sdk("aws.UnikernelService", "host.waitFor.timeoutSeconds", (bad) =>
        awsHost({}, { waitFor: { console: "x", timeoutSeconds: bad as number } }),
      ),
      engine("GceSerialWait", "timeoutSeconds", gceSerialWait.check as never, (bad) => ({
        instances: [INSTANCE],
        pattern: "x",
        timeoutSeconds: bad,
      })),
      engine("Ec2ConsoleWait", "timeoutSeconds", ec2ConsoleWait.check as never, (bad) => ({
        instances: ["i-0abc"],
        pattern: "x",
        timeoutSeconds: bad,
      })),
      engine("local.Vm", "waitFor.timeoutSeconds", localVm.check, (bad) => ({
        image: MISSING,
        waitFor: { console: "x", timeoutSeconds: bad },
      })),
      engine("local.Process", "waitFor.timeoutSeconds", localProcess.check, (bad) =>
        unixProcess({ waitFor: { console: "x", timeoutSeconds: bad } }),
      ),
    ],
  },
  {
    rule: "patternProblem (every boot wait)",
    bad: ["(", "a[", ""],
    reason: patternProblem,
    places: [
      sdk("gcp.UnikernelService", "waitFor.console", (bad) =>
        gcpService({ waitFor: { console: bad as string } }),
      ),
      // `serial` is console's former name: still taken, refused in the same words.
      sdk("gcp.UnikernelService", "waitFor.serial", (bad) =>
        gcpService({ waitFor: { serial: bad as string } }),
      ),
      sdk("aws.UnikernelService", "host.waitFor.console", (bad) =>
        awsHost({}, { waitFor: { console: bad as string } }),
      ),
      engine("GceSerialWait", "pattern", gceSerialWait.check as never, (bad) => ({
        instances: [INSTANCE],
        pattern: bad,
        timeoutSeconds: 60,
      })),
      engine("Ec2ConsoleWait", "pattern", ec2ConsoleWait.check as never, (bad) => ({
        instances: ["i-0abc"],
        pattern: bad,
        timeoutSeconds: 60,
      })),
      engine("local.Vm", "waitFor.console", localVm.check, (bad) => ({
        image: MISSING,
        waitFor: { console: bad },
      })),
      engine("local.Process", "waitFor.console", localProcess.check, (bad) =>
        unixProcess({ waitFor: { console: bad } }),
      ),
    ],
  },
  {
    // A RegExp's flags cannot reach an engine (it gets the source): refused where it is given.
    rule: "patternProblem: a RegExp's flags (every boot wait)",
    bad: [/x/i, /x/su, /x/y],
    reason: patternProblem,
    places: [
      sdk("gcp.UnikernelService", "waitFor.console", (bad) =>
        gcpService({ waitFor: { console: bad as RegExp } }),
      ),
      sdk("aws.UnikernelService", "host.waitFor.console", (bad) =>
        awsHost({}, { waitFor: { console: bad as RegExp } }),
      ),
      sdk(
        "local.Vm",
        "waitFor.console",
        (bad) => new local.Vm("rule", { image: MISSING, waitFor: { console: bad as RegExp } }),
      ),
      sdk(
        "local.Process",
        "waitFor.console",
        (bad) =>
          new local.Process("rule", { kernel: MISSING, waitFor: { console: bad as RegExp } }),
      ),
    ],
  },
  {
    rule: "BOUNDS.port (firewalls, security groups, health checks, forwards, SSH)",
    bad: [70_000, 0, 80.5],
    reason: (bad) => outOfBounds(bad, BOUNDS.port),
    places: [
      sdk("gcp.UnikernelService", "ports[0]", (bad) => gcpService({ ports: [bad as number] })),
      sdk("gcp.UnikernelService", "healthCheck.port", (bad) =>
        gcpService({ replicas: 2, ports: [80], healthCheck: { port: bad as number } }),
      ),
      sdk("aws.UnikernelService", "ports[0]", (bad) => awsAmi({ ports: [bad as number] })),
      engine("local.Vm", "ports[0]", localVm.check, (bad) => ({ image: MISSING, ports: [bad] })),
      engine("local.Vm", "ports[0]", localVm.check, (bad) => ({
        image: MISSING,
        ports: [{ port: bad, host: 8080 }],
      })),
      engine("local.Vm", "ports[0].host", localVm.check, (bad) => ({
        image: MISSING,
        ports: [{ port: 80, host: bad }],
      })),
      // 0.1's { host, guest }, still taken.
      engine("local.Vm", "ports[0].host", localVm.check, (bad) => ({
        image: MISSING,
        ports: [{ host: bad, guest: 80 }],
      })),
      engine("local.Vm", "ports[0].guest", localVm.check, (bad) => ({
        image: MISSING,
        ports: [{ host: 8080, guest: bad }],
      })),
      engine("xen.Domain", "port", xenDomain.check, (bad) => xenDomainInputs({ port: bad })),
    ],
  },
  {
    rule: "servicePortProblems: a port's protocol (clouds, local.Vm's forwards)",
    bad: ["sctp", "TCP"],
    reason: (bad) => servicePortProblems("p", 80, bad)[0]?.reason,
    places: [
      sdk("gcp.UnikernelService", "ports[0].protocol", (bad) =>
        gcpService({ ports: [{ port: 80, protocol: bad as "tcp" }] }),
      ),
      sdk("aws.UnikernelService", "ports[0].protocol", (bad) =>
        awsAmi({ ports: [{ port: 80, protocol: bad as "tcp" }] }),
      ),
      engine("local.Vm", "ports[0].protocol", localVm.check, (bad) => ({
        image: MISSING,
        ports: [{ port: 80, protocol: bad }],
      })),
    ],
  },
  {
    rule: "BOUNDS.count (replicas, instanceCount, a group's size)",
    bad: [0, 1.5, -3],
    reason: (bad) => outOfBounds(bad, BOUNDS.count),
    places: [
      sdk("gcp.UnikernelService", "replicas", (bad) => gcpService({ replicas: bad as number })),
      sdk("aws.UnikernelService", "instanceCount", (bad) =>
        awsAmi({ instanceCount: bad as number }),
      ),
      engine("GceSerialWait", "group.size", gceSerialWait.check as never, (bad) => ({
        group: { manager: GROUP, template: "t", size: bad },
        pattern: "x",
        timeoutSeconds: 60,
      })),
    ],
  },
  {
    rule: "BOUNDS.healthCheckSeconds",
    bad: [-1, 3601, 2.5],
    reason: (bad) => outOfBounds(bad, BOUNDS.healthCheckSeconds),
    places: [
      sdk("gcp.UnikernelService", "healthCheck.initialDelaySec", (bad) =>
        gcpService({ replicas: 2, ports: [80], healthCheck: { initialDelaySec: bad as number } }),
      ),
      sdk("gcp.UnikernelService", "healthCheck.minReadySec", (bad) =>
        gcpService({ replicas: 2, ports: [80], healthCheck: { minReadySec: bad as number } }),
      ),
    ],
  },
  {
    rule: "BOUNDS.vmMemoryMiB",
    bad: [8, 2 ** 21, 64.5],
    reason: (bad) => outOfBounds(bad, BOUNDS.vmMemoryMiB),
    places: [
      engine("local.Vm", "memoryMiB", localVm.check, (bad) => ({
        image: MISSING,
        memoryMiB: bad,
      })),
    ],
  },
  {
    rule: "BOUNDS.tenderMemoryMiB",
    bad: [1, 2 ** 21],
    reason: (bad) => outOfBounds(bad, BOUNDS.tenderMemoryMiB),
    places: [
      engine("local.Process", "memoryMiB", localProcess.check, (bad) =>
        sptProcess({ memoryMiB: bad }),
      ),
    ],
  },
  {
    rule: "BOUNDS.xenMemoryMiB",
    bad: [0, 2 ** 21],
    reason: (bad) => outOfBounds(bad, BOUNDS.xenMemoryMiB),
    places: [
      engine("xen.Domain", "memory", xenDomain.check, (bad) => xenDomainInputs({ memory: bad })),
    ],
  },
  {
    rule: "BOUNDS.vcpus",
    bad: [0, 129],
    reason: (bad) => outOfBounds(bad, BOUNDS.vcpus),
    places: [
      engine("xen.Domain", "vcpus", xenDomain.check, (bad) => xenDomainInputs({ vcpus: bad })),
    ],
  },
  {
    rule: "BOUNDS.buildTimeoutMinutes",
    bad: [0, 40_000],
    reason: (bad) => outOfBounds(bad, BOUNDS.buildTimeoutMinutes),
    places: [
      engine("Unikernel", "buildTimeoutMinutes", unikernel.check, (bad) => ({
        kernel: MISSING,
        target: "virtio",
        buildTimeoutMinutes: bad,
      })),
    ],
  },
  {
    rule: "BOUNDS.blockSizeMiB (a tender's block files)",
    bad: [0, 2 ** 40],
    reason: (bad) => outOfBounds(bad, BOUNDS.blockSizeMiB),
    places: [
      engine("local.Process", "block.storage.sizeMiB", localProcess.check, (bad) =>
        sptProcess({ block: { storage: { path: MISSING, sizeMiB: bad } } }),
      ),
    ],
  },
  {
    rule: "BOUNDS.sectorSize (a tender's block devices)",
    bad: [1000, 256, 65536],
    reason: (bad) => outOfBounds(bad, BOUNDS.sectorSize),
    places: [
      engine("local.Process", "block.storage.sectorSize", localProcess.check, (bad) =>
        sptProcess({ block: { storage: { path: MISSING, sectorSize: bad } } }),
      ),
    ],
  },
  {
    rule: "accelModeProblem (local.Vm, PULUMI_MIRAGE_ACCEL, --accel)",
    bad: ["fast", "hvf"],
    reason: accelModeProblem,
    places: [
      engine("local.Vm", "accel", localVm.check, (bad) => ({ image: MISSING, accel: bad })),
      thrower("PULUMI_MIRAGE_ACCEL", "PULUMI_MIRAGE_ACCEL", (bad) =>
        requestedMode(undefined, { PULUMI_MIRAGE_ACCEL: bad as string }),
      ),
      thrower("accel", "accel", (bad) => requestedMode(bad as string, {})),
    ],
  },
  {
    rule: "imageFormatProblem",
    bad: ["qcow2", "GCE"],
    reason: imageFormatProblem,
    places: [
      thrower("pulumi-mirage image", "--format", (bad) =>
        parseImageArgs(["k", "--out", "d", `--format=${bad}`], (message) => new Error(message)),
      ),
      engine("DiskImage", "format", diskImage.check, (bad) => ({
        kernelPath: "/k/web.virtio",
        kernelId: "f".repeat(64),
        target: "virtio",
        format: bad,
      })),
    ],
  },
  {
    rule: "virtioMachineTypeProblem (gcp, a virtio kernel)",
    bad: ["c3-standard-4", "t2a-standard-1", "zz9-standard-2"],
    reason: (bad) => virtioMachineTypeProblem(bad as string),
    places: [
      sdk("gcp.UnikernelService", "machineType", (bad) =>
        gcpService({ machineType: bad as string }),
      ),
    ],
  },
  {
    rule: "hostMachineTypeProblem: a family we know (gcp host)",
    bad: ["zz9-standard-2", "x9"],
    reason: (bad) => hostMachineTypeProblem(bad as string, "spt"),
    places: [
      sdk("gcp.UnikernelService", "machineType", (bad) => gcpHost({ machineType: bad as string })),
    ],
  },
  {
    rule: "hostMachineTypeProblem: hvt needs nested virtualization (gcp host)",
    bad: ["e2-small", "c3d-standard-4", "n2d-standard-2", "t2a-standard-1", "h3-standard-88"],
    reason: (bad) => hostMachineTypeProblem(bad as string, "hvt"),
    places: [
      preview("gcp.UnikernelService", "machineType", (bad) =>
        gcpHost({ machineType: bad as string }, { target: "hvt" }),
      ),
    ],
  },
  {
    rule: "architectureProblem: an x86_64 kernel on an Arm family (gcp host)",
    bad: ["t2a-standard-1", "c4a-standard-2", "n4a-standard-2"],
    reason: (bad) => architectureProblem(bad as string, "x86_64", "a kernel"),
    places: [
      preview("gcp.UnikernelService", "unikernel", (bad) =>
        gcpHost({ machineType: bad as string }, { architecture: "x86_64" }),
      ),
    ],
  },
  {
    rule: "hostTargetProblem (gcp and aws hosts)",
    bad: ["unix", "muen"],
    reason: (bad) => hostTargetProblem(bad as string),
    places: [
      preview("gcp.UnikernelService", "host", (bad) => gcpHost({}, { target: bad as string })),
      preview("aws.UnikernelService", "host", (bad) => awsHostOf({ target: bad as string })),
    ],
  },
  {
    rule: "hostDevicesProblem (gcp and aws hosts)",
    bad: [
      [{ name: "storage", type: "block" }],
      [
        { name: "a", type: "net" },
        { name: "b", type: "block" },
      ],
    ],
    reason: (bad) => hostDevicesProblem(bad as Kernel["manifest"] & object),
    places: [
      preview("gcp.UnikernelService", "unikernel", (bad) =>
        gcpHost({}, { manifest: bad as Kernel["manifest"] }),
      ),
      preview("aws.UnikernelService", "unikernel", (bad) =>
        awsHostOf({ manifest: bad as Kernel["manifest"] }),
      ),
    ],
  },
];

describe("every rule is refused by every place that applies it, in the rule's words", () => {
  for (const { rule, bad: values, reason, places } of RULES) {
    test(rule, async () => {
      for (const bad of values) {
        const expected = reason(bad);
        assert.ok(expected, `${JSON.stringify(bad)} breaks ${rule}`);
        for (const place of places) {
          const sentence = `${place.property} ${expected}`;
          const said = await place.sentences(bad);
          assert.ok(
            said.includes(sentence),
            `${place.where} given ${JSON.stringify(bad)}: expected "${sentence}", got ${JSON.stringify(said)}`,
          );
        }
      }
    });
  }
});

describe("the platform table (target → image format → platform)", () => {
  const fields = { kernel: "kernel", format: "format", value: (f: string) => JSON.stringify(f) };
  // gcp.UnikernelService leaves its kernel to its own DiskImage, of format gce (gcp.test.ts): the
  // kernel is an output, known only at preview or after the build, and the rule is in one place.
  const kernels = [
    { target: "hvt" },
    { target: "xen" },
    { target: "virtio", manifest: [] }, // no NIC for GCE's one
    {
      target: "virtio",
      manifest: [
        { name: "a", type: "net" as const },
        { name: "b", type: "net" as const },
      ],
    },
  ];
  test("DiskImage's check refuses for gce what the table refuses, in its words", async () => {
    for (const kernel of kernels) {
      const { problems } = checkPlatform(kernel, "gce", fields);
      assert.equal(problems.length, 1, JSON.stringify(kernel));
      const { failures } = await diskImage.check(
        {},
        {
          kernelPath: "/k/web",
          kernelId: "f".repeat(64),
          unikernelName: "web",
          target: kernel.target,
          manifest: kernel.manifest,
          format: "gce",
        },
      );
      assert.deepEqual(
        failures,
        problems.map(({ field, reason }) => ({ property: field, reason })),
      );
    }
  });
});

describe("rules/", () => {
  test("is pure: its modules import nothing but each other (no Node I/O, no Pulumi)", () => {
    const dir = join(repoRoot, "rules");
    const files = readdirSync(dir).filter((name) => name.endsWith(".ts"));
    assert.ok(files.includes("bounds.ts"), files.join(", "));
    for (const file of files) {
      const text = readFileSync(join(dir, file), "utf8");
      const imports = [...text.matchAll(/^(?:import|export)[^;]*?from\s+"([^"]+)"/gms)].map(
        (match) => match[1],
      );
      for (const source of imports)
        assert.match(source, /^\.\/[a-z-]+$/, `${file} imports ${source}`);
      assert.doesNotMatch(text, /\brequire\(/, `${file} requires a module`);
    }
  });
});

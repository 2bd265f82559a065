// gcp.UnikernelService's host path under Pulumi's mocks (test/support/gcp-mocks.ts): an spt or
// hvt kernel under its tender on a stock Debian 12 VM of any machine family. The resources it
// declares and their inputs (a private bucket only the VMs' own service account may read, the
// startup-script, nested virtualization for hvt, the secret boot arguments in Secret Manager),
// and what it refuses, at construction or at preview, in the rules' words (rules/gce-machines.ts,
// rules/host.ts, DiskImage's boot argument rules).
import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { before, describe, it } from "node:test";
import * as pulumi from "@pulumi/pulumi";
import { sha256File } from "../provider/core/hash";
import * as gcp from "../sdk/gcp";
import { gcsObjectUrl } from "../sdk/gcp/host-script";
import { Unikernel } from "../sdk/unikernel";
import { elfHeader } from "./support/elf-header";
import {
  byType,
  KERNEL_SHA,
  type KernelFacts,
  type Loose,
  mockStack,
  one,
  outputsDone,
  PROJECT,
  PROJECT_NUMBER,
  type Registration,
  runExample,
  value,
  ZONE,
} from "./support/gcp-mocks";
import { bootArgRefusal, INJECTIONS } from "./support/injections";
import { programErrors } from "./support/program-errors";
import { Scratch } from "./support/scratch";

const scratch = Scratch.forThisFile("gcp-host-test-");
/** Tenders: ELF headers of each machine (all the component reads of one), and a script. */
const tenders = { x86_64: "", aarch64: "", script: "" };

/** Writes the tenders, once, into the scratch directory (made by the file's first hook). */
async function writeTenders(): Promise<void> {
  if (tenders.x86_64) return;
  tenders.x86_64 = join(scratch.path, "solo5-spt");
  tenders.aarch64 = join(scratch.path, "solo5-spt-aarch64");
  tenders.script = join(scratch.path, "solo5-spt.sh");
  await writeFile(tenders.x86_64, elfHeader(62));
  await writeFile(tenders.aarch64, elfHeader(183));
  await writeFile(tenders.script, '#!/bin/sh\nexec solo5-spt "$@"\n');
}

const SPT: KernelFacts = {
  target: "spt",
  manifest: [{ name: "service", type: "net" }],
  sha256: KERNEL_SHA,
  architecture: "x86_64",
};
const HVT: KernelFacts = { ...SPT, target: "hvt" };

type Args = Omit<gcp.UnikernelServiceArgs, "unikernel" | "host"> & {
  host?: Partial<gcp.HostArgs>;
};

/** A prebuilt host kernel of `target`. */
function hostKernel(target: string): Unikernel {
  return new Unikernel("web-kernel", {
    kernel: `/prebuilt/web.${target}`,
    target: target as "spt",
  });
}

/** Builds a host service and waits until everything it declares is registered. */
async function deploy(kernel: KernelFacts, args: Args = {}, name = "web") {
  const seen = await mockStack(kernel);
  const service = new gcp.UnikernelService(name, {
    unikernel: hostKernel(kernel.target),
    ...args,
    host: { tender: tenders.x86_64, ...args.host },
  });
  await value(service.instanceNames, "instanceNames");
  if (service.bootCheck) await value(service.bootCheck.urn, "bootCheck");
  await outputsDone(service.urn);
  return { seen, service };
}

/** The errors preview shows for a host service of `kernel` with `args`. */
async function refusedAtPreview(kernel: KernelFacts, args: Args): Promise<string[]> {
  await mockStack(kernel, true);
  return programErrors(() => {
    new gcp.UnikernelService("web", {
      unikernel: hostKernel(kernel.target),
      ...args,
      host: { tender: tenders.x86_64, ...args.host },
    });
  });
}

const script = (vm: Registration) => String(vm.inputs.metadataStartupScript);

describe("gcp.UnikernelService with host", () => {
  before(writeTenders);
  it("spt: kernel and tender in a private bucket by content, a service account reading only that bucket, a Debian 12 VM running the startup-script", async () => {
    const { seen, service } = await deploy(SPT, {
      project: PROJECT,
      zone: ZONE,
      bucketLocation: "EU",
      ports: [8080],
      bootArgs: ["--hello=Hi"],
      waitFor: { console: "serving on port 8080" },
    });
    assert.equal(byType(seen, "pulumi-nodejs:dynamic/pulumi-mirage:DiskImage").length, 0);
    assert.equal(byType(seen, "gcp:compute/image:Image").length, 0);
    assert.equal(byType(seen, "gcp:secretmanager/secret:Secret").length, 0, "nothing secret");

    const bucket = one(seen, "gcp:storage/bucket:Bucket");
    assert.equal(bucket.name, "web-host");
    assert.deepEqual(
      {
        location: bucket.inputs.location,
        uniform: bucket.inputs.uniformBucketLevelAccess,
        prevention: bucket.inputs.publicAccessPrevention,
      },
      { location: "EU", uniform: true, prevention: "enforced" },
    );
    const objects = byType(seen, "gcp:storage/bucketObject:BucketObject");
    assert.deepEqual(
      objects.map((o) => o.inputs.name).sort(),
      [`kernels/${KERNEL_SHA}/web.spt`, `tenders/${await sha256File(tenders.x86_64)}/solo5-spt`],
      "named by content",
    );
    assert.ok(objects.every((o) => o.inputs.bucket === "web-host-1a2b3c4"));

    const account = one(seen, "gcp:serviceaccount/account:Account");
    assert.match(String(account.inputs.accountId), /^web-[0-9a-f]{8}$/);
    const email = `${account.inputs.accountId}@${PROJECT}.iam.gserviceaccount.com`;
    // Its one grant: objectViewer on its own bucket; nothing on the project.
    const grants = seen.filter((r) => /IAM(Member|Binding|Policy)/i.test(r.type));
    assert.deepEqual(
      grants.map((g) => [g.type, g.inputs.bucket, g.inputs.role, g.inputs.member]),
      [
        [
          "gcp:storage/bucketIAMMember:BucketIAMMember",
          "web-host-1a2b3c4",
          "roles/storage.objectViewer",
          `serviceAccount:${email}`,
        ],
      ],
    );

    const vm = one(seen, "gcp:compute/instance:Instance");
    assert.deepEqual((vm.inputs.bootDisk as Loose).initializeParams, {
      image: "debian-cloud/debian-12",
    });
    assert.equal(vm.inputs.machineType, "e2-micro");
    assert.deepEqual(vm.inputs.serviceAccount, {
      email,
      scopes: ["https://www.googleapis.com/auth/cloud-platform"],
    });
    assert.deepEqual(vm.inputs.advancedMachineFeatures, { enableNestedVirtualization: false });
    assert.equal((vm.inputs.networkInterfaces as Loose)[0].nicType, undefined, "e2: virtio-net");
    assert.deepEqual(vm.replaceOnChanges, [
      "bootDisk.initializeParams.image",
      "metadataStartupScript",
    ]);
    // The VM is made once its service account may read the bucket.
    assert.ok(
      vm.dependencies.some((urn) => urn.endsWith("::web-host-reads")),
      vm.dependencies.join(),
    );

    const text = script(vm);
    assert.ok(
      text.startsWith(
        "#!/bin/sh\n# pulumi-mirage: host for the spt unikernel web on Google Compute Engine.",
      ),
    );
    assert.ok(text.includes(gcsObjectUrl("web-host-1a2b3c4", `kernels/${KERNEL_SHA}/web.spt`)));
    assert.ok(text.includes(`${KERNEL_SHA}`));
    assert.ok(text.includes("--hello=Hi"));
    assert.ok(
      text.includes("tcp dport { 8080 } dnat to 10.81.0.2"),
      "the port goes to the unikernel",
    );
    assert.ok(text.includes("--net:service=mtap0"));

    assert.equal(await value(service.imageSelfLink, "imageSelfLink"), "debian-cloud/debian-12");
    assert.equal(service.diskImage, undefined);
    const wait = one(seen, "pulumi-nodejs:dynamic/pulumi-mirage:GceSerialWait");
    assert.equal(wait.inputs.pattern, "serving on port 8080");
    assert.deepEqual(one(seen, "gcp:compute/firewall:Firewall").inputs.allows, [
      { protocol: "tcp", ports: ["8080"] },
    ]);
  });

  it("spt on gVNIC-only and Arm families: gVNIC, and Debian for the family's architecture", async () => {
    const c3 = await deploy(SPT, { machineType: "c3-standard-4", bucketLocation: "EU" });
    const c3vm = one(c3.seen, "gcp:compute/instance:Instance");
    assert.equal((c3vm.inputs.networkInterfaces as Loose)[0].nicType, "GVNIC");
    assert.equal((c3vm.inputs.bootDisk as Loose).initializeParams.image, "debian-cloud/debian-12");

    const arm = await deploy(
      { ...SPT, architecture: "aarch64" },
      { machineType: "t2a-standard-1", host: { tender: tenders.aarch64 } },
    );
    const armVm = one(arm.seen, "gcp:compute/instance:Instance");
    assert.equal((armVm.inputs.networkInterfaces as Loose)[0].nicType, "GVNIC");
    assert.equal(
      (armVm.inputs.bootDisk as Loose).initializeParams.image,
      "debian-cloud/debian-12-arm64",
    );

    const own = await deploy(SPT, { host: { image: "projects/me/global/images/my-debian" } });
    assert.equal(
      (one(own.seen, "gcp:compute/instance:Instance").inputs.bootDisk as Loose).initializeParams
        .image,
      "projects/me/global/images/my-debian",
    );
  });

  it("hvt: nested virtualization on an Intel family (default n2-standard-2) running solo5-hvt", async () => {
    const { seen } = await deploy(HVT);
    const vm = one(seen, "gcp:compute/instance:Instance");
    assert.equal(vm.inputs.machineType, "n2-standard-2");
    assert.deepEqual(vm.inputs.advancedMachineFeatures, { enableNestedVirtualization: true });
    assert.ok(script(vm).includes("/var/lib/pulumi-mirage/web/solo5-hvt --net:service=mtap0"));
    assert.ok(
      byType(seen, "gcp:storage/bucketObject:BucketObject").some((o) =>
        String(o.inputs.name).endsWith("/solo5-hvt"),
      ),
    );
    const c4 = await deploy(HVT, { machineType: "c4-standard-2" });
    assert.deepEqual(one(c4.seen, "gcp:compute/instance:Instance").inputs.advancedMachineFeatures, {
      enableNestedVirtualization: true,
    });
  });

  it("secret boot arguments go into Secret Manager, readable by the VMs' service account alone; the startup-script names the version and never holds them", async () => {
    const { seen } = await deploy(SPT, {
      bootArgs: pulumi.secret(["--token=s3cr3t", "--port=8080"]),
      ports: [8080],
    });
    const store = one(seen, "gcp:secretmanager/secret:Secret");
    assert.match(String(store.inputs.secretId), /^web-boot-args-[0-9a-f]{8}$/);
    assert.deepEqual(store.inputs.replication, { auto: {} });
    const version = one(seen, "gcp:secretmanager/secretVersion:SecretVersion");
    assert.equal(version.inputs.secret, "web-boot-args-id");
    const data = version.inputs.secretData as Loose;
    assert.equal(data["4dabf18193072939515e22adb298388d"], "1b47061264138c4ac30d75fd1eb44270");
    assert.equal(data.value, "2 --token=s3cr3t --port=8080");
    const access = one(seen, "gcp:secretmanager/secretIamMember:SecretIamMember");
    const email = `${one(seen, "gcp:serviceaccount/account:Account").inputs.accountId}@${PROJECT}.iam.gserviceaccount.com`;
    assert.deepEqual(
      [access.inputs.secretId, access.inputs.role, access.inputs.member],
      [store.inputs.secretId, "roles/secretmanager.secretAccessor", `serviceAccount:${email}`],
    );
    const vm = one(seen, "gcp:compute/instance:Instance");
    assert.ok(!JSON.stringify(vm.inputs).includes("s3cr3t"), "not in the VM's metadata");
    assert.ok(
      script(vm).includes(`projects/${PROJECT_NUMBER}/secrets/web-boot-args-id/versions/3`),
      "the version it reads at every start",
    );
    assert.ok(
      vm.dependencies.some((urn) => urn.endsWith("::web-boot-args")),
      "made after the grant",
    );
  });

  it("a group: the same health-gated managed instance group, its template booting the host", async () => {
    const { seen } = await deploy(HVT, { replicas: 3, ports: [8080], staticIp: true });
    const template = one(seen, "gcp:compute/instanceTemplate:InstanceTemplate");
    assert.equal(template.inputs.machineType, "n2-standard-2");
    assert.deepEqual(template.inputs.disks, [
      { sourceImage: "debian-cloud/debian-12", boot: true, autoDelete: true },
    ]);
    assert.deepEqual(template.inputs.advancedMachineFeatures, { enableNestedVirtualization: true });
    assert.ok(script(template).includes("solo5-hvt"));
    assert.match(String((template.inputs.serviceAccount as Loose).email), /^web-[0-9a-f]{8}@/);
    assert.deepEqual(one(seen, "gcp:compute/healthCheck:HealthCheck").inputs.tcpHealthCheck, {
      port: 8080,
    });
    const group = one(seen, "gcp:compute/regionInstanceGroupManager:RegionInstanceGroupManager");
    assert.equal(
      group.inputs.updatePolicy && (group.inputs.updatePolicy as Loose).maxUnavailableFixed,
      0,
    );
    assert.equal(
      one(seen, "gcp:compute/globalForwardingRule:GlobalForwardingRule").inputs.portRange,
      "8080",
    );
  });
});

describe("gcp.UnikernelService with host refuses", () => {
  before(writeTenders);
  const construct =
    (args: Args, target = "spt") =>
    () =>
      new gcp.UnikernelService("web", {
        unikernel: hostKernel(target),
        ...args,
        host: { tender: tenders.x86_64, ...args.host },
      });

  it("at construction: virtio-only options, a machine family it does not know, a missing tender", async () => {
    await mockStack(SPT, true);
    assert.throws(
      construct({ bucket: "mine", imageFamily: "web", serviceAccount: { email: "a@b" } }),
      (error: Error) =>
        error.message ===
        "gcp.UnikernelService web: bucket is not taken with host: a host's kernel and tender go into a bucket of its own, which only its service account may read; leave it out; imageFamily is not taken with host: a host runs a stock Linux image (host.image), the component makes none; leave it out; serviceAccount is not taken with host: a host runs as a service account of its own, which may read only its kernel, tender and secret; leave it out",
    );
    assert.throws(
      construct({ machineType: "zz9-standard-2" }),
      /machineType "zz9-standard-2" is not a machine family pulumi-mirage knows the architecture of: use one of e2, n1,/,
    );
    assert.throws(
      () =>
        new gcp.UnikernelService("web", {
          unikernel: hostKernel("spt"),
          host: {} as gcp.HostArgs,
        }),
      /host\.tender is required: the path of your opam switch's solo5-spt or solo5-hvt/,
    );
  });

  it("a boot argument that could end a quoted region, at construction and at preview, in DiskImage's words", async () => {
    for (const arg of INJECTIONS) {
      const expected = `gcp.UnikernelService web: bootArgs: ${bootArgRefusal(arg)}`;
      await mockStack(SPT, true);
      assert.throws(construct({ bootArgs: [arg] }), (error: Error) => error.message === expected);
      const errors = await refusedAtPreview(SPT, { bootArgs: pulumi.output([arg]) });
      assert.deepEqual(errors.slice(0, 1), [expected]);
    }
  });

  it("at preview: hvt on a family without nested virtualization, naming the families that work", async () => {
    for (const [machineType, why] of [
      ["e2-small", "which does not offer nested virtualization"],
      ["c3d-standard-4", "whose AMD processors Compute Engine offers no nested virtualization on"],
      ["t2a-standard-1", "whose Arm processors Compute Engine offers no nested virtualization on"],
    ]) {
      const errors = await refusedAtPreview(HVT, { machineType });
      assert.ok(errors.length > 0, `${machineType}: the program fails`);
      const family = machineType.split("-")[0];
      assert.equal(
        errors[0],
        `gcp.UnikernelService web: machineType "${machineType}" is a ${family} machine, ${why}, and solo5-hvt needs KVM: use one of the Intel families n1, n2, c2, m1, m2, c3, c4, n4, m3 (e.g. n2-standard-2), or build the unikernel for spt, which runs on every family`,
      );
    }
  });

  it("at preview: a kernel or a tender of another architecture than the machine type's", async () => {
    const kernel = await refusedAtPreview(SPT, { machineType: "t2a-standard-1" });
    assert.equal(
      kernel[0],
      'gcp.UnikernelService web: unikernel is built for x86_64, and machineType "t2a-standard-1" runs aarch64: give a kernel built for aarch64, or a machine type of x86_64 (e.g. e2-micro)',
    );
    const armKernel = await refusedAtPreview(
      { ...SPT, architecture: "aarch64" },
      { machineType: "c4a-standard-1" },
    );
    assert.equal(
      armKernel[0],
      'gcp.UnikernelService web: host.tender is built for x86_64, and machineType "c4a-standard-1" runs aarch64: give a tender built for aarch64, or a machine type of x86_64 (e.g. e2-micro)',
    );
    const arm64OnX86 = await refusedAtPreview(
      { ...SPT, architecture: "aarch64" },
      { host: { tender: tenders.aarch64 } },
    );
    assert.equal(
      arm64OnX86[0],
      'gcp.UnikernelService web: unikernel is built for aarch64, and machineType "e2-micro" runs x86_64: give a kernel built for x86_64, or a machine type of aarch64 (e.g. t2a-standard-1)',
    );
    const script = await refusedAtPreview(SPT, { host: { tender: tenders.script } });
    assert.match(
      script[0],
      /^gcp\.UnikernelService web: host\.tender is not an ELF executable \(.*\): give your opam switch's solo5-spt or solo5-hvt binary$/,
    );
  });

  it("at preview: a kernel a host cannot run (another target, a block device)", async () => {
    const virtio = await refusedAtPreview({ ...SPT, target: "virtio" }, {});
    assert.equal(
      virtio[0],
      "gcp.UnikernelService web: host is for spt and hvt unikernels, and this one is virtio: leave out host (a virtio unikernel boots from its own image, on a family offering virtio-net)",
    );
    const block = await refusedAtPreview(
      { ...SPT, manifest: [{ name: "storage", type: "block" }] },
      {},
    );
    assert.equal(
      block[0],
      "gcp.UnikernelService web: unikernel declares block device(s) storage, which a host service cannot attach yet: remove them from config.ml",
    );
  });
});

describe("examples/gce-spt", () => {
  before(writeTenders);
  it("deploys examples/web built for spt on a gVNIC-only c3 VM, 8080 forwarded, boot awaited", async () => {
    const seen = await mockStack(SPT, false, "pulumi-mirage-gce-spt");
    pulumi.runtime.setAllConfig({
      "pulumi-mirage-gce-spt:project": PROJECT,
      "pulumi-mirage-gce-spt:region": "europe-west1",
      "pulumi-mirage-gce-spt:zone": ZONE,
      "pulumi-mirage-gce-spt:machineType": "c3-standard-4",
      "pulumi-mirage-gce-spt:tender": tenders.x86_64,
      "pulumi-mirage-gce-spt:kernel": "/prebuilt/web.spt",
    });
    const outputs = runExample("gce-spt");
    assert.equal(await value(outputs.url, "url"), "http://203.0.113.7:8080/");
    await value(outputs.booted, "booted");
    const kernel = one(seen, "pulumi-nodejs:dynamic/pulumi-mirage:Unikernel");
    assert.deepEqual(
      { kernel: kernel.inputs.kernel, target: kernel.inputs.target },
      { kernel: "/prebuilt/web.spt", target: "spt" },
    );
    const vm = one(seen, "gcp:compute/instance:Instance");
    assert.equal(vm.inputs.machineType, "c3-standard-4");
    assert.equal((vm.inputs.networkInterfaces as Loose)[0].nicType, "GVNIC");
    assert.ok(script(vm).includes("tcp dport { 8080 } dnat to 10.81.0.2"));
    assert.equal(
      one(seen, "pulumi-nodejs:dynamic/pulumi-mirage:GceSerialWait").inputs.pattern,
      "serving HTTP on port 8080",
    );
    const component = one(seen, "pulumi-mirage:gcp:UnikernelService");
    await outputsDone(
      `urn:pulumi:dev::pulumi-mirage-gce-spt::pulumi-mirage:gcp:UnikernelService::${component.name}`,
    );
  });
});

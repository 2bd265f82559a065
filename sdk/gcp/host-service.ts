// The host path of gcp.UnikernelService: an spt or hvt kernel under its Solo5 tender on a stock
// Debian 12 VM, which any machine family can be (gVNIC-only and Arm ones too). The kernel and the
// tender go into a private bucket under names given by their content. The VMs run as a service
// account of their own, which may read that bucket (objectViewer on it alone) and, when the boot
// arguments are secret, their one secret in Secret Manager (secretAccessor on it alone). The VMs'
// startup-script (../host/script.ts), which GCE runs at every boot, fetches and checks the files,
// wires the network and runs the tender under systemd. Secret boot arguments are never in the
// metadata, which every process on the VM and anyone allowed to read the instance can see. A new
// kernel, tender or boot arguments (secret ones: a new secret version) is a new script, so new
// VMs. What depends on the kernel (its target, its architecture) is checked at preview, once it
// is known, before anything is uploaded or started.
import * as pulumi from "@pulumi/pulumi";
import { ElfFormatError, readElf } from "../../provider/kernel/elf";
import { elfMachineName } from "../../provider/kernel/inspect";
import {
  architectureProblem,
  DEFAULT_HVT_MACHINE_TYPE,
  DEFAULT_MACHINE_TYPE,
  hostMachineTypeProblem,
  machineArchitecture,
  offersVirtio,
} from "../../rules/gce-machines";
import { problemIf } from "../../rules/problem";
import { encodeSecretBootArgs } from "../host/script";
import { type HostTarget, hostUnikernel } from "../host/service";
import { gcpSdk } from "../peers";
import { refuse } from "../refuse";
import type { Unikernel } from "../unikernel";
import { gcsObjectUrl, renderGceHostScript } from "./host-script";
import { COMPONENT, type HostSpec, type ServiceSpec } from "./resolve";

/** The service account's scope: IAM decides what it may do. */
const CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform";

/** What the host VMs are made of. */
export interface HostLaunch {
  machineType: pulumi.Output<string>;
  /** The boot image, as given to the VMs (a family reference stays one). */
  image: pulumi.Output<string>;
  /** gVNIC on a family that offers nothing else; else the default, virtio-net. */
  nicType: pulumi.Output<string | undefined>;
  /** Known once the grants it relies on exist, so the VMs that run it are made after them. */
  startupScript: pulumi.Output<string>;
  nestedVirtualization: pulumi.Output<boolean>;
  serviceAccount: { email: pulumi.Output<string>; scopes: string[] };
}

/** The ELF machine a tender is built for; a file that is no ELF executable is refused. */
async function tenderArchitecture(name: string, path: string): Promise<string> {
  try {
    return elfMachineName((await readElf(path)).header.machine);
  } catch (error) {
    if (!(error instanceof ElfFormatError)) throw error;
    const reason = `is not an ELF executable (${error.message}): give your opam switch's solo5-spt or solo5-hvt binary`;
    refuse(COMPONENT, name, [{ property: "host.tender", reason }]);
    throw error;
  }
}

export function hostLaunch(
  spec: ServiceSpec & { host: HostSpec },
  /** Makes names unique to this stack and service (the service account's and the secret's). */
  unique: string,
  parent: pulumi.Resource,
): HostLaunch {
  const gcp = gcpSdk(COMPONENT);
  const child = { parent };
  const { name, project } = spec;
  // resolveArgs refused a DiskImage with host.
  const unikernel = spec.unikernel as Unikernel;
  const typeFor = (target: HostTarget) =>
    spec.machineType ?? (target === "hvt" ? DEFAULT_HVT_MACHINE_TYPE : DEFAULT_MACHINE_TYPE);
  const host = hostUnikernel(COMPONENT, name, {
    unikernel,
    bootArgs: spec.bootArgs ?? [],
    tender: spec.host.tender,
    instead: (target) =>
      target === "virtio"
        ? "leave out host (a virtio unikernel boots from its own image, on a family offering virtio-net)"
        : undefined,
    targetProblems: (target) =>
      problemIf("machineType", hostMachineTypeProblem(typeFor(target), target)),
  });
  const machineType = host.target.apply(typeFor);
  // Refused before anything is uploaded: a kernel or tender the machine cannot run.
  const kernelFits = pulumi
    .all([machineType, unikernel.architecture])
    .apply(([type, built]) =>
      refuse(
        COMPONENT,
        name,
        built === undefined
          ? []
          : problemIf("unikernel", architectureProblem(type, built, "a kernel")),
      ),
    );
  const tenderFits = pulumi.all([machineType, host.tenderPath]).apply(async ([type, path]) => {
    const built = await tenderArchitecture(name, path);
    refuse(COMPONENT, name, problemIf("host.tender", architectureProblem(type, built, "a tender")));
  });
  const checked = <T>(value: pulumi.Output<T>) =>
    pulumi.all([value, kernelFits, tenderFits]).apply(([v]) => v);

  const bucket = new gcp.storage.Bucket(
    `${name}-host`,
    {
      project,
      location: "location" in spec.bucket ? spec.bucket.location : "US",
      uniformBucketLevelAccess: true,
      publicAccessPrevention: "enforced",
      forceDestroy: true,
    },
    child,
  );
  const upload = (what: string, object: pulumi.Output<string>, path: pulumi.Output<string>) =>
    new gcp.storage.BucketObject(
      `${name}-${what}`,
      {
        bucket: bucket.name,
        name: checked(object),
        source: path.apply((p) => new pulumi.asset.FileAsset(p)),
        contentType: "application/octet-stream",
      },
      child,
    );
  const kernelObject = upload("kernel", host.kernelObject, unikernel.kernelPath);
  const tenderObject = upload("tender", host.tenderObject, host.tenderPath);

  const account = new gcp.serviceaccount.Account(
    `${name}-host`,
    {
      project,
      // 6-30 characters: the service's name (a letter first) and the stack's hash.
      accountId: `${name.slice(0, 21)}-${unique}`,
      displayName: `pulumi-mirage host of ${name}`,
      description: "Reads the unikernel's kernel, tender and secret boot arguments, nothing else",
    },
    child,
  );
  const member = pulumi.interpolate`serviceAccount:${account.email}`;
  const reads = new gcp.storage.BucketIAMMember(
    `${name}-host-reads`,
    { bucket: bucket.name, role: "roles/storage.objectViewer", member },
    child,
  );
  // Whether the arguments are secret is known at preview, whatever their values.
  const secret = host.secret.apply((isSecret) => {
    if (!isSecret) return undefined;
    const store = new gcp.secretmanager.Secret(
      `${name}-boot-args`,
      {
        project,
        secretId: `${name}-boot-args-${unique}`,
        replication: { auto: {} },
        labels: { "mirage-service": name },
      },
      child,
    );
    const version = new gcp.secretmanager.SecretVersion(
      `${name}-boot-args`,
      { secret: store.id, secretData: host.bootArgs.apply(encodeSecretBootArgs) },
      child,
    );
    const access = new gcp.secretmanager.SecretIamMember(
      `${name}-boot-args`,
      {
        project: store.project,
        secretId: store.secretId,
        role: "roles/secretmanager.secretAccessor",
        member,
      },
      child,
    );
    // The script holds the version's name, never the value.
    return pulumi.all([version.name, access.id]).apply(([ref]) => ({ secret: ref }));
  });
  const scriptArgs = secret.apply(
    (ref): pulumi.Output<string[] | { secret: string }> =>
      ref ? pulumi.output(ref) : host.bootArgs,
  );
  const startupScript = pulumi
    .output({
      bucketName: bucket.name,
      kernel: kernelObject.name,
      tender: tenderObject.name,
      kernelSha: unikernel.sha256,
      tenderSha: host.tenderSha256,
      target: host.target,
      kernelName: host.kernelName,
      networks: host.networks,
      bootArgs: scriptArgs,
      granted: reads.id,
    })
    .apply((v) =>
      renderGceHostScript({
        name,
        target: v.target,
        kernelName: v.kernelName,
        kernel: { url: gcsObjectUrl(v.bucketName, v.kernel), sha256: v.kernelSha },
        tender: { url: gcsObjectUrl(v.bucketName, v.tender), sha256: v.tenderSha },
        networks: v.networks,
        ports: spec.ports,
        bootArgs: v.bootArgs,
      }),
    );
  const arm = (type: string) => machineArchitecture(type) === "aarch64";
  return {
    machineType,
    image: spec.host.image
      ? pulumi.output(spec.host.image)
      : machineType.apply((type) =>
          arm(type) ? "debian-cloud/debian-12-arm64" : "debian-cloud/debian-12",
        ),
    nicType: machineType.apply((type) => (offersVirtio(type) ? undefined : "GVNIC")),
    startupScript,
    nestedVirtualization: host.target.apply((target) => target === "hvt"),
    serviceAccount: { email: account.email, scopes: [CLOUD_PLATFORM] },
  };
}

// Compute Engine machine families: the network interface each offers, its processors, and so its
// architecture and whether it offers nested virtualization. gcp.UnikernelService's two paths ask
// different things of a machine type: a virtio kernel boots only where virtio-net is offered; a
// host (an spt or hvt kernel under its tender on a Linux VM) runs on any family, hvt only where
// nested virtualization gives the VM KVM (Intel families), and its kernel and tender must be
// built for the family's architecture (docs/platforms.md, Google Compute Engine).

/** Processor makers: e2 VMs land on Intel or AMD hosts. */
type Processors = "intel" | "amd" | "intel-or-amd" | "arm";

interface Family {
  processors: Processors;
  /** Offers virtio-net, the only network interface Solo5 drives; else gVNIC only. */
  virtio: boolean;
  /** Offers nested virtualization (`advancedMachineFeatures.enableNestedVirtualization`). */
  nested: boolean;
}

const family = (processors: Processors, virtio: boolean, nested = false): Family => ({
  processors,
  virtio,
  nested,
});

/** The families we know; the virtio ones first, in the order messages list them. */
const FAMILIES: Record<string, Family> = {
  e2: family("intel-or-amd", true),
  n1: family("intel", true, true),
  n2: family("intel", true, true),
  n2d: family("amd", true),
  c2: family("intel", true, true),
  c2d: family("amd", true),
  t2d: family("amd", true),
  m1: family("intel", true, true),
  m2: family("intel", true, true),
  // Shared-core: no nested virtualization.
  f1: family("intel", true),
  g1: family("intel", true),
  // Third generation and later, and every Arm family: gVNIC only.
  c3: family("intel", false, true),
  c3d: family("amd", false),
  c4: family("intel", false, true),
  c4a: family("arm", false),
  c4d: family("amd", false),
  n4: family("intel", false, true),
  n4a: family("arm", false),
  n4d: family("amd", false),
  t2a: family("arm", false),
  h3: family("intel", false),
  h4d: family("amd", false),
  z3: family("intel", false),
  m3: family("intel", false, true),
  m4: family("intel", false),
  x4: family("intel", false),
  a3: family("intel", false),
  a4: family("intel", false),
  g4: family("amd", false),
};

const names = (keep: (f: Family) => boolean) =>
  Object.entries(FAMILIES)
    .filter(([, f]) => keep(f))
    .map(([name]) => name);

/** The default machine type of a virtio kernel and of an spt host. */
export const DEFAULT_MACHINE_TYPE = "e2-micro";
/** The default machine type of an hvt host: a small Intel type with nested virtualization. */
export const DEFAULT_HVT_MACHINE_TYPE = "n2-standard-2";

/** A machine type's family: `e2` of `e2-micro`, `n2-custom-2-4096` and machine type URLs. */
export function machineFamily(machineType: string): string {
  const type = machineType.split("/").at(-1) ?? "";
  return type.split("-")[0].toLowerCase();
}

/** The architecture a machine type's VMs run, as an ELF header names it; undefined if unknown. */
export function machineArchitecture(machineType: string): "x86_64" | "aarch64" | undefined {
  const known = FAMILIES[machineFamily(machineType)];
  if (known === undefined) return undefined;
  return known.processors === "arm" ? "aarch64" : "x86_64";
}

/** Whether `machineType` offers virtio-net (else it is gVNIC only, or not a family we know). */
export function offersVirtio(machineType: string): boolean {
  return FAMILIES[machineFamily(machineType)]?.virtio === true;
}

/** Why a virtio kernel cannot boot on `machineType`, or undefined when it can. */
export function virtioMachineTypeProblem(machineType: string): string | undefined {
  if (offersVirtio(machineType)) return undefined;
  const known = FAMILIES[machineFamily(machineType)];
  const why = known
    ? `is a ${machineFamily(machineType)} machine, which offers only gVNIC network interfaces, while Solo5 unikernels drive virtio-net only`
    : "is not a machine family known to offer virtio-net, the only network interface Solo5 drives";
  const families = names((f) => f.virtio).join(", ");
  return `${JSON.stringify(machineType)} ${why}. Use one of the families ${families} (e.g. e2-micro, n2-standard-2), or run an spt or hvt build of the unikernel on any family with host: { tender }.`;
}

/** Why a host VM of an spt or hvt kernel cannot be `machineType`, or undefined when it can. */
export function hostMachineTypeProblem(
  machineType: string,
  target: "spt" | "hvt",
): string | undefined {
  const known = FAMILIES[machineFamily(machineType)];
  if (known === undefined) {
    return `${JSON.stringify(machineType)} is not a machine family pulumi-mirage knows the architecture of: use one of ${names(() => true).join(", ")}`;
  }
  if (target === "spt" || known.nested) return undefined;
  const maker = { amd: "AMD", arm: "Arm" }[known.processors as string];
  const why = maker
    ? `whose ${maker} processors Compute Engine offers no nested virtualization on`
    : "which does not offer nested virtualization";
  return (
    `${JSON.stringify(machineType)} is a ${machineFamily(machineType)} machine, ${why}, and solo5-hvt needs KVM: ` +
    `use one of the Intel families ${names((f) => f.nested).join(", ")} (e.g. ${DEFAULT_HVT_MACHINE_TYPE}), ` +
    "or build the unikernel for spt, which runs on every family"
  );
}

/** A machine type of each architecture, for messages. */
const EXAMPLES: Record<string, string> = {
  x86_64: DEFAULT_MACHINE_TYPE,
  aarch64: "t2a-standard-1",
};

/**
 * Why a program built for the ELF machine `built` (x86_64, aarch64) cannot run on `machineType`,
 * or undefined when it can (or the family is unknown: hostMachineTypeProblem says so); `what`
 * names the program with its article ("a kernel", "a tender").
 */
export function architectureProblem(
  machineType: string,
  built: string,
  what: string,
): string | undefined {
  const runs = machineArchitecture(machineType);
  if (runs === undefined || runs === built) return undefined;
  const other = EXAMPLES[built] ? `, or a machine type of ${built} (e.g. ${EXAMPLES[built]})` : "";
  return `is built for ${built}, and machineType ${JSON.stringify(machineType)} runs ${runs}: give ${what} built for ${runs}${other}`;
}

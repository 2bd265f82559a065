// Which EC2 instance types can run a Solo5 xen unikernel at all.
//
// Nitro-based types (every current generation: t3, m5, c5, ... and later) give the guest only ENA
// networking and NVMe disks, for which Solo5 has no drivers. Only Xen-based types (AWS docs:
// "Instances built on the Nitro System" lists the others) still offer the Xen interfaces. Two
// sizes of Xen-era families are Nitro: i3.metal and every p3dn.

/** The Xen-based, HVM-capable instance families. */
export const XEN_FAMILIES = [
  "t2",
  "m3",
  "m4",
  "c3",
  "c4",
  "r3",
  "r4",
  "x1",
  "x1e",
  "i2",
  "i3",
  "d2",
  "h1",
  "g2",
  "g3",
  "g3s",
  "p2",
  "p3",
  "f1",
] as const;

/** Nitro-based sizes within the families above. */
const NITRO_EXCEPTIONS = ["i3.metal"];

export const DEFAULT_INSTANCE_TYPE = "t2.micro";

/**
 * Why `instanceType` cannot run a Solo5 xen unikernel, or undefined when it can: what is wrong,
 * and the accepted families (a reason that follows the property's name).
 */
export function instanceTypeProblem(instanceType: string): string | undefined {
  const accepted = `accepted families (Xen-based): ${XEN_FAMILIES.join(", ")}; e.g. ${DEFAULT_INSTANCE_TYPE}`;
  const match = /^([a-z][a-z0-9-]*)\.([a-z0-9]+)$/.exec(instanceType);
  if (!match) {
    return `${JSON.stringify(instanceType)} is not an EC2 instance type (FAMILY.SIZE); ${accepted}`;
  }
  if (
    NITRO_EXCEPTIONS.includes(instanceType) ||
    !(XEN_FAMILIES as readonly string[]).includes(match[1])
  ) {
    return (
      `${instanceType} is not a Xen-based type (Nitro types offer only ENA and NVMe, ` +
      `which Solo5 cannot drive); ${accepted}`
    );
  }
  return undefined;
}

/** The families whose instances can run KVM guests (`cpuOptions.nestedVirtualization`). */
export const NESTED_VIRTUALIZATION_FAMILIES = [
  "c8i",
  "c8i-flex",
  "m8i",
  "m8i-flex",
  "r8i",
  "r8i-flex",
] as const;

/** The default host of an spt unikernel: any Linux instance runs it. */
export const DEFAULT_SPT_INSTANCE_TYPE = "t3.micro";
/** The default host of an hvt unikernel: the smallest type with nested virtualization. */
export const DEFAULT_HVT_INSTANCE_TYPE = "c8i.large";

/** Why `instanceType` cannot host an hvt unikernel (solo5-hvt needs KVM), or undefined. */
export function hvtInstanceTypeProblem(instanceType: string): string | undefined {
  const family = /^([a-z][a-z0-9-]*)\.[a-z0-9]+$/.exec(instanceType)?.[1];
  if (family && (NESTED_VIRTUALIZATION_FAMILIES as readonly string[]).includes(family)) {
    return undefined;
  }
  return (
    `${instanceType} offers no nested virtualization, and solo5-hvt needs KVM; ` +
    `use one of the families ${NESTED_VIRTUALIZATION_FAMILIES.join(", ")} (e.g. ${DEFAULT_HVT_INSTANCE_TYPE}), ` +
    "or build the unikernel for spt, which runs on every type"
  );
}

// local.Vm: a disk image booted in QEMU as a background process that outlives the dynamic provider.
// A VM cannot be changed while it runs, so every input except `waitFor` replaces it.
import { existsSync } from "node:fs";
import type * as pulumi from "@pulumi/pulumi";
import { ACCEL_MODES, type AccelMode, requestedMode } from "../accel";
import { qemuMessages, startVm, vmStopped } from "../boot";
import { diskImageFormat, NotADiskImage } from "../disk-check";
import {
  awaitStarted,
  checkRunFile,
  checkWaitFor,
  consoleHead,
  createRun,
  definedOnly,
  type RunOutputs,
  runLifecycle,
  type WaitFor,
} from "../local-run";
import type { PortForward } from "../qemu";
import { BOUNDS, checkHostAddress, outOfBounds } from "./bounds";
import { type Device, isKnown } from "./inputs";

export interface VmInputs {
  /** A raw disk image or a GCE image.tar.gz. */
  image: string;
  /** The image's sha256 (given by a DiskImage, computed by check for a bare path). */
  imageSha256?: string;
  /** The kernel's target, when the image comes from a DiskImage. */
  target?: string;
  /** The devices the unikernel declares, when the image comes from a DiskImage. */
  manifest?: Device[];
  /** Host→guest TCP forwards. */
  ports: PortForward[];
  memoryMiB: number;
  /** Attach a virtio-net NIC. Default: when the unikernel declares a network device, or ports are given. */
  net?: boolean;
  waitFor?: WaitFor;
  cacheDir?: string;
  /** `auto`, `kvm` or `tcg`; default: $PULUMI_MIRAGE_ACCEL, else auto (see accel.ts). */
  accel?: AccelMode;
}

export interface VmOutputs extends VmInputs, RunOutputs {
  consoleLog: string;
  /** The accelerator QEMU runs with: `kvm` or `tcg`. */
  accel: "kvm" | "tcg";
  /** The `accel` input (the mode asked for), kept apart since the output `accel` is what was used. */
  accelMode?: AccelMode;
  /** Why that accelerator (the probe's finding in `auto`). */
  accelReason: string;
  /** The first lines of the console, once the VM started (and matched `waitFor`). */
  console: string[];
}

/** Inputs whose change needs a new VM. */
const REPLACING: (keyof VmInputs)[] = [
  "image",
  "imageSha256",
  "target",
  "manifest",
  "ports",
  "memoryMiB",
  "net",
  "cacheDir",
  "accel",
];

function checkPorts(value: unknown, failures: pulumi.dynamic.CheckFailure[]): PortForward[] {
  if (value === undefined || value === null) return [];
  if (!isKnown(value)) return value as PortForward[];
  if (!Array.isArray(value)) {
    failures.push({
      property: "ports",
      reason: "ports must be a list like [{ host: 8080, guest: 80 }]",
    });
    return [];
  }
  const valid = (port: unknown) =>
    !isKnown(port) ||
    (Number.isInteger(port) && (port as number) >= 1 && (port as number) <= 65535);
  const hosts = new Set<number>();
  value.forEach((forward: Partial<PortForward>, index) => {
    const address = forward?.hostAddress;
    const addressProblem = address !== undefined && isKnown(address) && checkHostAddress(address);
    if (addressProblem)
      failures.push({
        property: `ports[${index}].hostAddress`,
        reason: `ports[${index}].hostAddress ${addressProblem}`,
      });
    if (!valid(forward?.host) || !valid(forward?.guest)) {
      failures.push({
        property: `ports[${index}]`,
        reason: `ports[${index}] is ${JSON.stringify(forward)}: host and guest must be TCP ports (1-65535)`,
      });
    } else if (isKnown(forward.host) && hosts.has(forward.host as number)) {
      failures.push({
        property: `ports[${index}]`,
        reason: `host port ${forward.host} is forwarded twice: each host port can go to one guest port`,
      });
    } else {
      hosts.add(forward.host as number);
    }
  });
  return value as PortForward[];
}

function declaresNet(manifest: VmInputs["manifest"]): boolean | undefined {
  if (!Array.isArray(manifest)) return undefined;
  return manifest.some((device) => device.type === "net");
}

async function check(_olds: unknown, news: Record<string, unknown>) {
  const failures: pulumi.dynamic.CheckFailure[] = [];
  const image = news.image;
  if (typeof image === "string" && isKnown(image) && !news.imageSha256) {
    // A bare path must be a disk image; a DiskImage's is one.
    await diskImageFormat(image).catch((error) => {
      if (!(error instanceof NotADiskImage)) throw error;
      if (existsSync(image)) failures.push({ property: "image", reason: error.message });
    });
  }
  const accel = news.accel;
  if (
    accel !== undefined &&
    isKnown(accel) &&
    !(ACCEL_MODES as readonly unknown[]).includes(accel)
  ) {
    failures.push({
      property: "accel",
      reason: `accel is ${JSON.stringify(accel)}: give auto (KVM where QEMU can use it), kvm or tcg`,
    });
  }
  const imageSha256 = await checkRunFile(
    "image",
    image,
    news.imageSha256 as string | undefined,
    "a DiskImage resource, or the path of a disk.raw or image.tar.gz",
    failures,
  );
  const target = news.target;
  if (typeof target === "string" && isKnown(target) && target !== "virtio") {
    failures.push({
      property: "image",
      reason:
        target === "xen"
          ? "image holds a xen kernel, which prints only to the Xen console: run it on a Xen host with xen.Domain, or build the unikernel for virtio"
          : `image holds a ${target} kernel; local.Vm boots virtio kernels (use local.Process for hvt, spt and unix)`,
    });
  }
  const memoryMiB = news.memoryMiB ?? 128;
  const memoryProblem = isKnown(memoryMiB) && outOfBounds(memoryMiB, BOUNDS.vmMemoryMiB);
  if (memoryProblem) failures.push({ property: "memoryMiB", reason: `memoryMiB ${memoryProblem}` });
  const ports = checkPorts(news.ports, failures);
  const manifest = news.manifest as VmInputs["manifest"];
  if (Array.isArray(ports) && ports.length > 0 && declaresNet(manifest) === false) {
    failures.push({
      property: "ports",
      reason:
        "ports are forwarded to a network device, but the unikernel declares none: declare a network stack in its config.ml (e.g. generic_stackv4v6 default_network) or drop ports",
    });
  }
  const waitFor = checkWaitFor(news.waitFor, failures);
  const inputs = definedOnly({ ...news, imageSha256, ports, memoryMiB, waitFor });
  return { inputs, failures };
}

async function create(inputs: VmInputs): Promise<pulumi.dynamic.CreateResult<VmOutputs>> {
  const net = inputs.net ?? declaresNet(inputs.manifest) ?? inputs.ports.length > 0;
  // createRun removes the VM and its directory if it does not start.
  return createRun("vm", inputs.cacheDir, async ({ id, dir, env }) => {
    const vm = await startVm({
      image: inputs.image,
      stateDir: dir,
      env,
      accel: requestedMode(inputs.accel),
      cacheDir: inputs.cacheDir,
      memoryMiB: inputs.memoryMiB,
      net,
      forwards: inputs.ports,
    });
    await awaitStarted(
      `the VM booting ${inputs.image}`,
      vm,
      vm.consoleLog,
      inputs.waitFor,
      async () => {
        const messages = await qemuMessages(vm);
        return messages.length > 0 ? [`QEMU said:\n${messages.join("\n")}`] : [];
      },
      () => vmStopped(vm),
    );
    return {
      id,
      outs: definedOnly({
        ...inputs,
        pid: vm.pid,
        startTime: vm.startTime,
        stateDir: dir,
        consoleLog: vm.consoleLog,
        accel: vm.accel.accel,
        accelMode: inputs.accel,
        accelReason: vm.accel.reason,
        console: await consoleHead(vm.consoleLog),
      }),
    };
  });
}

const lifecycle = runLifecycle<VmInputs, VmOutputs>(REPLACING);

export const provider = {
  check,
  create,
  ...lifecycle,
  // The state's `accel` is the accelerator used; the mode asked for is `accelMode`.
  diff: (id: string, olds: VmInputs & Pick<VmOutputs, "accelMode">, news: VmInputs) =>
    lifecycle.diff(id, { ...olds, accel: olds.accelMode } as VmInputs, news),
};

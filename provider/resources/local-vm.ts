// local.Vm: a disk image booted in QEMU as a background process that outlives the dynamic provider.
// A VM cannot be changed while it runs, so every input except `waitFor` replaces it.
import { existsSync } from "node:fs";
import type * as pulumi from "@pulumi/pulumi";
import { type AccelMode, accelModeProblem } from "../../rules/accel";
import { BOUNDS, outOfBounds } from "../../rules/bounds";
import { DEFAULT_VM_MEMORY_MIB, type PortForward, resolveForwards } from "../../rules/local";
import type { Problem } from "../../rules/problem";
import type { Device } from "../../rules/targets";
import { isKnown } from "../../rules/values";
import { requestedMode } from "../local/accel";
import { isRunning, startVmAndWait, vmHalted } from "../local/boot";
import { diskImageFormat, NotADiskImage } from "../local/disk-check";
import {
  checkRunFile,
  checkWaitFor,
  consoleHead,
  createRun,
  deleteRun,
  type RunOutputs,
  type WaitFor,
} from "../local/run";
import { definedOnly } from "./inputs";
import { readRun, runLifecycle } from "./run-lifecycle";

export interface VmInputs {
  /** A raw disk image or a GCE image.tar.gz. */
  image: string;
  /** The image's sha256 (given by a DiskImage, computed by check for a bare path). */
  imageSha256?: string;
  /** The kernel's target, when the image comes from a DiskImage. */
  target?: string;
  /** The devices the unikernel declares, when the image comes from a DiskImage. */
  manifest?: Device[];
  /** Host→guest forwards, as check resolved them from the ports given (rules/local.ts). */
  ports: PortForward[];
  memoryMiB: number;
  /** Attach a virtio-net NIC. Default: when the unikernel declares a network device, or ports are given. */
  net?: boolean;
  waitFor?: WaitFor;
  cacheDir?: string;
  /** `auto`, `kvm` or `tcg`; default: $PULUMI_MIRAGE_ACCEL, else auto (see local/accel.ts). */
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

/** The `ports` input as forwards (rules/local.ts), and what is wrong with it. */
function checkPorts(value: unknown): { ports: PortForward[]; problems: Problem[] } {
  if (value === undefined || value === null) return { ports: [], problems: [] };
  if (!isKnown(value)) return { ports: value as PortForward[], problems: [] };
  if (!Array.isArray(value)) {
    const reason = "must be a list like [8080, { port: 80, host: 8081 }]";
    return { ports: [], problems: [{ property: "ports", reason }] };
  }
  const { forwards, problems } = resolveForwards(value);
  return { ports: forwards, problems };
}

function declaresNet(manifest: VmInputs["manifest"]): boolean | undefined {
  if (!Array.isArray(manifest)) return undefined;
  return manifest.some((device) => device.type === "net");
}

async function check(_olds: unknown, news: Record<string, unknown>) {
  const failures: Problem[] = [];
  const image = news.image;
  let notADiskImage = false;
  if (typeof image === "string" && isKnown(image) && !news.imageSha256) {
    // A bare path must be a disk image; a DiskImage's is one.
    await diskImageFormat(image).catch((error) => {
      if (!(error instanceof NotADiskImage)) throw error;
      notADiskImage = existsSync(image);
      if (notADiskImage) failures.push({ property: "image", reason: error.message });
    });
  }
  const accel = news.accel;
  const accelProblem = accel !== undefined && isKnown(accel) && accelModeProblem(accel);
  if (accelProblem) failures.push({ property: "accel", reason: accelProblem });
  const file = notADiskImage
    ? { sha256: undefined, problems: [] }
    : await checkRunFile(
        "image",
        image,
        news.imageSha256 as string | undefined,
        "a DiskImage resource, or the path of a disk.raw or image.tar.gz",
      );
  failures.push(...file.problems);
  const target = news.target;
  if (typeof target === "string" && isKnown(target) && target !== "virtio") {
    failures.push({
      property: "image",
      reason:
        target === "xen"
          ? "holds a xen kernel, which prints only to the Xen console: run it on a Xen host with xen.Domain, or build the unikernel for virtio"
          : `holds a ${target} kernel; local.Vm boots virtio kernels (use local.Process for hvt, spt and unix)`,
    });
  }
  const memoryMiB = news.memoryMiB ?? DEFAULT_VM_MEMORY_MIB;
  const memoryProblem = isKnown(memoryMiB) && outOfBounds(memoryMiB, BOUNDS.vmMemoryMiB);
  if (memoryProblem) failures.push({ property: "memoryMiB", reason: memoryProblem });
  const { ports, problems: portProblems } = checkPorts(news.ports);
  failures.push(...portProblems);
  const manifest = news.manifest as VmInputs["manifest"];
  if (Array.isArray(ports) && ports.length > 0 && declaresNet(manifest) === false) {
    failures.push({
      property: "ports",
      reason:
        "are forwarded to a network device, but the unikernel declares none: declare a network stack in its config.ml (e.g. generic_stackv4v6 default_network) or drop ports",
    });
  }
  const { waitFor, problems: waitProblems } = checkWaitFor(news.waitFor);
  failures.push(...waitProblems);
  const inputs = definedOnly({ ...news, imageSha256: file.sha256, ports, memoryMiB, waitFor });
  return { inputs, failures };
}

async function create(inputs: VmInputs): Promise<pulumi.dynamic.CreateResult<VmOutputs>> {
  const net = inputs.net ?? declaresNet(inputs.manifest) ?? inputs.ports.length > 0;
  // createRun removes the VM and its directory if it does not start.
  return createRun("vm", inputs.cacheDir, async ({ id, dir, env }) => {
    const vm = await startVmAndWait(
      {
        image: inputs.image,
        stateDir: dir,
        env,
        accel: requestedMode(inputs.accel),
        cacheDir: inputs.cacheDir,
        memoryMiB: inputs.memoryMiB,
        net,
        forwards: inputs.ports,
        onProgress: (line) => console.log(`[local.Vm ${id}] ${line}`),
      },
      inputs.waitFor,
      `the VM booting ${inputs.image}`,
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

/**
 * read: a VM whose guest cannot go on (KVM stopped it, it panicked) is not running, though its
 * QEMU is: it is stopped and its files go, as for one that exited (readRun).
 */
async function read(id: string, props: VmOutputs): Promise<pulumi.dynamic.ReadResult<VmOutputs>> {
  const halted = isRunning(props) ? await vmHalted(props) : undefined;
  if (halted === undefined) return readRun(id, props);
  console.log(`[local.Vm ${id}] ${halted}: the VM is gone; the next update starts a new one`);
  await deleteRun(props);
  return { id: "" };
}

const lifecycle = runLifecycle<VmInputs, VmOutputs>(REPLACING);

export const provider = {
  check,
  create,
  ...lifecycle,
  read,
  // The state's `accel` is the accelerator used; the mode asked for is `accelMode`.
  diff: (id: string, olds: VmInputs & Pick<VmOutputs, "accelMode">, news: VmInputs) =>
    lifecycle.diff(id, { ...olds, accel: olds.accelMode } as VmInputs, news),
};

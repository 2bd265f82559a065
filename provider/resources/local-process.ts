// local.Process: a unikernel run as a local background process: hvt and spt kernels under their
// Solo5 tender (`solo5-hvt`, `solo5-spt`), unix builds as plain programs. It outlives the dynamic
// provider; every input except `waitFor` replaces it. The devices an hvt/spt kernel declares are
// attached as local/solo5-devices.ts says; hvt needs a usable /dev/kvm.
import { existsSync } from "node:fs";
import type * as pulumi from "@pulumi/pulumi";
import { BOUNDS, outOfBounds } from "../../rules/bounds";
import { PROCESS_TARGETS, type ProcessTarget } from "../../rules/local";
import type { Problem } from "../../rules/problem";
import type { Device } from "../../rules/targets";
import { isKnown } from "../../rules/values";
import { startBackground } from "../core/background";
import { findExecutable } from "../core/exec";
import { inspectKernel } from "../kernel/inspect";
import { netnsProblem } from "../local/netif";
import { kvmUsable } from "../local/qemu";
import {
  awaitStarted,
  checkRunFile,
  checkWaitFor,
  consoleHead,
  createRun,
  type RunOutputs,
  type WaitFor,
} from "../local/run";
import {
  type BlockAttachment,
  checkAttachments,
  createBlockFiles,
  type NetAttachment,
  tenderDeviceArgs,
} from "../local/solo5-devices";
import { definedOnly, message } from "./inputs";
import { runLifecycle } from "./run-lifecycle";

export interface ProcessInputs {
  /** The kernel binary (a unix build is an ordinary executable). */
  kernel: string;
  /** The kernel's sha256 (given by a Unikernel, computed by check for a bare path). */
  kernelSha256?: string;
  target: ProcessTarget;
  /** Arguments the unikernel receives. */
  args: string[];
  /** The Solo5 tender for hvt/spt, resolved to its path by check. */
  tender?: string;
  /** Guest memory for hvt/spt (the tender's --mem); default: the tender's own. */
  memoryMiB?: number;
  /** The devices the kernel declares (given by a Unikernel, read from the file by check). */
  manifest?: Device[];
  /** A tap interface for each network device the kernel declares. */
  net?: Record<string, NetAttachment>;
  /** A file for each block device the kernel declares. */
  block?: Record<string, BlockAttachment>;
  /** The network namespace the tender runs in, where its taps are (`ip netns`); default: ours. */
  netns?: string;
  waitFor?: WaitFor;
  cacheDir?: string;
}

export interface ProcessOutputs extends ProcessInputs, RunOutputs {
  /** Where the process's output (stdout and stderr) goes. */
  consoleLog: string;
  /** The first lines of its output, once it started (and matched `waitFor`). */
  console: string[];
}

const REPLACING: (keyof ProcessInputs)[] = [
  "kernel",
  "kernelSha256",
  "target",
  "args",
  "tender",
  "memoryMiB",
  "manifest",
  "net",
  "block",
  "netns",
  "cacheDir",
];

function checkTender(
  target: ProcessTarget,
  tender: unknown,
  failures: Problem[],
): string | undefined {
  if (target === "unix") {
    if (tender !== undefined && tender !== null)
      failures.push({
        property: "tender",
        reason:
          "tender is for hvt and spt kernels; a unix build runs as a plain program: drop tender",
      });
    return undefined;
  }
  if (!isKnown(tender)) return tender as string;
  const wanted = typeof tender === "string" && tender !== "" ? tender : `solo5-${target}`;
  const found = findExecutable(wanted);
  if (!found)
    failures.push({
      property: "tender",
      reason:
        `${target} kernels run under the Solo5 tender solo5-${target}, and ${wanted} is not ` +
        `${wanted.includes("/") ? "an executable file" : "on PATH"}: install Solo5 ` +
        `(\`opam install solo5\` puts solo5-hvt and solo5-spt in the opam switch's bin/), ` +
        "or give the tender's path as `tender`",
    });
  return found;
}

async function check(_olds: unknown, news: Record<string, unknown>) {
  const kernel = news.kernel;
  const { sha256: kernelSha256, problems: failures } = await checkRunFile(
    "kernel",
    kernel,
    news.kernelSha256 as string | undefined,
    "a Unikernel resource, or the path of a kernel binary",
  );
  const target = news.target as ProcessTarget;
  let tender: string | undefined;
  if (isKnown(target)) {
    if (!(PROCESS_TARGETS as readonly string[]).includes(target)) {
      failures.push({
        property: "target",
        reason:
          `${JSON.stringify(target)} cannot run as a local process: local.Process runs hvt, spt ` +
          "and unix kernels (a virtio kernel boots in local.Vm from a DiskImage)",
      });
    } else {
      tender = checkTender(target, news.tender, failures);
    }
  }
  const args = news.args ?? [];
  if (isKnown(args) && !(Array.isArray(args) && args.every((arg) => typeof arg === "string"))) {
    failures.push({
      property: "args",
      reason: 'args must be a list of strings, e.g. ["--hello=Hi"]',
    });
  }
  const memoryMiB = news.memoryMiB;
  if (memoryMiB !== undefined && isKnown(memoryMiB)) {
    if (target === "unix")
      failures.push({
        property: "memoryMiB",
        reason: "memoryMiB is for hvt and spt kernels: drop it for unix",
      });
    else {
      const problem = outOfBounds(memoryMiB, BOUNDS.tenderMemoryMiB);
      if (problem) failures.push({ property: "memoryMiB", reason: problem });
    }
  }
  let devices: Pick<ProcessInputs, "manifest" | "net" | "block"> = {};
  if (target === "hvt" || target === "spt") {
    if (target === "hvt") checkKvm(failures);
    const manifest = await kernelManifest(kernel, target, news.manifest, failures);
    const netns = checkNetns(news.netns, failures);
    const { attachments, problems } = await checkAttachments(news.net, news.block, manifest, netns);
    failures.push(...problems);
    devices = { manifest, ...attachments };
  } else if (isKnown(target)) {
    for (const property of ["net", "block", "netns"] as const)
      if (news[property] !== undefined && news[property] !== null)
        failures.push({
          property,
          reason: `${property} attaches Solo5 devices to hvt and spt kernels; a ${target} program uses the host's own: drop ${property}`,
        });
  }
  const { waitFor, problems: waitProblems } = checkWaitFor(news.waitFor);
  failures.push(...waitProblems);
  return {
    inputs: definedOnly({ ...news, kernelSha256, args, tender, ...devices, waitFor }),
    failures,
  };
}

/** The `netns` input: undefined (ours), or a namespace that exists. */
function checkNetns(value: unknown, failures: Problem[]): string | undefined {
  if (value === undefined || value === null || !isKnown(value)) return undefined;
  const problem = typeof value === "string" ? netnsProblem(value) : "netns must be a string";
  if (problem) failures.push({ property: "netns", reason: problem });
  return problem ? undefined : (value as string);
}

/**
 * hvt kernels run on KVM: refuse them at preview when /dev/kvm cannot be opened read-write,
 * which the tender does first thing (spt needs only seccomp).
 */
function checkKvm(failures: Problem[]): void {
  if (kvmUsable()) return;
  const why = existsSync("/dev/kvm")
    ? "/dev/kvm cannot be opened read-write by this user (add it to the kvm group)"
    : "this machine has no /dev/kvm (no KVM, or nested virtualization is off)";
  failures.push({
    property: "target",
    reason:
      `hvt kernels run on KVM, and ${why}: build the unikernel for spt ` +
      "(`mirage configure -t spt`), which runs as a seccomp-sandboxed process and needs no KVM",
  });
}

/**
 * The devices the kernel declares: as its Unikernel gave them, else read from the file, which
 * must be a Solo5 kernel for `target`. Undefined while unknown (preview).
 */
async function kernelManifest(
  kernel: unknown,
  target: "hvt" | "spt",
  given: unknown,
  failures: Problem[],
): Promise<Device[] | undefined> {
  if (given !== undefined && given !== null)
    return isKnown(given) ? (given as Device[]) : undefined;
  if (typeof kernel !== "string" || !isKnown(kernel) || !existsSync(kernel)) return undefined;
  try {
    const info = await inspectKernel(kernel);
    if (info.solo5.target !== target) {
      failures.push({
        property: "kernel",
        reason: `kernel ${kernel} is a Solo5 ${info.solo5.target} kernel, not ${target}: give target ${JSON.stringify(info.solo5.target)} or a kernel built with \`mirage configure -t ${target}\``,
      });
    }
    return info.manifest.devices;
  } catch (error) {
    failures.push({ property: "kernel", reason: message(error) });
    return undefined;
  }
}

/**
 * The program to run and its arguments; the tender's CLI (docs/platforms.md, Solo5 tenders) is
 * `TENDER [--mem=MB] [--net:NAME=IFACE [--net-mac:NAME=HWADDR]]... [--block:NAME=PATH
 * [--block-sector-size:NAME=N]]... -- KERNEL ARGS...`.
 */
function commandFor(inputs: ProcessInputs): string[] {
  if (inputs.target === "unix") return [inputs.kernel, ...inputs.args];
  const memory = inputs.memoryMiB === undefined ? [] : [`--mem=${inputs.memoryMiB}`];
  // `ip netns exec` enters the namespace and execs the tender: the pid stays the tender's.
  const netns = inputs.netns === undefined ? [] : ["ip", "netns", "exec", inputs.netns];
  return [
    ...netns,
    inputs.tender ?? `solo5-${inputs.target}`,
    ...memory,
    ...tenderDeviceArgs(inputs),
    "--",
    inputs.kernel,
    ...inputs.args,
  ];
}

async function create(inputs: ProcessInputs): Promise<pulumi.dynamic.CreateResult<ProcessOutputs>> {
  const command = commandFor(inputs);
  // createRun removes the process and its directory if it does not start.
  return createRun("process", inputs.cacheDir, async ({ id, dir, env }) => {
    const consoleLog = `${dir}/console.log`;
    await createBlockFiles(inputs.block);
    const started = await startBackground(command[0], command.slice(1), {
      logFile: consoleLog,
      cwd: dir,
      env,
    });
    await awaitStarted(
      `${inputs.kernel} (${inputs.target})`,
      started,
      consoleLog,
      inputs.waitFor,
      async () => [],
    );
    return {
      id,
      outs: definedOnly({
        ...inputs,
        ...started,
        stateDir: dir,
        consoleLog,
        console: await consoleHead(consoleLog),
      }),
    };
  });
}

export const provider = {
  check,
  create,
  ...runLifecycle<ProcessInputs, ProcessOutputs>(REPLACING),
};

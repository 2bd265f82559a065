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
import { given, isKnown, UNKNOWN } from "../../rules/values";
import { inspectKernel } from "../kernel/inspect";
import {
  checkSolo5Run,
  checkTender,
  kernelDevices,
  type ProcessSpec,
  startProcess,
} from "../local/process";
import {
  awaitStarted,
  checkRunFile,
  checkWaitFor,
  consoleHead,
  createRun,
  type RunOutputs,
  type WaitFor,
} from "../local/run";
import { RESOURCE_SPELLING } from "../local/solo5-devices";
import { definedOnly, message } from "./inputs";
import { runLifecycle } from "./run-lifecycle";

/** The kernel, its target, arguments, tender and devices (local/process.ts), and the resource's own. */
export interface ProcessInputs extends ProcessSpec {
  /** The kernel's sha256 (given by a Unikernel, computed by check for a bare path). */
  kernelSha256?: string;
  /** The devices the kernel declares (given by a Unikernel, read from the file by check). */
  manifest?: Device[];
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

async function check(_olds: unknown, news: Record<string, unknown>) {
  const kernel = news.kernel;
  const { sha256: kernelSha256, problems: failures } = await checkRunFile(
    "kernel",
    kernel,
    news.kernelSha256 as string | undefined,
    "a Unikernel resource, or the path of a kernel binary",
  );
  const target = (await targetOf(kernel, news.target, failures)) as ProcessTarget;
  // Undefined: the kernel could not say, and that is reported.
  const known = target !== undefined && isKnown(target);
  let tender: string | undefined;
  if (known) {
    if (!(PROCESS_TARGETS as readonly string[]).includes(target)) {
      failures.push({
        property: "target",
        reason:
          `${JSON.stringify(target)} cannot run as a local process: local.Process runs hvt, spt ` +
          "and unix kernels (a virtio kernel boots in local.Vm from a DiskImage)",
      });
    } else {
      tender = checkTender(target, news.tender, RESOURCE_SPELLING, failures);
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
    const manifest = await kernelManifest(kernel, target, news.manifest, failures);
    const netns = netnsInput(news.netns, failures);
    const attachments = await checkSolo5Run(
      target,
      { net: news.net, block: news.block, manifest, netns },
      RESOURCE_SPELLING,
      failures,
    );
    devices = { manifest, ...attachments };
  } else if (known) {
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
    inputs: definedOnly({ ...news, kernelSha256, target, args, tender, ...devices, waitFor }),
    failures,
  };
}

/**
 * The target: as given, else read from a kernel path's Solo5 ABI1 note, as Unikernel reads a
 * prebuilt kernel's (a unix build carries none, so it needs `target: "unix"`). Unknown at preview
 * while the path is; undefined, with the kernel's problem, when the file cannot say.
 */
async function targetOf(kernel: unknown, target: unknown, failures: Problem[]): Promise<unknown> {
  if (given(target)) return target;
  if (typeof kernel !== "string" || !isKnown(kernel)) return UNKNOWN;
  // A missing file is checkRunFile's to report.
  if (!existsSync(kernel)) return undefined;
  try {
    return (await inspectKernel(kernel)).solo5.target;
  } catch (error) {
    failures.push({
      property: "kernel",
      reason: `${message(error)}; for a unix build, give target: "unix"`,
    });
    return undefined;
  }
}

/** The `netns` input as a name (checkSolo5Run checks it), or undefined (ours, or unknown yet). */
function netnsInput(value: unknown, failures: Problem[]): string | undefined {
  if (value === undefined || value === null || !isKnown(value)) return undefined;
  if (typeof value === "string") return value;
  failures.push({ property: "netns", reason: "netns must be a string" });
  return undefined;
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
  return kernelDevices(kernel, target, failures);
}

async function create(inputs: ProcessInputs): Promise<pulumi.dynamic.CreateResult<ProcessOutputs>> {
  // createRun removes the process and its directory if it does not start.
  return createRun("process", inputs.cacheDir, async ({ id, dir, env }) => {
    const started = await startProcess(inputs, { stateDir: dir, env });
    await awaitStarted(
      `${inputs.kernel} (${inputs.target})`,
      started,
      started.consoleLog,
      inputs.waitFor,
      async () => [],
    );
    return {
      id,
      outs: definedOnly({
        ...inputs,
        pid: started.pid,
        startTime: started.startTime,
        stateDir: dir,
        consoleLog: started.consoleLog,
        console: await consoleHead(started.consoleLog),
      }),
    };
  });
}

export const provider = {
  check,
  create,
  ...runLifecycle<ProcessInputs, ProcessOutputs>(REPLACING),
};

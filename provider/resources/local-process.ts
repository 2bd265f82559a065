// local.Process: a unikernel run as a local background process: hvt and spt kernels under their
// Solo5 tender (`solo5-hvt`, `solo5-spt`), unix builds as plain programs. It outlives the dynamic
// provider; every input except `waitFor` replaces it.
import { rm } from "node:fs/promises";
import type * as pulumi from "@pulumi/pulumi";
import { startBackground } from "../background";
import { findExecutable } from "../exec";
import {
  awaitStarted,
  checkRunFile,
  checkWaitFor,
  consoleHead,
  definedOnly,
  newRun,
  type RunOutputs,
  runLifecycle,
  type WaitFor,
} from "../local-run";
import { BOUNDS, outOfBounds } from "./bounds";
import { isKnown } from "./inputs";

export type ProcessTarget = "hvt" | "spt" | "unix";
const TARGETS: readonly string[] = ["hvt", "spt", "unix"];

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
  "cacheDir",
];

function checkTender(
  target: ProcessTarget,
  tender: unknown,
  failures: pulumi.dynamic.CheckFailure[],
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
  const failures: pulumi.dynamic.CheckFailure[] = [];
  const kernel = news.kernel;
  const kernelSha256 = await checkRunFile(
    "kernel",
    kernel,
    news.kernelSha256 as string | undefined,
    "a Unikernel resource, or the path of a kernel binary",
    failures,
  );
  const target = news.target as ProcessTarget;
  let tender: string | undefined;
  if (isKnown(target)) {
    if (!TARGETS.includes(target)) {
      failures.push({
        property: "target",
        reason:
          `target ${JSON.stringify(target)} cannot run as a local process: local.Process runs hvt, spt ` +
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
      if (problem) failures.push({ property: "memoryMiB", reason: `memoryMiB ${problem}` });
    }
  }
  const waitFor = checkWaitFor(news.waitFor, failures);
  return { inputs: definedOnly({ ...news, kernelSha256, args, tender, waitFor }), failures };
}

/** The program to run and its arguments: the tender's CLI is `TENDER [--mem=MB] -- KERNEL ARGS...`. */
function commandFor(inputs: ProcessInputs): string[] {
  if (inputs.target === "unix") return [inputs.kernel, ...inputs.args];
  const memory = inputs.memoryMiB === undefined ? [] : [`--mem=${inputs.memoryMiB}`];
  return [
    inputs.tender ?? `solo5-${inputs.target}`,
    ...memory,
    "--",
    inputs.kernel,
    ...inputs.args,
  ];
}

async function create(inputs: ProcessInputs): Promise<pulumi.dynamic.CreateResult<ProcessOutputs>> {
  const { id, dir } = await newRun("process", inputs.cacheDir);
  const consoleLog = `${dir}/console.log`;
  const command = commandFor(inputs);
  let started: Awaited<ReturnType<typeof startBackground>>;
  try {
    started = await startBackground(command[0], command.slice(1), {
      logFile: consoleLog,
      cwd: dir,
    });
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
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
}

export const provider = {
  check,
  create,
  ...runLifecycle<ProcessInputs, ProcessOutputs>(REPLACING),
};

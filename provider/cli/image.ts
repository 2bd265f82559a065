// `pulumi-mirage image KERNEL --out DIR [--format raw|gce|aws] [-- BOOTARG...]`: checks the kernel
// against the format as DiskImage does, builds the image and prints one JSON line with each
// file's path and size (and the disk's block map digest, the archive's sha256) and the seconds
// taken.
import { constants } from "node:os";
import {
  checkPlatform,
  type ImageFormat,
  imageFormatProblem,
  type PlatformFields,
} from "../../rules/platform";
import { describeProblem } from "../../rules/problem";
import { ImageError } from "../image/errors";
import { inspectImageKernel, planImage } from "../image/make";
import { publishImage } from "../image/publish";
import type { KernelInfo } from "../kernel/inspect";

export interface ImageCommandArgs {
  kernel: string;
  outDir: string;
  format: ImageFormat;
  bootArgs: string[];
}

/** Parses the arguments after `image`; throws `usageError(message)` on wrong ones. */
export function parseImageArgs(
  args: readonly string[],
  usageError: (message: string) => Error,
): ImageCommandArgs {
  const separator = args.indexOf("--");
  const own = separator === -1 ? args : args.slice(0, separator);
  const bootArgs = separator === -1 ? [] : args.slice(separator + 1);
  let kernel: string | undefined;
  let outDir: string | undefined;
  let format: ImageFormat = "raw";
  for (let i = 0; i < own.length; i++) {
    const arg = own[i];
    const [flag, inline] = arg.startsWith("--") ? arg.split(/=(.*)/s, 2) : [arg, undefined];
    const value = () => {
      if (inline !== undefined) return inline;
      const next = own[++i];
      if (next === undefined) throw usageError(`${flag} needs a value`);
      return next;
    };
    if (flag === "--out") outDir = value();
    else if (flag === "--format") {
      const given = value();
      const problem = imageFormatProblem(given);
      if (problem !== undefined)
        throw usageError(describeProblem({ property: "--format", reason: problem }));
      format = given as ImageFormat;
    } else if (arg.startsWith("-"))
      throw usageError(`unknown option ${arg} (boot arguments go after --)`);
    else if (kernel === undefined) kernel = arg;
    else throw usageError(`unexpected argument ${arg} (boot arguments go after --)`);
  }
  if (kernel === undefined) throw usageError("KERNEL is missing");
  if (outDir === undefined) throw usageError("--out DIR is missing");
  return { kernel, outDir, format, bootArgs };
}

/** How the command's users name the fields the platform check talks about. */
const OPTIONS: PlatformFields = { kernel: "KERNEL", format: "--format", value: (format) => format };

/**
 * The platform check DiskImage makes at preview, before anything is written: refusals throw,
 * naming KERNEL or `--format VALUE`; warnings go to stderr. Returns the kernel's inspection.
 */
async function checkKernelFor(args: ImageCommandArgs): Promise<KernelInfo> {
  const info = await inspectImageKernel(args.kernel);
  const { problems, warnings } = checkPlatform(
    { target: info.solo5.target, manifest: info.manifest.devices },
    args.format,
    OPTIONS,
  );
  for (const line of warnings) process.stderr.write(`pulumi-mirage image: ${line}\n`);
  if (problems.length > 0) {
    const named = (field: string) =>
      field === OPTIONS.format ? `--format ${args.format}` : args.kernel;
    throw new ImageError(problems.map((p) => `${named(p.field)}: ${p.reason}`).join("\n"));
  }
  return info;
}

/** Runs the command; an interrupt (Ctrl-C, SIGTERM) stops the tools and leaves DIR clean. */
export async function runImageCommand(args: ImageCommandArgs): Promise<number> {
  const controller = new AbortController();
  const interrupted: NodeJS.Signals[] = [];
  const onSignal = (signal: NodeJS.Signals) => {
    interrupted.push(signal);
    controller.abort(new Error(`interrupted by ${signal}`));
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  try {
    const info = await checkKernelFor(args);
    const plan = await planImage(args.kernel, args.format, args.bootArgs, info);
    const result = await publishImage(plan, args.outDir, {
      signal: controller.signal,
      onProgress: (line) => process.stderr.write(`pulumi-mirage ${line}\n`),
    });
    const { disk, archive, seconds } = result;
    process.stdout.write(`${JSON.stringify({ disk, ...(archive ? { archive } : {}), seconds })}\n`);
    return 0;
  } catch (error) {
    if (interrupted.length > 0) {
      process.stderr.write(
        `pulumi-mirage image: interrupted by ${interrupted[0]}; nothing written\n`,
      );
      return 128 + constants.signals[interrupted[0]];
    }
    throw error;
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}

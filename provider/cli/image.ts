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
import { type CommandSpec, flagValue, readCommandLine } from "./usage";

export interface ImageCommandArgs {
  kernel: string;
  outDir: string;
  format: ImageFormat;
  bootArgs: string[];
}

export const IMAGE_COMMAND: CommandSpec = {
  args: "KERNEL",
  summary:
    "Make a bootable BIOS disk from a virtio kernel (formats raw, gce) or a xen kernel (raw, " +
    "aws), after the checks a DiskImage makes: DIR/disk.raw, and for gce DIR/image.tar.gz too. " +
    "BOOTARGs are the unikernel's boot arguments. Prints JSON on stdout: each file's path and " +
    "size, the disk's mapDigest (the sha256 of its block map, which identifies its content) and " +
    "the archive's sha256; progress goes to stderr.",
  rest: "BOOTARG...",
  flags: [
    { name: "out", value: "DIR", help: "the directory to write into (required)." },
    {
      name: "format",
      value: "FORMAT",
      help: "raw (default: a disk.raw for QEMU or Xen), gce (a Compute Engine image.tar.gz) or aws (a disk.raw for an EC2 snapshot).",
    },
  ],
  examples: [
    "pulumi-mirage image dist/hello.virtio --out out --format gce -- --hello=Hi",
    "pulumi-mirage image dist/hello.xen --out out-aws --format aws",
  ],
};

/** Parses the arguments after `image`; throws `usageError(message)` on wrong ones. */
export function parseImageArgs(
  args: readonly string[],
  usageError: (message: string) => Error,
): ImageCommandArgs {
  let line: ReturnType<typeof readCommandLine>;
  try {
    line = readCommandLine(args, IMAGE_COMMAND);
  } catch (error) {
    throw usageError((error as Error).message);
  }
  const [kernel, ...extra] = line.positionals;
  if (extra.length > 0)
    throw usageError(`unexpected argument ${extra[0]} (boot arguments go after --)`);
  if (kernel === undefined) throw usageError("KERNEL is missing");
  const outDir = flagValue(line, "out");
  if (outDir === undefined) throw usageError("--out DIR is missing");
  const format = flagValue(line, "format") ?? "raw";
  const problem = imageFormatProblem(format);
  if (problem !== undefined)
    throw usageError(describeProblem({ property: "--format", reason: problem }));
  return { kernel, outDir, format: format as ImageFormat, bootArgs: line.rest };
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

// The engine side of `DiskImage` (sdk/disk-image.ts): check refuses kernels a format cannot boot
// and computes the content-addressed objectName (so a preview shows the exact name dependents
// will use), create serves the image from the cache or builds it with provider/image; diff, read
// and delete are storedFileProvider's (inputs.ts): a replacement when that name changes or a
// refresh found the cached image gone or changed. Boot arguments may be secret: they never reach
// a log line or an error message, and the `bootArgs` output stays secret because its input was.
//
// The `sha256` output is the stored file's sha256, as it always was: local.Vm and EbsSnapshot
// states hold it (a new value replaces them) and users may check a download against it. For gce
// the file is the archive, hashed as it is written; for raw and aws it is the disk, the one place
// a full 1 GiB disk is hashed, once per image built (a cache hit or a refresh reads only the
// disk's data: the cache checks images by their block map).
import { randomBytes } from "node:crypto";
import { basename, extname, join } from "node:path";
import type * as pulumi from "@pulumi/pulumi";
import { imageFormatProblem, type PlatformFields } from "../../rules/platform";
import type { Device } from "../../rules/targets";
import { given, isKnown, UNKNOWN } from "../../rules/values";
import {
  cacheDir,
  type Entry,
  logsDir,
  lookup,
  store,
  withEntryLock,
  workDir,
} from "../core/cache";
import { sha256, sha256File } from "../core/hash";
import { withScratch } from "../core/scratch";
import {
  checkBootArgs,
  checkPlatform,
  IMAGE_LAYOUT_VERSION,
  type ImageFormat,
  makeImage,
  planImage,
} from "../image/index";
import { inspectKernel } from "../kernel/inspect";
import { plainName } from "../mirage/project";
import { message, storedFileProvider } from "./inputs";

export interface DiskImageProps {
  kernelPath: string;
  /** The kernel's sha256 (a Unikernel's output, or computed by check for a path). */
  kernelSha256?: string;
  /** A Unikernel's fingerprint: known at preview, before the kernel is built. */
  kernelId?: string;
  unikernelName?: string;
  target?: string;
  manifest?: Device[];
  format: ImageFormat;
  bootArgs: string[];
  /** Some boot argument is secret (the SDK asks the engine): objectName must not reveal it. */
  bootArgsSecret?: boolean;
  cacheDir?: string;
  resourceName?: string;
  // Computed by check.
  name: string;
  objectName: string;
  /**
   * With secret boot arguments: random bytes mixed into objectName, kept (secret) in the state so
   * the name stays the same across updates, and so that no guess of a secret can be checked
   * against the public name offline.
   */
  nameSalt?: string;
  // Computed by create.
  path?: string;
  sha256?: string;
  size?: number;
}

const USER_INPUTS = [
  "kernelPath",
  "kernelSha256",
  "kernelId",
  "unikernelName",
  "target",
  "manifest",
  "format",
  "bootArgs",
  "bootArgsSecret",
  "cacheDir",
  "resourceName",
] as const;
/** The inputs objectName covers: a change to one of these is why a replacement happens. */
const IMAGE_INPUTS = ["kernelSha256", "kernelId", "format", "bootArgs"] as const;

type Failure = pulumi.dynamic.CheckFailure;

/**
 * `text` with every boot argument (and the value part of `--key=value`) replaced by a reference
 * to it, for messages that might quote one: any of them may be secret.
 */
function redact(text: string, bootArgs: readonly unknown[]): string {
  let result = text;
  bootArgs.forEach((arg, i) => {
    // Shorter ones (`-l`) are flags, not secrets, and replacing them would garble the text.
    if (typeof arg !== "string" || arg.length < 3) return;
    const value = arg.includes("=") ? arg.slice(arg.indexOf("=") + 1) : "";
    for (const secret of [JSON.stringify(arg), arg, ...(value.length >= 3 ? [value] : [])]) {
      result = result.split(secret).join(`<bootArgs[${i}]>`);
    }
  });
  return result;
}

/**
 * `NAME-SHA12.tar.gz` (gce) or `NAME-SHA12.raw`: what the image is made from, in its name. With
 * a salt (secret boot arguments) the name is no longer a function of the inputs alone.
 */
function objectNameFor(
  name: string,
  kernel: string,
  format: ImageFormat,
  bootArgs: readonly string[],
  salt: string | undefined,
): string {
  const sha12 = sha256(
    JSON.stringify({ layout: IMAGE_LAYOUT_VERSION, kernel, format, bootArgs, salt }),
  ).slice(0, 12);
  return `${plainName(name)}-${sha12}${format === "gce" ? ".tar.gz" : ".raw"}`;
}

function checkBootArgList(bootArgs: unknown, failures: Failure[]): void {
  if (!isKnown(bootArgs)) return;
  if (!Array.isArray(bootArgs) || bootArgs.some((a) => isKnown(a) && typeof a !== "string")) {
    failures.push({ property: "bootArgs", reason: "must be a list of strings" });
    return;
  }
  try {
    // An unknown argument is checked when it is known; a plain word keeps the others' indexes.
    checkBootArgs(bootArgs.map((a) => (isKnown(a) ? (a as string) : "x")));
  } catch (error) {
    failures.push({ property: "bootArgs", reason: redact(message(error), bootArgs) });
  }
}

/** A kernel given by path: what it is, read from the file (or failures). */
async function inspectPath(kernelPath: string, failures: Failure[]) {
  try {
    const info = await inspectKernel(kernelPath);
    return {
      target: info.solo5.target as string,
      manifest: info.manifest.devices.map(({ name, type }) => ({ name, type })),
      unikernelName: plainName(basename(kernelPath, extname(kernelPath))),
      kernelSha256: await sha256File(kernelPath),
    };
  } catch (error) {
    failures.push({ property: "kernel", reason: message(error) });
    return undefined;
  }
}

/** How DiskImage's users name the fields the platform check talks about. */
const PROPERTIES: PlatformFields = {
  kernel: "kernel",
  format: "format",
  value: (format) => JSON.stringify(format),
};

/** The salt of secret boot arguments: the one already in the state, else a new one (128 bits). */
function saltFor(olds: Record<string, unknown>, news: Record<string, unknown>) {
  if (news.bootArgsSecret !== true) return undefined;
  const kept = olds.nameSalt ?? news.nameSalt;
  return typeof kept === "string" && /^[0-9a-f]{32}$/.test(kept)
    ? kept
    : randomBytes(16).toString("hex");
}

async function check(olds: Record<string, unknown>, news: Record<string, unknown>) {
  const failures: Failure[] = [];
  const props: Record<string, unknown> = {};
  for (const key of USER_INPUTS) if (news[key] !== undefined) props[key] = news[key];
  // The SDK's placeholder, secret when a boot argument is: kept, so the engine keeps the output
  // of the same name secret too (create replaces it; diff ignores it).
  if (news.sha256 !== undefined) props.sha256 = news.sha256;
  const label = `[disk-image ${String(news.resourceName ?? "")}]`;
  const format = news.format ?? "raw";
  props.format = format;
  const formatProblem = isKnown(format) && imageFormatProblem(format);
  if (formatProblem) failures.push({ property: "format", reason: formatProblem });
  const bootArgs = news.bootArgs ?? [];
  props.bootArgs = bootArgs;
  checkBootArgList(bootArgs, failures);

  const fromResource = news.kernelId !== undefined;
  if (!given(news.kernelPath)) {
    failures.push({
      property: "kernel",
      reason: "give a Unikernel or the path of a kernel binary",
    });
  } else if (!fromResource && isKnown(news.kernelPath)) {
    Object.assign(props, await inspectPath(news.kernelPath as string, failures));
  }
  const { target, manifest } = props as Partial<DiskImageProps>;
  if (failures.length === 0 && isKnown(target) && target && isKnown(format)) {
    const known = isKnown(manifest) && Array.isArray(manifest) ? manifest : undefined;
    const { problems, warnings } = checkPlatform(
      { target, manifest: known },
      format as ImageFormat,
      PROPERTIES,
    );
    for (const { field, reason } of problems) failures.push({ property: field, reason });
    for (const line of warnings) console.log(`${label} ${line}`);
  }

  const name = props.unikernelName ?? (fromResource ? undefined : UNKNOWN);
  const identity = fromResource ? news.kernelId : props.kernelSha256;
  const known = [name, identity, format, bootArgs].every(isKnown);
  const argsKnown = Array.isArray(bootArgs) && bootArgs.every(isKnown);
  props.name = isKnown(name) && name !== undefined ? name : UNKNOWN;
  const salt = saltFor(olds ?? {}, news);
  if (salt) props.nameSalt = salt;
  props.objectName =
    known && argsKnown && name !== undefined && failures.length === 0
      ? objectNameFor(
          String(name),
          String(identity),
          format as ImageFormat,
          bootArgs as string[],
          salt,
        )
      : UNKNOWN;
  return { inputs: props, failures };
}

/** Builds the image in a scratch directory and stores it in the cache under its objectName. */
async function build(dir: string, props: DiskImageProps, label: string): Promise<Entry> {
  if (props.kernelSha256 && (await sha256File(props.kernelPath)) !== props.kernelSha256) {
    throw new Error(
      `the kernel ${props.kernelPath} is not the one this image was planned for (its sha256 changed): run the update again`,
    );
  }
  // Check has refused what the format cannot take; the plan reads what check could not see (a
  // Unikernel's kernel is built after its preview) and guards the bootloader configuration.
  const plan = await planImage(props.kernelPath, props.format, props.bootArgs);
  const started = Date.now();
  const stamp = new Date(started).toISOString().replace(/[:.]/g, "-");
  const logFile = join(await logsDir(dir), `${props.objectName}-${stamp}.log`);
  return withScratch({ name: "image", parent: await workDir(dir) }, async (scratch) => {
    const made = await makeImage(plan, scratch, {
      logFile,
      onProgress: (line) => console.log(`${label} ${redact(line, props.bootArgs)}`),
      place: dir,
    });
    const entry = await store(dir, "image", props.objectName, (made.archive ?? made.disk).path, {
      fileName: props.objectName,
      move: true,
      // gce: the archive's, taken as it was written; raw and aws: made by store (see the top).
      sha256: made.archive?.sha256,
      mapDigest: made.archive ? undefined : made.disk.mapDigest,
      // With a secret boot argument, objectName is salted and the hash is secret: so is the path.
      folder: props.bootArgsSecret ? props.objectName : undefined,
      meta: { target: made.target },
    });
    console.log(`${label} ${props.objectName}: ${((Date.now() - started) / 1000).toFixed(1)} s`);
    return entry;
  });
}

async function produce(props: DiskImageProps) {
  const dir = cacheDir(props.cacheDir);
  const label = `[disk-image ${props.resourceName ?? props.name}]`;
  let entry: Entry;
  try {
    entry =
      (await lookup(dir, "image", props.objectName)) ??
      (await withEntryLock(
        dir,
        "image",
        props.objectName,
        async () =>
          (await lookup(dir, "image", props.objectName)) ?? (await build(dir, props, label)),
      ));
  } catch (error) {
    // Tool output and messages may quote the boot arguments, which may be secret.
    throw new Error(redact(message(error), props.bootArgs));
  }
  const outs: DiskImageProps = {
    ...props,
    path: entry.path,
    sha256: entry.sha256,
    size: entry.size,
  };
  return { id: props.objectName, outs };
}

export const provider = storedFileProvider({
  kind: "image",
  inputs: USER_INPUTS,
  identity: "objectName",
  identityInputs: IMAGE_INPUTS,
  pathKey: "path",
  check,
  produce,
});

// The engine side of `Unikernel` (sdk/unikernel.ts): check validates and fingerprints (fast, no
// build: it runs on every preview); create and update get the kernel from the cache or build it.
// Diff, read and delete are storedFileProvider's (inputs.ts): a replacement when the fingerprint
// changes or a refresh found the cached kernel gone or changed; delete leaves the cache entry.
import type { Stats } from "node:fs";
import { stat } from "node:fs/promises";
import { basename, extname } from "node:path";
import type * as pulumi from "@pulumi/pulumi";
import { BOUNDS, outOfBounds } from "../../rules/bounds";
import { type Device, isTarget, TARGETS, type Target } from "../../rules/targets";
import { given, isKnown, UNKNOWN } from "../../rules/values";
import { cacheDir, type Entry, lookup, store, withEntryLock } from "../core/cache";
import { sha256, sha256File } from "../core/hash";
import { inspectKernel } from "../kernel/inspect";
import { kernelFor } from "../mirage/build";
import { combineFingerprint, hashSourceTree } from "../mirage/fingerprint";
import { configureArgsProblem, plainName, unikernelName } from "../mirage/project";
import {
  findMirage,
  mirageVersion,
  switchVersions as readSwitchVersions,
  switchPrefix,
} from "../mirage/toolchain";
import { message, storedFileProvider } from "./inputs";

/** What the resource's state holds: the user's inputs, what check computes, what create adds. */
export interface UnikernelProps {
  source?: string;
  kernel?: string;
  target: Target;
  configureArgs?: string[];
  mirage?: string;
  /** false: `mirage configure --no-depext` (opam installs no system packages). */
  depexts?: boolean;
  buildTimeoutMinutes?: number;
  cacheDir?: string;
  /** The Pulumi resource's name, for progress lines. */
  resourceName?: string;
  // Computed by check.
  fingerprint: string;
  name: string;
  mirageVersion: string;
  /** Solo5 and ocaml-solo5 versions of mirage's opam switch (none outside opam). */
  switchVersions?: Record<string, string>;
  // Computed by create (and by check for a prebuilt kernel).
  kernelPath?: string;
  sha256?: string;
  size?: number;
  manifest?: Device[];
  /** The kernel's ELF machine (x86_64, aarch64); none for unix. */
  architecture?: string;
}

const USER_INPUTS = [
  "source",
  "kernel",
  "target",
  "configureArgs",
  "mirage",
  "depexts",
  "buildTimeoutMinutes",
  "cacheDir",
  "resourceName",
] as const;
/** The inputs the fingerprint covers: a change to one of these is why a replacement happens. */
const BUILD_INPUTS = ["source", "kernel", "target", "configureArgs", "mirage"] as const;
const DEFAULT_TIMEOUT_MINUTES = 30;

type Failure = pulumi.dynamic.CheckFailure;

/** The fingerprint of a prebuilt kernel: its content and the target it is used for. */
function prebuiltFingerprint(kernelSha256: string, target: Target): string {
  return sha256(JSON.stringify({ prebuilt: kernelSha256, target }));
}

/** Validates the inputs that need no file system. */
function checkShape(news: Record<string, unknown>, failures: Failure[]): void {
  const { target, configureArgs, buildTimeoutMinutes } = news;
  if (!given(target)) {
    // A prebuilt kernel's target is read from its Solo5 note (checkPrebuilt).
    if (!given(news.kernel))
      failures.push({
        property: "target",
        reason: `is required to build from source: give one of ${TARGETS.join(", ")}`,
      });
  } else if (isKnown(target) && !isTarget(target)) {
    failures.push({
      property: "target",
      reason: `${JSON.stringify(target)} is not a MirageOS target: use one of ${TARGETS.join(", ")}`,
    });
  }
  const hasSource = given(news.source);
  const hasKernel = given(news.kernel);
  if (hasSource === hasKernel) {
    failures.push({
      property: hasSource ? "kernel" : "source",
      reason: hasSource
        ? "give either source (a directory with config.ml) or kernel (a prebuilt binary), not both"
        : "give source (a directory with config.ml) or kernel (a prebuilt unikernel binary)",
    });
  }
  if (given(configureArgs) && isKnown(configureArgs)) {
    const strings =
      Array.isArray(configureArgs) && configureArgs.every((a) => typeof a === "string");
    const problem = strings ? configureArgsProblem(configureArgs.filter(isKnown)) : undefined;
    if (!strings) {
      failures.push({ property: "configureArgs", reason: "must be a list of strings" });
    } else if (problem) {
      failures.push({ property: "configureArgs", reason: problem });
    } else if (hasKernel) {
      failures.push({
        property: "configureArgs",
        reason: "configureArgs apply to builds from source; a prebuilt kernel takes none",
      });
    }
  }
  if (given(news.depexts) && isKnown(news.depexts) && typeof news.depexts !== "boolean") {
    failures.push({
      property: "depexts",
      reason: `must be true or false, not ${JSON.stringify(news.depexts)}`,
    });
  }
  if (given(buildTimeoutMinutes) && isKnown(buildTimeoutMinutes)) {
    const reason = outOfBounds(buildTimeoutMinutes, BOUNDS.buildTimeoutMinutes);
    if (reason) failures.push({ property: "buildTimeoutMinutes", reason });
  }
}

/**
 * What the path input `property` names, if it is a `kind`; if not, a failure saying that it does
 * not exist or is something else, and `fix`.
 */
async function checkPathKind(
  kind: "file" | "directory",
  news: Record<string, unknown>,
  property: "source" | "kernel",
  fix: string,
  failures: Failure[],
): Promise<Stats | undefined> {
  const path = news[property] as string;
  const info = await stat(path).catch(() => undefined);
  if (kind === "file" ? info?.isFile() : info?.isDirectory()) return info;
  failures.push({
    property,
    reason: `${path} ${info ? `is not a ${kind}` : "does not exist"}: ${fix}`,
  });
  return undefined;
}

/** A source build's fingerprint and name, or failures saying what is wrong. */
async function checkSource(
  news: Record<string, unknown>,
  failures: Failure[],
): Promise<Partial<UnikernelProps>> {
  const source = news.source as string;
  const isDirectory = await checkPathKind(
    "directory",
    news,
    "source",
    "source must be the directory holding the unikernel's config.ml",
    failures,
  );
  if (!isDirectory) return {};
  if (
    !(await stat(`${source}/config.ml`).then(
      (s) => s.isFile(),
      () => false,
    ))
  ) {
    failures.push({
      property: "source",
      reason: `${source} holds no config.ml: source must be the directory of a MirageOS unikernel`,
    });
    return {};
  }
  if (!isKnown(news.mirage)) return {};
  let version: string;
  let switchVersions: Record<string, string>;
  try {
    const mirage = await findMirage((news.mirage as string | undefined) ?? "mirage");
    version = await mirageVersion(mirage);
    const prefix = await switchPrefix(mirage);
    switchVersions = prefix ? await readSwitchVersions(prefix) : {};
  } catch (error) {
    failures.push({ property: "mirage", reason: message(error) });
    return {};
  }
  const args = (news.configureArgs as unknown[] | undefined) ?? [];
  if (!isKnown(news.configureArgs) || !args.every(isKnown)) return { mirageVersion: version };
  const configureArgs = args as string[];
  let name: string;
  try {
    name = await unikernelName(source, configureArgs);
  } catch (error) {
    failures.push({ property: "source", reason: message(error) });
    return {};
  }
  if (!isKnown(news.target) || !isTarget(news.target)) return { mirageVersion: version, name };
  let tree: string;
  try {
    tree = await hashSourceTree(source);
  } catch (error) {
    // An unreadable file, a link loop: the build could not copy the tree either.
    failures.push({ property: "source", reason: `cannot read ${source}: ${message(error)}` });
    return { mirageVersion: version, name };
  }
  const fingerprint = combineFingerprint({
    tree,
    target: news.target,
    configureArgs,
    mirageVersion: version,
    switchVersions,
  });
  return { mirageVersion: version, switchVersions, name, fingerprint };
}

/** A prebuilt kernel's facts (everything but its cache path), or failures. */
async function checkPrebuilt(
  news: Record<string, unknown>,
  failures: Failure[],
): Promise<Partial<UnikernelProps>> {
  const kernel = news.kernel as string;
  const info = await checkPathKind(
    "file",
    news,
    "kernel",
    "kernel must be a unikernel binary such as dist/hello.virtio",
    failures,
  );
  if (!info) return {};
  const explicit = given(news.target) ? news.target : undefined;
  if (explicit !== undefined && (!isKnown(explicit) || !isTarget(explicit))) return {};
  let target: Target = "unix";
  let manifest: Device[] = [];
  let architecture: string | undefined;
  if (explicit !== "unix") {
    try {
      const inspected = await inspectKernel(kernel);
      target = inspected.solo5.target;
      if (explicit !== undefined && explicit !== target) {
        failures.push({
          property: "target",
          reason: `is ${explicit}, but ${kernel} is built for ${target} (its Solo5 ABI1 note says so): leave target out (a prebuilt kernel's is read from that note) or give a ${explicit} kernel`,
        });
        return {};
      }
      manifest = inspected.manifest.devices.map(({ name, type }) => ({ name, type }));
      architecture = inspected.elf.machine;
    } catch (error) {
      // Without a target, the note is where it comes from: a unix build has none.
      const unix = explicit === undefined ? '; for a unix build, give target: "unix"' : "";
      failures.push({ property: "kernel", reason: `${message(error)}${unix}` });
      return {};
    }
  }
  const kernelSha256 = await sha256File(kernel);
  return {
    target,
    fingerprint: prebuiltFingerprint(kernelSha256, target),
    name: plainName(basename(kernel, extname(kernel))),
    mirageVersion: "prebuilt",
    sha256: kernelSha256,
    size: info.size,
    manifest,
    ...(architecture === undefined ? {} : { architecture }),
  };
}

async function check(_olds: Record<string, unknown>, news: Record<string, unknown>) {
  const failures: Failure[] = [];
  checkShape(news, failures);
  const inputs: Record<string, unknown> = {};
  for (const key of USER_INPUTS) if (news[key] !== undefined) inputs[key] = news[key];
  let computed: Partial<UnikernelProps> = {};
  if (failures.length === 0 && given(news.source) && isKnown(news.source)) {
    computed = await checkSource(news, failures);
  } else if (failures.length === 0 && given(news.kernel) && isKnown(news.kernel)) {
    computed = await checkPrebuilt(news, failures);
  }
  // What could not be computed for lack of a known input is unknown at preview, not missing.
  return {
    inputs: {
      ...inputs,
      // A prebuilt kernel's target, when not given, is read from it once it is known.
      target: given(news.target) ? news.target : UNKNOWN,
      fingerprint: UNKNOWN,
      name: UNKNOWN,
      mirageVersion: given(news.kernel) ? "prebuilt" : UNKNOWN,
      ...computed,
    },
    failures,
  };
}

/** Copies a prebuilt kernel into the cache (under its fingerprint), unless it is there. */
async function importKernel(dir: string, props: UnikernelProps): Promise<Entry> {
  const kernel = props.kernel as string;
  const fileName = `${props.name}${props.target === "unix" ? "" : `.${props.target}`}`;
  const hit = await lookup(dir, "kernel", props.fingerprint);
  if (hit) return hit;
  return withEntryLock(dir, "kernel", props.fingerprint, async () => {
    const again = await lookup(dir, "kernel", props.fingerprint);
    if (again) return again;
    const entry = await store(dir, "kernel", props.fingerprint, kernel, {
      fileName,
      meta: { name: props.name, target: props.target, mirageVersion: "prebuilt" },
    });
    if (entry.sha256 !== props.sha256) {
      throw new Error(
        `${kernel} changed after it was checked (sha256 ${props.sha256} then, ${entry.sha256} now): run the update again`,
      );
    }
    return entry;
  });
}

/** The kernel for these inputs, from the cache, or built (or imported) into it. */
async function produce(props: UnikernelProps, olds?: Record<string, unknown>) {
  const dir = cacheDir(props.cacheDir);
  let entry: Entry;
  if (props.kernel) {
    entry = await importKernel(dir, props);
  } else {
    entry = await kernelFor({
      label: `unikernel ${props.resourceName ?? props.name}`,
      source: props.source as string,
      target: props.target,
      configureArgs: props.configureArgs ?? [],
      depexts: props.depexts ?? true,
      mirage: await findMirage(props.mirage ?? "mirage"),
      mirageVersion: props.mirageVersion,
      switchVersions: props.switchVersions ?? {},
      fingerprint: props.fingerprint,
      timeoutMs: (props.buildTimeoutMinutes ?? DEFAULT_TIMEOUT_MINUTES) * 60_000,
      cacheDir: dir,
      // An update with the same fingerprint (say, a new cacheDir) reuses the kernel it has.
      built:
        olds?.fingerprint === props.fingerprint && typeof olds.kernelPath === "string"
          ? olds.kernelPath
          : undefined,
    });
  }
  const inspected = props.target === "unix" ? undefined : await inspectKernel(entry.path);
  const outs: UnikernelProps = {
    ...props,
    name: String(entry.meta.name ?? props.name),
    kernelPath: entry.path,
    sha256: entry.sha256,
    size: entry.size,
    manifest: (inspected?.manifest.devices ?? []).map(({ name, type }) => ({ name, type })),
    ...(inspected ? { architecture: inspected.elf.machine } : {}),
  };
  return { id: props.fingerprint, outs };
}

export const provider = storedFileProvider({
  kind: "kernel",
  inputs: USER_INPUTS,
  identity: "fingerprint",
  identityInputs: BUILD_INPUTS,
  pathKey: "kernelPath",
  check,
  produce,
});

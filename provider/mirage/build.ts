// Building a unikernel with the MirageOS 4 toolchain (docs/platforms.md, MirageOS build contract):
// `mirage configure`, `make depend`, `make build`, in a scratch copy of the source (mirage writes
// into the directory it runs in; the user's tree stays untouched, and two builds of one source
// cannot collide). The kernel goes into the content-addressed cache; a cache hit runs no tool at
// all.
import { basename, dirname, join } from "node:path";
import type { Target } from "../../rules/targets";
import {
  type Entry,
  logsDir,
  lookup,
  store,
  withCacheLock,
  withEntryLock,
  workDir,
} from "../core/cache";
import { run, ToolError } from "../core/exec";
import { sha256, sha256File } from "../core/hash";
import { withScratch } from "../core/scratch";
import { DepextScan } from "./depexts";
import { combineFingerprint, copySourceTree } from "./fingerprint";
import { distFile, plainName, unikernelName } from "./project";
import { switchPrefix } from "./toolchain";

export interface BuildRequest {
  /** Who is building, for progress lines: `unikernel NAME`. */
  label: string;
  source: string;
  target: Target;
  configureArgs: readonly string[];
  /** The mirage command's absolute path (toolchain.findMirage). */
  mirage: string;
  mirageVersion: string;
  /** Solo5 and ocaml-solo5 versions of the switch, as check found them. */
  switchVersions: Readonly<Record<string, string>>;
  /** false: configure with `--no-depext`, so opam installs no system packages. */
  depexts: boolean;
  /** The fingerprint computed by check; the copy that is built must still have it. */
  fingerprint: string;
  timeoutMs: number;
  cacheDir: string;
  /**
   * A kernel already built for this fingerprint (an earlier state's, perhaps in another cache):
   * stored instead of building when it is intact.
   */
  built?: string;
}

/** How often a long step reports that it is still running. */
const HEARTBEAT_MS = 30_000;

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

/** A build step failed: names the step and command, with the output's tail and the log path. */
export class BuildError extends Error {
  constructor(step: string, cause: ToolError, reason = cause.reason) {
    const parts = [`mirage build failed at step "${step}" (${cause.command}): ${reason}`];
    if (cause.tail.length > 0) {
      parts.push(`last ${cause.tail.length} lines of output:\n${cause.tail.join("\n")}`);
    }
    if (cause.logFile) parts.push(`full log: ${cause.logFile}`);
    super(parts.join("\n"), { cause });
    this.name = "BuildError";
  }
}

/**
 * The kernel for `request.fingerprint`: from the cache when it holds a good one, else built and
 * stored. Builders of the same fingerprint take turns (the second gets the first one's kernel).
 */
export async function kernelFor(request: BuildRequest): Promise<Entry> {
  const hit = await lookup(request.cacheDir, "kernel", request.fingerprint);
  if (hit) return hit;
  return withEntryLock(
    request.cacheDir,
    "kernel",
    request.fingerprint,
    async () =>
      (await lookup(request.cacheDir, "kernel", request.fingerprint)) ??
      (await reuse(request)) ??
      (await build(request)),
    // Waiting for another build of the same kernel may take as long as that build.
    request.timeoutMs + 10 * 60_000,
  );
}

/** Stores `request.built` if it is still the kernel its content-addressed path says it is. */
async function reuse(request: BuildRequest): Promise<Entry | undefined> {
  const { built } = request;
  if (!built) return undefined;
  const sha = await sha256File(built).catch(() => undefined);
  if (sha !== basename(dirname(built))) return undefined;
  const name = await unikernelName(request.source, request.configureArgs);
  return store(request.cacheDir, "kernel", request.fingerprint, built, {
    fileName: basename(built),
    sha256: sha,
    meta: { name, target: request.target, mirageVersion: request.mirageVersion },
  });
}

async function build(request: BuildRequest): Promise<Entry> {
  const { label, cacheDir, target } = request;
  const started = Date.now();
  const deadline = started + request.timeoutMs;
  const name = await unikernelName(request.source, request.configureArgs);
  const stamp = new Date(started).toISOString().replace(/[:.]/g, "-");
  const logFile = join(
    await logsDir(cacheDir),
    `${plainName(name)}-${request.fingerprint.slice(0, 12)}-${stamp}.log`,
  );

  return withScratch({ name: "build", parent: await workDir(cacheDir) }, async (work) => {
    const tree = await copySourceTree(request.source, work);
    const copied = combineFingerprint({
      tree,
      target,
      configureArgs: request.configureArgs,
      mirageVersion: request.mirageVersion,
      switchVersions: request.switchVersions,
    });
    if (copied !== request.fingerprint) {
      throw new Error(
        `the source directory ${request.source} changed after it was checked: run the update again`,
      );
    }
    console.log(`[${label}] copy source: ${seconds(Date.now() - started)}`);

    const step = async (
      stepName: string,
      file: string,
      args: string[],
      explain?: { feed: (line: string) => void; failure: () => string | undefined },
    ) => {
      const stepStarted = Date.now();
      let lastLine = "";
      const heartbeat = setInterval(() => {
        const elapsed = seconds(Date.now() - stepStarted);
        console.log(`[${label}] ${stepName}: ${elapsed} so far; ${lastLine.slice(0, 120)}`);
      }, HEARTBEAT_MS);
      try {
        await run(file, args, {
          cwd: work,
          logFile,
          timeoutMs: Math.max(1, deadline - Date.now()),
          onLine: (line) => {
            if (line.trim() !== "") lastLine = line;
            explain?.feed(line);
          },
        });
      } catch (error) {
        if (!(error instanceof ToolError)) throw error;
        // Each step's timeout is what is left of the build's: when one fires, the build's did.
        const minutes = request.timeoutMs / 60_000;
        throw error.reason.startsWith("timed out")
          ? new BuildError(
              stepName,
              error,
              `the build took longer than ${minutes} minutes (buildTimeoutMinutes) and was killed`,
            )
          : new BuildError(stepName, error, explain?.failure());
      } finally {
        clearInterval(heartbeat);
      }
      console.log(`[${label}] ${stepName}: ${seconds(Date.now() - stepStarted)}`);
    };
    await step("mirage configure", request.mirage, [
      "configure",
      "-t",
      target,
      ...(request.depexts ? [] : ["--no-depext"]),
      ...request.configureArgs,
    ]);
    // make depend adds and removes opam overlay repositories and installs into the switch: two at
    // once in one switch would pull the repositories from under each other. make build only
    // reads the switch, so builds still run side by side.
    const switchKey = (await switchPrefix(request.mirage)) ?? request.mirage;
    await withCacheLock(
      cacheDir,
      `switch-${sha256(switchKey).slice(0, 16)}`,
      () => step("make depend", "make", ["depend"], new DepextScan()),
      Math.max(1, deadline - Date.now()),
    );
    await step("make build", "make", ["build"]);

    const kernel = join(work, distFile(name, target));
    const fileName = `${plainName(name)}${target === "unix" ? "" : `.${target}`}`;
    const entry = await store(cacheDir, "kernel", request.fingerprint, kernel, {
      fileName,
      move: true,
      meta: { name, target, mirageVersion: request.mirageVersion },
    }).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== "ENOENT") throw error;
      throw new Error(
        `mirage build finished but left no ${distFile(name, target)}: is the unikernel's name "${name}"? full log: ${logFile}`,
      );
    });
    console.log(`[${label}] built ${fileName} in ${seconds(Date.now() - started)}`);
    return entry;
  });
}

// xen.Domain: a MirageOS unikernel running as a PVH domain on a Xen host we reach over SSH.
//
// create copies the kernel (named by its sha256, streamed and sparse) and an xl config into a
// per-domain directory on the host, which it marks as its own, and runs `xl create`; read asks
// `xl list`; delete runs `xl destroy` and removes what create wrote, and the directory if nothing
// else is in it. A directory of that name that is not ours is refused, never written into. The
// console comes from xenconsoled's per-guest log, when the host keeps one. Anything that changes
// the domain replaces it; only how we connect (port, user, key, pinned host key) is updated in
// place, after checking the new connection works.
import { join, posix, resolve } from "node:path";
import type * as pulumi from "@pulumi/pulumi";
import { BOUNDS, outOfBounds } from "../../rules/bounds";
import { isFullyKnown } from "../../rules/values";
import { cacheDir, logsDir } from "../core/cache";
import { ToolError } from "../core/exec";
import { sha256File } from "../core/hash";
import { checkBootArgs } from "../image/bootargs";
import { inspectKernel, KernelFormatError, type KernelInfo } from "../kernel/inspect";
import {
  FileChangedError,
  parseHostKeys,
  type SshSession,
  type SshTarget,
  scanHostKeys,
  withSsh,
} from "../xen/ssh";
import { listDomains } from "../xen/xl";
import { BRIDGE_NAME, DOMAIN_NAME, renderXlConfig, xlStringProblem } from "../xen/xl-config";
import { changedKeys } from "./inputs";

const DEFAULTS = {
  port: 22,
  user: "root",
  memory: 64,
  vcpus: 1,
  bridge: "xenbr0",
  remoteDir: "/var/lib/pulumi-mirage",
};

export interface DomainInputs {
  host: string;
  port: number;
  user: string;
  privateKey: string;
  /** Pinned host keys, `TYPE KEY` lines; absent: trust on first use. */
  hostKey?: string;
  kernelPath: string;
  kernelSha256?: string;
  /** The kernel's MirageOS target, when it comes from a Unikernel resource. */
  target?: string;
  name: string;
  memory: number;
  vcpus: number;
  bridge: string;
  bootArgs: string[];
  remoteDir: string;
}

export interface DomainOutputs extends DomainInputs {
  kernelSha256: string;
  /** The host keys every connection checks: the pinned ones or those recorded at creation. */
  hostKey: string;
  /** xl's domain id (as of creation or the last refresh), or -1 when it had already stopped. */
  domainId: number;
  /** The domain's directory on the host. */
  domainDir: string;
  configPath: string;
  kernelRemotePath: string;
  /** The domain's console lines so far, from xenconsoled's guest log (empty without one). */
  console: string[];
}

/**
 * Where xenconsoled writes a guest's console when started with `--log=guest` (Debian:
 * XENCONSOLED_ARGS="--log=guest" in /etc/default/xen), the default --log-dir; by domain name.
 */
export function consoleLogPath(name: string): string {
  return `/var/log/xen/console/guest-${name}.log`;
}

/** The console lines of domain `name` so far; none when the host keeps no log. */
async function consoleLines(ssh: SshSession, props: DomainInputs): Promise<string[]> {
  const { stdout } = await remote(ssh, props, [
    "sh",
    "-c",
    'cat -- "$1" 2>/dev/null || true',
    "sh",
    consoleLogPath(props.name),
  ]);
  const lines = stdout.split("\n");
  if (lines.at(-1) === "") lines.pop();
  return lines;
}

/** Changing any of these changes the domain itself, so the domain is replaced. */
const REPLACING: (keyof DomainInputs)[] = [
  "host",
  "name",
  "kernelSha256",
  "bootArgs",
  "memory",
  "vcpus",
  "bridge",
  "remoteDir",
];
/** Changing these only changes how we reach the host (or where the kernel came from). */
const IN_PLACE: (keyof DomainInputs)[] = ["port", "user", "privateKey", "kernelPath", "target"];

const UPLOAD_TIMEOUT_MS = 10 * 60 * 1000;

/** Why the file at `path` cannot boot as a PVH domain, or undefined when it can. */
async function xenKernelProblem(path: string): Promise<string | undefined> {
  let info: KernelInfo;
  try {
    info = await inspectKernel(path);
  } catch (error) {
    if (error instanceof KernelFormatError) return error.message;
    return `cannot read ${path}: ${(error as Error).message}`;
  }
  if (info.solo5.target !== "xen")
    return `${path} is a ${info.solo5.target} unikernel; xen.Domain runs xen kernels (build it with target: "xen")`;
  if (!info.xenPvh) return `${path} has no Xen PVH entry note, so xl cannot boot it as type 'pvh'`;
  return undefined;
}

async function check(
  _olds: Record<string, unknown>,
  news: Record<string, unknown>,
): Promise<pulumi.dynamic.CheckResult> {
  const failures: pulumi.dynamic.CheckFailure[] = [];
  const fail = (property: string, reason: string) => failures.push({ property, reason });
  const inputs: Record<string, unknown> = {
    ...news,
    port: news.port ?? DEFAULTS.port,
    user: news.user ?? DEFAULTS.user,
    memory: news.memory ?? DEFAULTS.memory,
    vcpus: news.vcpus ?? DEFAULTS.vcpus,
    bridge: news.bridge ?? DEFAULTS.bridge,
    bootArgs: news.bootArgs ?? [],
    remoteDir: news.remoteDir ?? DEFAULTS.remoteDir,
  };
  const { host, port, user, privateKey, hostKey, kernelPath, target } = inputs;
  const { name, memory, vcpus, bridge, bootArgs, remoteDir } = inputs;

  if (
    isFullyKnown(host) &&
    (typeof host !== "string" || !/^[A-Za-z0-9_.:][A-Za-z0-9_.:-]*$/.test(host))
  )
    fail("host", "must be a host name or IP address, e.g. xen1.example.org or 192.0.2.10");
  const portProblem = isFullyKnown(port) && outOfBounds(port, BOUNDS.port);
  if (portProblem) fail("port", portProblem);
  if (isFullyKnown(user) && (typeof user !== "string" || !/^[A-Za-z_][A-Za-z0-9_.-]*$/.test(user)))
    fail("user", "must be a user name made of letters, digits, '_', '.' or '-'");
  // Never echo the value: it is a secret.
  if (
    isFullyKnown(privateKey) &&
    (typeof privateKey !== "string" || !/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(privateKey))
  )
    fail(
      "privateKey",
      "is not an SSH private key: give the key's contents (a '-----BEGIN ... PRIVATE KEY-----' block), not its path",
    );
  if (hostKey !== undefined && isFullyKnown(hostKey)) {
    try {
      inputs.hostKey = parseHostKeys(String(hostKey)).join("\n");
    } catch (error) {
      fail("hostKey", (error as Error).message);
    }
  }
  if (target !== undefined && isFullyKnown(target) && target !== "xen")
    fail(
      "kernel",
      `is a ${target} unikernel; xen.Domain runs xen kernels (build it with target: "xen")`,
    );
  if (isFullyKnown(kernelPath)) {
    if (typeof kernelPath !== "string" || kernelPath === "") {
      fail("kernel", "must be the path of a xen unikernel binary or a Unikernel resource");
    } else {
      const path = resolve(kernelPath);
      inputs.kernelPath = path;
      const problem = await xenKernelProblem(path);
      if (problem) fail("kernel", problem);
      else if (inputs.kernelSha256 === undefined) inputs.kernelSha256 = await sha256File(path);
    }
  }
  if (isFullyKnown(name) && (typeof name !== "string" || !DOMAIN_NAME.test(name)))
    fail(
      "name",
      `${JSON.stringify(name)} is not a usable domain name: use letters, digits, '_', '.' and '-', starting with a letter or digit, at most 64 characters`,
    );
  const memoryProblem = isFullyKnown(memory) && outOfBounds(memory, BOUNDS.xenMemoryMiB);
  if (memoryProblem) fail("memory", memoryProblem);
  const vcpusProblem = isFullyKnown(vcpus) && outOfBounds(vcpus, BOUNDS.vcpus);
  if (vcpusProblem) fail("vcpus", vcpusProblem);
  if (isFullyKnown(bridge) && (typeof bridge !== "string" || !BRIDGE_NAME.test(bridge)))
    fail(
      "bridge",
      `${JSON.stringify(bridge)} is not a bridge name: use at most 15 letters, digits, '_', '.' or '-'`,
    );
  if (isFullyKnown(bootArgs)) {
    if (!Array.isArray(bootArgs) || !bootArgs.every((a) => typeof a === "string")) {
      fail("bootArgs", "must be a list of strings");
    } else {
      try {
        checkBootArgs(bootArgs);
      } catch (error) {
        fail("bootArgs", (error as Error).message);
      }
    }
  }
  if (isFullyKnown(remoteDir)) {
    const dir = String(remoteDir);
    const clean = posix.normalize(dir).replace(/\/+$/, "");
    const problem = !posix.isAbsolute(dir)
      ? "is not an absolute path"
      : clean === "" || dir.split("/").includes("..")
        ? "must be a directory such as /var/lib/pulumi-mirage (not /, no '..')"
        : /\s/.test(dir)
          ? "contains whitespace"
          : xlStringProblem(dir);
    if (problem) fail("remoteDir", `${JSON.stringify(dir)} ${problem}`);
    else inputs.remoteDir = clean;
  }
  return { inputs, failures };
}

async function diff(
  _id: string,
  olds: DomainOutputs,
  news: DomainInputs,
): Promise<pulumi.dynamic.DiffResult> {
  const replaces = changedKeys({ ...olds }, { ...news }, REPLACING);
  const updates = changedKeys({ ...olds }, { ...news }, IN_PLACE);
  // Without a pinned key the recorded one stays; pinning a different one is an in-place update.
  if (news.hostKey !== undefined && news.hostKey !== olds.hostKey) updates.push("hostKey");
  return {
    changes: replaces.length + updates.length > 0,
    replaces,
    // xl refuses a second domain of the same name on a host: the old one must go first.
    deleteBeforeReplace: !replaces.includes("host") && !replaces.includes("name"),
  };
}

function targetOf(props: DomainInputs): SshTarget {
  return { host: props.host, port: props.port, user: props.user, privateKey: props.privateKey };
}

interface DomainPaths {
  domainDir: string;
  configPath: string;
  kernelRemotePath: string;
}

function pathsOf(props: DomainInputs, kernelSha256: string): DomainPaths {
  const domainDir = `${props.remoteDir}/${props.name}`;
  return {
    domainDir,
    configPath: `${domainDir}/${props.name}.cfg`,
    kernelRemotePath: `${domainDir}/kernel-${kernelSha256}.xen`,
  };
}

/**
 * Where a create or delete logs the commands it ran on the host and their output: the cache's
 * logs directory, like the image builds.
 */
async function logFileFor(action: string, props: DomainInputs): Promise<string> {
  const stamp = new Date().toISOString().replace(/[:.]/g, "-");
  return join(await logsDir(cacheDir()), `xen-domain-${props.name}-${action}-${stamp}.log`);
}

/** A remote step that failed: say what and where, with the tool's own output and the log. */
function remoteFailure(what: string, props: DomainInputs, error: unknown): Error {
  if (!(error instanceof ToolError)) return error as Error;
  const where = `${props.user}@${props.host}:${props.port}`;
  const output = error.tail.length > 0 ? `; its output:\n${error.tail.join("\n")}` : "";
  const log = error.logFile ? `\nfull log: ${error.logFile}` : "";
  return new Error(`${what} on ${where} ${error.reason}${output}${log}`, { cause: error });
}

/** Runs `argv` on the host, turning a failure into a message naming the command and host. */
async function remote(ssh: SshSession, props: DomainInputs, argv: string[], timeoutMs?: number) {
  try {
    return await ssh.run(argv, { timeoutMs });
  } catch (error) {
    throw remoteFailure(argv.join(" "), props, error);
  }
}

/**
 * The file create writes first into the domain's directory: the directory is ours. One that exists
 * without it is someone else's, and is never written into or removed.
 */
const MARKER = ".pulumi-mirage-domain";

/**
 * Makes the domain's directory ($2, in remoteDir $1) with the marker ($3) in it, private; takes
 * one that has the marker already (an earlier create of this name left it); prints `foreign` for
 * one that exists without it, or is a link.
 */
const CLAIM_SCRIPT = `umask 077 && mkdir -p -- "$1" || exit 1
if [ -L "$2" ] || { [ -e "$2" ] && [ ! -f "$2/$3" ]; }; then echo foreign; exit 0; fi
[ -d "$2" ] || { mkdir -- "$2" && : > "$2/$3"; }`;

/** Makes (or takes back) the domain's directory, refusing one that is not ours. */
async function claimDomainDir(ssh: SshSession, props: DomainInputs, domainDir: string) {
  const argv = ["sh", "-c", CLAIM_SCRIPT, "sh", props.remoteDir, domainDir, MARKER];
  const { stdout } = await remote(ssh, props, argv);
  if (stdout.trim() === "foreign")
    throw new Error(
      `name: ${domainDir} on ${props.host} already exists and was not made by xen.Domain (it has ` +
        `no ${MARKER} file), so it is left alone: choose another name or remoteDir, or move ` +
        "that directory away",
    );
}

/**
 * Removes what create wrote (kernel, config, marker), then the domain's directory if nothing
 * else is in it: files someone else put there stay, and so does the directory.
 */
async function removeDomainFiles(ssh: SshSession, props: DomainInputs, paths: DomainPaths) {
  const script = 'rm -f -- "$2" "$3" "$1/$4" && { rmdir -- "$1" 2>/dev/null || true; }';
  const { domainDir, kernelRemotePath, configPath } = paths;
  await remote(ssh, props, [
    "sh",
    "-c",
    script,
    "sh",
    domainDir,
    kernelRemotePath,
    configPath,
    MARKER,
  ]);
}

async function create(inputs: DomainInputs): Promise<pulumi.dynamic.CreateResult<DomainOutputs>> {
  // Streamed (a kernel is never held in memory); check computed it unless a Unikernel gave it.
  const kernelSha256 = inputs.kernelSha256 ?? (await sha256File(inputs.kernelPath));
  const hostKeys = inputs.hostKey
    ? parseHostKeys(inputs.hostKey)
    : await scanHostKeys(inputs.host, inputs.port);
  const paths = pathsOf(inputs, kernelSha256);
  const config = renderXlConfig({ ...inputs, kernel: paths.kernelRemotePath });

  const log = await logFileFor("create", inputs);
  const started = await withSsh(
    targetOf(inputs),
    hostKeys,
    async (ssh) => {
      const before = await listDomainsOn(ssh, inputs);
      const existing = before.get(inputs.name);
      if (existing) {
        throw new Error(
          `name: a domain named ${inputs.name} already runs on ${inputs.host} (id ${existing.id}); ` +
            `choose another name, or remove that domain (xl destroy ${inputs.name})`,
        );
      }
      await claimDomainDir(ssh, inputs, paths.domainDir);
      try {
        try {
          await ssh.upload(paths.kernelRemotePath, inputs.kernelPath, kernelSha256, {
            timeoutMs: UPLOAD_TIMEOUT_MS,
          });
          await ssh.writeFile(paths.configPath, config);
        } catch (error) {
          if (error instanceof FileChangedError)
            throw new Error(
              `kernel: ${inputs.kernelPath} changed after it was checked (its sha256 is no ` +
                `longer ${kernelSha256}); run the update again`,
            );
          throw remoteFailure(`copying the kernel and config to ${paths.domainDir}`, inputs, error);
        }
        // The console log of an earlier domain of that name is not this one's.
        await remote(ssh, inputs, ["rm", "-f", "--", consoleLogPath(inputs.name)]);
        await remote(ssh, inputs, ["xl", "create", paths.configPath]);
      } catch (error) {
        // Pulumi will not record a failed create: leave nothing of ours behind on the host.
        await removeDomainFiles(ssh, inputs, paths).catch(() => undefined);
        throw error;
      }
      // A unikernel that has already finished (a hello world) is no longer listed.
      const id = (await listDomainsOn(ssh, inputs)).get(inputs.name)?.id ?? -1;
      return { id, console: await consoleLines(ssh, inputs) };
    },
    log,
  );
  return {
    id: `${inputs.host}/${inputs.name}`,
    outs: {
      ...inputs,
      kernelSha256,
      hostKey: hostKeys.join("\n"),
      domainId: started.id,
      console: started.console,
      ...paths,
    },
  };
}

async function listDomainsOn(ssh: SshSession, props: DomainInputs) {
  try {
    return await listDomains(ssh);
  } catch (error) {
    throw remoteFailure("xl list", props, error);
  }
}

async function read(
  id: string,
  props: DomainOutputs,
): Promise<pulumi.dynamic.ReadResult<DomainOutputs>> {
  const found = await withSsh(targetOf(props), parseHostKeys(props.hostKey), async (ssh) => {
    const domain = (await listDomainsOn(ssh, props)).get(props.name);
    return domain && { domainId: domain.id, console: await consoleLines(ssh, props) };
  });
  // An empty id tells Pulumi the domain is gone.
  if (!found) return { id: "" };
  // The id changes when the domain was restarted (xl reboot, on_reboot).
  return { id, props: { ...props, ...found } };
}

async function update(
  _id: string,
  olds: DomainOutputs,
  news: DomainInputs,
): Promise<pulumi.dynamic.UpdateResult<DomainOutputs>> {
  // Only connection details reach here (diff replaces on anything else): prove they work.
  const hostKey = news.hostKey ?? olds.hostKey;
  await withSsh(targetOf(news), parseHostKeys(hostKey), (ssh) => listDomainsOn(ssh, news));
  return { outs: { ...olds, ...news, kernelSha256: olds.kernelSha256, hostKey } };
}

async function del(_id: string, props: DomainOutputs): Promise<void> {
  const log = await logFileFor("delete", props);
  await withSsh(
    targetOf(props),
    parseHostKeys(props.hostKey),
    async (ssh) => {
      if ((await listDomainsOn(ssh, props)).has(props.name)) {
        await remote(ssh, props, ["xl", "destroy", props.name]);
      }
      await removeDomainFiles(ssh, props, props);
      await remote(ssh, props, ["rm", "-f", "--", consoleLogPath(props.name)]);
    },
    log,
  );
}

export const provider = { check, diff, create, read, update, delete: del };

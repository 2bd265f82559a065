// The devices a Solo5 tender attaches for an hvt or spt kernel: a tap interface per declared
// network device, a file per declared block device. The real tender refuses to boot a kernel
// with a declared device left unattached, an undeclared name, a tap that is missing or down, or
// a block file it cannot open (docs/platforms.md, "Solo5 tenders"); check finds each of these first and
// names the device. tenderArgs is the tender's command line for them.
import { constants, existsSync, statSync } from "node:fs";
import { link, open, rm } from "node:fs/promises";
import { dirname, isAbsolute, resolve } from "node:path";
import { BOUNDS, outOfBounds } from "../../rules/bounds";
import type { Problem } from "../../rules/problem";
import type { Device } from "../../rules/targets";
import { isKnown } from "../../rules/values";
import { tempPathFor } from "../core/atomic";
import { INTERFACE_NAME, interfaceState } from "./netif";

/** A network device's tap interface, and the MAC address the unikernel gets (default: random). */
export interface NetAttachment {
  iface: string;
  mac?: string;
}

/**
 * A block device's file. A missing file is created sparse at `sizeMiB`; an existing one is used
 * as it is (never truncated or removed). `sectorSize` defaults to the tender's 512.
 */
export interface BlockAttachment {
  path: string;
  sizeMiB?: number;
  sectorSize?: number;
}

/**
 * How the caller's user writes an attachment (local.Process's inputs, or `run`'s flags), so that
 * a refusal names what they write and the fix is one they can type.
 */
export interface Spelling {
  /** The tender setting: "`tender`", "--tender PATH". */
  tender: string;
  /** A device's setting: "net.service", "--net service". */
  device(kind: "net" | "block", name: string): string;
  /** How to attach an unattached device. */
  attach(kind: "net" | "block", name: string): string;
  /** How to make a tap that is missing, after the `ip` commands that do it. */
  makeTap: string;
  /** How to have a missing block file created. */
  makeBlock: string;
}

/** local.Process's inputs. */
export const RESOURCE_SPELLING: Spelling = {
  tender: "`tender`",
  device: (kind, name) => `${kind}.${name}`,
  attach: (kind, name) =>
    kind === "net"
      ? `add net: { ${name}: "tap0" } (a tap interface, e.g. a local.Tap)`
      : `add block: { ${name}: { path: "/var/lib/app/${name}.img", sizeMiB: 64 } }`,
  makeTap: "create it with local.Tap, or",
  makeBlock: "give sizeMiB to have it created (sparse), or create it",
};

export interface Attachments {
  net: Record<string, NetAttachment>;
  block: Record<string, BlockAttachment>;
}

/** Solo5 tenders parse device names with sscanf's `[A-Za-z0-9]`, at most 67 characters. */
const DEVICE_NAME = /^[A-Za-z0-9]{1,67}$/;
const MAC = /^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/;
const MIB = 1024 * 1024;

type Failures = Problem[];

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value);

/** `{ NAME: "IFACE" }` or `{ NAME: { iface, mac } }`, as NetAttachments. */
function normalizeNet(value: unknown, failures: Failures): Record<string, NetAttachment> {
  const result: Record<string, NetAttachment> = {};
  for (const [name, given] of Object.entries(value as Record<string, unknown>)) {
    const attachment = typeof given === "string" ? { iface: given } : given;
    if (!isObject(attachment) || typeof attachment.iface !== "string") {
      failures.push({
        property: `net.${name}`,
        reason: `net.${name} must be a tap interface's name, e.g. "tap0", or { iface: "tap0", mac: "02:00:00:00:00:01" }`,
      });
      continue;
    }
    result[name] = attachment as unknown as NetAttachment;
  }
  return result;
}

/** `{ NAME: "PATH" }` or `{ NAME: { path, sizeMiB, sectorSize } }`, as BlockAttachments. */
function normalizeBlock(value: unknown, failures: Failures): Record<string, BlockAttachment> {
  const result: Record<string, BlockAttachment> = {};
  for (const [name, given] of Object.entries(value as Record<string, unknown>)) {
    const attachment = typeof given === "string" ? { path: given } : given;
    if (!isObject(attachment) || typeof attachment.path !== "string" || attachment.path === "") {
      failures.push({
        property: `block.${name}`,
        reason: `block.${name} must be a file's path, or { path: "/var/lib/app/disk.img", sizeMiB: 64 }`,
      });
      continue;
    }
    const path = attachment.path as string;
    // The tender runs in the resource's state directory: a relative path means the program's.
    result[name] = {
      ...(attachment as unknown as BlockAttachment),
      path: isKnown(path) && !isAbsolute(path) ? resolve(path) : path,
    };
  }
  return result;
}

async function checkNet(
  name: string,
  net: NetAttachment,
  netns: string | undefined,
  spelling: Spelling,
  failures: Failures,
): Promise<void> {
  const property = `net.${name}`;
  const shown = spelling.device("net", name);
  const { iface, mac } = net;
  if (mac !== undefined && isKnown(mac) && !(typeof mac === "string" && MAC.test(mac)))
    failures.push({
      property,
      reason: `${property}.mac ${JSON.stringify(mac)} is not a MAC address: write six hex bytes, e.g. 02:00:00:00:00:01`,
    });
  if (!isKnown(iface)) return; // made by a local.Tap that does not exist yet
  const ip = netns === undefined ? "ip" : `ip -n ${netns}`;
  const fix = `${spelling.makeTap} \`${ip} tuntap add dev ${iface} mode tap && ${ip} link set dev ${iface} up\``;
  if (!INTERFACE_NAME.test(iface)) {
    failures.push({
      property,
      reason: `${shown}: ${JSON.stringify(iface)} is not a network interface name (1-15 letters, digits, - or _)`,
    });
    return;
  }
  const state = await interfaceState(iface, netns);
  const where = netns === undefined ? "this network namespace" : `network namespace ${netns}`;
  if (!state)
    failures.push({
      property,
      reason: `${shown}: tap interface ${iface} does not exist in ${where}: ${fix}`,
    });
  else if (!state.tap)
    failures.push({
      property,
      reason: `${shown}: ${iface} is not a tap interface, and a Solo5 tender attaches only taps: ${fix.replace("create it", "create a tap")}`,
    });
  else if (!state.up)
    failures.push({
      property,
      reason: `${shown}: tap interface ${iface} is down, and the tender refuses it: \`${ip} link set dev ${iface} up\``,
    });
}

function checkBlock(
  name: string,
  block: BlockAttachment,
  spelling: Spelling,
  failures: Failures,
): void {
  const property = `block.${name}`;
  const shown = spelling.device("block", name);
  const { path, sizeMiB, sectorSize } = block;
  const sector = sectorSize ?? 512;
  const sectorProblem = isKnown(sectorSize) && outOfBounds(sector, BOUNDS.sectorSize);
  if (sectorProblem) failures.push({ property: `${property}.sectorSize`, reason: sectorProblem });
  const sizeProblem =
    sizeMiB !== undefined && isKnown(sizeMiB) && outOfBounds(sizeMiB, BOUNDS.blockSizeMiB);
  if (sizeProblem) failures.push({ property: `${property}.sizeMiB`, reason: sizeProblem });
  if (!isKnown(path)) return;
  const info = statSync(path, { throwIfNoEntry: false });
  if (!info) {
    if (!existsSync(dirname(path)))
      failures.push({
        property,
        reason: `${shown}: the directory of ${path} does not exist: create it, or give a path in an existing directory`,
      });
    else if (sizeMiB === undefined)
      failures.push({
        property,
        reason: `${shown}: ${path} does not exist: ${spelling.makeBlock}`,
      });
    return;
  }
  if (!info.isFile() && !info.isBlockDevice()) {
    failures.push({ property, reason: `${shown}: ${path} is not a file or a block device` });
  } else if (info.isFile() && (info.size < sector || info.size % sector !== 0)) {
    failures.push({
      property,
      reason:
        `${shown}: ${path} is ${info.size} bytes, and the tender needs a whole number of ` +
        `${sector}-byte sectors, at least one: resize it (e.g. \`truncate -s 64M ${path}\`)`,
    });
  }
}

/** Names of `kind` devices the kernel declares. */
const declared = (manifest: Device[], kind: Device["type"]) =>
  manifest.filter((device) => device.type === kind).map((device) => device.name);

/**
 * Checks `net` and `block` against the kernel's manifest (undefined while not known: the names
 * are then checked once it is) and the host, taps in `netns` (default: ours); returns them
 * normalized, and what is wrong with them.
 */
export async function checkAttachments(
  net: unknown,
  block: unknown,
  manifest: Device[] | undefined,
  netns: string | undefined,
  spelling: Spelling = RESOURCE_SPELLING,
): Promise<{ attachments: Partial<Attachments>; problems: Problem[] }> {
  const failures: Failures = [];
  const result: Partial<Attachments> = {};
  for (const [key, value] of [
    ["net", net],
    ["block", block],
  ] as const) {
    if (value === undefined || value === null) continue;
    if (!isKnown(value))
      return { attachments: { net: net as never, block: block as never }, problems: failures };
    if (!isObject(value))
      failures.push({
        property: key,
        reason: `${key} must map device names to ${key === "net" ? 'taps, e.g. { service: "tap0" }' : 'files, e.g. { storage: "/var/lib/app/disk.img" }'}`,
      });
  }
  if (isObject(net)) result.net = normalizeNet(net, failures);
  if (isObject(block)) result.block = normalizeBlock(block, failures);
  for (const kind of ["net", "block"] as const) {
    const given = Object.keys(result[kind] ?? {});
    for (const name of given) {
      if (!DEVICE_NAME.test(name))
        failures.push({
          property: `${kind}.${name}`,
          reason: `${spelling.device(kind, name)}: Solo5 device names are letters and digits only`,
        });
      else if (manifest && !declared(manifest, kind).includes(name))
        failures.push({
          property: `${kind}.${name}`,
          reason: `${spelling.device(kind, name)}: the kernel declares no ${kind === "net" ? "network" : "block"} device named ${name} (it declares ${declared(manifest, kind).join(", ") || "none"}): drop it`,
        });
    }
    for (const name of manifest ? declared(manifest, kind) : []) {
      if (given.includes(name)) continue;
      failures.push({
        property: kind,
        reason: `the kernel declares ${kind === "net" ? "network" : "block"} device ${name}, which is not attached, and the tender refuses to start it: ${spelling.attach(kind, name)}`,
      });
    }
  }
  for (const [name, attachment] of Object.entries(result.net ?? {}))
    await checkNet(name, attachment, netns, spelling, failures);
  for (const [name, attachment] of Object.entries(result.block ?? {}))
    checkBlock(name, attachment, spelling, failures);
  return { attachments: result, problems: failures };
}

/** The tender's device options, by device name: --net, --net-mac, --block, --block-sector-size. */
export function tenderDeviceArgs(attachments: Partial<Attachments>): string[] {
  const byName = <T>(record: Record<string, T> | undefined) =>
    Object.entries(record ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const args: string[] = [];
  for (const [name, { iface, mac }] of byName(attachments.net)) {
    args.push(`--net:${name}=${iface}`);
    if (mac !== undefined) args.push(`--net-mac:${name}=${mac}`);
  }
  for (const [name, { path, sectorSize }] of byName(attachments.block)) {
    args.push(`--block:${name}=${path}`);
    if (sectorSize !== undefined) args.push(`--block-sector-size:${name}=${sectorSize}`);
  }
  return args;
}

/**
 * Creates each missing block file, sparse, at its `sizeMiB`. The file appears complete or not at
 * all (made beside it, then linked into place), and a file that exists, or appears meanwhile, is
 * never touched.
 */
export async function createBlockFiles(
  block: Record<string, BlockAttachment> | undefined,
): Promise<void> {
  for (const { path, sizeMiB } of Object.values(block ?? {})) {
    if (sizeMiB === undefined || existsSync(path)) continue;
    const temp = tempPathFor(path);
    try {
      const handle = await open(
        temp,
        constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY,
        0o600,
      );
      await handle.truncate(sizeMiB * MIB).finally(() => handle.close());
      await link(temp, path).catch((error: NodeJS.ErrnoException) => {
        if (error.code !== "EEXIST") throw error;
      });
    } finally {
      await rm(temp, { force: true });
    }
  }
}

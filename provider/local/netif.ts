// Network interfaces for local runs, in this process's network namespace or in a named one
// (`ip netns add NAME`): what an interface is (iproute2's JSON), running `ip` there, and whether
// this process may create interfaces at all.
import { existsSync, readFileSync } from "node:fs";
import { run, ToolError } from "../core/exec";

/** Linux interface names: at most IFNAMSIZ - 1 = 15 bytes; we allow the unsurprising ones. */
export const INTERFACE_NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{0,14}$/;
/** Names `ip netns add` accepts and keeps as /run/netns/NAME. */
const NETNS_NAME = /^[A-Za-z0-9_.][A-Za-z0-9_.-]*$/;
const IP_TIMEOUT_MS = 30_000;

export interface InterfaceState {
  /** Administratively up: what a Solo5 tender needs to attach it. */
  up: boolean;
  /** A tap device, which is all a Solo5 tender can attach. */
  tap: boolean;
}

/** Why `netns` cannot be used, or undefined when it can (an absent netns means our own). */
export function netnsProblem(netns: string | undefined): string | undefined {
  if (netns === undefined) return undefined;
  if (!NETNS_NAME.test(netns))
    return `netns ${JSON.stringify(netns)} is not a network namespace name (as \`ip netns add NAME\` takes)`;
  if (!existsSync(`/run/netns/${netns}`))
    return `network namespace ${netns} does not exist: create it with \`ip netns add ${netns}\``;
  return undefined;
}

/** Runs `ip ARGS` in network namespace `netns` (default: ours). */
export function ip(netns: string | undefined, args: string[]) {
  return run("ip", [...(netns === undefined ? [] : ["-n", netns]), ...args], {
    timeoutMs: IP_TIMEOUT_MS,
  });
}

/** The interface `name` in `netns`, or undefined when there is none. */
export async function interfaceState(
  name: string,
  netns?: string,
): Promise<InterfaceState | undefined> {
  let stdout: string;
  try {
    ({ stdout } = await ip(netns, ["-j", "-d", "link", "show", "dev", name]));
  } catch (error) {
    if (error instanceof ToolError && error.tail.some((line) => line.includes("does not exist")))
      return undefined;
    throw error;
  }
  const [link] = JSON.parse(stdout) as {
    flags?: string[];
    linkinfo?: { info_kind?: string; info_data?: { type?: string } };
  }[];
  return {
    up: link.flags?.includes("UP") ?? false,
    tap: link.linkinfo?.info_kind === "tun" && link.linkinfo.info_data?.type === "tap",
  };
}

const CAP_NET_ADMIN = 12;

/** Whether this process holds CAP_NET_ADMIN (root normally does), which creating a tap needs. */
export function hasNetAdmin(): boolean {
  const status = readFileSync("/proc/self/status", "utf8");
  const effective = /^CapEff:\s*([0-9a-f]+)$/m.exec(status)?.[1];
  return (
    effective !== undefined && ((BigInt(`0x${effective}`) >> BigInt(CAP_NET_ADMIN)) & 1n) === 1n
  );
}

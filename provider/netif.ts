// Network interfaces of the network namespace this process runs in, as /sys/class/net shows them
// (`ip netns exec` mounts a sysfs of the namespace it enters), and whether this process may
// create them.
import { readFileSync } from "node:fs";

/** Linux interface names: at most IFNAMSIZ - 1 = 15 bytes; we allow the unsurprising ones. */
export const INTERFACE_NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{0,14}$/;

const IFF_UP = 0x1;
const IFF_RUNNING = 0x40;
const IFF_TAP = 0x2; // in tun_flags

export interface InterfaceState {
  /** Administratively up (or running): what a Solo5 tender needs to attach it. */
  up: boolean;
  /** A tap device (tun_flags has IFF_TAP), which is all a Solo5 tender can attach. */
  tap: boolean;
}

function sysValue(name: string, file: string): number | undefined {
  try {
    return Number(readFileSync(`/sys/class/net/${name}/${file}`, "utf8").trim());
  } catch {
    return undefined;
  }
}

/** The interface `name`, or undefined when there is none in this network namespace. */
export function interfaceState(name: string): InterfaceState | undefined {
  if (!INTERFACE_NAME.test(name)) return undefined;
  const flags = sysValue(name, "flags");
  if (flags === undefined) return undefined;
  return {
    up: (flags & (IFF_UP | IFF_RUNNING)) !== 0,
    tap: ((sysValue(name, "tun_flags") ?? 0) & IFF_TAP) !== 0,
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

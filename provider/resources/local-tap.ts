// local.Tap: a tap interface for local hvt/spt runs, with the host's address on it, up; removed on
// delete. It lives in the network namespace named by `netns`, or in the program's own. Creating
// one needs root or CAP_NET_ADMIN: check says so at preview, create before running anything.
import { isIP } from "node:net";
import type * as pulumi from "@pulumi/pulumi";
import { isKnown } from "../../rules/values";
import { hasNetAdmin, INTERFACE_NAME, interfaceState, ip, netnsProblem } from "../local/netif";
import { changedKeys, definedOnly } from "./inputs";

export interface TapInputs {
  /** The interface name, at most 15 characters, e.g. `tap100`. */
  name: string;
  /** The host's address on the tap's network, with its prefix length, e.g. `10.0.0.1/24`. */
  address?: string;
  /** The network namespace (`ip netns add NAME`) to make it in; default: the program's own. */
  netns?: string;
}

export interface TapOutputs extends TapInputs {
  /** The tap's name once it exists: unknown at preview, so a local.Process using it waits for it. */
  interface: string;
}

const INPUTS: (keyof TapInputs)[] = ["name", "address", "netns"];

/** What to say when we may not create interfaces; `name` is the tap's. */
function permissionMessage(name: string): string {
  return (
    `local.Tap cannot create tap ${name}: creating a network interface needs root or the ` +
    "CAP_NET_ADMIN capability, and this process has neither: run `pulumi up` as root " +
    "(e.g. with sudo), or create the tap beforehand (`ip tuntap add dev NAME mode tap user " +
    "USER`) and give its name to local.Process's `net` instead of a local.Tap"
  );
}

function checkAddress(address: unknown): string | undefined {
  if (address === undefined || address === null || !isKnown(address)) return undefined;
  const [host, prefix, ...rest] = typeof address === "string" ? address.split("/") : [];
  const family = host === undefined ? 0 : isIP(host);
  const bits = Number(prefix);
  if (
    family === 0 ||
    rest.length > 0 ||
    !/^\d+$/.test(prefix ?? "") ||
    bits > (family === 4 ? 32 : 128)
  )
    return `address ${JSON.stringify(address)} must be an IP address with its prefix length, e.g. "10.0.0.1/24"`;
  return undefined;
}

async function check(olds: Partial<TapInputs>, news: Record<string, unknown>) {
  const failures: pulumi.dynamic.CheckFailure[] = [];
  const { name, address, netns } = news;
  if (typeof netns === "string" && isKnown(netns)) {
    const problem = netnsProblem(netns);
    if (problem) failures.push({ property: "netns", reason: problem });
  } else if (netns !== undefined && netns !== null && isKnown(netns)) {
    failures.push({ property: "netns", reason: "netns must be a network namespace's name" });
  }
  const addressProblem = checkAddress(address);
  if (addressProblem) failures.push({ property: "address", reason: addressProblem });
  if (!(typeof name === "string" && (INTERFACE_NAME.test(name) || !isKnown(name)))) {
    failures.push({
      property: "name",
      reason: `name ${JSON.stringify(name)} must be an interface name: 1-15 letters, digits, - or _, e.g. "tap100"`,
    });
  } else if (isKnown(name) && !hasNetAdmin()) {
    failures.push({ property: "name", reason: permissionMessage(name) });
  } else if (
    isKnown(name) &&
    failures.length === 0 &&
    (olds.name !== name || olds.netns !== netns)
  ) {
    // A new tap: the name must be free (an existing interface is not ours to take or delete).
    if (await interfaceState(name, netns as string | undefined))
      failures.push({
        property: "name",
        reason: `an interface named ${name} already exists${netns ? ` in network namespace ${netns}` : ""}: pick another name, or remove it (\`ip link del dev ${name}\`)`,
      });
  }
  return { inputs: definedOnly({ name, address, netns }) as unknown as TapInputs, failures };
}

async function create(inputs: TapInputs): Promise<pulumi.dynamic.CreateResult<TapOutputs>> {
  const { name, address, netns } = inputs;
  if (!hasNetAdmin()) throw new Error(permissionMessage(name));
  try {
    await ip(netns, ["tuntap", "add", "dev", name, "mode", "tap"]);
  } catch (error) {
    if (String((error as Error).message).includes("Operation not permitted"))
      throw new Error(permissionMessage(name), { cause: error });
    throw error;
  }
  try {
    if (address !== undefined) await ip(netns, ["address", "add", address, "dev", name]);
    await ip(netns, ["link", "set", "dev", name, "up"]);
  } catch (error) {
    await ip(netns, ["link", "del", "dev", name]).catch(() => {});
    throw error;
  }
  return {
    id: netns === undefined ? name : `${netns}/${name}`,
    outs: { ...inputs, interface: name },
  };
}

/** Whether the tap is still there (a removed namespace took its taps with it). */
async function existingTap({ name, netns }: TapInputs): Promise<boolean> {
  if (netnsProblem(netns)) return false;
  return (await interfaceState(name, netns))?.tap ?? false;
}

export const provider = {
  check,
  async diff(_id: string, olds: TapInputs, news: TapInputs): Promise<pulumi.dynamic.DiffResult> {
    const replaces = changedKeys({ ...olds }, { ...news }, INPUTS);
    // The same name cannot exist twice: the old tap goes first.
    return { changes: replaces.length > 0, replaces, deleteBeforeReplace: true };
  },
  create,
  /** Gone (no id) once the tap has been removed behind our back. */
  async read(id: string, props: TapOutputs): Promise<pulumi.dynamic.ReadResult<TapOutputs>> {
    return (await existingTap(props)) ? { id, props } : { id: "" };
  },
  // Every input replaces the tap: nothing to change in place.
  update: async (_id: string, olds: TapOutputs) => ({ outs: olds }),
  async delete(_id: string, props: TapOutputs): Promise<void> {
    if (await existingTap(props)) await ip(props.netns, ["link", "del", "dev", props.name]);
  },
};

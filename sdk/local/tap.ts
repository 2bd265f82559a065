import * as pulumi from "@pulumi/pulumi";
import { engineProvider } from "../engine";

export interface TapArgs {
  /** The interface name, at most 15 characters, e.g. `tap100`. */
  name: pulumi.Input<string>;
  /**
   * The host's address on the tap's network, with its prefix length, e.g. `10.0.0.1/24`; the
   * unikernel takes another address in it (`--ipv4=10.0.0.2/24`). Default: none.
   */
  address?: pulumi.Input<string>;
  /**
   * The network namespace to make the tap in (one made with `ip netns add NAME`); give the same
   * `netns` to the local.Process using it. Default: the namespace the program runs in.
   */
  netns?: pulumi.Input<string>;
}

/**
 * A tap interface on this machine, up, with the host's address on it: the network a local hvt or
 * spt unikernel attaches to (`local.Process`'s `net`). `pulumi destroy` removes it. Creating it
 * needs root or CAP_NET_ADMIN; `pulumi preview` already says so when they are missing. Changing
 * any input replaces it.
 */
export class Tap extends pulumi.dynamic.Resource {
  /** The tap's name, known once it exists: a local.Process given this waits for the tap. */
  declare readonly interface: pulumi.Output<string>;
  declare readonly address: pulumi.Output<string | undefined>;
  declare readonly netns: pulumi.Output<string | undefined>;

  constructor(name: string, args: TapArgs, opts?: pulumi.CustomResourceOptions) {
    super(
      engineProvider("local-tap"),
      name,
      { name: args.name, address: args.address, netns: args.netns, interface: undefined },
      opts,
      "pulumi-mirage",
      "LocalTap",
    );
  }
}

// Addresses that survive replacements (`staticIp`). One VM holds a reserved regional address
// itself. A group gets one address in front of it: a proxy network load balancer, because a
// passthrough one delivers packets addressed to the balancer's IP, which a MirageOS stack drops
// (mirage-tcpip accepts only its own address), and answers would leave from the VM's address.
// A proxy opens its own connection to each VM's address instead.
import type * as gcp from "@pulumi/gcp";
import * as pulumi from "@pulumi/pulumi";
import { gcpSdk } from "../peers";

/** A zone's region: `europe-west1-b` is in `europe-west1`. */
export function regionOfZone(zone: string): string {
  return zone.replace(/-[a-z]$/, "");
}

/** A reserved external address in the VM's region, for one VM. */
export function vmAddress(
  name: string,
  project: pulumi.Input<string> | undefined,
  region: pulumi.Input<string> | undefined,
  opts: pulumi.CustomResourceOptions,
): gcp.compute.Address {
  const gcp = gcpSdk("gcp.UnikernelService");
  return new gcp.compute.Address(
    `${name}-ip`,
    { project, region, addressType: "EXTERNAL", networkTier: "PREMIUM" },
    opts,
  );
}

/** The named port the group declares and each backend service targets. */
export const namedPort = (port: number) => ({ name: `tcp${port}`, port });

export interface BalancerArgs {
  project: pulumi.Input<string> | undefined;
  /** The group's instance group (not its manager). */
  instanceGroup: pulumi.Input<string>;
  healthCheck: gcp.compute.HealthCheck;
  /** TCP ports to serve; each gets a backend service, a proxy and a forwarding rule. */
  ports: number[];
}

/**
 * One global static address before a group, forwarding each TCP port through a proxy to the
 * group's healthy VMs (the autohealing health check decides which). Returns the address, known
 * once every port's forwarding rule exists.
 */
export function groupBalancer(
  name: string,
  args: BalancerArgs,
  opts: pulumi.CustomResourceOptions,
): pulumi.Output<string> {
  const gcp = gcpSdk("gcp.UnikernelService");
  const address = new gcp.compute.GlobalAddress(
    `${name}-ip`,
    { project: args.project, addressType: "EXTERNAL", ipVersion: "IPV4" },
    opts,
  );
  const rules = args.ports.map((port) => {
    const backend = new gcp.compute.BackendService(
      `${name}-lb-${port}`,
      {
        project: args.project,
        loadBalancingScheme: "EXTERNAL_MANAGED",
        protocol: "TCP",
        portName: namedPort(port).name,
        healthChecks: args.healthCheck.selfLink,
        backends: [{ group: args.instanceGroup, balancingMode: "UTILIZATION", capacityScaler: 1 }],
      },
      opts,
    );
    const proxy = new gcp.compute.TargetTCPProxy(
      `${name}-proxy-${port}`,
      { project: args.project, backendService: backend.selfLink },
      opts,
    );
    return new gcp.compute.GlobalForwardingRule(
      `${name}-fwd-${port}`,
      {
        project: args.project,
        loadBalancingScheme: "EXTERNAL_MANAGED",
        ipProtocol: "TCP",
        ipAddress: address.address,
        portRange: String(port),
        target: proxy.selfLink,
      },
      opts,
    );
  });
  // The address is worth giving out once every port forwards.
  return pulumi.all([address.address, ...rules.map((r) => r.id)]).apply(([ip]) => ip);
}

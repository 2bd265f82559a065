// A service's stable address and health check when it declares ports: a Network Load Balancer
// with a target group and a listener per declared port, every target group checked over TCP on
// the health-check port. The group registers its instances in the target groups, and EC2 Auto
// Scaling counts an instance the checks fail as unhealthy and replaces it. With `staticIp`, each
// of the balancer's subnets (one per zone) gets an Elastic IP through its subnet mapping.
import * as pulumi from "@pulumi/pulumi";
import { awsSdk } from "../peers";
import type { Network } from "./network";
import { COMPONENT, type ServiceSpec } from "./resolve";

export interface Balancer {
  /** The balancer's DNS name: the address clients use. */
  dnsName: pulumi.Output<string>;
  /** The Elastic IPs in front of it, with `staticIp`; else none. */
  staticIps: pulumi.Output<string[]>;
  targetGroupArns: pulumi.Output<string>[];
  /** The listeners, which the group waits for: a target group no listener uses is never checked. */
  listeners: pulumi.Resource[];
}

/**
 * The start of the balancer's and target groups' names. Their names hold at most 32 characters
 * of letters, digits and hyphens, and must be unique, also while a replacement and the resource
 * it replaces both exist: AWS completes a prefix of at most 6 characters with a unique suffix,
 * and the `Name` tag says whose they are.
 */
export function lbNamePrefix(service: string): string {
  return `${service.replace(/[^A-Za-z0-9]/g, "").slice(0, 5) || "mrg"}-`;
}

export function balancerOf(
  spec: ServiceSpec,
  network: Network,
  parent: pulumi.Resource,
): Balancer | undefined {
  const { name, tags, ports, health } = spec;
  if (ports.length === 0 || health.port === undefined) return undefined;
  const aws = awsSdk(COMPONENT);
  const child = { parent };
  const namePrefix = lbNamePrefix(name);
  // Named by subnet, so adding a subnet leaves the others' addresses where they are.
  const addresses = spec.staticIp
    ? network.subnetIds.apply((ids) =>
        ids.map((subnetId) => ({
          subnetId,
          eip: new aws.ec2.Eip(`${name}-address-${subnetId}`, { domain: "vpc", tags }, child),
        })),
      )
    : undefined;
  const balancer = new aws.lb.LoadBalancer(
    `${name}-lb`,
    {
      namePrefix,
      loadBalancerType: "network",
      internal: false,
      ...(addresses
        ? {
            subnetMappings: addresses.apply((all) =>
              all.map(({ subnetId, eip }) => ({ subnetId, allocationId: eip.allocationId })),
            ),
          }
        : { subnets: network.subnetIds }),
      // Fewer instances than zones, or a client holding one zone's static IP, must still reach
      // a healthy instance in another zone.
      enableCrossZoneLoadBalancing: true,
      tags: { Name: name, ...tags },
    },
    child,
  );
  const forwarded = ports.map(({ port, protocol }) => {
    const targetGroup = new aws.lb.TargetGroup(
      `${name}-${protocol}-${port}`,
      {
        namePrefix,
        port,
        protocol: protocol.toUpperCase(),
        vpcId: network.vpcId,
        targetType: "instance",
        healthCheck: {
          protocol: "TCP",
          port: String(health.port),
          // Healthy after two passes 10 s apart, rather than the default five 30 s apart.
          interval: 10,
          healthyThreshold: 2,
          unhealthyThreshold: 2,
        },
        tags: { Name: `${name}-${protocol}-${port}`, ...tags },
      },
      child,
    );
    const listener = new aws.lb.Listener(
      `${name}-${protocol}-${port}`,
      {
        loadBalancerArn: balancer.arn,
        port,
        protocol: protocol.toUpperCase(),
        defaultActions: [{ type: "forward", targetGroupArn: targetGroup.arn }],
        tags,
      },
      child,
    );
    return { targetGroupArn: targetGroup.arn, listener };
  });
  return {
    dnsName: balancer.dnsName,
    staticIps: addresses
      ? addresses.apply((all) => pulumi.all(all.map(({ eip }) => eip.publicIp)))
      : pulumi.output([]),
    targetGroupArns: forwarded.map((f) => f.targetGroupArn),
    listeners: forwarded.map((f) => f.listener),
  };
}

// Where a service's instances run: its VPC, the subnets its group spreads them over (by default
// the default VPC's default subnets, one in every zone of the region) and the security group
// opening only the declared ports.
import * as pulumi from "@pulumi/pulumi";
import { awsSdk } from "../peers";
import { COMPONENT, type ServiceSpec } from "./resolve";

export interface Network {
  vpcId: pulumi.Output<string>;
  subnetIds: pulumi.Output<string[]>;
  securityGroupId: pulumi.Output<string>;
}

export function networkOf(spec: ServiceSpec, parent: pulumi.Resource): Network {
  const aws = awsSdk(COMPONENT);
  const child = { parent };
  const { name, tags } = spec;
  const given = spec.subnetIds === undefined ? undefined : pulumi.output(spec.subnetIds);
  const vpcId =
    spec.vpcId !== undefined
      ? pulumi.output(spec.vpcId)
      : given !== undefined
        ? given.apply((ids) => aws.ec2.getSubnetOutput({ id: ids[0] }, child).vpcId)
        : aws.ec2.getVpcOutput({ default: true }, child).id;
  const subnetIds =
    given ??
    aws.ec2.getSubnetsOutput(
      {
        filters: [
          { name: "vpc-id", values: [vpcId] },
          { name: "default-for-az", values: ["true"] },
        ],
      },
      child,
    ).ids;
  // A load balancer's health checks come from its own addresses in the VPC: with clients
  // limited by cidrBlocks, they need a rule of their own (unless a declared one has that range
  // already: EC2 refuses a rule twice).
  const healthPort = spec.health.port;
  const declared = spec.ports.map((p) => ({
    protocol: p.protocol,
    fromPort: p.port,
    toPort: p.port,
    cidrBlocks: p.cidrBlocks,
  }));
  const ingress =
    healthPort === undefined
      ? declared
      : aws.ec2.getVpcOutput({ id: vpcId }, child).cidrBlock.apply((range) => {
          const covered = spec.ports.some(
            (p) => p.protocol === "tcp" && p.port === healthPort && p.cidrBlocks.includes(range),
          );
          const rule = {
            protocol: "tcp",
            fromPort: healthPort,
            toPort: healthPort,
            cidrBlocks: [range],
            description: "the load balancer's health checks",
          };
          return covered ? declared : [...declared, rule];
        });
  const securityGroup = new aws.ec2.SecurityGroup(
    `${name}-ports`,
    {
      description: "pulumi-mirage: the unikernel's declared ports",
      vpcId,
      ingress,
      egress: [{ protocol: "-1", fromPort: 0, toPort: 0, cidrBlocks: ["0.0.0.0/0"] }],
      tags,
    },
    child,
  );
  return { vpcId, subnetIds, securityGroupId: securityGroup.id };
}

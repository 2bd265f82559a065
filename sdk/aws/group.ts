// A service's instances: launched from one launch template into an Auto Scaling group of exactly
// `instanceCount` across the service's subnets. A new kernel, tender or boot arguments changes
// the template, which makes a new version of it (the same template); the group then refers to
// that version, and the change starts an instance refresh: Rolling, launching each replacement
// and waiting until it is healthy and warmed up before terminating an old instance (minimum
// healthy 100%, maximum 200%), rolling back by itself when the refresh fails. The group itself is
// never replaced by a new kernel.
import type * as pulumi from "@pulumi/pulumi";
import { awsSdk } from "../peers";
import type { Balancer } from "./balancer";
import type { HostLaunch } from "./host-service";
import type { Network } from "./network";
import { COMPONENT, type ServiceSpec } from "./resolve";
import type { XenLaunch } from "./xen-ami";

export interface Group {
  launchTemplateId: pulumi.Output<string>;
  /** The template's version the group runs: a number, since rollback needs one. */
  launchTemplateVersion: pulumi.Output<number>;
  groupName: pulumi.Output<string>;
  group: pulumi.Resource;
}

/** What the template says beyond the AMI and the type: the host's user data, role and CPU. */
function hostTemplate(launch: HostLaunch) {
  return {
    // A launch template's user data is base64.
    userData: launch.userData.apply((script) => Buffer.from(script, "utf8").toString("base64")),
    iamInstanceProfile: { name: launch.iamInstanceProfile },
    cpuOptions: launch.nestedVirtualization.apply((nested) =>
      nested ? { nestedVirtualization: nested } : undefined,
    ),
  };
}

export function groupOf(
  spec: ServiceSpec,
  launch: HostLaunch | XenLaunch,
  network: Network,
  balancer: Balancer | undefined,
  parent: pulumi.Resource,
): Group {
  const aws = awsSdk(COMPONENT);
  const { name, tags, instanceCount, health } = spec;
  const template = new aws.ec2.LaunchTemplate(
    `${name}-launch`,
    {
      description: "pulumi-mirage: the unikernel's instances",
      imageId: launch.ami,
      instanceType: launch.instanceType,
      ...(launch.kind === "host" ? hostTemplate(launch) : {}),
      metadataOptions: { httpTokens: "required", httpEndpoint: "enabled" },
      networkInterfaces: [
        {
          deviceIndex: 0,
          associatePublicIpAddress: String(spec.associatePublicIpAddress),
          securityGroups: [network.securityGroupId],
          deleteOnTermination: "true",
        },
      ],
      updateDefaultVersion: true,
      tagSpecifications: [
        { resourceType: "instance", tags: { Name: name, ...tags } },
        { resourceType: "volume", tags: { Name: name, ...tags } },
      ],
      tags,
    },
    { parent },
  );
  const group = new aws.autoscaling.Group(
    `${name}-group`,
    {
      desiredCapacity: instanceCount,
      minSize: instanceCount,
      maxSize: instanceCount,
      vpcZoneIdentifiers: network.subnetIds,
      launchTemplate: {
        id: template.id,
        version: template.latestVersion.apply((v) => String(v)),
      },
      healthCheckType: balancer ? "ELB" : "EC2",
      healthCheckGracePeriod: health.initialDelaySec,
      ...(balancer
        ? {
            targetGroupArns: balancer.targetGroupArns,
            // `pulumi up` returns once this many instances pass the balancer's checks.
            waitForElbCapacity: instanceCount,
          }
        : {}),
      instanceRefresh: {
        strategy: "Rolling",
        preferences: {
          minHealthyPercentage: 100,
          maxHealthyPercentage: 200,
          instanceWarmup: String(health.minReadySec),
          autoRollback: true,
          skipMatching: true,
        },
      },
      tags: Object.entries(tags).map(([key, value]) => ({ key, value, propagateAtLaunch: false })),
    },
    { parent, dependsOn: balancer?.listeners },
  );
  return {
    launchTemplateId: template.id,
    launchTemplateVersion: template.latestVersion,
    groupName: group.name,
    group,
  };
}

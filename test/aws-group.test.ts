// aws.UnikernelService's group under Pulumi mocks (test/support/aws-mocks.ts), on both paths: a
// launch template and an Auto Scaling group of exactly instanceCount instances, rolled by an
// instance refresh that keeps every instance serving; a Network Load Balancer with a target
// group and listener per declared port, and Elastic IPs in its subnet mappings with staticIp; a
// new kernel is a new launch template version of the same template, in the same group.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type * as pulumi from "@pulumi/pulumi";
import * as aws from "../sdk/aws";
import { lbNamePrefix } from "../sdk/aws/balancer";
import { Unikernel } from "../sdk/unikernel";
import { type Created, created, DEFAULT_SUBNETS, deploy, TENDER } from "./support/aws-mocks";

const spt = (name: string, kernel = "dist/hello.spt") =>
  new Unikernel(name, { kernel, target: "spt" });

/** The two paths, each as the arguments of a service. */
const PATHS: [string, (name: string) => Partial<aws.UnikernelServiceArgs>][] = [
  ["the AMI path", () => ({ ami: {} })],
  ["the host path", (name) => ({ unikernel: spt(`${name}-kernel`), host: { tender: TENDER } })],
];

const REFRESH = {
  strategy: "Rolling",
  preferences: {
    minHealthyPercentage: 100,
    maxHealthyPercentage: 200,
    instanceWarmup: "30",
    autoRollback: true,
    skipMatching: true,
  },
};

describe("aws.UnikernelService's group", () => {
  for (const [path, args] of PATHS) {
    test(`${path}: a launch template and an Auto Scaling group of instanceCount over the default subnets, rolled with every instance serving`, async () => {
      const name = path === "the AMI path" ? "amigroup" : "hostgroup";
      const { one, count, outputs, parents } = await deploy(name, {
        ...args(name),
        instanceCount: 3,
        tags: { team: "mirage" },
      });
      assert.equal(count("aws:ec2/instance:Instance"), 0, "no plain instance");
      const template = one("aws:ec2/launchTemplate:LaunchTemplate");
      assert.equal(template.inputs.updateDefaultVersion, true);
      assert.deepEqual(template.inputs.metadataOptions, {
        httpTokens: "required",
        httpEndpoint: "enabled",
      });
      assert.deepEqual(template.inputs.tagSpecifications[0], {
        resourceType: "instance",
        tags: { Name: name, team: "mirage" },
      });
      const group = one("aws:autoscaling/group:Group").inputs;
      assert.deepEqual([group.desiredCapacity, group.minSize, group.maxSize], [3, 3, 3]);
      assert.deepEqual(group.vpcZoneIdentifiers, DEFAULT_SUBNETS, "every zone's default subnet");
      assert.deepEqual(
        group.launchTemplate,
        { id: template.id, version: "1" },
        "a numbered version: a rollback needs one",
      );
      assert.deepEqual(group.instanceRefresh, REFRESH);
      assert.equal(group.healthCheckType, "EC2", "no load balancer without ports");
      assert.equal(group.healthCheckGracePeriod, 120);
      assert.equal(group.waitForElbCapacity, undefined);
      assert.deepEqual(group.tags, [{ key: "team", value: "mirage", propagateAtLaunch: false }]);
      for (const type of ["aws:lb/loadBalancer:LoadBalancer", "aws:lb/targetGroup:TargetGroup"])
        assert.equal(count(type), 0, `no ${type}`);
      assert.equal(parents.get(`${name}-group`), name);
      const rollout = one("pulumi-nodejs:dynamic/pulumi-mirage:Ec2RefreshWait").inputs;
      assert.deepEqual(
        rollout.group,
        { name: `${name}-group-5e0b`, launchTemplateId: template.id, version: 1 },
        "up waits until the group runs this version everywhere",
      );
      assert.equal(rollout.region, "eu-west-1");
      assert.equal(outputs.groupName, `${name}-group-5e0b`);
      assert.equal(outputs.launchTemplateId, template.id);
      assert.equal(outputs.address, "203.0.113.10", "without ports, the first instance's IP");
      assert.deepEqual(outputs.staticIps, []);
    });
  }

  test("with ports: a Network Load Balancer, a target group and listener per port, health-checked on the first TCP port, gating the group", async () => {
    const { one, mine, outputs, options } = await deploy("balanced", {
      ami: {},
      ports: [{ port: 53, protocol: "udp" }, 8080, 9090],
      instanceCount: 2,
      healthCheck: { initialDelaySec: 60, minReadySec: 10 },
    });
    const balancer = one("aws:lb/loadBalancer:LoadBalancer");
    assert.equal(balancer.inputs.loadBalancerType, "network");
    assert.equal(balancer.inputs.internal, false);
    assert.deepEqual(balancer.inputs.subnets, DEFAULT_SUBNETS);
    assert.equal(balancer.inputs.enableCrossZoneLoadBalancing, true);
    assert.equal(balancer.inputs.namePrefix, "balan-", "AWS completes it: 32 characters at most");
    assert.equal(balancer.inputs.tags.Name, "balanced");
    const groups = mine.filter((r) => r.type === "aws:lb/targetGroup:TargetGroup");
    assert.deepEqual(
      groups.map((g) => [g.inputs.protocol, g.inputs.port, g.inputs.vpcId, g.inputs.targetType]),
      [
        ["UDP", 53, "vpc-default", "instance"],
        ["TCP", 8080, "vpc-default", "instance"],
        ["TCP", 9090, "vpc-default", "instance"],
      ],
    );
    for (const g of groups) {
      assert.equal(g.inputs.namePrefix, "balan-");
      assert.equal(
        g.inputs.tags.Name,
        `balanced-${g.inputs.protocol.toLowerCase()}-${g.inputs.port}`,
      );
      assert.equal(g.inputs.healthCheck.protocol, "TCP");
      assert.equal(g.inputs.healthCheck.port, "8080", "the first TCP port, for every port");
    }
    const listeners = mine.filter((r) => r.type === "aws:lb/listener:Listener");
    const arn = (g: Created) =>
      `arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/${g.name}/1`;
    assert.deepEqual(
      listeners.map((l) => [l.inputs.protocol, l.inputs.port, l.inputs.defaultActions]),
      groups.map((g) => [
        g.inputs.protocol,
        g.inputs.port,
        [{ type: "forward", targetGroupArn: arn(g) }],
      ]),
    );
    for (const l of listeners)
      assert.equal(
        l.inputs.loadBalancerArn,
        `arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/net/${balancer.name}/1`,
      );
    const group = one("aws:autoscaling/group:Group");
    assert.deepEqual(group.inputs.targetGroupArns, groups.map(arn));
    assert.equal(group.inputs.healthCheckType, "ELB");
    assert.equal(group.inputs.waitForElbCapacity, 2, "up returns once both pass the checks");
    assert.equal(group.inputs.healthCheckGracePeriod, 60);
    assert.equal(group.inputs.instanceRefresh.preferences.instanceWarmup, "10");
    const dependsOn = (options.get(`aws:autoscaling/group:Group ${group.name}`)?.dependsOn ??
      []) as { __name?: string }[];
    assert.deepEqual(
      dependsOn.map((d) => d.__name),
      listeners.map((l) => l.name),
      "a target group is checked only once a listener uses it",
    );
    assert.equal(outputs.address, `${balancer.name}-0123.elb.eu-west-1.amazonaws.com`);
  });

  test("checks the configured port, which must be a declared TCP port", async () => {
    const { mine } = await deploy("checked", {
      ami: {},
      ports: [8080, 9090],
      healthCheck: { port: 9090 },
    });
    const ports = mine
      .filter((r) => r.type === "aws:lb/targetGroup:TargetGroup")
      .map((g) => g.inputs.healthCheck.port);
    assert.deepEqual(ports, ["9090", "9090"]);
  });

  test("staticIp: an Elastic IP per given subnet in the balancer's subnet mappings; the VPC is the subnets'", async () => {
    const { one, mine, outputs } = await deploy("pinned", {
      ami: {},
      ports: [443],
      staticIp: true,
      subnetIds: ["subnet-1a", "subnet-1b"],
    });
    const eips = mine.filter((r) => r.type === "aws:ec2/eip:Eip");
    assert.deepEqual(
      eips.map((e) => [e.name, e.inputs.domain]),
      [
        ["pinned-address-subnet-1a", "vpc"],
        ["pinned-address-subnet-1b", "vpc"],
      ],
    );
    const balancer = one("aws:lb/loadBalancer:LoadBalancer").inputs;
    assert.equal(balancer.subnets, undefined);
    assert.deepEqual(balancer.subnetMappings, [
      { subnetId: "subnet-1a", allocationId: "eipalloc-pinned-address-subnet-1a" },
      { subnetId: "subnet-1b", allocationId: "eipalloc-pinned-address-subnet-1b" },
    ]);
    assert.deepEqual(one("aws:autoscaling/group:Group").inputs.vpcZoneIdentifiers, [
      "subnet-1a",
      "subnet-1b",
    ]);
    assert.equal(one("aws:lb/targetGroup:TargetGroup").inputs.vpcId, "vpc-given");
    const ingress = one("aws:ec2/securityGroup:SecurityGroup").inputs.ingress;
    assert.deepEqual(ingress.at(-1).cidrBlocks, ["10.20.0.0/16"], "health checks from that VPC");
    assert.equal(outputs.staticIps.length, 2);
    for (const ip of outputs.staticIps) assert.match(ip, /^198\.51\.100\.\d+$/);
    assert.match(outputs.address ?? "", /\.elb\.eu-west-1\.amazonaws\.com$/);
  });

  for (const [path, change] of [
    ["the host path", "a new kernel"],
    ["the AMI path", "a new kernel (a new AMI)"],
  ] as const) {
    test(`${path}: ${change} is a new version of the same launch template, in the same group`, async () => {
      const name = path === "the AMI path" ? "rollami" : "rollhost";
      const round = async (kernel: string) => {
        created.length = 0;
        const args: Partial<aws.UnikernelServiceArgs> =
          path === "the AMI path"
            ? {
                unikernel: new Unikernel(`${name}-k-${kernel}`, { kernel, target: "xen" }),
                ami: {},
              }
            : { unikernel: spt(`${name}-k-${kernel}`, kernel), host: { tender: TENDER } };
        const { one, options } = await deploy(name, { ...args, ports: [8080], instanceCount: 2 });
        const group = one("aws:autoscaling/group:Group");
        return {
          rollout: one("pulumi-nodejs:dynamic/pulumi-mirage:Ec2RefreshWait"),
          template: one("aws:ec2/launchTemplate:LaunchTemplate"),
          group,
          groupOptions: options.get(`aws:autoscaling/group:Group ${group.name}`) as
            | pulumi.CustomResourceOptions
            | undefined,
        };
      };
      const first = await round(path === "the AMI path" ? "dist/hello.xen" : "dist/hello.spt");
      const second = await round(path === "the AMI path" ? "dist/hello2.xen" : "dist/hello2.spt");
      assert.equal(second.template.name, first.template.name, "the same launch template");
      assert.equal(second.template.id, first.template.id);
      assert.notDeepEqual(second.template.inputs, first.template.inputs, "with new content");
      assert.deepEqual(
        [first.group.inputs.launchTemplate.version, second.group.inputs.launchTemplate.version],
        ["1", "2"],
      );
      assert.equal(second.group.name, first.group.name, "the same group");
      assert.deepEqual(
        [first.rollout.inputs.group.version, second.rollout.inputs.group.version],
        [1, 2],
        "up waits for the new version's rollout",
      );
      const { launchTemplate: _a, ...before } = first.group.inputs;
      const { launchTemplate: _b, ...after } = second.group.inputs;
      assert.deepEqual(after, before, "only the version changes: an in-place update");
      for (const opts of [first.groupOptions, second.groupOptions]) {
        assert.equal(opts?.deleteBeforeReplace, undefined);
        assert.equal(opts?.replaceOnChanges, undefined);
      }
    });
  }
});

test("a stack made with plain instances upgrades in place: the security group and the boot wait keep their names, and the security group its description", async () => {
  // What earlier versions registered: SecurityGroup NAME-ports with this description (a new
  // description would replace it, under instances that still use it), Ec2ConsoleWait NAME-boot,
  // and Instance NAME-instance(-i), which the next `up` deletes once the group is up.
  const { one, count } = await deploy("upgraded", {
    unikernel: spt("upgraded-kernel"),
    host: { tender: TENDER, waitFor: { console: "serving" } },
    ports: [8080],
  });
  const securityGroup = one("aws:ec2/securityGroup:SecurityGroup");
  assert.equal(securityGroup.name, "upgraded-ports");
  assert.equal(securityGroup.inputs.description, "pulumi-mirage: the unikernel's declared ports");
  assert.equal(one("pulumi-nodejs:dynamic/pulumi-mirage:Ec2ConsoleWait").name, "upgraded-boot");
  assert.equal(count("aws:ec2/instance:Instance"), 0);
});

test("the health checks' rule is left out when a declared port already admits the VPC's range", async () => {
  const { one } = await deploy("inside", {
    ami: {},
    ports: [{ port: 8080, cidrBlocks: ["172.31.0.0/16"] }],
  });
  assert.deepEqual(one("aws:ec2/securityGroup:SecurityGroup").inputs.ingress, [
    { protocol: "tcp", fromPort: 8080, toPort: 8080, cidrBlocks: ["172.31.0.0/16"] },
  ]);
});

test("the balancer's name prefix: at most 6 letters, digits and hyphens, from any service name", () => {
  assert.equal(lbNamePrefix("web"), "web-");
  assert.equal(lbNamePrefix("my_very-long.service"), "myver-");
  assert.equal(lbNamePrefix("__"), "mrg-");
});

describe("aws.UnikernelService's refusals", () => {
  const refused = (args: Partial<aws.UnikernelServiceArgs>) => () =>
    new aws.UnikernelService("refused", { unikernel: {} as never, ami: {}, ...args });

  test("a health-check port that is not a declared TCP port", () => {
    assert.throws(
      refused({ ports: [8080, { port: 53, protocol: "udp" }], healthCheck: { port: 53 } }),
      /^Error: aws\.UnikernelService refused: healthCheck\.port must be one of the declared TCP ports \(8080\), not 53: declare it in ports, or check one of those$/,
    );
    assert.throws(
      refused({ healthCheck: { port: 8080 } }),
      /healthCheck\.port is 8080, and no TCP port is declared: a health check probes a declared TCP port, so declare the service's TCP port in ports \(e\.g\. ports: \[8080\]\)/,
    );
    assert.throws(
      refused({ ports: [{ port: 53, protocol: "udp" }] }),
      /healthCheck has no port to probe: the declared ports are all UDP/,
    );
  });

  test("an empty list of subnets", () => {
    assert.throws(
      refused({ subnetIds: [] }),
      /^Error: aws\.UnikernelService refused: subnetIds is empty: name at least one subnet \(one per zone\), or leave subnetIds out for the default VPC's$/,
    );
  });

  test("0.1's subnetId is taken as a list of one; with subnetIds too it is refused", async () => {
    const { one } = await deploy("oldsubnet", { ami: {}, subnetId: "subnet-1a" });
    assert.deepEqual(one("aws:autoscaling/group:Group").inputs.vpcZoneIdentifiers, ["subnet-1a"]);
    assert.throws(
      refused({ subnetId: "subnet-1a", subnetIds: ["subnet-1b"] }),
      /^Error: aws\.UnikernelService refused: subnetId is 0\.1's name for subnetIds: give only subnetIds \(a list of subnets, one per zone\)$/,
    );
  });

  test("a static IP without ports", () => {
    assert.throws(
      refused({ staticIp: true }),
      /^Error: aws\.UnikernelService refused: staticIp needs ports, and none is declared: the static addresses belong to the load balancer in front of the declared ports, so declare the service's ports \(e\.g\. ports: \[8080\]\) or leave staticIp out$/,
    );
  });

  test("instanceCount below one, a port declared twice and health-check delays out of bounds, all at once", () => {
    assert.throws(
      refused({
        instanceCount: 0,
        ports: [8080, 8080],
        healthCheck: { initialDelaySec: -1, minReadySec: 4000 },
      }),
      /^Error: aws\.UnikernelService refused: ports\[1\] is tcp 8080 again \(ports\[0\]\): declare each port and protocol once; healthCheck\.initialDelaySec must be a whole number of seconds from 0 to 3600, not -1; healthCheck\.minReadySec must be a whole number of seconds from 0 to 3600, not 4000; instanceCount must be a whole number, at least 1, not 0$/,
    );
  });
});

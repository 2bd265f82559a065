// aws.UnikernelService under Pulumi mocks, shared by its test files: the providers' outputs
// computed from the inputs as AWS computes them (a launch template's new content is its next
// version; an AMI's id follows its name), every registration recorded with its options, and a
// deploy helper that waits for them. The aws provider plugin cannot run here (docs/platforms.md,
// Pulumi dynamic providers).
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join, resolve } from "node:path";
import * as pulumi from "@pulumi/pulumi";
import * as aws from "../../sdk/aws";
import { Unikernel } from "../../sdk/unikernel";

export interface Created {
  type: string;
  name: string;
  // biome-ignore lint/suspicious/noExplicitAny: mocked inputs are untyped JSON, read by the tests
  inputs: Record<string, any>;
  id: string;
}

export const created: Created[] = [];

export const IMAGE_OBJECT = "hello-0123456789ab.raw";
let snapshots = 0;
export const IMAGE_PATH = "/cache/images/0123456789ab/disk.raw";
/** Kernels other than dist/hello.* and their sha256, as a Unikernel outputs it. */
export const KERNEL_SHAS: Record<string, string> = { "dist/hello2.spt": "ef".repeat(32) };
/** Each launch template's versions, by content: new content is a new version, as in EC2. */
const templateVersions = new Map<string, string[]>();
export const DEFAULT_SUBNETS = ["subnet-0a", "subnet-0b", "subnet-0c"];

pulumi.runtime.setMocks(
  {
    newResource(args) {
      // Every snapshot written is a new one, with a new id, as in EBS.
      const id = args.type.endsWith(":EbsSnapshot")
        ? `snap-${++snapshots}`
        : args.type === "aws:ec2/ami:Ami"
          ? `ami-${createHash("sha256").update(String(args.inputs.name)).digest("hex").slice(0, 8)}`
          : `${args.name}-id`;
      const extra: Record<string, unknown> = {};
      if (args.type.endsWith(":EbsSnapshot")) extra.snapshotId = id;
      if (args.type.endsWith(":DiskImage"))
        Object.assign(extra, {
          path: IMAGE_PATH,
          objectName: IMAGE_OBJECT,
          sha256: "cd".repeat(32),
        });
      if (args.type.endsWith(":Unikernel"))
        Object.assign(extra, {
          kernelPath: `/cache/kernels/hello.${args.inputs.target}`,
          sha256: KERNEL_SHAS[args.inputs.kernel] ?? "ab".repeat(32),
          name: "hello",
          manifest: [{ name: "service", type: "net" }],
        });
      if (args.type === "aws:s3/bucket:Bucket") extra.bucket = `${args.name}-4f2a`;
      if (args.type === "aws:iam/role:Role") extra.name = `${args.name}-81c3`;
      if (args.type === "aws:iam/instanceProfile:InstanceProfile") extra.name = `${args.name}-p1`;
      if (args.type === "aws:ssm/parameter:Parameter")
        Object.assign(extra, {
          name: `${args.name}-7d1e`,
          version: 4,
          arn: `arn:aws:ssm:eu-west-1:123456789012:parameter/${args.name}-7d1e`,
        });
      if (args.type === "aws:ec2/launchTemplate:LaunchTemplate") {
        const versions = templateVersions.get(args.name) ?? [];
        const content = JSON.stringify(args.inputs);
        if (!versions.includes(content)) versions.push(content);
        templateVersions.set(args.name, versions);
        extra.latestVersion = versions.indexOf(content) + 1;
      }
      if (args.type === "aws:autoscaling/group:Group") extra.name = `${args.name}-5e0b`;
      if (args.type === "aws:lb/loadBalancer:LoadBalancer")
        Object.assign(extra, {
          arn: `arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/net/${args.name}/1`,
          dnsName: `${args.name}-0123.elb.eu-west-1.amazonaws.com`,
        });
      if (args.type === "aws:lb/targetGroup:TargetGroup")
        extra.arn = `arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/${args.name}/1`;
      if (args.type === "aws:ec2/eip:Eip")
        Object.assign(extra, {
          allocationId: `eipalloc-${args.name}`,
          publicIp: `198.51.100.${created.length}`,
        });
      created.push({ type: args.type, name: args.name, inputs: args.inputs, id });
      return { id, state: { ...args.inputs, ...extra } };
    },
    call(args) {
      if (args.token === "aws:index/getPartition:getPartition") {
        return {
          id: "aws",
          partition: "aws",
          dnsSuffix: "amazonaws.com",
          reverseDnsPrefix: "com.amazonaws",
        };
      }
      if (args.token === "aws:ec2/getAmi:getAmi") {
        assert.deepEqual(args.inputs.owners, ["136693071363"], "Debian's own AMIs");
        assert.deepEqual(args.inputs.filters[0].values, ["debian-12-amd64-*"]);
        return { id: "ami-debian12", ...args.inputs };
      }
      if (args.token === "aws:index/getRegion:getRegion") {
        return { id: "eu-west-1", region: "eu-west-1", name: "eu-west-1" };
      }
      if (args.token === "aws:ec2/getVpc:getVpc") {
        return args.inputs.default || args.inputs.id === "vpc-default"
          ? { id: "vpc-default", cidrBlock: "172.31.0.0/16" }
          : { id: args.inputs.id, cidrBlock: "10.20.0.0/16" };
      }
      if (args.token === "aws:ec2/getSubnets:getSubnets") {
        assert.deepEqual(args.inputs.filters, [
          { name: "vpc-id", values: ["vpc-default"] },
          { name: "default-for-az", values: ["true"] },
        ]);
        return { id: "eu-west-1", ids: DEFAULT_SUBNETS };
      }
      if (args.token === "aws:ec2/getSubnet:getSubnet") {
        return { id: args.inputs.id, vpcId: "vpc-given" };
      }
      if (args.token === "aws:ec2/getInstances:getInstances") {
        const [filter] = args.inputs.filters;
        assert.equal(filter.name, "tag:aws:autoscaling:groupName");
        assert.deepEqual(args.inputs.instanceStateNames, ["pending", "running"]);
        const group = filter.values[0];
        return {
          id: "eu-west-1",
          ids: [`i-0${group.length}a`, `i-0${group.length}b`],
          publicIps: ["203.0.113.10", "203.0.113.11"],
        };
      }
      throw new Error(`unexpected call ${args.token}`);
    },
  },
  "project",
  "stack",
  false,
);

export const TENDER = join(resolve(__dirname, "..", "..", ".."), "test", "standins", "solo5-spt");

/** An output's value; a provider serialization error would leave it pending forever. */
export function value<T>(output: pulumi.Output<T>): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("output did not resolve within 20 s")), 20_000);
    output.apply((v) => {
      clearTimeout(timer);
      resolve(v);
      return v;
    });
  });
}

/** A launch template's user data (base64, as EC2 takes it), as text. */
export function userDataOf(template: Created): string {
  return Buffer.from(template.inputs.userData, "base64").toString("utf8");
}

/** Creates a service, waits until all its resources are registered, and returns them. */
export async function deploy(name: string, args: Partial<aws.UnikernelServiceArgs>) {
  const parents = new Map<string, string | undefined>();
  const options = new Map<string, pulumi.ResourceOptions>();
  const unikernel =
    args.ami?.image === undefined && !("unikernel" in args)
      ? new Unikernel(`${name}-kernel`, { kernel: "dist/hello.xen", target: "xen" })
      : args.unikernel;
  const service = new aws.UnikernelService(
    name,
    { unikernel, ...args },
    {
      transformations: [
        (t) => {
          parents.set(t.name, (t.opts.parent as pulumi.Resource & { __name?: string })?.__name);
          options.set(`${t.type} ${t.name}`, t.opts);
          return undefined;
        },
      ],
    },
  );
  const outputs = await value(
    pulumi.output({
      amiId: service.amiId,
      launchTemplateId: service.launchTemplateId,
      groupName: service.groupName,
      address: service.address,
      staticIps: service.staticIps,
      instanceIds: service.instanceIds,
      publicIps: service.publicIps,
      consoleOutputCommands: service.consoleOutputCommands,
      bucketName: service.bucketName,
      snapshotId: service.snapshotId,
    }),
  );
  // Let the last registrations (those no output depends on) land.
  await new Promise((resolve) => setTimeout(resolve, 200));
  const mine = created.filter((r) => r.name.startsWith(`${name}-`));
  const one = (type: string) => {
    const found = mine.filter((r) => r.type === type);
    assert.equal(found.length, 1, `one ${type} in ${mine.map((r) => r.type).join(", ")}`);
    return found[0];
  };
  const count = (type: string) => mine.filter((r) => r.type === type).length;
  return { service, outputs, mine, one, count, parents, options };
}

// aws.UnikernelService under Pulumi mocks: the resource graph and the inputs AWS would receive.
// (@pulumi/aws resources need the AWS provider plugin and an account; docs/platforms.md, Pulumi
// dynamic providers.)
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import * as pulumi from "@pulumi/pulumi";
import * as aws from "../sdk/aws";
import { Unikernel } from "../sdk/unikernel";

interface Created {
  type: string;
  name: string;
  // biome-ignore lint/suspicious/noExplicitAny: mocked inputs are untyped JSON, read by the tests
  inputs: Record<string, any>;
  id: string;
}

const created: Created[] = [];

const IMAGE_OBJECT = "hello-0123456789ab.raw";
const IMAGE_PATH = "/cache/images/0123456789ab/disk.raw";

pulumi.runtime.setMocks(
  {
    newResource(args) {
      const id = `${args.name}-id`;
      const extra: Record<string, unknown> = {};
      if (args.type.endsWith(":DiskImage"))
        Object.assign(extra, { path: IMAGE_PATH, objectName: IMAGE_OBJECT });
      if (args.type.endsWith(":Unikernel"))
        Object.assign(extra, { kernelPath: "/cache/kernels/hello.xen", sha256: "ab".repeat(32) });
      if (args.type === "aws:s3/bucket:Bucket") extra.bucket = `${args.name}-4f2a`;
      if (args.type === "aws:iam/role:Role") extra.name = `${args.name}-81c3`;
      if (args.type === "aws:ec2/instance:Instance")
        Object.assign(extra, { publicIp: `203.0.113.${created.length}`, region: "eu-west-1" });
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
      throw new Error(`unexpected call ${args.token}`);
    },
  },
  "project",
  "stack",
  false,
);

/** An output's value; a provider serialization error would leave it pending forever. */
function value<T>(output: pulumi.Output<T>): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("output did not resolve within 20 s")), 20_000);
    output.apply((v) => {
      clearTimeout(timer);
      resolve(v);
      return v;
    });
  });
}

/** Creates a service, waits until all its resources are registered, and returns them. */
async function deploy(name: string, args: Partial<aws.UnikernelServiceArgs>) {
  const parents = new Map<string, string | undefined>();
  const unikernel =
    args.image === undefined && !("unikernel" in args)
      ? new Unikernel(`${name}-kernel`, { kernel: "dist/hello.xen", target: "xen" })
      : args.unikernel;
  const service = new aws.UnikernelService(
    name,
    { unikernel, ...args },
    {
      transformations: [
        (t) => {
          parents.set(t.name, (t.opts.parent as pulumi.Resource & { __name?: string })?.__name);
          return undefined;
        },
      ],
    },
  );
  const outputs = await value(
    pulumi.output({
      amiId: service.amiId,
      instanceIds: service.instanceIds,
      publicIps: service.publicIps,
      consoleOutputCommands: service.consoleOutputCommands,
      bucketName: service.bucketName,
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
  return { service, outputs, mine, one, count, parents };
}

describe("aws.UnikernelService", () => {
  test("imports a raw disk from its bucket as an HVM legacy-BIOS AMI and runs it on t2.micro", async () => {
    const { outputs, one, mine, parents } = await deploy("web", {
      bootArgs: ["--ipv4=10.0.0.2/24"],
      ports: [80, { port: 443 }],
    });

    const image = one("pulumi-nodejs:dynamic/pulumi-mirage:DiskImage");
    assert.equal(image.inputs.format, "aws");
    assert.deepEqual(image.inputs.bootArgs, ["--ipv4=10.0.0.2/24"]);

    const bucket = one("aws:s3/bucket:Bucket");
    const bucketName = `${bucket.name}-4f2a`;
    const object = one("aws:s3/bucketObject:BucketObject");
    assert.equal(object.inputs.bucket, bucketName);
    assert.equal(object.inputs.key, IMAGE_OBJECT, "content-addressed key");
    assert.equal(await object.inputs.source.path, IMAGE_PATH, "the image file is uploaded");

    const role = one("aws:iam/role:Role");
    assert.deepEqual(JSON.parse(role.inputs.assumeRolePolicy).Statement, [
      {
        Effect: "Allow",
        Principal: { Service: "vmie.amazonaws.com" },
        Action: "sts:AssumeRole",
        Condition: { StringEquals: { "sts:ExternalId": "vmimport" } },
      },
    ]);
    const policy = JSON.parse(one("aws:iam/rolePolicy:RolePolicy").inputs.policy);
    const s3Statements = policy.Statement.filter((s: { Action: string[] }) =>
      s.Action.some((a) => a.startsWith("s3:")),
    );
    assert.deepEqual(
      s3Statements.map((s: { Action: string[]; Resource: string }) => [s.Action, s.Resource]),
      [
        [["s3:GetBucketLocation", "s3:ListBucket"], `arn:aws:s3:::${bucketName}`],
        [["s3:GetObject"], `arn:aws:s3:::${bucketName}/*`],
      ],
      "S3 access limited to reading that bucket",
    );
    const others = policy.Statement.filter((s: { Action: string[] }) => !s3Statements.includes(s));
    assert.deepEqual(
      others.flatMap((s: { Action: string[] }) => s.Action).sort(),
      ["ec2:CopySnapshot", "ec2:Describe*", "ec2:ModifySnapshotAttribute", "ec2:RegisterImage"],
      "otherwise only the EC2 import actions",
    );

    const snapshot = one("aws:ebs/snapshotImport:SnapshotImport");
    assert.equal(snapshot.inputs.diskContainer.format, "RAW");
    assert.deepEqual(snapshot.inputs.diskContainer.userBucket, {
      s3Bucket: bucketName,
      s3Key: IMAGE_OBJECT,
    });
    assert.equal(snapshot.inputs.roleName, `${role.name}-81c3`);

    const ami = one("aws:ec2/ami:Ami");
    assert.equal(ami.inputs.virtualizationType, "hvm");
    assert.equal(ami.inputs.bootMode, "legacy-bios");
    assert.equal(ami.inputs.rootDeviceName, "/dev/xvda");
    assert.equal(ami.inputs.enaSupport, false);
    assert.deepEqual(
      ami.inputs.ebsBlockDevices.map((d: Record<string, unknown>) => [d.deviceName, d.snapshotId]),
      [["/dev/xvda", snapshot.id]],
    );

    const group = one("aws:ec2/securityGroup:SecurityGroup");
    assert.deepEqual(
      group.inputs.ingress.map((r: Record<string, unknown>) => [r.protocol, r.fromPort, r.toPort]),
      [
        ["tcp", 80, 80],
        ["tcp", 443, 443],
      ],
    );

    const instance = one("aws:ec2/instance:Instance");
    assert.equal(instance.inputs.instanceType, "t2.micro");
    assert.equal(instance.inputs.ami, ami.id);
    assert.deepEqual(instance.inputs.vpcSecurityGroupIds, [group.id]);

    assert.equal(outputs.amiId, ami.id);
    assert.deepEqual(outputs.instanceIds, [instance.id]);
    assert.match(outputs.publicIps[0], /^203\.0\.113\.\d+$/);
    assert.deepEqual(outputs.consoleOutputCommands, [
      `aws ec2 get-console-output --region eu-west-1 --instance-id ${instance.id} --latest --output text`,
    ]);
    for (const r of mine.filter((r) => !r.type.endsWith(":Unikernel"))) {
      assert.equal(parents.get(r.name), "web", `${r.type} is a child of the component`);
    }
  });

  test("uses a given bucket and import role, and creates neither", async () => {
    const { one, count } = await deploy("given", {
      bucket: "my-images",
      vmimportRoleName: "vmimport",
      instanceType: "m4.large",
      instanceCount: 2,
    });
    assert.equal(count("aws:s3/bucket:Bucket"), 0);
    assert.equal(count("aws:iam/role:Role"), 0);
    assert.equal(count("aws:iam/rolePolicy:RolePolicy"), 0);
    assert.equal(one("aws:s3/bucketObject:BucketObject").inputs.bucket, "my-images");
    const snapshot = one("aws:ebs/snapshotImport:SnapshotImport");
    assert.equal(snapshot.inputs.roleName, "vmimport");
    assert.equal(snapshot.inputs.diskContainer.userBucket.s3Bucket, "my-images");
    assert.equal(count("aws:ec2/instance:Instance"), 2);
  });

  test("opens only the declared ports, with their protocol and sources", async () => {
    const { one } = await deploy("dns", {
      ports: [{ port: 53, protocol: "udp", cidrBlocks: ["192.0.2.0/24"] }],
    });
    assert.deepEqual(one("aws:ec2/securityGroup:SecurityGroup").inputs.ingress, [
      { protocol: "udp", fromPort: 53, toPort: 53, cidrBlocks: ["192.0.2.0/24"] },
    ]);
  });

  test("refuses instance types that are not Xen-based, naming the accepted families", () => {
    for (const instanceType of [
      "t3.micro",
      "m5.large",
      "c6i.xlarge",
      "i3.metal",
      "p3dn.24xlarge",
    ]) {
      assert.throws(
        () =>
          new aws.UnikernelService(`nitro-${instanceType}`, {
            image: undefined,
            unikernel: {} as never,
            instanceType,
          }),
        (error: Error) => {
          assert.match(
            error.message,
            new RegExp(`instanceType: ${instanceType.replace(".", "\\.")} is not a Xen-based type`),
          );
          assert.match(error.message, /t2, m3, m4, c3, c4, r3, r4, x1/);
          return true;
        },
      );
    }
    assert.throws(
      () => new aws.UnikernelService("typo", { unikernel: {} as never, instanceType: "t2micro" }),
      /instanceType: "t2micro" is not an EC2 instance type/,
    );
    for (const ok of [
      "t2.nano",
      "m4.16xlarge",
      "c4.large",
      "r4.large",
      "x1.16xlarge",
      "i3.large",
    ]) {
      assert.equal(aws.instanceTypeProblem(ok), undefined, ok);
    }
  });

  test("refuses ports that are not port numbers and instance counts below one", () => {
    assert.throws(
      () => new aws.UnikernelService("badport", { unikernel: {} as never, ports: [80, 70000] }),
      /ports: 70000 is not a port number \(1-65535\)/,
    );
    assert.throws(
      () => new aws.UnikernelService("nocount", { unikernel: {} as never, instanceCount: 0 }),
      /instanceCount must be a whole number, at least 1, not 0/,
    );
  });

  test("refuses a service with both or neither of unikernel and image", () => {
    assert.throws(
      () => new aws.UnikernelService("neither", {}),
      /give exactly one of unikernel .* and image/,
    );
  });
});

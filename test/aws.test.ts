// aws.UnikernelService under Pulumi mocks: the resource graph and the inputs AWS would receive.
// (@pulumi/aws resources need the AWS provider plugin and an account; docs/platforms.md, Pulumi
// dynamic providers.)
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import * as pulumi from "@pulumi/pulumi";
import { specialSecretSig, specialSigKey } from "@pulumi/pulumi/runtime/rpc";
import { sha256File } from "../provider/core/hash";
import * as aws from "../sdk/aws";
import { Unikernel } from "../sdk/unikernel";
import { created, deploy, IMAGE_OBJECT, IMAGE_PATH, TENDER, userDataOf } from "./support/aws-mocks";
import { bootArgRefusal, INJECTIONS } from "./support/injections";
import { programErrors } from "./support/program-errors";

describe("aws.UnikernelService", () => {
  test("writes the disk into an EBS snapshot, with no bucket or role, as an HVM legacy-BIOS AMI on t2.micro", async () => {
    const { outputs, one, count, mine, parents } = await deploy("fast", {
      bootArgs: ["--ipv4=10.0.0.2/24"],
      ports: [80],
      tags: { team: "mirage" },
      ami: { snapshot: { kmsKeyArn: "arn:aws:kms:eu-west-1:123456789012:key/abcd" } },
    });
    const image = one("pulumi-nodejs:dynamic/pulumi-mirage:DiskImage");
    assert.equal(image.inputs.format, "aws");
    const snapshot = one("pulumi-nodejs:dynamic/pulumi-mirage:EbsSnapshot");
    assert.equal(snapshot.inputs.imagePath, IMAGE_PATH);
    assert.equal(snapshot.inputs.imageSha256, "cd".repeat(32));
    assert.equal(snapshot.inputs.kmsKeyArn, "arn:aws:kms:eu-west-1:123456789012:key/abcd");
    assert.deepEqual(snapshot.inputs.tags, { team: "mirage" });
    assert.equal(snapshot.inputs.region, "eu-west-1", "the aws provider's region");
    for (const type of [
      "aws:s3/bucket:Bucket",
      "aws:s3/bucketObject:BucketObject",
      "aws:iam/role:Role",
      "aws:iam/rolePolicy:RolePolicy",
      "aws:ebs/snapshotImport:SnapshotImport",
    ]) {
      assert.equal(count(type), 0, `no ${type}`);
    }
    const ami = one("aws:ec2/ami:Ami");
    assert.equal(ami.inputs.virtualizationType, "hvm");
    assert.equal(ami.inputs.bootMode, "legacy-bios");
    assert.equal(ami.inputs.enaSupport, false);
    assert.deepEqual(
      ami.inputs.ebsBlockDevices.map((d: Record<string, unknown>) => [d.deviceName, d.snapshotId]),
      [["/dev/xvda", snapshot.id]],
    );
    assert.equal(ami.inputs.name, aws.amiName("fast", IMAGE_OBJECT, snapshot.id, "/dev/xvda"));
    const template = one("aws:ec2/launchTemplate:LaunchTemplate");
    assert.equal(template.inputs.instanceType, "t2.micro");
    assert.equal(template.inputs.imageId, ami.id);
    assert.equal(count("aws:ec2/instance:Instance"), 0, "no plain instance");
    assert.equal(outputs.snapshotId, snapshot.id);
    assert.equal(outputs.bucketName, undefined);
    for (const r of mine.filter((r) => !r.type.endsWith(":Unikernel"))) {
      assert.equal(parents.get(r.name), "fast", `${r.type} is a child of the component`);
    }
  });

  test("names each AMI by its snapshot: replacements in a row never reuse a name", async () => {
    const names: string[] = [];
    for (const round of [1, 2, 3]) {
      created.length = 0;
      // The same service and image each time; only the snapshot is new (say, a new KMS key).
      const { one } = await deploy("rolling", {
        ami: { snapshot: { kmsKeyArn: `arn:aws:kms:eu-west-1:123456789012:key/k${round}` } },
      });
      names.push(one("aws:ec2/ami:Ami").inputs.name);
    }
    assert.equal(new Set(names).size, 3, names.join(", "));
    for (const name of names) assert.match(name, /^rolling-hello-0123456789ab-[0-9a-f]{12}$/);
    assert.notEqual(
      aws.amiName("s", IMAGE_OBJECT, "snap-1", "/dev/xvda"),
      aws.amiName("s", IMAGE_OBJECT, "snap-1", "/dev/sda1"),
      "a new root device is a new AMI, and a new name",
    );
    assert.equal(aws.amiName("x".repeat(200), IMAGE_OBJECT, "snap-1", "/dev/xvda").length, 128);
  });

  test("with snapshot via s3: imports the raw disk from its bucket through a vmimport role", async () => {
    const { outputs, one, count, mine, parents } = await deploy("web", {
      ami: { snapshot: { via: "s3" } },
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
    assert.equal(count("pulumi-nodejs:dynamic/pulumi-mirage:EbsSnapshot"), 0);
    assert.equal(outputs.bucketName, bucketName);

    const group = one("aws:ec2/securityGroup:SecurityGroup");
    assert.equal(group.inputs.vpcId, "vpc-default");
    assert.deepEqual(
      group.inputs.ingress.map((r: Record<string, unknown>) => [
        r.protocol,
        r.fromPort,
        r.toPort,
        r.cidrBlocks,
      ]),
      [
        ["tcp", 80, 80, ["0.0.0.0/0"]],
        ["tcp", 443, 443, ["0.0.0.0/0"]],
        ["tcp", 80, 80, ["172.31.0.0/16"]],
      ],
      "the declared ports, and the health checks from the VPC",
    );

    const template = one("aws:ec2/launchTemplate:LaunchTemplate");
    assert.equal(template.inputs.instanceType, "t2.micro");
    assert.equal(template.inputs.imageId, ami.id);
    assert.deepEqual(template.inputs.networkInterfaces, [
      {
        deviceIndex: 0,
        associatePublicIpAddress: "true",
        securityGroups: [group.id],
        deleteOnTermination: "true",
      },
    ]);

    assert.equal(outputs.amiId, ami.id);
    const asg = one("aws:autoscaling/group:Group");
    assert.equal(outputs.groupName, `${asg.name}-5e0b`);
    assert.deepEqual(outputs.instanceIds, [
      `i-0${outputs.groupName.length}a`,
      `i-0${outputs.groupName.length}b`,
    ]);
    assert.deepEqual(outputs.publicIps, ["203.0.113.10", "203.0.113.11"]);
    assert.deepEqual(
      outputs.consoleOutputCommands,
      outputs.instanceIds.map(
        (id: string) =>
          `aws ec2 get-console-output --region eu-west-1 --instance-id ${id} --latest --output text`,
      ),
    );
    for (const r of mine.filter((r) => !r.type.endsWith(":Unikernel"))) {
      assert.equal(parents.get(r.name), "web", `${r.type} is a child of the component`);
    }
  });

  test("uses a given bucket and import role, and creates neither", async () => {
    const { one, count } = await deploy("given", {
      ami: { snapshot: { via: "s3", bucket: "my-images", vmimportRoleName: "vmimport" } },
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
    const asg = one("aws:autoscaling/group:Group").inputs;
    assert.deepEqual([asg.desiredCapacity, asg.minSize, asg.maxSize], [2, 2, 2]);
  });

  test("opens only the declared ports, with their protocol and sources, and the health check to the VPC", async () => {
    const { one } = await deploy("dns", {
      ami: {},
      ports: [
        { port: 53, protocol: "udp", cidrBlocks: ["192.0.2.0/24"] },
        { port: 53, cidrBlocks: ["192.0.2.0/24"] },
      ],
    });
    assert.deepEqual(one("aws:ec2/securityGroup:SecurityGroup").inputs.ingress, [
      { protocol: "udp", fromPort: 53, toPort: 53, cidrBlocks: ["192.0.2.0/24"] },
      { protocol: "tcp", fromPort: 53, toPort: 53, cidrBlocks: ["192.0.2.0/24"] },
      {
        protocol: "tcp",
        fromPort: 53,
        toPort: 53,
        cidrBlocks: ["172.31.0.0/16"],
        description: "the load balancer's health checks",
      },
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
            unikernel: {} as never,
            ami: {},
            instanceType,
          }),
        (error: Error) => {
          assert.match(
            error.message,
            new RegExp(`instanceType ${instanceType.replace(".", "\\.")} is not a Xen-based type`),
          );
          assert.match(error.message, /t2, m3, m4, c3, c4, r3, r4, x1/);
          return true;
        },
      );
    }
    assert.throws(
      () =>
        new aws.UnikernelService("typo", {
          unikernel: {} as never,
          ami: {},
          instanceType: "t2micro",
        }),
      /instanceType "t2micro" is not an EC2 instance type/,
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

  test("refuses ports that are not port numbers and instance counts below one, all at once", () => {
    assert.throws(
      () =>
        new aws.UnikernelService("bad", {
          unikernel: {} as never,
          ami: {},
          ports: [80, 70000],
          instanceCount: 0,
        }),
      /^Error: aws\.UnikernelService bad: ports\[1\] must be a port number from 1 to 65535, not 70000; instanceCount must be a whole number, at least 1, not 0$/,
    );
  });

  test("refuses snapshot options of the other way of making it", () => {
    assert.throws(
      () =>
        new aws.UnikernelService("nos3", {
          unikernel: {} as never,
          ami: { snapshot: { via: "ebs", bucket: "b" } as never },
        }),
      /ami\.snapshot\.bucket is not an option of via "ebs", which takes kmsKeyArn/,
    );
    assert.throws(
      () =>
        new aws.UnikernelService("nokms", {
          unikernel: {} as never,
          ami: { snapshot: { via: "s3", kmsKeyArn: "arn:aws:kms:eu-west-1:1:key/a" } as never },
        }),
      /ami\.snapshot\.kmsKeyArn is not an option of via "s3", which takes bucket and vmimportRoleName/,
    );
  });

  test("refuses a service with both or neither of host and ami, or without its kernel", () => {
    assert.throws(
      () => new aws.UnikernelService("neither", { unikernel: {} as never }),
      /host and ami are both missing: give host: \{ tender \}/,
    );
    assert.throws(
      () =>
        new aws.UnikernelService("both", {
          unikernel: {} as never,
          host: { tender: TENDER },
          ami: {},
        }),
      /host and ami are both given/,
    );
    assert.throws(
      () => new aws.UnikernelService("nokernel", { ami: {} }),
      /unikernel and ami\.image: give exactly one/,
    );
    assert.throws(
      () => new aws.UnikernelService("nohostkernel", { host: { tender: TENDER } }),
      /unikernel is required with host/,
    );
    assert.throws(
      () =>
        new aws.UnikernelService("imageargs", {
          ami: { image: {} as never },
          bootArgs: ["--x=1"],
        }),
      /bootArgs are the image's own with ami\.image/,
    );
  });

  test("spt: kernel and tender in a private bucket by content, a role reading exactly those, a Debian host with the script as user data", async () => {
    const unikernel = new Unikernel("host-kernel", { kernel: "dist/hello.spt", target: "spt" });
    const { one, count, mine, outputs } = await deploy("host", {
      unikernel,
      host: { tender: TENDER, waitFor: { console: "serving on port 8080" } },
      bootArgs: ["--hello=aws"],
      ports: [8080],
    });
    const wait = one("pulumi-nodejs:dynamic/pulumi-mirage:Ec2ConsoleWait");
    const template = one("aws:ec2/launchTemplate:LaunchTemplate");
    const asg = one("aws:autoscaling/group:Group");
    assert.deepEqual(wait.inputs.group, {
      name: `${asg.name}-5e0b`,
      launchTemplateId: template.id,
      version: 1,
      size: 1,
    });
    assert.equal(wait.inputs.region, "eu-west-1");
    assert.equal(wait.inputs.pattern, "serving on port 8080");
    assert.equal(wait.inputs.timeoutSeconds, 600);
    for (const type of [
      "pulumi-nodejs:dynamic/pulumi-mirage:DiskImage",
      "pulumi-nodejs:dynamic/pulumi-mirage:EbsSnapshot",
      "aws:ec2/ami:Ami",
      "aws:ebs/snapshotImport:SnapshotImport",
    ]) {
      assert.equal(count(type), 0, `no ${type}`);
    }
    const bucket = one("aws:s3/bucket:Bucket");
    const bucketName = `${bucket.name}-4f2a`;
    const block = one("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock").inputs;
    assert.deepEqual(
      [
        block.blockPublicAcls,
        block.blockPublicPolicy,
        block.ignorePublicAcls,
        block.restrictPublicBuckets,
      ],
      [true, true, true, true],
      "the bucket is private",
    );
    const tenderSha = await sha256File(TENDER);
    const keys = mine
      .filter((r) => r.type === "aws:s3/bucketObject:BucketObject")
      .map((r) => r.inputs.key)
      .sort();
    assert.deepEqual(keys, [
      `kernels/${"ab".repeat(32)}/hello.spt`,
      `tenders/${tenderSha}/solo5-spt`,
    ]);
    const role = one("aws:iam/role:Role");
    assert.deepEqual(JSON.parse(role.inputs.assumeRolePolicy).Statement[0].Principal, {
      Service: "ec2.amazonaws.com",
    });
    const policy = JSON.parse(one("aws:iam/rolePolicy:RolePolicy").inputs.policy);
    assert.deepEqual(policy.Statement, [
      {
        Effect: "Allow",
        Action: ["s3:GetObject"],
        Resource: keys
          .map((key) => `arn:aws:s3:::${bucketName}/${key}`)
          .reverse()
          .sort(),
      },
    ]);
    const profile = one("aws:iam/instanceProfile:InstanceProfile");
    assert.deepEqual(
      one("aws:ec2/securityGroup:SecurityGroup").inputs.ingress.map(
        (r: Record<string, unknown>) => [r.protocol, r.fromPort, r.toPort],
      ),
      [
        ["tcp", 8080, 8080],
        ["tcp", 8080, 8080],
      ],
      "only the declared port (for clients, and for health checks from the VPC)",
    );
    assert.equal(template.inputs.imageId, "ami-debian12");
    assert.equal(template.inputs.instanceType, "t3.micro");
    assert.deepEqual(template.inputs.iamInstanceProfile, { name: `${profile.name}-p1` });
    assert.deepEqual(template.inputs.metadataOptions, {
      httpTokens: "required",
      httpEndpoint: "enabled",
    });
    assert.equal(template.inputs.cpuOptions, undefined);
    const script = userDataOf(template);
    assert.match(
      script,
      new RegExp(
        `https://${bucketName}\\.s3\\.eu-west-1\\.amazonaws\\.com/kernels/${"ab".repeat(32)}/hello\\.spt`,
      ),
    );
    assert.ok(
      script.includes(
        '/var/lib/pulumi-mirage/host/solo5-spt --net:service=mtap0 -- /var/lib/pulumi-mirage/host/hello.spt --ipv4=10.81.0.2/24 --ipv4-gateway=10.81.0.1 "$@"',
      ),
      "the tender's command line",
    );
    assert.ok(script.includes("set -- --hello=aws\n"), "the boot arguments, in the script");
    assert.match(script, /tcp dport \{ 8080 \} dnat to 10\.81\.0\.2/);
    assert.equal(outputs.amiId, "ami-debian12");
    assert.equal(outputs.bucketName, bucketName);
  });

  test("spt: plain boot arguments are in the user data, and no parameter is made", async () => {
    const unikernel = new Unikernel("plainargs-kernel", {
      kernel: "dist/hello.spt",
      target: "spt",
    });
    const { count } = await deploy("plainargs", {
      unikernel,
      host: { tender: TENDER },
      bootArgs: ["--a=1"],
    });
    assert.equal(count("aws:ssm/parameter:Parameter"), 0);
  });

  test("spt: secret boot arguments go into an SSM SecureString only the host role is granted; the user data names it and never holds them", async () => {
    const unikernel = new Unikernel("secretargs-kernel", {
      kernel: "dist/hello.spt",
      target: "spt",
    });
    const { one } = await deploy("secretargs", {
      unikernel,
      host: { tender: TENDER },
      bootArgs: ["--hello=aws", pulumi.secret("--token=s3cr3t")],
    });
    const parameter = one("aws:ssm/parameter:Parameter");
    assert.equal(parameter.inputs.type, "SecureString");
    assert.deepEqual(
      parameter.inputs.value,
      { [specialSigKey]: specialSecretSig, value: "2 --hello=aws --token=s3cr3t" },
      "the count, then the arguments, sent to the engine as a secret",
    );
    const policy = JSON.parse(one("aws:iam/rolePolicy:RolePolicy").inputs.policy);
    assert.deepEqual(policy.Statement[1], {
      Effect: "Allow",
      Action: ["ssm:GetParameter"],
      Resource: [`arn:aws:ssm:eu-west-1:123456789012:parameter/${parameter.name}-7d1e`],
    });
    const script = userDataOf(one("aws:ec2/launchTemplate:LaunchTemplate"));
    assert.ok(!script.includes("s3cr3t") && !script.includes("--hello=aws"), "no argument in it");
    assert.ok(
      script.includes(`read_secret "reading the boot arguments from "${parameter.name}-7d1e:4`),
    );
  });

  test("a boot argument that could end a quoted region is refused at construction and at preview, in DiskImage's words", async () => {
    const unikernel = new Unikernel("inject-kernel", { kernel: "dist/hello.spt", target: "spt" });
    for (const arg of INJECTIONS) {
      const expected = `aws.UnikernelService inject: bootArgs: ${bootArgRefusal(arg)}`;
      assert.throws(
        () =>
          new aws.UnikernelService("inject", {
            unikernel,
            host: { tender: TENDER },
            bootArgs: [arg],
          }),
        (error: Error) => error.message === expected,
      );
      // Known only once an output resolves: refused at preview, with the same words.
      const errors = await programErrors(() => {
        new aws.UnikernelService("inject", {
          unikernel,
          host: { tender: TENDER },
          bootArgs: pulumi.output([arg]),
        });
      });
      assert.deepEqual(errors.slice(0, 1), [expected]);
    }
  });

  test("hvt: runs on a type with nested virtualization, and is refused at preview on others, naming those with it", async () => {
    const unikernel = new Unikernel("nested-kernel", { kernel: "dist/hello.hvt", target: "hvt" });
    const { one } = await deploy("nested", { unikernel, host: { tender: TENDER } });
    const template = one("aws:ec2/launchTemplate:LaunchTemplate");
    assert.equal(template.inputs.instanceType, "c8i.large");
    assert.deepEqual(template.inputs.cpuOptions, { nestedVirtualization: "enabled" });

    const errors = await programErrors(() => {
      const refused = new Unikernel("flat-kernel", { kernel: "dist/hello.hvt", target: "hvt" });
      new aws.UnikernelService("flat", {
        unikernel: refused,
        host: { tender: TENDER },
        instanceType: "t3.micro",
      });
    });
    assert.ok(errors.length > 0, "the program fails");
    assert.match(
      errors[0],
      /instanceType t3\.micro offers no nested virtualization, and solo5-hvt needs KVM; use one of the families c8i, c8i-flex, m8i, m8i-flex, r8i, r8i-flex/,
    );
  });

  test("a xen unikernel takes the AMI path; a xen kernel given to host is refused", async () => {
    const { count } = await deploy("stillxen", { ami: {} });
    assert.equal(count("aws:ec2/ami:Ami"), 1);
    assert.equal(count("aws:iam/instanceProfile:InstanceProfile"), 0);
    const errors = await programErrors(() => {
      const xen = new Unikernel("wrongxen-kernel", { kernel: "dist/hello.xen", target: "xen" });
      new aws.UnikernelService("wrongxen", { unikernel: xen, host: { tender: TENDER } });
    });
    assert.ok(errors.length > 0, "the program fails");
    assert.match(
      errors[0],
      /host is for spt and hvt unikernels, and this one is xen: use ami: \{\} instead of host/,
    );
  });
});

// The host graph of UnikernelService for spt and hvt unikernels: current (Nitro) EC2 types cannot
// boot a Solo5 disk, but any Linux instance runs an spt unikernel under solo5-spt, and types with
// nested virtualization run hvt under solo5-hvt. The kernel and the tender go to a private bucket
// under keys named by their content; the instance's role may read exactly those two objects; the
// instance's user data (../host/script.ts) fetches and checks them, wires the network and runs the
// tender as a service. Secret boot arguments never go into the user data, which anyone allowed
// ec2:DescribeInstanceAttribute and any process on the instance can read: they go into an SSM
// SecureString parameter that only the instance's role is granted, and the host reads them at
// every start. A new kernel, tender or boot arguments is new user data (secret ones: a new
// parameter version): a new version of the group's launch template (group.ts), rolled out.
import * as pulumi from "@pulumi/pulumi";
import { problemIf } from "../../rules/problem";
import { encodeSecretBootArgs } from "../host/script";
import { hostUnikernel } from "../host/service";
import { awsSdk } from "../peers";
import { renderAwsHostScript } from "./host-script";
import {
  DEFAULT_HVT_INSTANCE_TYPE,
  DEFAULT_SPT_INSTANCE_TYPE,
  hvtInstanceTypeProblem,
} from "./instance-types";
import { COMPONENT, type HostSpec, type PortSpec } from "./resolve";

/** Debian's account, which publishes the official Debian AMIs. */
const DEBIAN_OWNER = "136693071363";

export interface HostLaunchArgs extends HostSpec {
  bootArgs: pulumi.Input<pulumi.Input<string>[]>;
  ports: PortSpec[];
  tags: Record<string, pulumi.Input<string>>;
}

/** What the instances of a host service are launched with. */
export interface HostLaunch {
  kind: "host";
  ami: pulumi.Output<string>;
  instanceType: pulumi.Output<string>;
  iamInstanceProfile: pulumi.Output<string>;
  userData: pulumi.Output<string>;
  nestedVirtualization: pulumi.Output<string | undefined>;
  bucketName: pulumi.Output<string>;
}

export function hostLaunch(
  name: string,
  args: HostLaunchArgs,
  parent: pulumi.Resource,
): HostLaunch {
  const aws = awsSdk(COMPONENT);
  const child = { parent };
  const { unikernel, tags } = args;
  const host = hostUnikernel(COMPONENT, name, {
    unikernel,
    bootArgs: args.bootArgs,
    tender: args.tender,
    instead: (target) =>
      target === "xen" ? "use ami: {} instead of host (a xen unikernel becomes an AMI)" : undefined,
    targetProblems: (target) =>
      problemIf(
        "instanceType",
        target === "hvt" && args.instanceType
          ? hvtInstanceTypeProblem(args.instanceType)
          : undefined,
      ),
  });
  const { target, networks: devices, bootArgs: checkedArgs } = host;

  const bucket = new aws.s3.Bucket(`${name}-artifacts`, { forceDestroy: true, tags }, child);
  new aws.s3.BucketPublicAccessBlock(
    `${name}-artifacts`,
    {
      bucket: bucket.id,
      blockPublicAcls: true,
      blockPublicPolicy: true,
      ignorePublicAcls: true,
      restrictPublicBuckets: true,
    },
    child,
  );
  const upload = (what: string, key: pulumi.Output<string>, path: pulumi.Output<string>) =>
    new aws.s3.BucketObject(
      `${name}-${what}`,
      {
        bucket: bucket.bucket,
        key,
        source: path.apply((p) => new pulumi.asset.FileAsset(p)),
        contentType: "application/octet-stream",
        tags,
      },
      child,
    );
  const kernelObject = upload("kernel", host.kernelObject, unikernel.kernelPath);
  const tenderObject = upload("tender", host.tenderObject, host.tenderPath);

  const role = new aws.iam.Role(
    `${name}-host`,
    {
      description: "pulumi-mirage: lets the unikernel's host instance read its kernel and tender",
      assumeRolePolicy: JSON.stringify({
        Version: "2012-10-17",
        Statement: [
          {
            Effect: "Allow",
            Principal: { Service: "ec2.amazonaws.com" },
            Action: "sts:AssumeRole",
          },
        ],
      }),
      tags,
    },
    child,
  );
  // Whether the arguments are secret is known at preview, whatever their values.
  const parameter = host.secret.apply((secret) =>
    secret
      ? new aws.ssm.Parameter(
          `${name}-boot-args`,
          {
            description: "pulumi-mirage: the unikernel's secret boot arguments, read by its host",
            type: "SecureString",
            value: checkedArgs.apply(encodeSecretBootArgs),
            tags,
          },
          child,
        )
      : undefined,
  );
  const partition = aws.getPartitionOutput({}, child).partition;
  const policy = new aws.iam.RolePolicy(
    `${name}-host`,
    {
      role: role.id,
      policy: pulumi.jsonStringify({
        Version: "2012-10-17",
        Statement: pulumi
          .all([
            pulumi.interpolate`arn:${partition}:s3:::${kernelObject.bucket}/${kernelObject.key}`,
            pulumi.interpolate`arn:${partition}:s3:::${tenderObject.bucket}/${tenderObject.key}`,
            parameter.apply((p) => p?.arn),
          ])
          .apply(([kernelArn, tenderArn, parameterArn]) => [
            { Effect: "Allow", Action: ["s3:GetObject"], Resource: [kernelArn, tenderArn] },
            // The aws/ssm key decrypts for any principal of the account allowed the parameter.
            ...(parameterArn
              ? [{ Effect: "Allow", Action: ["ssm:GetParameter"], Resource: [parameterArn] }]
              : []),
          ]),
      }),
    },
    child,
  );
  const profile = new aws.iam.InstanceProfile(`${name}-host`, { role: role.name, tags }, child);

  const region = aws.getRegionOutput({}, child).region;
  const url = (bucketName: string, regionName: string, key: string) =>
    `https://${bucketName}.s3.${regionName}.amazonaws.com/${key}`;
  // In the script: plain arguments, or the parameter's name and version (never the secret).
  const scriptArgs = parameter.apply(
    (p): pulumi.Output<string[] | { secret: string }> =>
      p ? pulumi.interpolate`${p.name}:${p.version}`.apply((secret) => ({ secret })) : checkedArgs,
  );
  const userData = pulumi
    .output({
      bucketName: bucket.bucket,
      regionName: region,
      t: target,
      kernelFile: host.kernelName,
      kKey: kernelObject.key,
      kSha: unikernel.sha256,
      tKey: tenderObject.key,
      tSha: host.tenderSha256,
      devices,
      bootArgs: scriptArgs,
    })
    .apply((v) =>
      renderAwsHostScript(
        {
          name,
          target: v.t,
          kernelName: v.kernelFile,
          kernel: { url: url(v.bucketName, v.regionName, v.kKey), sha256: v.kSha },
          tender: { url: url(v.bucketName, v.regionName, v.tKey), sha256: v.tSha },
          networks: v.devices,
          ports: args.ports.map(({ port, protocol }) => ({ port, protocol })),
          bootArgs: v.bootArgs,
        },
        { region: v.regionName },
      ),
    );

  const ami =
    args.amiId !== undefined
      ? pulumi.output(args.amiId)
      : aws.ec2.getAmiOutput(
          {
            mostRecent: true,
            owners: [DEBIAN_OWNER],
            filters: [
              { name: "name", values: ["debian-12-amd64-*"] },
              { name: "architecture", values: ["x86_64"] },
            ],
          },
          child,
        ).id;
  return {
    kind: "host",
    ami,
    instanceType: target.apply(
      (t) =>
        args.instanceType ?? (t === "hvt" ? DEFAULT_HVT_INSTANCE_TYPE : DEFAULT_SPT_INSTANCE_TYPE),
    ),
    // The instance starts only once its role may read the objects.
    iamInstanceProfile: pulumi.all([profile.name, policy.id]).apply(([profileName]) => profileName),
    userData,
    nestedVirtualization: target.apply((t) => (t === "hvt" ? "enabled" : undefined)),
    bucketName: bucket.bucket,
  };
}

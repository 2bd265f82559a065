// AWS EC2: a MirageOS spt or hvt unikernel under its Solo5 tender on a Linux host instance, or
// (experimental) a xen unikernel as an AMI (its snapshot written with the EBS direct APIs, or
// imported from S3) run on Xen-based types.
export { Ec2ConsoleWait, type Ec2ConsoleWaitArgs } from "./console-wait";
export { EbsSnapshot, type EbsSnapshotArgs } from "./ebs-snapshot";
export { DEFAULT_INSTANCE_TYPE, instanceTypeProblem, XEN_FAMILIES } from "./instance-types";
export { Ec2RefreshWait, type Ec2RefreshWaitArgs } from "./refresh-wait";
export {
  type AmiArgs,
  type HostArgs,
  type ServicePort,
  type SnapshotArgs,
  UnikernelService,
  type UnikernelServiceArgs,
} from "./unikernel-service";
export { amiName } from "./xen-ami";

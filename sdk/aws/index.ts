// AWS EC2 (experimental): a MirageOS xen unikernel as an AMI (its snapshot written with the EBS
// direct APIs, or imported from S3) run on Xen-based types.
export { Ec2ConsoleWait, type Ec2ConsoleWaitArgs } from "./console-wait";
export { EbsSnapshot, type EbsSnapshotArgs } from "./ebs-snapshot";
export { DEFAULT_INSTANCE_TYPE, instanceTypeProblem, XEN_FAMILIES } from "./instance-types";
export {
  type ServicePort,
  UnikernelService,
  type UnikernelServiceArgs,
} from "./unikernel-service";
export { amiName } from "./xen-ami";

// AWS EC2 (experimental): a MirageOS xen unikernel imported as an AMI and run on Xen-based types.
export { DEFAULT_INSTANCE_TYPE, instanceTypeProblem, XEN_FAMILIES } from "./instance-types";
export { type ServicePort, UnikernelService, type UnikernelServiceArgs } from "./unikernel-service";

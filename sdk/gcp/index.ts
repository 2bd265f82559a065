// Google Compute Engine: `gcp.UnikernelService` runs a MirageOS unikernel on GCE.
export { GceSerialWait, type GceSerialWaitArgs } from "./serial-wait";
export { type HostArgs, UnikernelService, type UnikernelServiceArgs } from "./unikernel-service";
export type { Port } from "./validate";

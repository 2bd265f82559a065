// pulumi-mirage: ship MirageOS unikernels to the cloud with Pulumi.

export * as aws from "./aws";
export { demoKernel, demoKernelPort } from "./demo";
export { DiskImage, type DiskImageArgs, type ImageFormat } from "./disk-image";
export * as gcp from "./gcp";
export * as local from "./local";
export { type Device, type Target, Unikernel, type UnikernelArgs } from "./unikernel";
export * as xen from "./xen";

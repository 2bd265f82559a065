// pulumi-mirage: ship MirageOS unikernels to the cloud with Pulumi.
export { DiskImage, type DiskImageArgs, type ImageFormat } from "./disk-image";
export * as gcp from "./gcp";
export { type Device, type Target, Unikernel, type UnikernelArgs } from "./unikernel";

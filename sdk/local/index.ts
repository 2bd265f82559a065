// Running unikernels on this machine: disk images in QEMU, hvt/spt kernels under their Solo5
// tender, unix builds as processes.
export { Process, type ProcessArgs, type ProcessTarget } from "./process";
export { type PortForward, Vm, type VmArgs, type WaitFor } from "./vm";

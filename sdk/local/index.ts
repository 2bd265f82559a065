// Running unikernels on this machine: disk images in QEMU, hvt/spt kernels under their Solo5
// tender (on tap interfaces), unix builds as processes.
export {
  type BlockDevice,
  type NetDevice,
  Process,
  type ProcessArgs,
  type ProcessTarget,
} from "./process";
export { Tap, type TapArgs } from "./tap";
export {
  type LegacyPortForward,
  type PortForward,
  Vm,
  type VmArgs,
  type VmPort,
  type WaitFor,
} from "./vm";

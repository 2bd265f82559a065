// local.Vm and local.Process: the shapes of their inputs and their defaults, shared by the SDK
// classes and the engine.

/** A TCP port of the host (on 127.0.0.1) forwarded to a port of the guest. */
export interface PortForward {
  host: number;
  guest: number;
}

/** local.Vm's guest memory when none is given (BOUNDS.vmMemoryMiB bounds it). */
export const DEFAULT_VM_MEMORY_MIB = 128;

/** The targets local.Process runs: hvt and spt under their Solo5 tender, unix as a program. */
export const PROCESS_TARGETS = ["hvt", "spt", "unix"] as const;
export type ProcessTarget = (typeof PROCESS_TARGETS)[number];

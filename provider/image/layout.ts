// What a bootloader puts on the disk, as data: the disk builder (build-disk.ts) lays out any
// bootloader the same way, and syslinux.ts / grub.ts only describe theirs.
import { access } from "node:fs/promises";
import type { RunOptions } from "../core/exec";
import { ImageError } from "./errors";

const TOOL_TIMEOUT_MS = 60_000;

/** How the build runs tools: where their output goes, and what cancels them. */
export interface ToolOptions {
  logFile?: string;
  signal?: AbortSignal;
}

/** Options for exec.run: the build's log and cancellation, and a generous timeout. */
export function toolRun(tools: ToolOptions, env?: Record<string, string>): RunOptions {
  return { logFile: tools.logFile, signal: tools.signal, timeoutMs: TOOL_TIMEOUT_MS, env };
}

export interface LayoutFile {
  /** Directory inside the FAT filesystem ("" for the root, or e.g. "boot/grub"). */
  dir: string;
  /** Name inside that directory. */
  name: string;
  /** Where the content comes from (a file on the host). */
  source: string;
}

export interface Layout {
  /** The MBR's 440 bytes of boot code. */
  bootCode: Buffer;
  /** Written from sector 1, in the gap before the partition (GRUB's core.img). */
  gap?: Buffer;
  /** Directories to create, parents first. */
  directories: string[];
  /** Files to copy, grouped by directory in this order (the order fixes the cluster layout). */
  files: LayoutFile[];
  /** Run after the filesystem is made and before the files are copied (syslinux --install). */
  install?: (disk: string) => Promise<void>;
  /** Bytes the installer adds to the filesystem (ldlinux.sys, ldlinux.c32), for sizing. */
  installedBytes: number;
}

/** Fails with a message naming the Debian package when a bootloader file is missing. */
export async function requireFile(path: string, debianPackage: string): Promise<string> {
  try {
    await access(path);
    return path;
  } catch {
    throw new ImageError(
      `${path} is missing: install the Debian package ${debianPackage} (apt-get install ${debianPackage}).`,
    );
  }
}

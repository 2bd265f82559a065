// Helpers for dynamic resources' engine code: Pulumi's unknown values, input comparison, and
// the content-addressed paths the cache hands out.
import { stat } from "node:fs/promises";
import { basename, dirname } from "node:path";
import { sha256File } from "../hash";

/** How an input that is not known yet (at preview) reaches a dynamic provider (FACTS.md). */
export const UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9";

/** A device the unikernel declares in its Solo5 manifest. */
export interface Device {
  name: string;
  type: "net" | "block";
}

export function isKnown(value: unknown): boolean {
  return value !== UNKNOWN;
}

/** Whether an optional input was given at all (unknown counts as given). */
export function given(value: unknown): boolean {
  return value !== undefined && value !== null && value !== "";
}

/** The keys among `keys` whose values differ between two property bags. */
export function changedKeys(
  olds: Record<string, unknown>,
  news: Record<string, unknown>,
  keys: readonly string[],
): string[] {
  return keys.filter((key) => JSON.stringify(olds[key]) !== JSON.stringify(news[key]));
}

/**
 * Whether a state's cached file is the one it recorded: the cache stores files under their
 * sha256 (KIND/SHA256/NAME), so a refresh that found other content (or none) shows here.
 */
export function storedIntact(path: unknown, recordedSha256: unknown): boolean {
  if (typeof path !== "string") return true; // never created: nothing to compare
  return basename(dirname(path)) === recordedSha256;
}

/** What a stored file is now, for `read`: its sha256 and size, or "" and 0 when it is gone. */
export async function fileState(path: string): Promise<{ sha256: string; size: number }> {
  const info = await stat(path).catch(() => undefined);
  return info?.isFile()
    ? { sha256: await sha256File(path), size: info.size }
    : { sha256: "", size: 0 };
}

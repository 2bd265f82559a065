// Helpers for dynamic resources' engine code: input comparison, the wire's limits, and the diff
// and read of a resource whose state is one content-addressed file in the cache.
import { stat } from "node:fs/promises";
import { basename, dirname } from "node:path";
import type * as pulumi from "@pulumi/pulumi";
import type { Problem } from "../../rules/problem";
import { waitProblems } from "../../rules/wait";
import { cacheDir, type Kind, lookup } from "../core/cache";
import { sha256File } from "../core/hash";

/** An error's message (a thrown non-Error as text), for check failures and wrapped errors. */
export const message = (error: unknown) => (error instanceof Error ? error.message : String(error));

/**
 * `value` without its undefined properties: the dynamic provider sends inputs and outputs as a
 * protobuf Struct, which cannot hold undefined ("Unexpected struct type").
 */
export function definedOnly<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as T;
}

/**
 * `value` as JSON with every object's keys sorted: the engine hands a state's objects back in an
 * order of its own (a protobuf Struct is a map), which is no change.
 */
function canonicalJson(value: unknown): string | undefined {
  return JSON.stringify(value, (_key, v: unknown) =>
    v !== null && typeof v === "object" && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : v,
  );
}

/** The keys among `keys` whose values differ between two property bags. */
export function changedKeys(
  olds: Record<string, unknown>,
  news: Record<string, unknown>,
  keys: readonly string[],
): string[] {
  return keys.filter((key) => canonicalJson(olds[key]) !== canonicalJson(news[key]));
}

/**
 * A wait's diff: a change to what it waits for (`replace`: instances, a pattern) means waiting
 * again, as a new resource; a change to how it waits (`update`: a timeout) only updates it.
 */
export function waitDiff<T extends object>(
  olds: T,
  news: T,
  keys: { replace: readonly (keyof T & string)[]; update: readonly (keyof T & string)[] },
): pulumi.dynamic.DiffResult {
  const bag = (value: T) => value as unknown as Record<string, unknown>;
  const replaces = changedKeys(bag(olds), bag(news), keys.replace);
  const changes = replaces.length > 0 || changedKeys(bag(olds), bag(news), keys.update).length > 0;
  return { changes, replaces, deleteBeforeReplace: false };
}

/** The provider object an engine module exports, with every method the engine may call. */
type EngineProvider = Required<
  Pick<pulumi.dynamic.ResourceProvider, "check" | "diff" | "create" | "read" | "update" | "delete">
>;

/**
 * Whether a state's cached file is the one it recorded: the cache stores files under their
 * sha256 (KIND/SHA256/NAME), so a refresh that found other content (or none) shows here. A file
 * whose hash must not be public is stored under its key instead (KIND/KEY/NAME: core/cache.ts, store);
 * a refresh that finds it changed or gone reports its sha256 as "" (read asks the cache, which
 * discards a changed file).
 */
function storedIntact(path: unknown, recordedSha256: unknown, key: unknown): boolean {
  if (typeof path !== "string") return true; // never created: nothing to compare
  const folder = basename(dirname(path));
  return folder === recordedSha256 || (folder === key && recordedSha256 !== "");
}

/** How a resource whose state is one cached file names it, and how it gets it. */
interface StoredFile<Props> {
  /** What the cache holds the file as. */
  kind: Kind;
  /** Every user input: a change to any of them is at least an in-place update. */
  inputs: readonly string[];
  /** The input check computes from what the file is made of: the cache entry's key. */
  identity: string;
  /** The inputs `identity` covers: a change to one of these is why a replacement happens. */
  identityInputs: readonly string[];
  /** The state key holding the cached file's path. */
  pathKey: string;
  check: EngineProvider["check"];
  /** The state for checked inputs: the file from the cache, or made (and stored) now. */
  produce(news: Props, olds?: Record<string, unknown>): Promise<{ id: string; outs: Props }>;
}

/**
 * The provider of a StoredFile resource. Create and update both produce the file; an update
 * keeps the identity, so only where the file is kept (cacheDir) or its labels may have changed.
 * Delete leaves the cache entry: another resource or stack may be using the same file.
 */
export function storedFileProvider<Props>(spec: StoredFile<Props>): EngineProvider {
  return {
    check: spec.check,
    diff: storedFileDiff(spec),
    create: (inputs) => spec.produce(inputs),
    read: storedFileRead(spec),
    update: async (_id, olds, news) => ({ outs: (await spec.produce(news, olds)).outs }),
    delete: async () => {},
  };
}

/**
 * `diff` for a StoredFile resource: replaced when its identity changes, or when a refresh found
 * the cached file gone or changed (so it is fetched from the cache or made again); any other
 * input change is an in-place update.
 */
function storedFileDiff(spec: StoredFile<unknown>) {
  return async (
    _id: string,
    olds: Record<string, unknown>,
    news: Record<string, unknown>,
  ): Promise<pulumi.dynamic.DiffResult> => {
    const changed = changedKeys(olds, news, spec.inputs);
    const remake = news[spec.identity] !== olds[spec.identity];
    const drifted = !storedIntact(olds[spec.pathKey], olds.sha256, olds[spec.identity]);
    const replaces = [
      ...(remake ? [spec.identity, ...changed.filter((k) => spec.identityInputs.includes(k))] : []),
      ...(drifted ? ["sha256"] : []),
    ];
    return {
      changes: replaces.length > 0 || changed.length > 0,
      replaces,
      deleteBeforeReplace: false,
    };
  };
}

/**
 * `read` for a StoredFile resource: the state as it is on disk, with the cached file's actual
 * sha256 and size ("" and 0 when it is gone). The cache's own entry for the state's key, which
 * the cache verifies (an image by its block map, without hashing all of it), answers when it is
 * the state's file; any other file is hashed.
 */
function storedFileRead(spec: StoredFile<unknown>) {
  return async (id: string, props?: Record<string, unknown>) => {
    const path = props?.[spec.pathKey];
    if (!props || typeof path !== "string") return { id, props: props ?? {} };
    const key = props[spec.identity];
    const dir = cacheDir(typeof props.cacheDir === "string" ? props.cacheDir : undefined);
    const entry = typeof key === "string" ? await lookup(dir, spec.kind, key) : undefined;
    if (entry?.path === path)
      return { id, props: { ...props, sha256: entry.sha256, size: entry.size } };
    const info = await stat(path).catch(() => undefined);
    const state = info?.isFile()
      ? { sha256: await sha256File(path), size: info.size }
      : { sha256: "", size: 0 };
    return { id, props: { ...props, ...state } };
  };
}

/** The checks of a boot wait's `pattern` and `timeoutSeconds` (GceSerialWait, Ec2ConsoleWait). */
export function checkWaitInputs(news: { pattern?: unknown; timeoutSeconds?: unknown }): Problem[] {
  return waitProblems(
    { pattern: news.pattern, timeoutSeconds: news.timeoutSeconds },
    { pattern: "pattern", timeoutSeconds: "timeoutSeconds" },
  );
}

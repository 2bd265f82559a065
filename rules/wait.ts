// Waiting until a console shows a pattern: every boot wait (local.Vm, local.Process, the gcp
// serial wait, the aws console wait) checks its pattern and timeout with these, under the names
// its resource or component gives them.
import { BOUNDS, outOfBounds } from "./bounds";
import { type Problem, problemIf } from "./problem";
import { isKnown } from "./values";

/** A wait as engines take it (local runs, the gcp and aws boot waits): the pattern's source. */
export interface SourceWait {
  /** The source of a regular expression the console must match, line-wise. */
  console: string;
  timeoutSeconds?: number;
}

/**
 * What a console must show: a regular expression (`/^Hello, World$/`) or its source as a string
 * (`"^Hello, World$"`). It is matched line-wise: `^` and `$` match at each line's start and end.
 */
export type ConsolePattern = string | RegExp;

/** Wait, when starting, until the console shows something. */
export interface WaitFor {
  /**
   * A regular expression, or its source, the console must match (see `ConsolePattern`). A
   * RegExp's flags cannot travel to the engine, which matches line-wise: `m`, `g` and `d` change
   * nothing there and are taken, others are refused.
   */
  console: ConsolePattern;
  /**
   * How long to wait before giving up (the start then fails with the console's tail): above 0, at
   * most 2147483 (the longest a Node timer waits).
   */
  timeoutSeconds?: number;
}

/** The flags a console wait keeps: matching is line-wise (m); g and d change nothing in a test. */
const KEPT_FLAGS = /[dgm]/g;

/**
 * A pattern as every engine takes it: a RegExp's source (its flags are checked by
 * `patternProblem`), a string as it is. Engines receive strings only.
 */
export function patternSource(pattern: ConsolePattern): string {
  return pattern instanceof RegExp ? pattern.source : pattern;
}

/** Why `pattern` is no regular expression to match a console with, or undefined. */
export function patternProblem(pattern: unknown): string | undefined {
  if (pattern instanceof RegExp) {
    const dropped = pattern.flags.replace(KEPT_FLAGS, "");
    if (dropped !== "")
      return `has the flag${dropped.length > 1 ? "s" : ""} ${dropped}, which a console wait cannot keep (it matches the pattern's source line-wise, and nothing else): write the pattern without ${dropped.length > 1 ? "them" : "it"}, e.g. [Hh]ello rather than /hello/i`;
    return patternProblem(pattern.source);
  }
  if (typeof pattern !== "string" || pattern === "")
    return `must be a non-empty regular expression (its source, e.g. "^Hello"), not ${JSON.stringify(pattern)}`;
  try {
    new RegExp(pattern, "m");
    return undefined;
  } catch (error) {
    return `is not a valid regular expression: ${(error as Error).message}`;
  }
}

/** The problems of a wait's pattern and timeout (each checked once known), by their names. */
export function waitProblems(
  wait: { pattern: unknown; timeoutSeconds: unknown },
  names: { pattern: string; timeoutSeconds: string },
): Problem[] {
  const { pattern, timeoutSeconds } = wait;
  return [
    ...(isKnown(pattern) ? problemIf(names.pattern, patternProblem(pattern)) : []),
    ...(isKnown(timeoutSeconds)
      ? problemIf(names.timeoutSeconds, outOfBounds(timeoutSeconds, BOUNDS.timeoutSeconds))
      : []),
  ];
}

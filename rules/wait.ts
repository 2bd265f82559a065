// Waiting until a console shows a pattern: every boot wait (local.Vm, local.Process, the gcp
// serial wait, the aws console wait) checks its pattern and timeout with these, under the names
// its resource or component gives them.
import { BOUNDS, outOfBounds } from "./bounds";
import { type Problem, problemIf } from "./problem";
import { isKnown } from "./values";

/** Wait, when starting, until the console shows something. */
export interface WaitFor {
  /**
   * A regular expression (its source, e.g. `"^Hello, World$"`) the console must match. It is
   * matched line-wise: `^` and `$` match at each line's start and end.
   */
  console: string;
  /**
   * How long to wait before giving up (the start then fails with the console's tail): above 0, at
   * most 2147483 (the longest a Node timer waits).
   */
  timeoutSeconds?: number;
}

/** Why `pattern` is no regular expression to match a console with, or undefined. */
export function patternProblem(pattern: unknown): string | undefined {
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

// What a check found wrong, in one shape for the SDK and the engine: the SDK throws it before
// anything is registered, the engine's `check` returns it as a check failure, both in the words
// the rule gave.

/**
 * A refused value: the property as the user wrote it (`ports[1]`, `waitFor.timeoutSeconds`), and
 * why, as a phrase that follows the property's name ("must be ...", "is not ...") and says how to
 * fix it.
 */
export interface Problem {
  property: string;
  reason: string;
}

/** The problem as one sentence: the property, then the reason. */
export function describeProblem({ property, reason }: Problem): string {
  return `${property} ${reason}`;
}

/** A problem for `property` when `reason` says there is one. */
export function problemIf(property: string, reason: string | undefined): Problem[] {
  return reason === undefined ? [] : [{ property, reason }];
}

// How values reach a check. The SDK checks plain values; the engine's `check` also sees, at
// preview, inputs that are not known yet (docs/platforms.md, Pulumi dynamic providers): a rule
// applies to a value only once it is known, and refuses it then.

/** What the engine sends, in place of a value, for an input not known yet (preview). */
export const UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9";

/** Whether a value is known: not the engine's UNKNOWN marker. */
export function isKnown(value: unknown): boolean {
  return value !== UNKNOWN;
}

/** Known through and through: neither unknown itself nor a list holding an unknown. */
export function isFullyKnown(value: unknown): boolean {
  return isKnown(value) && !(Array.isArray(value) && value.some((item) => !isKnown(item)));
}

/** Whether an optional value was given at all (unknown counts as given). */
export function given(value: unknown): boolean {
  return value !== undefined && value !== null && value !== "";
}

// How a component refuses its arguments: every problem at once, before anything is registered,
// so that `pulumi preview` shows them, in the words of the rule that found each one.
import { describeProblem, type Problem } from "../rules/problem";

/** The error for `problems`: `COMPONENT NAME: PROPERTY REASON; ...`. */
export function refusal(component: string, name: string, problems: readonly Problem[]): Error {
  return new Error(`${component} ${name}: ${problems.map(describeProblem).join("; ")}`);
}

/** Throws the refusal of `problems`, when there are any. */
export function refuse(component: string, name: string, problems: readonly Problem[]): void {
  if (problems.length > 0) throw refusal(component, name, problems);
}

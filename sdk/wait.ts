// A local run's `waitFor` as its dynamic resource's input. The engine takes a pattern's source
// only (a RegExp does not survive the wire), so a RegExp becomes its source here and the flags it
// would lose are refused here, with the rule the engine's check applies to the rest.
import * as pulumi from "@pulumi/pulumi";
import { problemIf } from "../rules/problem";
import { patternProblem, type SourceWait, type WaitFor } from "../rules/wait";
import { refuse } from "./refuse";

/** `waitFor` with its pattern as a source, refused (as `component` `name`) when a RegExp's flags would be lost. */
export function waitForInput(
  component: string,
  name: string,
  waitFor: pulumi.Input<WaitFor> | undefined,
): pulumi.Input<SourceWait> | undefined {
  const toSource = (wait: WaitFor): SourceWait => {
    if (!(wait?.console instanceof RegExp)) return wait as SourceWait;
    refuse(component, name, problemIf("waitFor.console", patternProblem(wait.console)));
    return { ...wait, console: wait.console.source };
  };
  if (waitFor === undefined) return undefined;
  // Not pulumi.output(): it rebuilds objects property by property, and a RegExp has none.
  if (pulumi.Output.isInstance(waitFor)) return waitFor.apply(toSource);
  if (waitFor instanceof Promise) return waitFor.then(toSource);
  return toSource(waitFor);
}

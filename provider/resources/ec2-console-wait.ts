// The engine side of `aws.Ec2ConsoleWait`: creating it waits until every listed instance's
// console output matches the pattern, so `pulumi up` succeeds only once the unikernels run. New
// instances replace it, and it waits again.
import type * as pulumi from "@pulumi/pulumi";
import { isKnown } from "../../rules/values";
import { waitForConsole } from "../aws/console";
import { sha256 } from "../core/hash";
import { changedKeys, checkWaitInputs } from "./inputs";

export interface ConsoleWaitInputs {
  /** Instance ids (`i-...`). */
  instances: string[];
  pattern: string;
  timeoutSeconds: number;
  region?: string;
}

export interface ConsoleWaitOutputs extends ConsoleWaitInputs {
  /** What matched, per instance id. */
  matched: Record<string, string>;
}

function check(_olds: unknown, news: ConsoleWaitInputs): pulumi.dynamic.CheckResult {
  const failures: pulumi.dynamic.CheckFailure[] = checkWaitInputs(news);
  const ids = news.instances;
  if (
    isKnown(ids) &&
    !(Array.isArray(ids) && ids.every((id) => !isKnown(id) || /^i-[0-9a-f]+$/.test(id)))
  ) {
    failures.push({ property: "instances", reason: "must be a list of EC2 instance ids (i-...)" });
  }
  return { inputs: news, failures };
}

export const provider = {
  check,
  diff: async (
    _id: string,
    olds: ConsoleWaitOutputs,
    news: ConsoleWaitInputs,
  ): Promise<pulumi.dynamic.DiffResult> => {
    const replaces = changedKeys(
      olds as unknown as Record<string, unknown>,
      news as unknown as Record<string, unknown>,
      ["instances", "pattern", "region"],
    );
    const changes = replaces.length > 0 || olds.timeoutSeconds !== news.timeoutSeconds;
    return { changes, replaces, deleteBeforeReplace: false };
  },
  create: async (inputs: ConsoleWaitInputs): Promise<pulumi.dynamic.CreateResult> => {
    const found = await Promise.all(
      inputs.instances.map((id) =>
        waitForConsole(id, {
          pattern: inputs.pattern,
          timeoutMs: inputs.timeoutSeconds * 1000,
          region: inputs.region,
        }),
      ),
    );
    const matched = Object.fromEntries(inputs.instances.map((id, i) => [id, found[i]]));
    const outs: ConsoleWaitOutputs = { ...inputs, matched };
    return { id: sha256(JSON.stringify([inputs.instances, inputs.pattern])).slice(0, 16), outs };
  },
  read: async (id: string, props: ConsoleWaitOutputs): Promise<pulumi.dynamic.ReadResult> => ({
    id,
    props,
  }),
  // Only the timeout changed: the instances already proved they run.
  update: async (
    _id: string,
    olds: ConsoleWaitOutputs,
    news: ConsoleWaitInputs,
  ): Promise<pulumi.dynamic.UpdateResult> => ({ outs: { ...news, matched: olds.matched } }),
  // Waiting leaves nothing behind to remove.
  delete: async (): Promise<void> => {},
};

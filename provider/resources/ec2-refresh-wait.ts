// The engine side of `aws.Ec2RefreshWait`: creating it waits until an Auto Scaling group runs a
// launch template version everywhere (its instance refresh succeeded, or none was needed), so
// `pulumi up` returns once a new kernel is rolled out and healthy, and fails with AWS's reason
// when the refresh fails or rolls back. A new version replaces it, and it waits again.
import type * as pulumi from "@pulumi/pulumi";
import { BOUNDS, outOfBounds } from "../../rules/bounds";
import { isKnown } from "../../rules/values";
import type { GroupVersion } from "../aws/group";
import { waitForRefresh } from "../aws/refresh";
import { sha256 } from "../core/hash";
import { waitDiff } from "./inputs";

export interface RefreshWaitInputs {
  group: GroupVersion;
  timeoutSeconds: number;
  region?: string;
}

export interface RefreshWaitOutputs extends RefreshWaitInputs {
  /** How the move ended: the refresh's id and status, or that none was needed. */
  outcome: string;
}

function check(_olds: unknown, news: RefreshWaitInputs): pulumi.dynamic.CheckResult {
  const failures: pulumi.dynamic.CheckFailure[] = [];
  const timeout = news.timeoutSeconds;
  if (isKnown(timeout)) {
    const reason = outOfBounds(timeout, BOUNDS.timeoutSeconds);
    if (reason) failures.push({ property: "timeoutSeconds", reason });
  }
  const version = isKnown(news.group) ? news.group.version : undefined;
  if (isKnown(version) && !(Number.isInteger(version) && (version as number) >= 1))
    failures.push({
      property: "group.version",
      reason: `must be a launch template version number, not ${JSON.stringify(version)}`,
    });
  return { inputs: news, failures };
}

export const provider = {
  check,
  diff: async (_id: string, olds: RefreshWaitOutputs, news: RefreshWaitInputs) =>
    waitDiff<RefreshWaitInputs>(olds, news, {
      replace: ["group", "region"],
      update: ["timeoutSeconds"],
    }),
  create: async (inputs: RefreshWaitInputs): Promise<pulumi.dynamic.CreateResult> => {
    const outcome = await waitForRefresh(inputs.group, {
      region: inputs.region,
      deadline: Date.now() + inputs.timeoutSeconds * 1000,
    });
    const outs: RefreshWaitOutputs = { ...inputs, outcome };
    return { id: sha256(JSON.stringify(inputs.group)).slice(0, 16), outs };
  },
  read: async (id: string, props: RefreshWaitOutputs): Promise<pulumi.dynamic.ReadResult> => ({
    id,
    props,
  }),
  // Only the timeout changed: the group already runs the version.
  update: async (
    _id: string,
    olds: RefreshWaitOutputs,
    news: RefreshWaitInputs,
  ): Promise<pulumi.dynamic.UpdateResult> => ({ outs: { ...news, outcome: olds.outcome } }),
  // Waiting leaves nothing behind to remove.
  delete: async (): Promise<void> => {},
};

// The rollout wait of aws.UnikernelService (Ec2RefreshWait), against the local EC2 Auto Scaling
// stand-in (test/support/fake-autoscaling.ts, which checks SigV4 and refuses what the service
// refuses: aws-console-wait.test.ts proves it): `pulumi up` returns once the group's instance
// refresh to the new launch template version succeeded, and fails with AWS's reason when it
// failed or rolled back.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { type DynamicProvider, startDynamicProvider } from "./support/dynamic-provider";
import { FakeAutoScaling, type FakeGroupInstance } from "./support/fake-autoscaling";
import { FakeAws } from "./support/fake-aws";

const ec2 = new FakeAws();
const autoscaling = new FakeAutoScaling();
let provider: DynamicProvider;

before(async () => {
  const env = { ...ec2.env(await ec2.start()), ...autoscaling.env(await autoscaling.start()) };
  provider = await startDynamicProvider({ env });
});

after(async () => {
  await provider.stop();
  await ec2.stop();
  await autoscaling.stop();
});

const TEMPLATE = "lt-0fedcba987654321f";
const instance = (id: string, version: number, state = "InService"): FakeGroupInstance => ({
  id,
  state,
  health: "Healthy",
  launchTemplateId: TEMPLATE,
  version,
});
const inputs = (name: string, version: number, timeoutSeconds = 120) => ({
  group: { name, launchTemplateId: TEMPLATE, version },
  timeoutSeconds,
});

describe("Ec2RefreshWait", () => {
  test("waits until the refresh to the version succeeds", async () => {
    autoscaling.groups.set("rolling", {
      instances: [instance("i-0old", 3), instance("i-0new", 4, "Pending")],
      activities: [],
      refreshes: [
        { id: "r-4", status: "InProgress", percentage: 50, launchTemplateId: TEMPLATE, version: 4 },
        { id: "r-3", status: "Successful", launchTemplateId: TEMPLATE, version: 3 },
      ],
    });
    let polls = 0;
    autoscaling.onDescribeRefreshes = () => {
      const group = autoscaling.groups.get("rolling");
      if (++polls === 2 && group?.refreshes) {
        group.refreshes[0].status = "Successful";
        group.instances = [instance("i-0new", 4)];
      }
    };
    try {
      assert.deepEqual(
        (await provider.check("ec2-refresh-wait", {}, inputs("rolling", 4))).failures,
        [],
      );
      const { outs } = await provider.create("ec2-refresh-wait", inputs("rolling", 4));
      assert.equal(outs.outcome, "instance refresh r-4 Successful");
      assert.equal(polls, 2, "it waited for the refresh in progress");
    } finally {
      autoscaling.onDescribeRefreshes = undefined;
    }
    const diff = await provider.diff(
      "ec2-refresh-wait",
      "id",
      { ...inputs("rolling", 4), outcome: "x" },
      inputs("rolling", 5),
    );
    assert.deepEqual(diff.replaces, ["group"], "a new version is waited for again");
  });

  test("fails at once with the refresh's reason, the instances and the failed activities when it rolled back", async () => {
    autoscaling.groups.set("rolledback", {
      instances: [instance("i-0kept", 6)],
      activities: [
        {
          description: "Terminating EC2 instance: i-0sick",
          statusCode: "Cancelled",
          statusMessage: "the instance refresh rolled back",
        },
      ],
      refreshes: [
        {
          id: "r-7",
          status: "RollbackSuccessful",
          reason:
            "Instance refresh failed: 1 of the replacement instances failed their ELB health checks.",
          launchTemplateId: TEMPLATE,
          version: 7,
        },
      ],
    });
    const started = Date.now();
    await assert.rejects(
      provider.create("ec2-refresh-wait", inputs("rolledback", 7, 600)),
      (error: Error) => {
        assert.match(
          error.message,
          /Auto Scaling group rolledback's move to launch template lt-0fedcba987654321f version 7 ended RollbackSuccessful \(the group is back on its previous version\): Instance refresh failed: 1 of the replacement instances failed their ELB health checks\.\n {2}i-0kept: InService, Healthy\nFailed scaling activities:\n {2}Terminating EC2 instance: i-0sick: the instance refresh rolled back/,
        );
        return true;
      },
    );
    assert.ok(Date.now() - started < 60_000, "not the 600 s timeout");
  });

  test("a new group, which no refresh moves, is done once every instance runs the version", async () => {
    autoscaling.groups.set("fresh", {
      instances: [instance("i-0a", 1), instance("i-0b", 1)],
      activities: [],
    });
    const { outs } = await provider.create("ec2-refresh-wait", inputs("fresh", 1));
    assert.equal(outs.outcome, "no refresh needed: every instance runs version 1");
  });

  test("says so at the deadline when no refresh to the version started", async () => {
    autoscaling.groups.set("stuck", {
      instances: [instance("i-0c", 1)],
      activities: [],
      refreshes: [{ id: "r-1", status: "Successful", launchTemplateId: TEMPLATE, version: 1 }],
    });
    await assert.rejects(
      provider.create("ec2-refresh-wait", inputs("stuck", 2, 1)),
      /Auto Scaling group stuck's move to launch template lt-0fedcba987654321f version 2 has not started: no instance refresh to it exists:\n {2}i-0c: InService, Healthy/,
    );
  });

  test("check refuses a timeout out of bounds and a version that is no number", async () => {
    const { failures } = await provider.check(
      "ec2-refresh-wait",
      {},
      { group: { name: "g", launchTemplateId: TEMPLATE, version: "$Latest" }, timeoutSeconds: 0 },
    );
    assert.deepEqual(
      failures.map((f) => f.property),
      ["timeoutSeconds", "group.version"],
    );
  });
});

// The console wait of aws.UnikernelService over its Auto Scaling group, against local servers
// playing EC2 (test/support/fake-aws.ts) and EC2 Auto Scaling (test/support/fake-autoscaling.ts),
// both checking SigV4 as AWS does: it finds the instances of the group's current launch template
// version, waits for each one's console, and names each one that fails with its console's tail.
import assert from "node:assert/strict";
import { request } from "node:http";
import { after, before, describe, test } from "node:test";
import { groupInstances } from "../provider/aws/group";
import { type DynamicProvider, startDynamicProvider } from "./support/dynamic-provider";
import { FakeAutoScaling, type FakeGroupInstance } from "./support/fake-autoscaling";
import { FakeAws } from "./support/fake-aws";

const ec2 = new FakeAws();
const autoscaling = new FakeAutoScaling();
let env: Record<string, string>;
let provider: DynamicProvider;
const saved = { ...process.env };

before(async () => {
  env = { ...ec2.env(await ec2.start()), ...autoscaling.env(await autoscaling.start()) };
  Object.assign(process.env, env);
  provider = await startDynamicProvider({ env });
});

after(async () => {
  process.env = saved;
  await provider.stop();
  await ec2.stop();
  await autoscaling.stop();
});

const TEMPLATE = "lt-0123456789abcdef0";
const instance = (id: string, version: number, state = "InService"): FakeGroupInstance => ({
  id,
  state,
  health: "Healthy",
  launchTemplateId: TEMPLATE,
  version,
});

describe("the fake EC2 Auto Scaling", () => {
  test("refuses a request without a signature, or signed with a wrong secret key, as the service does", async () => {
    const unsigned = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const url = new URL(env.AWS_ENDPOINT_URL_AUTO_SCALING);
      const req = request(
        { host: url.hostname, port: url.port, method: "POST", path: "/" },
        (res) => {
          let body = "";
          res.on("data", (chunk) => {
            body += chunk;
          });
          res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
        },
      );
      req.on("error", reject);
      req.setHeader("content-type", "application/x-www-form-urlencoded");
      req.end("Action=DescribeAutoScalingGroups&Version=2011-01-01");
    });
    assert.equal(unsigned.status, 403);
    assert.match(unsigned.body, /<Code>MissingAuthenticationToken<\/Code>/);

    autoscaling.groups.set("signed", { instances: [instance("i-0aaa", 1)], activities: [] });
    const group = { name: "signed", launchTemplateId: TEMPLATE, version: 1, size: 1 };
    process.env.AWS_SECRET_ACCESS_KEY = "not-the-secret";
    try {
      await assert.rejects(
        groupInstances(group, { deadline: Date.now() + 60_000 }),
        /reading the instances of Auto Scaling group signed failed: SignatureDoesNotMatch/,
      );
    } finally {
      process.env.AWS_SECRET_ACCESS_KEY = env.AWS_SECRET_ACCESS_KEY;
    }
    assert.deepEqual(autoscaling.actions, [], "nothing was answered");
    // Signed with the right key, the same call is answered.
    assert.deepEqual(await groupInstances(group, { deadline: Date.now() + 60_000 }), ["i-0aaa"]);
  });
});

describe("Ec2ConsoleWait over a group", () => {
  test("waits for the consoles of the group's instances of the template version, not the old ones", async () => {
    autoscaling.groups.set("web", {
      // A rolling refresh under way: an old instance still serves beside the new ones.
      instances: [instance("i-0old", 1), instance("i-0new1", 2, "Pending")],
      activities: [],
    });
    // The second new instance is launched while the wait runs.
    autoscaling.onDescribe = () => {
      const group = autoscaling.groups.get("web");
      if (group && group.instances.length === 2) group.instances.push(instance("i-0new2", 2));
      autoscaling.onDescribe = undefined;
    };
    ec2.consoles.set("i-0old", { shown: "", pieces: ["the old kernel never says it\n"] });
    ec2.consoles.set("i-0new1", {
      shown: "",
      pieces: ["pulumi-mirage[web]: fetching\n", "solo5-spt: serving on port 8080\n"],
    });
    ec2.consoles.set("i-0new2", { shown: "", pieces: ["solo5-spt: serving on port 8080\n"] });
    const inputs = {
      group: { name: "web", launchTemplateId: TEMPLATE, version: 2, size: 2 },
      pattern: "serving on port \\d+",
      timeoutSeconds: 120,
    };
    assert.deepEqual((await provider.check("ec2-console-wait", {}, inputs)).failures, []);
    const { outs } = await provider.create("ec2-console-wait", inputs);
    assert.deepEqual(outs.waited, ["i-0new1", "i-0new2"]);
    assert.deepEqual(outs.matched, {
      "i-0new1": "serving on port 8080",
      "i-0new2": "serving on port 8080",
    });
    assert.equal(ec2.consoles.get("i-0old")?.shown, "", "the old instance's console was not read");
    const diff = await provider.diff("ec2-console-wait", "id", outs, {
      ...inputs,
      group: { ...inputs.group, version: 3 },
    });
    assert.deepEqual(diff.replaces, ["group"], "a new version is waited for again");
  });

  test("names each instance that does not boot with its console's last lines", async () => {
    autoscaling.groups.set("broken", {
      instances: [instance("i-0good", 5), instance("i-0bad", 5)],
      activities: [],
    });
    ec2.consoles.set("i-0good", { shown: "", pieces: ["serving on port 8080\n"] });
    ec2.consoles.set("i-0bad", {
      shown: "",
      pieces: [
        "pulumi-mirage[web]: starting solo5-spt\nsolo5-spt: bindings: net: no such device\n",
      ],
    });
    await assert.rejects(
      provider.create("ec2-console-wait", {
        group: { name: "broken", launchTemplateId: TEMPLATE, version: 5, size: 2 },
        pattern: "serving on port \\d+",
        timeoutSeconds: 1,
      }),
      (error: Error) => {
        assert.match(error.message, /1 of 2 instances did not boot/);
        assert.match(
          error.message,
          /the console of i-0bad did not match [\s\S]*solo5-spt: bindings: net: no such device[\s\S]*--instance-id i-0bad/,
        );
        assert.doesNotMatch(error.message, /the console of i-0good/);
        return true;
      },
    );
  });

  test("says why the group has not launched its instances: their states and the failed scaling activities", async () => {
    autoscaling.groups.set("starved", {
      instances: [instance("i-0stale", 1), instance("i-0gone", 7, "Terminating")],
      activities: [
        {
          description: "Launching a new EC2 instance",
          statusCode: "Failed",
          statusMessage:
            "We currently do not have sufficient c8i.large capacity in the Availability Zone you requested. Launching EC2 instance failed.",
        },
        { description: "Terminating EC2 instance: i-0x", statusCode: "Successful" },
      ],
    });
    await assert.rejects(
      provider.create("ec2-console-wait", {
        group: { name: "starved", launchTemplateId: TEMPLATE, version: 7, size: 1 },
        pattern: "serving",
        timeoutSeconds: 1,
      }),
      (error: Error) => {
        assert.match(
          error.message,
          /Auto Scaling group starved has 0 of 1 instances of launch template lt-0123456789abcdef0 version 7:\n {2}i-0gone: Terminating, Healthy\nFailed scaling activities:\n {2}Launching a new EC2 instance: We currently do not have sufficient c8i\.large capacity/,
        );
        assert.doesNotMatch(error.message, /i-0stale|Terminating EC2 instance/);
        return true;
      },
    );
  });

  test("fails at once, without waiting out the timeout, when the group does not exist", async () => {
    const started = Date.now();
    await assert.rejects(
      provider.create("ec2-console-wait", {
        group: { name: "nonesuch", launchTemplateId: TEMPLATE, version: 1, size: 1 },
        pattern: "serving",
        timeoutSeconds: 600,
        region: "eu-west-1",
      }),
      /there is no Auto Scaling group nonesuch in eu-west-1/,
    );
    assert.ok(Date.now() - started < 60_000, "not the 600 s timeout");
  });

  test("check refuses a group's size below one and a version that is no number", async () => {
    const { failures } = await provider.check(
      "ec2-console-wait",
      {},
      {
        group: { name: "web", launchTemplateId: TEMPLATE, version: "$Latest", size: 0 },
        pattern: "x",
        timeoutSeconds: 60,
      },
    );
    assert.deepEqual(
      failures.map((f) => f.property),
      ["group.size", "group.version"],
    );
    const none = await provider.check("ec2-console-wait", {}, { pattern: "x", timeoutSeconds: 60 });
    assert.deepEqual(
      none.failures.map((f) => f.property),
      ["instances"],
    );
  });
});

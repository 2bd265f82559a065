// The stand-ins for IMDS, S3 and SSM (test/support/fake-aws-host.ts) refuse what the real services
// refuse: a test passing against them means something only if they do. Requests come from curl
// (what the host script uses) and from the AWS SDK's own signer, on loopback.
import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { SignatureV4 } from "@smithy/signature-v4";
import { findExecutable, run } from "../provider/core/exec";
import { EMPTY_SHA256 } from "../sdk/aws/host-script";
import { FakeAwsHost, HOST_ROLE, OTHER_ROLE } from "./support/fake-aws-host";
import { Scratch } from "./support/scratch";
import { type Identity, Sha256 } from "./support/sigv4-check";

const REGION = "eu-west-1";
const OBJECT = "the kernel's bytes";
const scratch = Scratch.forThisFile("fake-aws-host-test-");
let fake: FakeAwsHost;
let base = "";

async function startFake(): Promise<void> {
  const file = join(scratch.path, "kernel");
  await writeFile(file, OBJECT);
  fake = new FakeAwsHost({
    region: REGION,
    objects: { "/bucket/kernel": file },
    parameters: {
      "/app/args": { value: "1 --token=x", version: 3, readers: [HOST_ROLE.role] },
    },
  });
  base = `http://127.0.0.1:${await fake.start()}`;
}

interface Signed {
  identity?: Identity;
  service?: string;
  region?: string;
  method?: string;
  path?: string;
  headers?: Record<string, string>;
  body?: string;
  date?: Date;
  /** Headers added after signing. */
  unsigned?: Record<string, string>;
}

/** A request signed by @smithy/signature-v4, sent with fetch: status and body. */
async function signed(request: Signed): Promise<{ status: number; body: string }> {
  const { identity = HOST_ROLE, service = "s3", method = "GET", path = "/bucket/kernel" } = request;
  const url = new URL(path, base);
  const signer = new SignatureV4({
    credentials: identity,
    region: request.region ?? REGION,
    service,
    sha256: Sha256,
    uriEscapePath: service !== "s3",
    applyChecksum: false,
  });
  const done = await signer.sign(
    {
      method,
      protocol: "http:",
      hostname: url.hostname,
      port: Number(url.port),
      path: url.pathname,
      headers: { host: url.host, ...request.headers },
      body: request.body,
    },
    { signingDate: request.date },
  );
  const { host: _, ...headers } = done.headers;
  const response = await fetch(url, {
    method,
    headers: { ...headers, ...request.unsigned },
    body: request.body,
  });
  return { status: response.status, body: await response.text() };
}

const s3 = (request: Signed = {}) =>
  signed({ ...request, headers: { "x-amz-content-sha256": EMPTY_SHA256, ...request.headers } });

const ssm = (name: string, request: Signed = {}) =>
  signed({
    service: "ssm",
    method: "POST",
    path: "/",
    headers: {
      "content-type": "application/x-amz-json-1.1",
      "x-amz-target": "AmazonSSM.GetParameter",
    },
    body: JSON.stringify({ Name: name, WithDecryption: true }),
    ...request,
  });

/** curl, as the host script runs it; prints the status after the body. */
async function curl(...args: string[]): Promise<{ status: number; body: string }> {
  const { stdout } = await run("curl", ["-sS", "-w", "\n%{http_code}", ...args], {
    timeoutMs: 30_000,
  });
  const cut = stdout.lastIndexOf("\n");
  return { status: Number(stdout.slice(cut + 1)), body: stdout.slice(0, cut) };
}

/** curl signing for `service` with the host role's credentials, as the host script does. */
const curlAs = (service: string, ...args: string[]) =>
  curl(
    "--aws-sigv4",
    `aws:amz:${REGION}:${service}`,
    "--user",
    `${HOST_ROLE.accessKeyId}:${HOST_ROLE.secretAccessKey}`,
    "-H",
    `x-amz-security-token: ${HOST_ROLE.sessionToken}`,
    ...args,
  );

describe("the fakes of what an EC2 host talks to", () => {
  before(startFake);
  after(() => fake?.stop());

  describe("the fake instance metadata service (IMDSv2 required)", () => {
    const token = async () =>
      (
        await curl(
          "-X",
          "PUT",
          "-H",
          "X-aws-ec2-metadata-token-ttl-seconds: 60",
          `${base}/latest/api/token`,
        )
      ).body;
    const credentialsPath = `/latest/meta-data/iam/security-credentials/${HOST_ROLE.role}`;

    test("gives the role's credentials for a session token", {
      skip: !findExecutable("curl"),
    }, async () => {
      const answer = await curl(
        "-H",
        `X-aws-ec2-metadata-token: ${await token()}`,
        `${base}${credentialsPath}`,
      );
      assert.equal(answer.status, 200);
      assert.match(answer.body, new RegExp(`"AccessKeyId" : "${HOST_ROLE.accessKeyId}"`));
    });

    test("refuses a request without a token, with a wrong one, and tokens asked for wrongly", {
      skip: !findExecutable("curl"),
    }, async () => {
      assert.equal((await curl(`${base}${credentialsPath}`)).status, 401);
      assert.equal(
        (await curl("-H", "X-aws-ec2-metadata-token: made-up", `${base}${credentialsPath}`)).status,
        401,
      );
      assert.equal((await curl(`${base}/latest/api/token`)).status, 405, "a GET for a token");
      assert.equal((await curl("-X", "PUT", `${base}/latest/api/token`)).status, 400, "no TTL");
      const ttl = (seconds: string) =>
        curl(
          "-X",
          "PUT",
          "-H",
          `X-aws-ec2-metadata-token-ttl-seconds: ${seconds}`,
          `${base}/latest/api/token`,
        );
      assert.equal((await ttl("21601")).status, 400);
      assert.equal((await ttl("0")).status, 400);
      const forwarded = await curl(
        "-X",
        "PUT",
        "-H",
        "X-aws-ec2-metadata-token-ttl-seconds: 60",
        "-H",
        "X-Forwarded-For: 10.0.0.1",
        `${base}/latest/api/token`,
      );
      assert.equal(forwarded.status, 403, "a request that went through a proxy");
    });
  });

  describe("the fake S3", () => {
    const withCurl = { skip: !findExecutable("curl") };
    const curlS3 = (...headers: string[]) =>
      curlAs("s3", ...headers.flatMap((h) => ["-H", h]), `${base}/bucket/kernel`);

    test(
      "serves an object to curl's SigV4 with x-amz-content-sha256, and to the AWS SDK's signer",
      withCurl,
      async () => {
        assert.deepEqual(await curlS3(`x-amz-content-sha256: ${EMPTY_SHA256}`), {
          status: 200,
          body: OBJECT,
        });
        assert.deepEqual(await s3(), { status: 200, body: OBJECT });
        assert.equal(
          (await s3({ headers: { "x-amz-content-sha256": "UNSIGNED-PAYLOAD" } })).status,
          200,
        );
      },
    );

    test("refuses curl's SigV4 without x-amz-content-sha256, as S3 does", withCurl, async () => {
      const answer = await curlS3();
      assert.equal(answer.status, 400);
      assert.match(
        answer.body,
        /<Code>InvalidRequest<\/Code><Message>Missing required header for this request: x-amz-content-sha256/,
      );
    });

    test("refuses a bad signature, a wrong or missing session token, and other keys, regions and times", async () => {
      const code = async (request: Signed) => {
        const { status, body } = await s3(request);
        return `${status} ${/<Code>(\w+)<\/Code>/.exec(body)?.[1]}`;
      };
      const forged = { ...HOST_ROLE, secretAccessKey: "not-the-secret" };
      assert.equal(await code({ identity: forged }), "403 SignatureDoesNotMatch");
      assert.equal(
        await code({ identity: { ...HOST_ROLE, sessionToken: "other" } }),
        "400 InvalidToken",
      );
      assert.equal(
        await code({ identity: { ...HOST_ROLE, sessionToken: "" } }),
        "400 InvalidToken",
      );
      assert.equal(
        await code({ identity: { ...HOST_ROLE, accessKeyId: "ASIAUNKNOWN" } }),
        "403 InvalidAccessKeyId",
      );
      assert.equal(await code({ region: "us-east-1" }), "400 AuthorizationHeaderMalformed");
      assert.equal(
        await code({ date: new Date(Date.now() - 20 * 60_000) }),
        "403 RequestTimeTooSkewed",
      );
      assert.equal(await code({ unsigned: { "x-amz-meta-late": "1" } }), "403 AccessDenied");
      assert.equal(
        await code({ headers: { "x-amz-content-sha256": "f".repeat(64) } }),
        "400 XAmzContentSHA256Mismatch",
      );
      assert.equal(
        await code({ headers: { "x-amz-content-sha256": "yes" } }),
        "400 InvalidArgument",
      );
      assert.equal(
        await code({ path: "/bucket/other" }),
        "403 AccessDenied",
        "a key the role may not read",
      );
      assert.equal(
        await code({ identity: OTHER_ROLE }),
        "403 AccessDenied",
        "a principal not granted it",
      );
      const anonymous = await fetch(`${base}/bucket/kernel`);
      assert.equal(anonymous.status, 403);
    });
  });

  describe("the fake SSM Parameter Store", () => {
    const type = async (answer: Promise<{ status: number; body: string }>) => {
      const { status, body } = await answer;
      return status === 200
        ? JSON.parse(body).Parameter.Value
        : `${status} ${JSON.parse(body).__type}`;
    };

    test("gives a parameter, by name or name:version, to a role it names as reader", async () => {
      assert.equal(await type(ssm("/app/args")), "1 --token=x");
      assert.equal(await type(ssm("/app/args:3")), "1 --token=x");
      assert.equal(await type(ssm("/app/args:2")), "400 ParameterVersionNotFound");
    });

    test("refuses other identities, bad signatures and wrong tokens", async () => {
      assert.equal(
        await type(ssm("/app/args", { identity: OTHER_ROLE })),
        "400 AccessDeniedException",
      );
      assert.equal(await type(ssm("/app/other")), "400 AccessDeniedException");
      assert.equal(
        await type(ssm("/app/args", { identity: { ...HOST_ROLE, secretAccessKey: "x" } })),
        "400 InvalidSignatureException",
      );
      assert.equal(
        await type(ssm("/app/args", { identity: { ...HOST_ROLE, sessionToken: "other" } })),
        "400 UnrecognizedClientException",
      );
      assert.equal(
        await type(ssm("/app/args", { service: "s3" })),
        "400 InvalidSignatureException",
      );
      const unsigned = await fetch(base, {
        method: "POST",
        headers: {
          "x-amz-target": "AmazonSSM.GetParameter",
          "content-type": "application/x-amz-json-1.1",
        },
        body: JSON.stringify({ Name: "/app/args" }),
      });
      assert.equal(unsigned.status, 400);
    });

    test("answers curl's SigV4, as the host script sends it", {
      skip: !findExecutable("curl"),
    }, async () => {
      const answer = await curlAs(
        "ssm",
        "-H",
        "Content-Type: application/x-amz-json-1.1",
        "-H",
        "X-Amz-Target: AmazonSSM.GetParameter",
        "--data-binary",
        JSON.stringify({ Name: "/app/args:3", WithDecryption: true }),
        `${base}/`,
      );
      assert.equal(answer.status, 200, answer.body);
      assert.equal(JSON.parse(answer.body).Parameter.Value, "1 --token=x");
    });
  });
});

// Stand-in for what an EC2 host instance's script talks to, on one local HTTP server. It follows
// the real services' contracts and refuses what they refuse:
// - the instance metadata service with IMDSv2 required: PUT /latest/api/token (TTL 1-21600 s; a
//   request with X-Forwarded-For is refused), then GET /latest/meta-data/... only with a live
//   token (else 401); the role's temporary credentials printed as IMDS prints them;
// - S3 GetObject, path style (GET /BUCKET/KEY): SigV4 for this region and `s3`, checked as S3
//   does (sigv4-check.ts), with the x-amz-content-sha256 header S3 requires of every SigV4
//   request, matching the (empty) body; only the host role may read, and only the given objects
//   (any other key is AccessDenied, as S3 answers a role without s3:ListBucket);
// - SSM GetParameter (POST / with X-Amz-Target: AmazonSSM.GetParameter, JSON 1.1): SigV4 for
//   `ssm`; NAME or NAME:VERSION; only the identities a parameter names as readers may read it
//   (else AccessDeniedException), and a SecureString is decrypted only WithDecryption.
//
// As a program, inside a test's network namespace:
//   node fake-aws-host.js '{"region": ..., "objects": {"/BUCKET/KEY": "FILE"}, "parameters": {...}}'
// prints its port, then one line per request and its answer.
import { createHash, randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import type { IncomingMessage } from "node:http";
import { FakeHttpServer, type Reply, runAsProgram, text } from "./fake-http";
import { checkSigV4, type Identity, type RefusalKind } from "./sigv4-check";

const ACCOUNT = "123456789012";

/** The instance's role: IMDS hands out its credentials. */
export const HOST_ROLE: Identity = {
  role: "pulumi-mirage-host",
  accessKeyId: "ASIAPULUMIMIRAGEHOST",
  secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYHOSTKEY1",
  sessionToken: `IQoJb3JpZ2luX2VjEHMaCWV1LXdlc3QtMSJH/${"MEUCIQD+host".repeat(30)}==`,
};

/** Another principal of the account, granted nothing here. */
export const OTHER_ROLE: Identity = {
  role: "someone-else",
  accessKeyId: "ASIAPULUMIMIRAGEOTHR",
  secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYOTHERKEY",
  sessionToken: `IQoJb3JpZ2luX2VjEHMaCWV1LXdlc3QtMSJH/${"MEUCIQD+othr".repeat(30)}==`,
};

export interface FakeParameter {
  value: string;
  version: number;
  /** The roles allowed ssm:GetParameter on it. */
  readers: string[];
}

export interface FakeAwsHostOptions {
  region: string;
  /** The objects the host role may read, by "/BUCKET/KEY": the file each serves. */
  objects: Record<string, string>;
  /** SecureString parameters by name. */
  parameters?: Record<string, FakeParameter>;
}

const EMPTY_SHA256 = createHash("sha256").digest("hex");

function s3Error(status: number, code: string, message: string): Reply {
  const body = `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${message}</Message><RequestId>FAKE</RequestId></Error>`;
  return { status, body, type: "application/xml", code };
}

function ssmError(code: string, message = ""): Reply {
  return {
    status: 400,
    body: JSON.stringify({ __type: code, message }),
    type: "application/x-amz-json-1.1",
    code,
    headers: { "x-amzn-ErrorType": code },
  };
}

const S3_REFUSALS: Record<RefusalKind, [number, string]> = {
  missing: [403, "AccessDenied"],
  malformed: [400, "AuthorizationHeaderMalformed"],
  scope: [400, "AuthorizationHeaderMalformed"],
  "unknown-key": [403, "InvalidAccessKeyId"],
  token: [400, "InvalidToken"],
  unsigned: [403, "AccessDenied"],
  skewed: [403, "RequestTimeTooSkewed"],
  signature: [403, "SignatureDoesNotMatch"],
};

const SSM_REFUSALS: Record<RefusalKind, string> = {
  missing: "MissingAuthenticationTokenException",
  malformed: "IncompleteSignatureException",
  scope: "InvalidSignatureException",
  "unknown-key": "UnrecognizedClientException",
  token: "UnrecognizedClientException",
  unsigned: "InvalidSignatureException",
  skewed: "InvalidSignatureException",
  signature: "InvalidSignatureException",
};

export class FakeAwsHost extends FakeHttpServer {
  /** Live IMDSv2 tokens and when each expires (ms since the epoch). */
  private readonly tokens = new Map<string, number>();

  constructor(
    private readonly options: FakeAwsHostOptions,
    onLog?: (line: string) => void,
  ) {
    super(onLog);
  }

  protected async handle(req: IncomingMessage, body: Buffer): Promise<Reply> {
    const path = new URL(req.url ?? "/", "http://localhost").pathname;
    if (path.startsWith("/latest/")) return this.imds(req, path);
    if (req.method === "POST" && path === "/" && req.headers["x-amz-target"]) {
      return this.ssm(req, body);
    }
    return this.s3(req, path, body);
  }

  private imds(req: IncomingMessage, path: string): Reply {
    if (path === "/latest/api/token") {
      if (req.method !== "PUT") return text(405);
      if (req.headers["x-forwarded-for"] !== undefined) return text(403);
      const ttl = Number(req.headers["x-aws-ec2-metadata-token-ttl-seconds"]);
      if (!Number.isInteger(ttl) || ttl < 1 || ttl > 21600) return text(400);
      const token = randomBytes(32).toString("base64");
      this.tokens.set(token, Date.now() + ttl * 1000);
      return text(200, token);
    }
    const token = String(req.headers["x-aws-ec2-metadata-token"] ?? "");
    if (req.method !== "GET" || !((this.tokens.get(token) ?? 0) > Date.now())) {
      return text(401);
    }
    const base = "/latest/meta-data/iam/security-credentials/";
    if (path === base) return text(200, HOST_ROLE.role);
    if (path === `${base}${HOST_ROLE.role}`) {
      // As IMDS prints them: one field a line, spaces around the colons.
      const fields = {
        Code: "Success",
        LastUpdated: new Date().toISOString(),
        Type: "AWS-HMAC",
        AccessKeyId: HOST_ROLE.accessKeyId,
        SecretAccessKey: HOST_ROLE.secretAccessKey,
        Token: HOST_ROLE.sessionToken,
        Expiration: new Date(Date.now() + 6 * 3600_000).toISOString(),
      };
      const lines = Object.entries(fields).map(([k, v]) => `  "${k}" : "${v}"`);
      return text(200, `{\n${lines.join(",\n")}\n}`);
    }
    return text(404);
  }

  private async s3(req: IncomingMessage, path: string, body: Buffer): Promise<Reply> {
    if (req.method !== "GET") return s3Error(405, "MethodNotAllowed", "GET only here");
    if (req.headers.authorization !== undefined) {
      const declared = req.headers["x-amz-content-sha256"];
      if (declared === undefined) {
        return s3Error(
          400,
          "InvalidRequest",
          "Missing required header for this request: x-amz-content-sha256",
        );
      }
      if (declared !== "UNSIGNED-PAYLOAD" && !/^[0-9a-f]{64}$/.test(String(declared))) {
        return s3Error(
          400,
          "InvalidArgument",
          "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, or a valid sha256 value.",
        );
      }
      if (declared !== "UNSIGNED-PAYLOAD" && declared !== EMPTY_SHA256) {
        return s3Error(
          400,
          "XAmzContentSHA256Mismatch",
          "The provided 'x-amz-content-sha256' header does not match what was computed.",
        );
      }
    }
    const checked = await checkSigV4(req, body, {
      service: "s3",
      region: this.options.region,
      identities: [HOST_ROLE, OTHER_ROLE],
    });
    if ("refused" in checked) {
      const [status, code] = S3_REFUSALS[checked.refused.kind];
      return s3Error(status, code, checked.refused.message);
    }
    const file = this.options.objects[path];
    if (checked.identity !== HOST_ROLE || file === undefined) {
      return s3Error(403, "AccessDenied", "Access Denied");
    }
    return { status: 200, body: await readFile(file), type: "application/octet-stream" };
  }

  private async ssm(req: IncomingMessage, body: Buffer): Promise<Reply> {
    const checked = await checkSigV4(req, body, {
      service: "ssm",
      region: this.options.region,
      identities: [HOST_ROLE, OTHER_ROLE],
    });
    if ("refused" in checked) {
      return ssmError(SSM_REFUSALS[checked.refused.kind], checked.refused.message);
    }
    if (req.headers["x-amz-target"] !== "AmazonSSM.GetParameter") {
      return ssmError("UnknownOperationException");
    }
    if (req.headers["content-type"] !== "application/x-amz-json-1.1") {
      return ssmError("SerializationException");
    }
    let input: { Name?: unknown; WithDecryption?: unknown };
    try {
      input = JSON.parse(body.toString("utf8"));
    } catch {
      return ssmError("SerializationException");
    }
    const [, name, selector] = /^([^:]*)(?::(\d+))?$/.exec(String(input.Name)) ?? [];
    const parameter = this.options.parameters?.[name];
    const arn = `arn:aws:ssm:${this.options.region}:${ACCOUNT}:parameter${name}`;
    if (!parameter?.readers.includes(checked.identity.role)) {
      return ssmError(
        "AccessDeniedException",
        `User: arn:aws:sts::${ACCOUNT}:assumed-role/${checked.identity.role}/i-0fake is not authorized to perform: ssm:GetParameter on resource: ${arn} because no identity-based policy allows the ssm:GetParameter action`,
      );
    }
    if (selector !== undefined && Number(selector) !== parameter.version) {
      return ssmError(
        "ParameterVersionNotFound",
        `Systems Manager could not find version ${selector} of ${name}. Verify the version and try again.`,
      );
    }
    const value =
      input.WithDecryption === true ? parameter.value : randomBytes(48).toString("base64");
    return {
      status: 200,
      body: JSON.stringify({
        Parameter: {
          ARN: arn,
          DataType: "text",
          LastModifiedDate: 1.7e9,
          Name: name,
          ...(selector !== undefined ? { Selector: `:${selector}` } : {}),
          Type: "SecureString",
          Value: value,
          Version: parameter.version,
        },
      }),
      type: "application/x-amz-json-1.1",
    };
  }
}

if (require.main === module) {
  runAsProgram((options: FakeAwsHostOptions, onLog) => new FakeAwsHost(options, onLog));
}

// Run as a program inside a test's network namespace: plays what a host instance's script talks
// to. The EC2 instance metadata service (IMDSv2: PUT /latest/api/token, then the role's temporary
// credentials under /latest/meta-data/iam/security-credentials/) and S3 GetObject
// (GET /BUCKET/KEY, path style), which answers only requests signed with SigV4 by those
// credentials for this region and s3, carrying their session token, as S3 does.
//
//   node fake-s3-host.js REGION JSON_OF_{"/BUCKET/KEY": "FILE"}
//
// Prints its port, then one line per request.
import { readFile } from "node:fs/promises";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";

const [region, objectsJson] = process.argv.slice(2);
const objects = JSON.parse(objectsJson) as Record<string, string>;
const ROLE = "pulumi-mirage-host";
const TOKEN = "imds-token-1";
const KEY_ID = "ASIAPULUMIMIRAGE";
const SESSION = "session-token-1";

const server = createServer(async (req, res) => {
  const path = new URL(req.url ?? "/", "http://localhost").pathname;
  console.log(`${req.method} ${path}`);
  const answer = (status: number, body: string | Buffer, type = "text/plain") => {
    res.writeHead(status, { "content-type": type });
    res.end(body);
  };
  if (path === "/latest/api/token") {
    if (req.method !== "PUT" || !req.headers["x-aws-ec2-metadata-token-ttl-seconds"]) {
      return answer(400, "IMDSv2 wants a PUT with a TTL");
    }
    return answer(200, TOKEN);
  }
  if (path.startsWith("/latest/meta-data/")) {
    if (req.headers["x-aws-ec2-metadata-token"] !== TOKEN) return answer(401, "");
    if (path === "/latest/meta-data/iam/security-credentials/") return answer(200, ROLE);
    if (path === `/latest/meta-data/iam/security-credentials/${ROLE}`) {
      const credentials = {
        Code: "Success",
        Type: "AWS-HMAC",
        AccessKeyId: KEY_ID,
        SecretAccessKey: "secret/with+chars",
        Token: SESSION,
        Expiration: "2099-01-01T00:00:00Z",
      };
      // As IMDS prints it: one field per line.
      return answer(200, JSON.stringify(credentials, null, 2), "application/json");
    }
    return answer(404, "");
  }
  const auth = String(req.headers.authorization ?? "");
  const scope = new RegExp(
    `^AWS4-HMAC-SHA256 Credential=${KEY_ID}/\\d{8}/${region}/s3/aws4_request, SignedHeaders=[^ ]*x-amz-security-token`,
  );
  if (
    req.method !== "GET" ||
    !scope.test(auth) ||
    req.headers["x-amz-security-token"] !== SESSION
  ) {
    return answer(403, "<Error><Code>AccessDenied</Code></Error>", "application/xml");
  }
  const file = objects[path];
  if (!file) return answer(404, "<Error><Code>NoSuchKey</Code></Error>", "application/xml");
  answer(200, await readFile(file), "application/octet-stream");
});

server.listen(0, "127.0.0.1", () => {
  console.log((server.address() as AddressInfo).port);
});
process.on("SIGTERM", () => process.exit(0));

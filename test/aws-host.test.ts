// The host script of an spt unikernel on EC2 (sdk/host/script.ts with sdk/aws/host-script.ts),
// run for real as root in network namespaces (test/support/host-lab.ts) against
// test/support/fake-aws-host.ts playing IMDSv2, S3 and SSM as strictly as AWS: the tests every
// cloud's host script passes (test/support/host-script-suite.ts). EC2 runs user data at the first
// boot only: a per-boot hook of cloud-init brings the service back after a reboot.
import { join } from "node:path";
import { renderAwsHostScript } from "../sdk/aws/host-script";
import { HOST_ROLE, OTHER_ROLE } from "./support/fake-aws-host";
import { describeHostScript, type LabFiles, SECRET_VALUE } from "./support/host-script-suite";

const REGION = "eu-west-1";
const SECRET = "/pulumi-mirage/secret/boot-args";
const FORBIDDEN = "/pulumi-mirage/forbidden";

describeHostScript({
  name: "EC2",
  fakeProgram: join(__dirname, "support", "fake-aws-host.js"),
  fakeOptions: (files: LabFiles) => ({
    region: REGION,
    objects: Object.fromEntries(
      Object.entries(files).map(([key, file]) => [`/bucket/${key}`, file]),
    ),
    parameters: {
      [SECRET]: { value: SECRET_VALUE, version: 2, readers: [HOST_ROLE.role] },
      [FORBIDDEN]: { value: "0", version: 1, readers: [OTHER_ROLE.role] },
    },
  }),
  objectUrl: (base, object) => `${base}/bucket/${object}`,
  render: (spec, base) =>
    renderAwsHostScript(spec, { region: REGION, metadataUrl: base, ssmUrl: base }),
  secrets: { readable: `${SECRET}:2`, forbidden: `${FORBIDDEN}:1` },
  downloaded: (object) => `GET /bucket/${object} -> 200`,
  secretRead: "POST / -> 200",
  // S3 answers AccessDenied for a key a role without s3:ListBucket cannot see.
  missingObject: (url) =>
    new RegExp(`^downloading gone\\.spt from ${url}: HTTP 403: .*<Code>AccessDenied</Code>`),
  forbiddenSecret: 'HTTP 400: {"__type":"AccessDeniedException"',
  everyBoot: false,
});

// Checks a request's AWS Signature Version 4 (Authorization header) the way AWS services do, for
// the test fakes: the credential scope (key, date, region, service), the signed headers (host and
// x-amz-date always; every x-amz-* header present), the session token of temporary credentials,
// the clock skew, and the signature itself, recomputed by @smithy/signature-v4 (the AWS SDK's own
// signer) over exactly the headers the request says it signed. Each refusal has a kind; each fake
// answers it in its service's own words.
import { createHash, createHmac } from "node:crypto";
import type { IncomingMessage } from "node:http";
import { SignatureV4 } from "@smithy/signature-v4";

export interface Identity {
  /** The role (or user) the credentials belong to. */
  role: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** Temporary credentials have one; a long-term key has none, and takes none. */
  sessionToken?: string;
}

export type RefusalKind =
  | "missing" // no Authorization header
  | "malformed" // not AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...
  | "scope" // the credential scope's date, region or service is not this one's
  | "unknown-key" // no such access key
  | "token" // the session token is missing or not the key's
  | "unsigned" // a header that must be signed is not
  | "skewed" // x-amz-date more than 15 minutes away
  | "signature"; // the signature does not match

export interface Refusal {
  kind: RefusalKind;
  message: string;
}

export interface Expected {
  service: string;
  region: string;
  identities: readonly Identity[];
}

/** node:crypto as the signer's hash (its Checksum interface). */
export class Sha256 {
  private hash;
  constructor(secret?: string | ArrayBuffer | ArrayBufferView) {
    this.hash =
      secret === undefined
        ? createHash("sha256")
        : createHmac(
            "sha256",
            typeof secret === "string" ? secret : Buffer.from(secret as Uint8Array),
          );
  }
  update(data: string | Uint8Array): void {
    this.hash.update(data);
  }
  async digest(): Promise<Uint8Array> {
    return this.hash.digest();
  }
  reset(): void {}
}

const AUTHORIZATION =
  /^AWS4-HMAC-SHA256 Credential=([^/,\s]+)\/(\d{8})\/([^/,\s]+)\/([^/,\s]+)\/aws4_request, ?SignedHeaders=([a-z0-9;-]+), ?Signature=([0-9a-f]{64})$/;

const header = (req: IncomingMessage, name: string) => {
  const value = req.headers[name];
  return Array.isArray(value) ? value.join(",") : value;
};

/** The identity that signed `req`, or why AWS would refuse it. */
export async function checkSigV4(
  req: IncomingMessage,
  body: Buffer,
  expected: Expected,
  now = new Date(),
): Promise<{ identity: Identity } | { refused: Refusal }> {
  const refuse = (kind: RefusalKind, message: string) => ({ refused: { kind, message } });
  const authorization = header(req, "authorization");
  if (!authorization) return refuse("missing", "Request is missing Authentication Token");
  const match = AUTHORIZATION.exec(authorization);
  if (!match) {
    return refuse(
      "malformed",
      `Authorization header requires Credential, SignedHeaders and Signature: ${authorization}`,
    );
  }
  const [, keyId, day, region, service, signedList, signature] = match;
  const identity = expected.identities.find((i) => i.accessKeyId === keyId);
  if (!identity) {
    return refuse(
      "unknown-key",
      "The AWS Access Key Id you provided does not exist in our records.",
    );
  }
  if (region !== expected.region || service !== expected.service) {
    return refuse(
      "scope",
      `Credential should be scoped to region '${expected.region}' and service '${expected.service}', not '${region}' and '${service}'.`,
    );
  }
  const token = header(req, "x-amz-security-token");
  if (token !== identity.sessionToken) {
    return refuse("token", "The security token included in the request is invalid.");
  }
  const signed = signedList.split(";");
  const present = Object.keys(req.headers);
  const mustSign = ["host", "x-amz-date", ...present.filter((h) => h.startsWith("x-amz-"))];
  const unsigned = mustSign.filter((h) => !signed.includes(h));
  if (unsigned.length > 0) {
    return refuse(
      "unsigned",
      `There were headers present in the request which were not signed: ${unsigned.join(", ")}`,
    );
  }
  const missing = signed.filter((h) => header(req, h) === undefined);
  if (missing.length > 0) {
    return refuse("malformed", `Signed headers absent from the request: ${missing.join(", ")}`);
  }
  const date = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(
    header(req, "x-amz-date") ?? "",
  );
  if (!date || `${date[1]}${date[2]}${date[3]}` !== day) {
    return refuse("scope", `Date in Credential scope does not match x-amz-date`);
  }
  const signingDate = new Date(
    Date.UTC(+date[1], +date[2] - 1, +date[3], +date[4], +date[5], +date[6]),
  );
  if (Math.abs(signingDate.getTime() - now.getTime()) > 15 * 60_000) {
    return refuse(
      "skewed",
      "The difference between the request time and the current time is too large.",
    );
  }

  const url = new URL(req.url ?? "/", "http://localhost");
  const query: Record<string, string[]> = {};
  for (const [k, v] of url.searchParams) query[k] = [...(query[k] ?? []), v];
  const headers = Object.fromEntries(signed.map((h) => [h, header(req, h) as string]));
  const signer = new SignatureV4({
    credentials: {
      accessKeyId: identity.accessKeyId,
      secretAccessKey: identity.secretAccessKey,
      sessionToken: identity.sessionToken,
    },
    region: expected.region,
    service: expected.service,
    sha256: Sha256,
    // S3 signs the path as sent; other services encode it once more (SigV4's rule).
    uriEscapePath: expected.service !== "s3",
    applyChecksum: false,
  });
  const resigned = await signer.sign(
    {
      method: req.method ?? "GET",
      protocol: "http:",
      hostname: url.hostname,
      path: url.pathname,
      query,
      headers,
      body,
    },
    { signingDate, signableHeaders: new Set(signed) },
  );
  const expectedSignature = /Signature=([0-9a-f]{64})$/.exec(
    String(resigned.headers.authorization),
  )?.[1];
  if (expectedSignature !== signature) {
    return refuse(
      "signature",
      "The request signature we calculated does not match the signature you provided. Check your key and signing method.",
    );
  }
  return { identity };
}

// Stand-in for what a Compute Engine host VM's startup-script talks to, on one local HTTP server.
// It follows the real services' contracts and refuses what they refuse:
// - the metadata server (GET /computeMetadata/v1/...): only with `Metadata-Flavor: Google`, and
//   never with X-Forwarded-For (403 otherwise, in the server's words);
//   `instance/service-accounts/default/token` gives the VM's service account's access token as
//   the server prints it (404 when the VM has no service account);
// - Cloud Storage's JSON API (GET /storage/v1/b/BUCKET/o/OBJECT, the object's name one encoded
//   path segment): only with a Bearer token the metadata server handed out and that has not
//   expired (else 401), and only for a service account holding objectViewer on the bucket (else
//   403, which GCS also answers for a missing object then); with `alt=media` the object's bytes,
//   without it the object's metadata, as GCS does;
// - Secret Manager (GET /v1/projects/P/secrets/S/versions/V:access): the same tokens (401), only
//   for a service account holding secretAccessor on that secret (else 403, which also hides a
//   missing one); the payload in base64.
// Tokens of other service accounts (from other VMs' metadata servers) are OTHER_TOKEN's.
//
// As a program, inside a test's network namespace:
//   node fake-gce-host.js '{"serviceAccount": ..., "buckets": {...}, "secrets": {...}}'
// prints its port, then one line per request and its answer.
import { randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import type { IncomingMessage } from "node:http";
import { FakeHttpServer, type Reply, runAsProgram, text } from "./fake-http";

/** The host VM's dedicated service account. */
export const HOST_SA = "web-host-1a2b3c4d@demo-project.iam.gserviceaccount.com";
/** Another service account of the project, granted nothing here unless a test says so. */
export const OTHER_SA = "someone-else@demo-project.iam.gserviceaccount.com";
/** A live token of OTHER_SA, as another VM's metadata server would hand it out. */
export const OTHER_TOKEN = `ya29.c.other-${"b0Aa".repeat(40)}`;

const PROJECT_NUMBER = "123456789012";

export interface FakeBucket {
  /** Object name → the file it serves. */
  objects: Record<string, string>;
  /** The service accounts with roles/storage.objectViewer on the bucket. */
  viewers: string[];
  /** The grant reaches the service only this many ms after the bucket's first request (IAM's delay). */
  grantDelayMs?: number;
}

export interface FakeSecret {
  /** Version number → value (`latest` reads the highest). */
  versions: Record<string, string>;
  /** The service accounts with roles/secretmanager.secretAccessor on the secret. */
  accessors: string[];
}

export interface FakeGceHostOptions {
  /** The VM's service account; none: the metadata server has no token to give. */
  serviceAccount?: string;
  buckets: Record<string, FakeBucket>;
  /** Secrets by id, in the project `demo-project` (number 123456789012). */
  secrets?: Record<string, FakeSecret>;
  /** How long the metadata server's tokens live. Default: 3599 s. */
  tokenSeconds?: number;
}

/** An error as Google's JSON APIs print it. */
function googleError(status: number, code: string, message: string, reason?: string): Reply {
  const error = reason
    ? { code: status, message, errors: [{ message, domain: "global", reason }] }
    : { code: status, message, status: code };
  return {
    status,
    body: JSON.stringify({ error }, null, 2),
    type: "application/json; charset=UTF-8",
    code,
  };
}

const ANONYMOUS = (what: string) =>
  `Anonymous caller does not have ${what} access to the Google Cloud Storage object. Permission '${what}' denied on resource (or it may not exist).`;

export class FakeGceHost extends FakeHttpServer {
  /** Live tokens: their service account and when they expire (ms since the epoch). */
  private readonly tokens = new Map<string, { account: string; expires: number }>([
    [OTHER_TOKEN, { account: OTHER_SA, expires: Number.POSITIVE_INFINITY }],
  ]);
  /** When each bucket was first asked for something. */
  private readonly firstAsked = new Map<string, number>();

  constructor(
    private readonly options: FakeGceHostOptions,
    onLog?: (line: string) => void,
  ) {
    super(onLog);
  }

  protected async handle(req: IncomingMessage, _body: Buffer): Promise<Reply> {
    const url = new URL(req.url ?? "/", "http://localhost");
    if (url.pathname.startsWith("/computeMetadata/")) return this.metadata(req, url.pathname);
    if (url.pathname.startsWith("/storage/v1/")) return this.storage(req, url);
    if (url.pathname.startsWith("/v1/projects/")) return this.secretManager(req, url.pathname);
    return text(404, "Not Found");
  }

  private metadata(req: IncomingMessage, path: string): Reply {
    if (req.headers["x-forwarded-for"] !== undefined) {
      return { ...text(403, "Forbidden: requests with X-Forwarded-For are refused"), code: "XFF" };
    }
    if (req.headers["metadata-flavor"] !== "Google") {
      const body = `Your client does not have permission to get URL ${path} from this server. Missing Metadata-Flavor:Google header.`;
      return { ...text(403, body), code: "NoFlavor" };
    }
    if (req.method !== "GET") return text(405);
    const account = this.options.serviceAccount;
    if (path === "/computeMetadata/v1/instance/service-accounts/default/token" && account) {
      const seconds = this.options.tokenSeconds ?? 3599;
      const token = `ya29.c.${randomBytes(96).toString("base64url")}`;
      this.tokens.set(token, { account, expires: Date.now() + seconds * 1000 });
      const body = JSON.stringify({
        access_token: token,
        expires_in: seconds,
        token_type: "Bearer",
      });
      return { status: 200, body, type: "application/json" };
    }
    if (path === "/computeMetadata/v1/instance/service-accounts/default/email" && account) {
      return text(200, account);
    }
    return text(404, "Not Found");
  }

  /** The service account a request's Bearer token is live for, or the 401 to answer. */
  private caller(req: IncomingMessage): string | { refused: "anonymous" | "invalid" } {
    const authorization = req.headers.authorization;
    if (authorization === undefined) return { refused: "anonymous" };
    const token = /^Bearer (\S+)$/i.exec(authorization)?.[1] ?? "";
    const live = this.tokens.get(token);
    if (!live || live.expires <= Date.now()) return { refused: "invalid" };
    return live.account;
  }

  private async storage(req: IncomingMessage, url: URL): Promise<Reply> {
    // The raw path: an object's name is one segment, its slashes encoded.
    const raw = (req.url ?? "").split("?")[0];
    const match = /^\/storage\/v1\/b\/([a-z0-9._-]+)\/o\/([^/]+)$/.exec(raw);
    if (req.method !== "GET" || !match)
      return googleError(404, "notFound", "Not Found", "notFound");
    const caller = this.caller(req);
    if (typeof caller !== "string") {
      return caller.refused === "anonymous"
        ? googleError(401, "required", ANONYMOUS("storage.objects.get"), "required")
        : googleError(401, "authError", "Invalid Credentials", "authError");
    }
    const [, bucketName, encoded] = match;
    const object = decodeURIComponent(encoded);
    const bucket = this.options.buckets[bucketName];
    if (!this.firstAsked.has(bucketName)) this.firstAsked.set(bucketName, Date.now());
    const granted =
      bucket?.viewers.includes(caller) &&
      Date.now() - (this.firstAsked.get(bucketName) ?? 0) >= (bucket.grantDelayMs ?? 0);
    if (!granted) {
      const message = `${caller} does not have storage.objects.get access to the Google Cloud Storage object. Permission 'storage.objects.get' denied on resource (or it may not exist).`;
      return googleError(403, "forbidden", message, "forbidden");
    }
    const file = bucket.objects[object];
    if (file === undefined) {
      return googleError(404, "notFound", `No such object: ${bucketName}/${object}`, "notFound");
    }
    const content = await readFile(file);
    if (url.searchParams.get("alt") === "media") {
      return { status: 200, body: content, type: "application/octet-stream" };
    }
    const resource = {
      kind: "storage#object",
      id: `${bucketName}/${object}/1`,
      name: object,
      bucket: bucketName,
      size: String(content.length),
      mediaLink: `${url.origin}/download/storage/v1/b/${bucketName}/o/${encoded}?alt=media`,
    };
    return { status: 200, body: JSON.stringify(resource, null, 2), type: "application/json" };
  }

  private secretManager(req: IncomingMessage, path: string): Reply {
    const match = /^\/v1\/projects\/([^/]+)\/secrets\/([^/]+)\/versions\/([^/:]+):access$/.exec(
      path,
    );
    if (req.method !== "GET" || !match) {
      return googleError(404, "NOT_FOUND", "Method not found.");
    }
    const caller = this.caller(req);
    if (typeof caller !== "string") {
      return googleError(
        401,
        "UNAUTHENTICATED",
        caller.refused === "anonymous"
          ? "Request is missing required authentication credential. Expected OAuth 2 access token, login cookie or other valid authentication credential."
          : "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.",
      );
    }
    const [, project, id, version] = match;
    const resource = `projects/${project}/secrets/${id}/versions/${version}`;
    const secret =
      project === "demo-project" || project === PROJECT_NUMBER
        ? this.options.secrets?.[id]
        : undefined;
    if (!secret?.accessors.includes(caller)) {
      return googleError(
        403,
        "PERMISSION_DENIED",
        `Permission 'secretmanager.versions.access' denied for resource '${resource}' (or it may not exist).`,
      );
    }
    const numbers = Object.keys(secret.versions).map(Number);
    const value = secret.versions[version === "latest" ? String(Math.max(...numbers)) : version];
    if (value === undefined) {
      return googleError(404, "NOT_FOUND", `Secret Version [${resource}] not found.`);
    }
    const answer = {
      name: `projects/${PROJECT_NUMBER}/secrets/${id}/versions/${version}`,
      payload: { data: Buffer.from(value).toString("base64") },
    };
    return { status: 200, body: JSON.stringify(answer, null, 2), type: "application/json" };
  }
}

if (require.main === module) {
  runAsProgram((options: FakeGceHostOptions, onLog) => new FakeGceHost(options, onLog));
}

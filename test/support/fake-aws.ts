// A local HTTP server playing the EBS direct APIs and EC2's DescribeSnapshots/DeleteSnapshot as
// AWS documents them, for the AWS SDK pointed at it (AWS_ENDPOINT_URL_EBS / _EC2).
//   EBS direct (REST-JSON): POST /snapshots (StartSnapshot, 201), PUT /snapshots/ID/blocks/INDEX
//   (PutSnapshotBlock: x-amz-Data-Length, x-amz-Checksum, x-amz-Checksum-Algorithm; 201),
//   POST /snapshots/completion/ID (CompleteSnapshot: x-amz-ChangedBlocksCount, x-amz-Checksum,
//   x-amz-Checksum-Algorithm, x-amz-Checksum-Aggregation-Method; 202). Errors: the error's name in
//   x-amzn-ErrorType and a JSON body {message, Reason}.
//   EC2 (query protocol): POST / with a form body (Action=..., SnapshotId.1=...), XML answers,
//   errors as <Response><Errors><Error><Code>.
// It checks what EBS checks: block size, index range, each block's sha256, the changed-block
// count and the LINEAR aggregate; a snapshot completes only when all of them hold. Every request
// must be signed (SigV4, sigv4-check.ts) with env()'s key for its service (`ebs` or `ec2`).
import { createHash, randomBytes } from "node:crypto";
import { open } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { checkSigV4, type Identity } from "./sigv4-check";

const BLOCK = 512 * 1024;
export const REGION = "eu-west-1";
/** The long-term key env() hands the AWS SDK. */
export const USER: Identity = {
  role: "pulumi-mirage-test",
  accessKeyId: "AKIDPULUMIMIRAGETEST",
  secretAccessKey: "test-secret",
};
const GIB = 1024 ** 3;

export interface FakeSnapshot {
  id: string;
  volumeSize: number;
  state: "pending" | "completed" | "error";
  stateMessage?: string;
  tags: { Key: string; Value: string }[];
  kmsKeyArn?: string;
  blocks: Map<number, Buffer>;
  deleted: boolean;
}

export interface Request {
  method: string;
  path: string;
  action?: string;
  bytes: number;
  authorization: string;
}

export class FakeAws {
  readonly snapshots = new Map<string, FakeSnapshot>();
  readonly requests: Request[] = [];
  /** The next PutSnapshotBlock calls answered with RequestThrottledException. */
  throttleNextPuts = 0;
  /** Block indexes whose PutSnapshotBlock connection is dropped, every time. */
  dropPutsOf = new Set<number>();
  /** Block indexes whose data arrives with a flipped byte (corrupted on the way), every time. */
  corruptPutsOf = new Set<number>();
  /** Each instance's console: every GetConsoleOutput appends the next piece, then answers all. */
  consoles = new Map<string, { shown: string; pieces: string[] }>();
  /** Bytes of request bodies received. */
  bytesReceived = 0;
  private server: Server;

  constructor() {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (chunk: Buffer) => chunks.push(chunk));
      req.on("end", () => {
        const body = Buffer.concat(chunks);
        this.bytesReceived += body.length;
        this.authorized(req, res, body)
          .then((yes) => {
            if (yes) this.handle(req, res, body);
          })
          .catch((error) => {
            res.writeHead(500, { "content-type": "text/plain" });
            res.end(String(error));
          });
      });
    });
  }

  async start(): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(0, "127.0.0.1", resolve));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  /** The environment that points the AWS SDK here, with static test credentials. */
  env(endpoint: string): Record<string, string> {
    return {
      AWS_ENDPOINT_URL_EBS: endpoint,
      AWS_ENDPOINT_URL_EC2: endpoint,
      AWS_ACCESS_KEY_ID: USER.accessKeyId,
      AWS_SECRET_ACCESS_KEY: USER.secretAccessKey,
      AWS_REGION: REGION,
      AWS_EC2_METADATA_DISABLED: "true",
    };
  }

  /** Writes the snapshot's blocks into a sparse file of the volume's size: what a volume made from it reads. */
  async reassemble(id: string, path: string): Promise<void> {
    const snapshot = this.snapshots.get(id);
    if (!snapshot) throw new Error(`no snapshot ${id}`);
    const file = await open(path, "w");
    try {
      await file.truncate(snapshot.volumeSize * GIB);
      for (const [index, data] of snapshot.blocks) await file.write(data, 0, BLOCK, index * BLOCK);
    } finally {
      await file.close();
    }
  }

  /** Whether `req` is signed as EC2 (the query API, POST /) or EBS wants; else refused here. */
  private async authorized(req: IncomingMessage, res: ServerResponse, body: Buffer) {
    const ec2 = req.method === "POST" && req.url === "/";
    const checked = await checkSigV4(req, body, {
      service: ec2 ? "ec2" : "ebs",
      region: REGION,
      identities: [USER],
    });
    if (!("refused" in checked)) return true;
    const { kind, message } = checked.refused;
    if (ec2) {
      ec2Error(res, kind === "signature" ? "SignatureDoesNotMatch" : "AuthFailure", message, 401);
    } else {
      const type =
        kind === "unknown-key" || kind === "token"
          ? "UnrecognizedClientException"
          : "InvalidSignatureException";
      ebsError(res, 403, type, message);
    }
    return false;
  }

  private handle(req: IncomingMessage, res: ServerResponse, body: Buffer) {
    const url = new URL(req.url ?? "/", "http://localhost");
    const request: Request = {
      method: req.method ?? "",
      path: url.pathname,
      bytes: body.length,
      authorization: String(req.headers.authorization ?? ""),
    };
    this.requests.push(request);
    if (req.method === "POST" && url.pathname === "/") {
      const form = new URLSearchParams(body.toString("utf8"));
      request.action = form.get("Action") ?? "";
      return this.ec2(res, form);
    }
    let match: RegExpExecArray | null;
    if (req.method === "POST" && url.pathname === "/snapshots") {
      request.action = "StartSnapshot";
      return this.start_(res, JSON.parse(body.toString("utf8")));
    }
    match = /^\/snapshots\/([^/]+)\/blocks\/(\d+)$/.exec(url.pathname);
    if (req.method === "PUT" && match) {
      request.action = "PutSnapshotBlock";
      return this.put(req, res, match[1], Number(match[2]), body);
    }
    match = /^\/snapshots\/completion\/([^/]+)$/.exec(url.pathname);
    if (req.method === "POST" && match) {
      request.action = "CompleteSnapshot";
      return this.complete(req, res, match[1]);
    }
    ebsError(res, 404, "ResourceNotFoundException", `no route ${req.method} ${url.pathname}`);
  }

  private start_(res: ServerResponse, input: Record<string, unknown>) {
    const size = input.VolumeSize;
    if (!Number.isInteger(size) || (size as number) < 1) {
      return ebsError(res, 400, "ValidationException", "VolumeSize", "INVALID_VOLUME_SIZE");
    }
    const id = `snap-${randomBytes(8).toString("hex")}`;
    const snapshot: FakeSnapshot = {
      id,
      volumeSize: size as number,
      state: "pending",
      tags: (input.Tags as FakeSnapshot["tags"]) ?? [],
      kmsKeyArn: input.KmsKeyArn as string | undefined,
      blocks: new Map(),
      deleted: false,
    };
    this.snapshots.set(id, snapshot);
    json(res, 201, {
      SnapshotId: id,
      OwnerId: "123456789012",
      Status: "pending",
      StartTime: Date.now() / 1000,
      VolumeSize: size,
      BlockSize: BLOCK,
      Tags: snapshot.tags,
      Description: input.Description,
      ...(snapshot.kmsKeyArn ? { KmsKeyArn: snapshot.kmsKeyArn, SseType: "sse-kms" } : {}),
    });
  }

  private put(req: IncomingMessage, res: ServerResponse, id: string, index: number, body: Buffer) {
    if (this.dropPutsOf.has(index)) {
      req.socket.destroy();
      return;
    }
    if (this.throttleNextPuts > 0) {
      this.throttleNextPuts--;
      return ebsError(res, 400, "RequestThrottledException", "Rate exceeded", "ACCOUNT_THROTTLED");
    }
    if (this.corruptPutsOf.has(index)) body[body.length - 1] ^= 1;
    const snapshot = this.snapshots.get(id);
    if (!snapshot || snapshot.deleted) {
      return ebsError(res, 404, "ResourceNotFoundException", id, "SNAPSHOT_NOT_FOUND");
    }
    if (snapshot.state !== "pending") {
      return ebsError(
        res,
        400,
        "ValidationException",
        "snapshot is not pending",
        "INVALID_SNAPSHOT_ID",
      );
    }
    if (index >= (snapshot.volumeSize * GIB) / BLOCK) {
      return ebsError(
        res,
        400,
        "ValidationException",
        `BlockIndex ${index} out of range`,
        "INVALID_BLOCK",
      );
    }
    const length = Number(req.headers["x-amz-data-length"]);
    if (length !== BLOCK || body.length !== BLOCK) {
      return ebsError(
        res,
        400,
        "ValidationException",
        `DataLength ${length}, body ${body.length}`,
        "INVALID_BLOCK",
      );
    }
    const checksum = createHash("sha256").update(body).digest("base64");
    if (
      req.headers["x-amz-checksum-algorithm"] !== "SHA256" ||
      req.headers["x-amz-checksum"] !== checksum
    ) {
      return ebsError(
        res,
        400,
        "ValidationException",
        "The checksum does not match the data",
        "INVALID_BLOCK",
      );
    }
    snapshot.blocks.set(index, body);
    res.writeHead(201, {
      "x-amz-Checksum": checksum,
      "x-amz-Checksum-Algorithm": "SHA256",
      "content-type": "application/json",
    });
    res.end("{}");
  }

  private complete(req: IncomingMessage, res: ServerResponse, id: string) {
    const snapshot = this.snapshots.get(id);
    if (!snapshot || snapshot.deleted) {
      return ebsError(res, 404, "ResourceNotFoundException", id, "SNAPSHOT_NOT_FOUND");
    }
    const count = Number(req.headers["x-amz-changedblockscount"]);
    const linear = createHash("sha256");
    for (const index of [...snapshot.blocks.keys()].sort((a, b) => a - b)) {
      linear.update(
        createHash("sha256")
          .update(snapshot.blocks.get(index) as Buffer)
          .digest(),
      );
    }
    const fail = (message: string) => {
      snapshot.state = "error";
      snapshot.stateMessage = message;
      ebsError(res, 400, "ValidationException", message, "INVALID_PARAMETER_VALUE");
    };
    if (count !== snapshot.blocks.size)
      return fail(`ChangedBlocksCount ${count}, ${snapshot.blocks.size} written`);
    if (
      req.headers["x-amz-checksum-aggregation-method"] !== "LINEAR" ||
      req.headers["x-amz-checksum-algorithm"] !== "SHA256" ||
      req.headers["x-amz-checksum"] !== linear.digest("base64")
    ) {
      return fail("The aggregate checksum does not match the blocks");
    }
    // Completion is asynchronous: the first DescribeSnapshots still says pending.
    setImmediate(() => {
      snapshot.state = "completed";
    });
    json(res, 202, { Status: "pending" });
  }

  private ec2(res: ServerResponse, form: URLSearchParams) {
    const action = form.get("Action");
    if (action === "DescribeSnapshots") {
      const ids = [...form.entries()]
        .filter(([k]) => k.startsWith("SnapshotId."))
        .map(([, v]) => v);
      const found = ids.map((id) => this.snapshots.get(id));
      const missing = ids.find((_, i) => !found[i] || found[i]?.deleted);
      if (missing)
        return ec2Error(
          res,
          "InvalidSnapshot.NotFound",
          `The snapshot '${missing}' does not exist.`,
        );
      const items = found
        .map(
          (s) =>
            `<item><snapshotId>${s?.id}</snapshotId><volumeId>vol-ffffffff</volumeId><status>${s?.state}</status>${s?.stateMessage ? `<statusMessage>${s.stateMessage}</statusMessage>` : ""}<startTime>2026-01-01T00:00:00.000Z</startTime><progress>${s?.state === "completed" ? "100%" : "0%"}</progress><ownerId>123456789012</ownerId><volumeSize>${s?.volumeSize}</volumeSize><encrypted>${s?.kmsKeyArn ? "true" : "false"}</encrypted></item>`,
        )
        .join("");
      return xml(
        res,
        200,
        `<DescribeSnapshotsResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>r-1</requestId><snapshotSet>${items}</snapshotSet></DescribeSnapshotsResponse>`,
      );
    }
    if (action === "GetConsoleOutput") {
      const id = form.get("InstanceId") ?? "";
      const console = this.consoles.get(id);
      if (!console) {
        return ec2Error(
          res,
          "InvalidInstanceID.NotFound",
          `The instance ID '${id}' does not exist`,
        );
      }
      console.shown += console.pieces.shift() ?? "";
      const output = Buffer.from(console.shown).toString("base64");
      return xml(
        res,
        200,
        `<GetConsoleOutputResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>r-3</requestId><instanceId>${id}</instanceId><timestamp>2026-01-01T00:00:00.000Z</timestamp><output>${output}</output></GetConsoleOutputResponse>`,
      );
    }
    if (action === "DeleteSnapshot") {
      const snapshot = this.snapshots.get(form.get("SnapshotId") ?? "");
      if (!snapshot || snapshot.deleted) {
        return ec2Error(
          res,
          "InvalidSnapshot.NotFound",
          `The snapshot '${form.get("SnapshotId")}' does not exist.`,
        );
      }
      snapshot.deleted = true;
      return xml(
        res,
        200,
        `<DeleteSnapshotResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>r-2</requestId><return>true</return></DeleteSnapshotResponse>`,
      );
    }
    ec2Error(res, "InvalidAction", `The action ${action} is not valid for this web service.`);
  }
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify(body));
}

function ebsError(
  res: ServerResponse,
  status: number,
  type: string,
  message: string,
  reason?: string,
): void {
  res.writeHead(status, { "content-type": "application/json", "x-amzn-ErrorType": type });
  res.end(JSON.stringify({ message, ...(reason ? { Reason: reason } : {}) }));
}

function xml(res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, { "content-type": "text/xml;charset=UTF-8" });
  res.end(`<?xml version="1.0" encoding="UTF-8"?>\n${body}`);
}

function ec2Error(res: ServerResponse, code: string, message: string, status = 400): void {
  xml(
    res,
    status,
    `<Response><Errors><Error><Code>${code}</Code><Message>${message}</Message></Error></Errors><RequestID>r-0</RequestID></Response>`,
  );
}

// Part of the stand-in for QEMU under a paravirtual kvm-pvm KVM (qemu-pvm.js): QMP. The caller's
// -qmp socket is served here and each connection is relayed to a private QMP monitor of the real
// QEMU, so that everything QEMU answers reaches the caller as QEMU wrote it, except where the
// stand-in plays what kvm-pvm does to the run state:
//   - once the guest is held (stopped by "KVM", or never run), query-status, stop, cont,
//     system_reset and quit are answered as QEMU 7.2 answers them in that state;
//   - query-status never shows the -singlestep the stand-in runs the real QEMU with;
//   - a guest reset shows no RESET event: on kvm-pvm the guest does not come back.
"use strict";
const net = require("node:net");

/** QEMU's JSON style: `{"key": value, ...}` (qobject_to_json). */
function qmpJson(value) {
  if (Array.isArray(value)) return `[${value.map(qmpJson).join(", ")}]`;
  if (value !== null && typeof value === "object")
    return `{${Object.entries(value)
      .map(([key, item]) => `${JSON.stringify(key)}: ${qmpJson(item)}`)
      .join(", ")}}`;
  return JSON.stringify(value);
}

function event(name, data) {
  const now = Date.now() * 1000 + (Math.floor(performance.now() * 1000) % 1000);
  const timestamp = { seconds: Math.floor(now / 1e6), microseconds: now % 1e6 };
  return data === undefined ? { timestamp, event: name } : { timestamp, event: name, data };
}

/** Splits a byte stream into top-level JSON texts (QMP has no framing but the JSON itself). */
class JsonSplitter {
  constructor() {
    this.text = "";
    this.depth = 0;
    this.inString = false;
    this.escaped = false;
    this.scanned = 0;
  }

  /** Feeds `chunk`; returns the complete texts it finished. */
  push(chunk) {
    this.text += chunk;
    const done = [];
    for (let i = this.scanned; i < this.text.length; i++) {
      const c = this.text[i];
      if (this.inString) {
        if (this.escaped) this.escaped = false;
        else if (c === "\\") this.escaped = true;
        else if (c === '"') this.inString = false;
      } else if (c === '"') this.inString = true;
      else if (c === "{" || c === "[") this.depth++;
      else if (c === "}" || c === "]") {
        this.depth--;
        if (this.depth <= 0) {
          done.push(this.text.slice(0, i + 1));
          this.text = this.text.slice(i + 1);
          this.depth = 0;
          i = -1;
        }
      }
    }
    this.scanned = this.text.length;
    return done;
  }
}

/** A QMP client of the real QEMU's private monitor: commands answered in order. */
class QmpClient {
  constructor(socket) {
    this.socket = socket;
    this.pending = [];
    this.splitter = new JsonSplitter();
    socket.setEncoding("utf8");
    socket.on("data", (chunk) => {
      for (const text of this.splitter.push(chunk)) {
        const message = JSON.parse(text);
        if ("return" in message || "error" in message) this.pending.shift()?.(message);
      }
    });
  }

  static async connect(path) {
    const socket = await connectWhenListening(path);
    const client = new QmpClient(socket);
    await client.execute("qmp_capabilities");
    return client;
  }

  /** Runs `command`; resolves with the whole answer ({return} or {error}). */
  execute(command, args) {
    return new Promise((resolve) => {
      this.pending.push(resolve);
      const request =
        args === undefined ? { execute: command } : { execute: command, arguments: args };
      this.socket.write(`${JSON.stringify(request)}\n`);
    });
  }

  async hmp(commandLine) {
    const answer = await this.execute("human-monitor-command", { "command-line": commandLine });
    if (answer.error) throw new Error(`${commandLine}: ${answer.error.desc}`);
    return answer.return;
  }
}

/** Connects to the unix socket `path` once the real QEMU listens there (it starts meanwhile). */
async function connectWhenListening(path) {
  for (let attempt = 0; ; attempt++) {
    try {
      return await new Promise((resolve, reject) => {
        const socket = net.connect(path, () => resolve(socket));
        socket.once("error", reject);
      });
    } catch (error) {
      if (attempt >= 400) throw error;
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  }
}

/**
 * A server for the caller's QMP socket, relaying to the real QEMU's `realPath`. `state`
 * is the stand-in's view of the run (see qemu-pvm.js): `held` (null, "internal-error", "running"
 * or "paused"), `noReboot`, and the hooks release(), resetRequested() and shutDown().
 */
function serveQmp(realPath, state) {
  const sessions = new Set();

  const server = net.createServer((caller) => {
    // The caller may connect before the real QEMU listens: it gets QEMU's greeting once it does.
    const connected = connectWhenListening(realPath);
    const session = { caller, negotiated: false, queue: [], turn: connected };
    sessions.add(session);
    const fromCaller = new JsonSplitter();
    const fromReal = new JsonSplitter();
    let real;
    caller.setEncoding("utf8");

    /** Answers go out in the order the commands came, whoever answers them. */
    const flush = () => {
      while (session.queue.length > 0 && session.queue[0].answer !== undefined)
        send(session, session.queue.shift().answer);
    };
    const answerLocally = (request, body) => {
      session.queue.push({ answer: qmpJson("id" in request ? { ...body, id: request.id } : body) });
      flush();
    };

    /** One command from the caller: answered here while the guest is held, else relayed. */
    async function relay(text) {
      // A relayed command that pauses the vCPU must not reach QEMU while the vCPU waits for us.
      await state.idle();
      let request;
      try {
        request = JSON.parse(text);
      } catch {
        request = undefined; // QEMU answers what it cannot parse
      }
      const command = request?.execute;
      if (session.negotiated && state.held && command && playHeld(request, command)) return;
      session.queue.push({ command });
      real.write(text);
      if (command === "quit" || command === "system_reset") state.release();
    }

    caller.on("data", (chunk) => {
      for (const text of fromCaller.push(chunk))
        session.turn = session.turn.then(() => relay(text));
    });

    /** Plays kvm-pvm's held guest for the run-state commands; false: relay `request` as is. */
    function playHeld(request, command) {
      const status = state.held;
      switch (command) {
        case "query-status":
          answerLocally(request, {
            return: { status, singlestep: false, running: status === "running" },
          });
          return true;
        case "stop":
          // Stopping a stopped guest changes nothing (QEMU's vm_stop).
          if (status === "running") {
            state.held = "paused";
            broadcast(event("STOP"));
          }
          answerLocally(request, { return: {} });
          return true;
        case "cont":
          if (status === "internal-error") {
            answerLocally(request, {
              error: { class: "GenericError", desc: "Resetting the Virtual Machine is required" },
            });
            return true;
          }
          if (status === "paused") {
            state.held = "running";
            broadcast(event("RESUME"));
          }
          answerLocally(request, { return: {} });
          return true;
        case "system_reset":
          if (!state.noReboot) {
            state.resetRequested();
            return false;
          }
          // -no-reboot turns a reset into a shutdown: QEMU says so, answers, and exits.
          broadcast(event("SHUTDOWN", { guest: false, reason: "host-qmp-system-reset" }));
          answerLocally(request, { return: {} });
          state.shutDown();
          return true;
        default:
          return false;
      }
    }

    connected.then(
      (socket) => {
        real = socket;
        real.setEncoding("utf8");
        real.on("data", fromRealQemu);
        real.on("close", close);
        real.on("error", close);
      },
      () => close(),
    );

    function fromRealQemu(chunk) {
      for (const raw of fromReal.push(chunk)) {
        const text = raw.trim();
        const message = JSON.parse(text);
        if (!("return" in message || "error" in message)) {
          // The greeting and events.
          if (message.event === "RESET" && message.data?.guest) continue;
          send(session, text);
          continue;
        }
        const entry = session.queue.find((item) => item.answer === undefined);
        if (entry.command === "qmp_capabilities" && "return" in message) session.negotiated = true;
        if (entry.command === "query-status" && message.return) {
          message.return.singlestep = false;
          entry.answer = qmpJson(message);
        } else entry.answer = text;
        flush();
      }
    }

    function close() {
      sessions.delete(session);
      caller.destroy();
      real?.destroy();
    }
    caller.on("close", close);
    caller.on("error", close);
  });

  /** Writes one message (JSON text) to the caller, ended as QEMU ends it. */
  function send(session, text) {
    session.caller.write(`${text}\r\n`);
  }

  /** An event to every caller that finished negotiating, as QEMU sends events. */
  function broadcast(message) {
    for (const session of sessions) if (session.negotiated) send(session, qmpJson(message));
  }

  return { server, broadcast };
}

module.exports = { QmpClient, serveQmp, event };

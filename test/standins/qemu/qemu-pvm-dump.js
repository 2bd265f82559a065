// Part of the stand-in for QEMU under a paravirtual kvm-pvm KVM (qemu-pvm.js): the lines QEMU 7.2
// writes on stderr when KVM stops the guest with an emulation failure (accel/kvm/kvm-all.c,
// kvm_handle_internal_error, then cpu_dump_state with CPU_DUMP_CODE), made from the state the
// real QEMU holds under TCG: HMP `info registers` (the same dump function, plus FPU lines) and the
// code bytes around the instruction.
"use strict";

/** kvm-pvm's "extra data[3]", the same in every failure measured on it. */
const PVM_EXIT_REASON = 0x1000n;
/** KVM's emulator fetches at most this many instruction bytes, and never across a page. */
const MAX_INSN_BYTES = 15;
/** cpu_dump_state's Code= line: 50 bytes, the instruction's at the 21st (or at EIP if lower). */
const CODE_BYTES = 50;
const CODE_BACKWARD = 20;

const DESC_P = 0x8000;
const DESC_S = 0x1000;
const DESC_A = 0x100;
const DESC_TSS_BUSY = 0x200;
const DESC_LIMIT_HIGH = 0xf0000;

/**
 * Where the Code= bytes start and how many precede the instruction, for the dump `registers`:
 * the instruction is at CS base + EIP (linear).
 */
function codeWindow(registers) {
  const eip = BigInt(`0x${/\b[ER]IP=([0-9a-f]+)/.exec(registers)[1]}`);
  const csBase = BigInt(`0x${/^CS =[0-9a-f]{4} ([0-9a-f]+)/m.exec(registers)[1]}`);
  const before = eip < BigInt(CODE_BACKWARD) ? Number(eip) : CODE_BACKWARD;
  return { start: csBase + eip - BigInt(before), before, linear: csBase + eip };
}

/**
 * One segment line as KVM reports the segment: its flags carry no limit bits, a present code or
 * data segment has been accessed (the CPU marks it when it loads it), a loaded TSS is busy, and
 * an LDT loaded with a null selector is unusable (all zero). TCG keeps the descriptor as it was.
 */
function asKvmSegment(line, protectedMode) {
  const match = /^(\w+ *)=([0-9a-f]{4}) ([0-9a-f]+) ([0-9a-f]{8}) ([0-9a-f]{8})(.*)$/.exec(line);
  if (!match) return line;
  const [, name, selector, base, limit, flagsHex, rest] = match;
  let flags = Number.parseInt(flagsHex, 16) & ~DESC_LIMIT_HIGH;
  let text = rest;
  if (protectedMode && flags & DESC_P) {
    if (flags & DESC_S && !(flags & DESC_A)) {
      flags |= DESC_A;
      text = text.replace(/-\]$/, "A]");
    } else if (name.trim() === "TR" && !(flags & DESC_TSS_BUSY)) {
      flags |= DESC_TSS_BUSY;
      text = text.replace("-avl", "-busy");
    }
  }
  if (name.trim() === "LDT" && selector === "0000" && limit === "00000000") {
    flags = 0;
    text = "";
  }
  const hex = flags.toString(16).padStart(8, "0");
  return `${name}=${selector} ${base} ${limit} ${hex}${text}`;
}

/** `info registers` output → the register lines of cpu_dump_state, as KVM's state shows them. */
function registerLines(infoRegisters) {
  const lines = infoRegisters.replaceAll("\r", "").split("\n");
  const first = lines.findIndex((line) => /^[ER]AX=/.test(line));
  const last = lines.findIndex((line) => line.startsWith("EFER="));
  const registers = lines.slice(first, last + 1);
  const protectedMode = (Number.parseInt(/CR0=([0-9a-f]+)/.exec(infoRegisters)[1], 16) & 1) === 1;
  return registers.map((line) => asKvmSegment(line, protectedMode));
}

const hex64 = (value) => `0x${value.toString(16).padStart(16, "0")}`;

/** Eight bytes, little-endian, as one 64-bit value. */
function littleEndian(bytes) {
  return bytes.reduceRight((value, byte) => (value << 8n) | BigInt(byte), 0n);
}

/**
 * The "extra data" KVM hands QEMU for an emulation failure: flags (1: instruction bytes follow),
 * the instruction's length and bytes (up to 15, not across a page; 0x90 fills the rest), then the
 * exit reason and its four zero details.
 */
function extraData(linear, code, before) {
  const size = Math.min(MAX_INSN_BYTES, 0x1000 - Number(linear & 0xfffn));
  const insn = [size, ...code.slice(before, before + size)];
  while (insn.length < 16) insn.push(0x90);
  return [
    1n,
    littleEndian(insn.slice(0, 8)),
    littleEndian(insn.slice(8)),
    PVM_EXIT_REASON,
    0n,
    0n,
    0n,
    0n,
  ];
}

/**
 * The stderr block of a KVM emulation failure. `infoRegisters` is HMP `info registers` at the
 * instruction; `readCode(start, length)` gives the guest's bytes there (null for unreadable ones).
 */
async function emulationFailure(infoRegisters, readCode) {
  const registers = registerLines(infoRegisters);
  const { start, before, linear } = codeWindow(infoRegisters);
  const code = await readCode(start, CODE_BYTES);
  const shown = code.map((byte, i) => {
    const text = byte === null ? "??" : byte.toString(16).padStart(2, "0");
    return i === before ? `<${text}>` : text;
  });
  const data = extraData(
    linear,
    code.map((byte) => byte ?? 0),
    before,
  );
  return [
    "KVM internal error. Suberror: 1",
    ...data.map((value, i) => `extra data[${i}]: ${hex64(value)}`),
    "emulation failure",
    ...registers,
    `Code=${shown.join(" ")}`,
    "",
  ].join("\n");
}

module.exports = { emulationFailure };

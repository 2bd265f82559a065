/*
 * Part of the stand-in for QEMU under a paravirtual kvm-pvm KVM (test/standins/qemu-pvm.js):
 * a TCG plugin for the real QEMU 7.2, which runs the guest under TCG with -singlestep (one guest
 * instruction per translation block, so the CPU state QEMU holds is exact before each one).
 *
 * It holds the vCPU (blocks it inside an execution callback, before the instruction runs) where
 * the stand-in must decide, and tells the stand-in over the socket given as fd=N:
 *   "iret ADDR"   an iret (any prefixes) at linear ADDR is next, outside the BIOS once the boot
 *                 sector ran (every iret when the firmware is the guest's own, boot=bios);
 *   "cr0"         firmware code in the ROM (boot=bios) runs its first instruction after writing
 *                 CR0 (mov to CR0, lmsw): protected mode may have begun there;
 *   "reset"       the CPU is back at the reset vector after power-on: the guest reset;
 *   "start"       the first instruction of the run, and the first after a reset the stand-in
 *                 let through (hold=start only: a guest that hangs).
 * The stand-in answers one byte, 'g', to let the instruction run; until then the vCPU waits
 * (for good, when the stand-in plays a stopped guest). If the stand-in goes away, QEMU exits.
 *
 * Only the few plugin API declarations used here are written out: the QEMU plugin API, version 1.
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef uint64_t qemu_plugin_id_t;
typedef struct {
  const char *target_name;
  struct {
    int min;
    int cur;
  } version;
  bool system_emulation;
  union {
    struct {
      int smp_vcpus;
      int max_vcpus;
    } system;
  };
} qemu_info_t;
struct qemu_plugin_tb;
struct qemu_plugin_insn;
enum qemu_plugin_cb_flags { QEMU_PLUGIN_CB_NO_REGS };
typedef void (*udata_cb)(unsigned int vcpu_index, void *userdata);
void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id,
                                           void (*cb)(qemu_plugin_id_t, struct qemu_plugin_tb *));
void qemu_plugin_register_vcpu_insn_exec_cb(struct qemu_plugin_insn *insn, udata_cb cb,
                                            enum qemu_plugin_cb_flags flags, void *userdata);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
struct qemu_plugin_insn *qemu_plugin_tb_get_insn(const struct qemu_plugin_tb *tb, size_t idx);
const void *qemu_plugin_insn_data(const struct qemu_plugin_insn *insn);
size_t qemu_plugin_insn_size(const struct qemu_plugin_insn *insn);
uint64_t qemu_plugin_insn_vaddr(const struct qemu_plugin_insn *insn);

__attribute__((visibility("default"))) int qemu_plugin_version = 1;

#define BOOT_SECTOR 0x7c00
#define RESET_VECTOR 0xfffffff0
/* Option ROMs and the BIOS itself, below 1 MiB. */
#define BIOS_START 0xc0000
#define BIOS_END 0x100000
/* The firmware ROM: its last 128 KiB below 1 MiB, and all of it below 4 GiB. */
#define ROM_LOW 0xe0000
#define ROM_HIGH 0xfffe0000ULL

static int channel = -1;
/* boot=bios: the firmware is the code under test, so every iret counts from the first one. */
static bool firmware_is_guest;
/* hold=start: hold the first instruction (a KVM that never runs the guest). */
static bool hold_start;
/* hold=iret: hold protected-mode irets; otherwise only resets. */
static bool hold_iret;
static bool boot_sector_ran;
static unsigned reset_vector_runs;
static bool started;
static bool cr0_written;

/** Tells the stand-in what is next and waits for its 'g'. */
static void ask(const char *what) {
  size_t length = strlen(what);
  if (write(channel, what, length) != (ssize_t)length) _exit(1);
  for (;;) {
    char answer;
    ssize_t got = read(channel, &answer, 1);
    if (got == 1 && answer == 'g') return;
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) _exit(1);
  }
}

static void on_first(unsigned int vcpu, void *userdata) {
  (void)vcpu;
  (void)userdata;
  if (started) return;
  started = true;
  ask("start\n");
}

static void on_boot_sector(unsigned int vcpu, void *userdata) {
  (void)vcpu;
  (void)userdata;
  boot_sector_ran = true;
}

static void on_reset_vector(unsigned int vcpu, void *userdata) {
  (void)vcpu;
  (void)userdata;
  if (reset_vector_runs++ == 0) return;
  ask("reset\n");
  started = false; /* a guest that never runs does not run after a reset either */
}

static void on_cr0_write(unsigned int vcpu, void *userdata) {
  (void)vcpu;
  (void)userdata;
  cr0_written = true;
}

static void on_rom_insn(unsigned int vcpu, void *userdata) {
  (void)vcpu;
  (void)userdata;
  if (!cr0_written) return;
  cr0_written = false;
  ask("cr0\n");
}

static void on_iret(unsigned int vcpu, void *userdata) {
  (void)vcpu;
  uint64_t address = (uint64_t)(uintptr_t)userdata;
  if (!firmware_is_guest && (!boot_sector_ran || (address >= BIOS_START && address < BIOS_END)))
    return;
  char line[64];
  snprintf(line, sizeof line, "iret %llx\n", (unsigned long long)address);
  ask(line);
}

static bool is_prefix(uint8_t byte) {
  switch (byte) {
  case 0x26: case 0x2e: case 0x36: case 0x3e: case 0x64: case 0x65:
  case 0x66: case 0x67: case 0xf0: case 0xf2: case 0xf3:
    return true;
  default:
    return byte >= 0x40 && byte <= 0x4f; /* REX: in 16/32-bit code these are one-byte insns */
  }
}

/** iret, iretd or iretq: opcode 0xcf after nothing but prefixes. */
static bool is_iret(const uint8_t *bytes, size_t size) {
  if (size == 0 || bytes[size - 1] != 0xcf) return false;
  for (size_t i = 0; i + 1 < size; i++)
    if (!is_prefix(bytes[i])) return false;
  return true;
}

/** After prefixes: 0f 22 /0 (mov to CR0) or 0f 01 /6 (lmsw). */
static bool writes_cr0(const uint8_t *bytes, size_t size) {
  size_t i = 0;
  while (i < size && is_prefix(bytes[i])) i++;
  if (i + 3 > size) return false;
  if (bytes[i] != 0x0f) return false;
  unsigned reg = (bytes[i + 2] >> 3) & 7;
  return (bytes[i + 1] == 0x22 && reg == 0) || (bytes[i + 1] == 0x01 && reg == 6);
}

static bool in_rom(uint64_t address) {
  return (address >= ROM_LOW && address < BIOS_END) || address >= ROM_HIGH;
}

static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb) {
  (void)id;
  size_t count = qemu_plugin_tb_n_insns(tb);
  for (size_t i = 0; i < count; i++) {
    struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
    uint64_t address = qemu_plugin_insn_vaddr(insn);
    if (hold_start && i == 0)
      qemu_plugin_register_vcpu_insn_exec_cb(insn, on_first, QEMU_PLUGIN_CB_NO_REGS, NULL);
    if (address == BOOT_SECTOR)
      qemu_plugin_register_vcpu_insn_exec_cb(insn, on_boot_sector, QEMU_PLUGIN_CB_NO_REGS, NULL);
    if (address == RESET_VECTOR)
      qemu_plugin_register_vcpu_insn_exec_cb(insn, on_reset_vector, QEMU_PLUGIN_CB_NO_REGS, NULL);
    if (hold_iret && firmware_is_guest && in_rom(address)) {
      qemu_plugin_register_vcpu_insn_exec_cb(insn, on_rom_insn, QEMU_PLUGIN_CB_NO_REGS, NULL);
      if (writes_cr0(qemu_plugin_insn_data(insn), qemu_plugin_insn_size(insn)))
        qemu_plugin_register_vcpu_insn_exec_cb(insn, on_cr0_write, QEMU_PLUGIN_CB_NO_REGS, NULL);
    }
    if (hold_iret && is_iret(qemu_plugin_insn_data(insn), qemu_plugin_insn_size(insn)))
      qemu_plugin_register_vcpu_insn_exec_cb(insn, on_iret, QEMU_PLUGIN_CB_NO_REGS,
                                             (void *)(uintptr_t)address);
  }
}

__attribute__((visibility("default"))) int qemu_plugin_install(qemu_plugin_id_t id,
                                                              const qemu_info_t *info, int argc,
                                                              char **argv) {
  (void)info;
  for (int i = 0; i < argc; i++) {
    if (strncmp(argv[i], "fd=", 3) == 0) channel = atoi(argv[i] + 3);
    else if (strcmp(argv[i], "boot=bios") == 0) firmware_is_guest = true;
    else if (strcmp(argv[i], "hold=start") == 0) hold_start = true;
    else if (strcmp(argv[i], "hold=iret") == 0) hold_iret = true;
  }
  if (channel < 0) {
    fprintf(stderr, "qemu-pvm-plugin: no fd=N argument\n");
    return 1;
  }
  qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
  return 0;
}

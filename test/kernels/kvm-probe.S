/*
 * The KVM probe's firmware (provider/local/kvm-probe.ts embeds the bytes this assembles to; the test
 * kvm-probe.test.ts checks that they match). QEMU runs it with `-bios`: no SeaBIOS, so it takes
 * milliseconds under a working KVM.
 *
 * PART=1, the firmware (64 KiB, linked at 0; the payload goes at offset 0x100): from the reset
 * vector, copy the payload to 0000:7C00 and jump there, in real mode, as a BIOS hands over to a
 * boot loader. (Code run from the ROM itself stalls under kvm-pvm; boot loaders run from RAM.)
 * PART=2, the payload (linked at 0x7C00): what boot loaders do next, step by step: enter 32-bit
 * protected mode with a far jump, execute an `iret` there (kvm-pvm stops syslinux's ldlinux at
 * exactly that: "KVM internal error", "emulation failure"), enter long mode with paging (Solo5's
 * hvt and multiboot kernels run there), then write 0x2A to isa-debug-exit: QEMU exits with
 * status (0x2A << 1) | 1 = 85.
 */
.if PART == 1
.code16
firmware:
  cli
  mov $0xf000, %ax
  mov %ax, %ds            /* the ROM's low alias, F000:0000 = 0xF0000 */
  xor %ax, %ax
  mov %ax, %es
  mov $0x100, %si         /* the payload sits at offset 0x100 of the ROM */
  mov $0x7c00, %di
  mov $0x100, %cx
  cld
  rep movsw               /* 512 bytes */
  ljmp $0, $0x7c00
.org 0xfff0               /* the reset vector: the CPU starts here, at F000:FFF0 */
  ljmp $0xf000, $firmware
.org 0x10000              /* QEMU takes a -bios image in 64 KiB units */
.else
.code16
payload:
  cli
  xor %ax, %ax
  mov %ax, %ds
  mov %ax, %ss
  mov $0x7c00, %sp
  lgdtl gdtdesc
  mov %cr0, %eax
  or $1, %al              /* CR0.PE */
  mov %eax, %cr0
  ljmpl $0x08, $pm32
.code32
pm32:
  mov $0x10, %ax
  mov %ax, %ds
  mov %ax, %es
  mov %ax, %ss
  mov $0x7000, %esp
  pushfl
  pushl $0x08
  pushl $after_iret
  iret
after_iret:
  /* Identity-map the first 2 MiB: PML4 at 0x1000, PDPT at 0x2000, one 2 MiB page in the PD at 0x3000. */
  mov $0x1000, %edi
  xor %eax, %eax
  mov $0xc00, %ecx
  rep stosl
  movl $0x2003, 0x1000
  movl $0x3003, 0x2000
  movl $0x83, 0x3000
  mov %cr4, %eax
  or $0x20, %eax          /* CR4.PAE */
  mov %eax, %cr4
  mov $0x1000, %eax
  mov %eax, %cr3
  mov $0xc0000080, %ecx   /* EFER */
  rdmsr
  or $0x100, %eax         /* EFER.LME */
  wrmsr
  mov %cr0, %eax
  or $0x80000000, %eax    /* CR0.PG: long mode is active from here */
  mov %eax, %cr0
  ljmp $0x18, $lm64
.code64
lm64:
  mov $0x501, %dx
  mov $0x2a, %al
  out %al, %dx
  hlt
.p2align 3
gdt:
  .quad 0
  .quad 0x00cf9a000000ffff  /* 0x08: 32-bit code */
  .quad 0x00cf92000000ffff  /* 0x10: data */
  .quad 0x00af9a000000ffff  /* 0x18: 64-bit code */
gdtdesc:
  .word gdtdesc - gdt - 1
  .long gdt
.endif

/*
 * A tiny Solo5-like unikernel of our own: the test kernels (test/support/kernels.ts) and, as the
 * DEMO variant, the demo unikernel the package ships (kernels/build-demo.sh).
 *
 * It carries what our code looks at in a real MirageOS/Solo5 binary (docs/platforms.md, "Solo5
 * binaries"): the Solo5 ABI1 and MFT1 notes, a Multiboot1 header using the a.out kludge (virtio
 * and xen) whose entry differs from the ELF entry, and the Xen PVH note (xen). Booted by a
 * multiboot loader it behaves like a Solo5 hello: it prints a banner, "Hello, World" and its
 * command line on COM1, then powers the VM off. Like Solo5, the virtio variant drops the first
 * word of the multiboot command line (bindings/virtio/platform.c) and the xen variant keeps it as
 * given (bindings/xen/platform.c).
 *
 * Variants are chosen with `as --defsym`:
 *   TARGET      1 hvt, 2 spt, 3 virtio, 4 muen, 5 genode, 6 xen (the ABI1 target number)
 *   ABI_VERSION the ABI1 version
 *   MULTIBOOT   1: carry the Multiboot1 header
 *   PVH         1: carry the Xen PVH note
 *   NET, BLOCK  1: declare a net device "service" / a block device "storage" in the manifest
 *   DEMO        1: the demo unikernel: its own banner, and instead of powering off it goes on to
 *               demo_start (kernels/demo-start.S), which serves on its virtio-net NIC
 *   EXIT        the value written to QEMU's isa-debug-exit (default 0: QEMU exits 1; Solo5
 *               virtio's 41: 83)
 */

        .set COM1, 0x3f8
.ifndef EXIT
        .set EXIT, 0
.endif

/* The multiboot header and the notes (ABI1, MFT1, Xen PVH): what our code reads in a kernel. */
        .include "notes.S"

/* ---------------------------------------------------------------- code */
        .text
        .code32
        /* Multiboot: 32-bit protected mode, %eax = MB_BOOT_MAGIC, %ebx = multiboot info. */
multiboot_entry:
        movl $stack_top, %esp
        xorl %esi, %esi                      /* command line: none */
        cmpl $MB_BOOT_MAGIC, %eax
        jne main
        testl $4, (%ebx)                     /* flags bit 2: cmdline present */
        jz main
        movl 16(%ebx), %esi
.if TARGET != 6
        /* Solo5 virtio drops the first word (the kernel's name) of the multiboot command line. */
2:      movb (%esi), %al
        testb %al, %al
        jz main
        incl %esi
        cmpb $' ', %al
        jne 2b
.endif
        jmp main

.if PVH
        /* Xen PVH: 32-bit protected mode, %ebx = hvm_start_info. The command line comes verbatim. */
pvh_entry:
        movl $stack_top, %esp
        xorl %esi, %esi
        cmpl $PVH_START_MAGIC, (%ebx)
        jne main
        movl 24(%ebx), %esi                  /* cmdline_paddr (low half) */
        jmp main
.endif

        /* %esi = the argument string (0: none). */
main:
        call serial_init
        pushl %esi
        movl $banner, %esi
        call puts
        movl $hello, %esi
        call puts
        movl $cmdline_prefix, %esi
        call puts
        popl %esi
        testl %esi, %esi
        jz 3f
        call puts
3:      movl $cmdline_suffix, %esi
        call puts
.if DEMO
        jmp demo_start
.endif
poweroff:
        movw $0x501, %dx                     /* QEMU isa-debug-exit: exits with EXIT << 1 | 1 */
        movb $EXIT, %al
        outb %al, %dx
        movw $0x604, %dx                     /* QEMU ACPI power off */
        movw $0x2000, %ax
        outw %ax, %dx
        cli
4:      hlt
        jmp 4b

        /* COM1 at 115200 baud, 8N1, FIFO on. */
serial_init:
        movw $COM1 + 1, %dx
        xorb %al, %al
        outb %al, %dx                        /* no interrupts */
        movw $COM1 + 3, %dx
        movb $0x80, %al
        outb %al, %dx                        /* DLAB on */
        movw $COM1, %dx
        movb $1, %al
        outb %al, %dx                        /* divisor 1 = 115200 */
        movw $COM1 + 1, %dx
        xorb %al, %al
        outb %al, %dx
        movw $COM1 + 3, %dx
        movb $0x03, %al
        outb %al, %dx                        /* 8N1, DLAB off */
        movw $COM1 + 2, %dx
        movb $0xc7, %al
        outb %al, %dx                        /* FIFO */
        movw $COM1 + 4, %dx
        movb $0x03, %al
        outb %al, %dx                        /* DTR, RTS */
        ret

        /* Writes the NUL-terminated string at %esi. */
puts:
        movb (%esi), %cl
        testb %cl, %cl
        jz 6f
        movw $COM1 + 5, %dx
5:      inb %dx, %al
        testb $0x20, %al                     /* transmit holding register empty */
        jz 5b
        movw $COM1, %dx
        movb %cl, %al
        outb %al, %dx
        incl %esi
        jmp puts
6:      ret

/* ---------------------------------------------------------------- strings */
        .section .rodata
banner:
.if DEMO
        .ascii "pulumi-mirage demo unikernel (Solo5-like) target="
.else
        .ascii "Solo5-like test unikernel (pulumi-mirage) target="
.endif
.if TARGET == 6
        .asciz "xen\r\n"
.else
        .asciz "virtio\r\n"
.endif
hello:
        .asciz "Hello, World\r\n"
cmdline_prefix:
        .asciz "Command line is: '"
cmdline_suffix:
        .asciz "'\r\n"

/* ---------------------------------------------------------------- stack */
        .bss
        .balign 16
        .skip 16384
stack_top:

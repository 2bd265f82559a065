/*
 * A tiny stand-in for a Solo5 unikernel, written for pulumi-mirage's tests.
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
 */

        .set COM1, 0x3f8
        .set MB_MAGIC, 0x1BADB002
        .set MB_BOOT_MAGIC, 0x2BADB002       /* in %eax when a multiboot loader jumps to us */
        /* page-align modules, want memory info, a.out kludge (bit 16): the flags Solo5 uses */
        .set MB_FLAGS, 0x00010003
        .set PVH_START_MAGIC, 0x336ec578     /* hvm_start_info.magic */

/* ---------------------------------------------------------------- multiboot header */
.if MULTIBOOT
        .section .multiboot, "a"
        .balign 4
mb_header:
        .long MB_MAGIC
        .long MB_FLAGS
        .long -(MB_MAGIC + MB_FLAGS)
        .long mb_header                      /* header_addr */
        .long _image_start                   /* load_addr */
        .long _load_end                      /* load_end_addr */
        .long _bss_end                       /* bss_end_addr */
        .long multiboot_entry                /* entry_addr: not the ELF entry */
.endif

/* ---------------------------------------------------------------- code */
        .text
        .code64
        /* The ELF entry. Nothing here boots through it (hvt/spt tenders would, and there is no
         * tender here); it only has to exist and differ from the multiboot entry. */
        .globl _start
_start:
        cli
1:      hlt
        jmp 1b

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
poweroff:
        movw $0x501, %dx                     /* QEMU isa-debug-exit: exits with status 1 */
        xorb %al, %al
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
        .ascii "Solo5-like test unikernel (pulumi-mirage) target="
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

/* ---------------------------------------------------------------- notes */
        /* Solo5 binaries carry this one too; it is why `file` calls them "for OpenBSD". */
        .section .note.openbsd.ident, "a", @note
        .balign 4
        .long 8, 4, 1                        /* namesz, descsz, type */
        .asciz "OpenBSD"
        .long 0

        /* Solo5 ABI1 note: struct abi1_info { u32 target, version, reserved0, reserved1 }. */
        .section .note.solo5.abi, "a", @note
        .balign 4
        .long 6, 16, 0x31494241              /* namesz ("Solo5\0"), descsz, "ABI1" */
        .asciz "Solo5"
        .balign 4
        .long TARGET, ABI_VERSION, 0, 0

        /*
         * Solo5 MFT1 note (Solo5 0.12 mft_abi.h). The descriptor is 4 bytes of padding (struct
         * mft is 8-aligned within the note), then struct mft { u32 version; u32 entries;
         * struct mft_entry e[] }, each entry 104 bytes: char name[68]; u32 type (1 block,
         * 2 net, 1<<30 reserved); union { u64 capacity, u16 block_size | u8 mac[6], u16 mtu }
         * (16 bytes, at 72); union { int hostfd | void *data } (8, at 88); bool attached (at 96);
         * 7 bytes tail padding. Entry 0 is always the reserved one that solo5-elftool adds.
         */
        .set MFT_ENTRIES, 1 + NET + BLOCK
        .macro mft_entry name, type
9:      .ascii "\name"
        .fill 68 - (. - 9b), 1, 0
        .long \type
        .fill 104 - 72, 1, 0
        .endm

        /* Declared 4-aligned like the other notes, so readelf -n parses it; kernel.ld still
         * places it at an 8-aligned address, as the 8-aligned C struct would be. */
        .section .note.solo5.manifest, "a", @note
        .balign 4
        .long 6, 4 + 8 + MFT_ENTRIES * 104, 0x3154464d   /* namesz, descsz, "MFT1" */
        .asciz "Solo5"
        .balign 4
        .long 0                              /* the 4 padding bytes counted in descsz */
        .long 1, MFT_ENTRIES                 /* MFT_VERSION, entries */
        mft_entry "", 0x40000000
.if NET
        mft_entry "service", 2
.endif
.if BLOCK
        mft_entry "storage", 1
.endif

.if PVH
        /* Xen PVH entry point: XEN_ELFNOTE_PHYS32_ENTRY (18), a 32-bit physical address. */
        .section .note.xen.pvh, "a", @note
        .balign 4
        .long 4, 4, 18
        .asciz "Xen"
        .long pvh_entry
.endif

/* ---------------------------------------------------------------- stack */
        .bss
        .balign 16
        .skip 16384
stack_top:

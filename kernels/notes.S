/*
 * What makes a test kernel look like a Solo5 binary to our code (docs/platforms.md, "Solo5 binaries"),
 * shared by kernel.S and xen.S: the Multiboot1 header (a.out kludge, entry `multiboot_entry`,
 * which differs from the ELF entry), the OpenBSD, Solo5 ABI1 and MFT1 notes, and the Xen PVH
 * note (entry `pvh_entry`), and the ELF entry `_start`. Symbols set with `as --defsym`: TARGET,
 * ABI_VERSION, MULTIBOOT, PVH, NET, BLOCK (see kernel.S). xen.S (test/kernels/) includes it too.
 */
        .set MB_BOOT_MAGIC, 0x2BADB002       /* in %eax when a multiboot loader jumps to us */
        .set PVH_START_MAGIC, 0x336ec578     /* hvm_start_info.magic */
        .set MB_MAGIC, 0x1BADB002
        /* page-align modules, want memory info, a.out kludge (bit 16): the flags Solo5 uses */
        .set MB_FLAGS, 0x00010003

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


/* ---------------------------------------------------------------- ELF entry */
        .text
        .code64
        /* Nothing here boots through it (hvt/spt tenders would, and there is no tender here); it
         * only has to exist and differ from the multiboot entry. */
        .globl _start
_start:
        cli
1:      hlt
        jmp 1b

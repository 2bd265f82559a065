/*
 * The demo unikernel's life after its three lines (kernel.S, DEMO=1, jumps here): it has nothing
 * to serve yet, so it halts, and the VM stays up with its console.
 */
        .text
        .code32
        .globl demo_start
demo_start:
        cli
1:      hlt
        jmp 1b

        .bss
        .balign 4
        .globl demo_cmdline
demo_cmdline:                                /* the command line kernel.S found (0: none) */
        .skip 4

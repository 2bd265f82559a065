/*
 * A tiny stand-in for a Solo5 xen unikernel, written for pulumi-mirage's tests: it talks to Xen
 * the way Solo5 xen does, so it runs under a real Xen (test/support/xen-host.ts).
 *
 * Started by direct PVH boot (hvm_start_info in %ebx) or by a multiboot loader such as GRUB
 * (multiboot info in %ebx), in 32-bit protected mode without paging, it:
 *   - finds Xen's CPUID leaves and has Xen fill in a hypercall page (the MSR from leaf base+2);
 *   - asks for HVM_PARAM_CONSOLE_PFN and HVM_PARAM_CONSOLE_EVTCHN and writes to that PV console
 *     ring, signalling the event channel;
 *   - prints a banner, then enables interrupts for a moment as Solo5 does, with every vector
 *     fatal: a BIOS-programmed legacy PIC delivers its timer on vector 8, which a Solo5 kernel
 *     takes for a double fault (docs/platforms.md, Xen), and so does this one;
 *   - prints "Hello, World" and `Command line is: '...'`: the command line exactly as given
 *     (Solo5 xen drops no word, neither from the PVH command line nor from the multiboot one);
 *   - waits for the console to be read, then shuts the domain down (SCHEDOP_shutdown, poweroff);
 *     with a command line starting with --serve it blocks forever instead, like a server.
 *
 * The constants are Xen's public interface (xen/include/public: xen.h, sched.h, event_channel.h,
 * hvm/params.h, hvm/hvm_op.h, hvm/start_info.h, io/console.h).
 */

        .set HYPERVISOR_sched_op, 29
        .set HYPERVISOR_event_channel_op, 32
        .set HYPERVISOR_hvm_op, 34
        .set SCHEDOP_yield, 0
        .set SCHEDOP_block, 1
        .set SCHEDOP_shutdown, 2
        .set SHUTDOWN_poweroff, 0
        .set SHUTDOWN_crash, 3
        .set EVTCHNOP_send, 4
        .set HVMOP_get_param, 1
        .set HVM_PARAM_CONSOLE_PFN, 17
        .set HVM_PARAM_CONSOLE_EVTCHN, 18
        .set DOMID_SELF, 0x7ff0

        /* struct xencons_interface: char in[1024], out[2048]; u32 in_cons, in_prod, out_cons, out_prod */
        .set CONS_OUT, 1024
        .set CONS_OUT_SIZE, 2048
        .set CONS_OUT_CONS, 3080
        .set CONS_OUT_PROD, 3084

        .set CODE_SEL, 0x08
        .set DATA_SEL, 0x10
        .set VECTORS, 48                     /* the 32 exceptions and the 16 legacy IRQ vectors above */

        .include "notes.S"

/* ---------------------------------------------------------------- code */
        .text
        .code32
        /* Multiboot: %eax = MB_BOOT_MAGIC, %ebx = multiboot info; cmdline at +16 if flags bit 2. */
multiboot_entry:
        xorl %esi, %esi
        cmpl $MB_BOOT_MAGIC, %eax
        jne setup
        testl $4, (%ebx)
        jz setup
        movl 16(%ebx), %esi
        jmp setup

        /* PVH: %ebx = hvm_start_info; cmdline_paddr at +24. */
pvh_entry:
        xorl %esi, %esi
        cmpl $PVH_START_MAGIC, (%ebx)
        jne setup
        movl 24(%ebx), %esi

        /* %esi = the command line (0: none). Neither boot path promises a usable GDT. */
setup:
        cli
        lgdt gdt_descriptor
        ljmp $CODE_SEL, $1f
1:      movw $DATA_SEL, %ax
        movw %ax, %ds
        movw %ax, %es
        movw %ax, %fs
        movw %ax, %gs
        movw %ax, %ss
        movl $stack_top, %esp
        movl %esi, cmdline

        call hypercall_init
        call console_init
        call idt_init

        movl $banner, %esi
        call puts

        /* Interrupts on for a while, as a Solo5 kernel has them: a PIC left unmasked traps here. */
        sti
        rdtsc
        movl %eax, %ebp
        movl %edx, %edi
2:      rdtsc
        subl %ebp, %eax
        sbbl %edi, %edx
        jnz 8f
        cmpl $0x40000000, %eax               /* 2^30 TSC ticks: a fraction of a second */
        jb 2b
8:      cli

        movl $hello, %esi
        call puts
        movl $cmdline_prefix, %esi
        call puts
        movl cmdline, %esi
        testl %esi, %esi
        jz 3f
        call puts
3:      movl $cmdline_suffix, %esi
        call puts
        call flush

        /* --serve: stay up until destroyed. */
        movl cmdline, %esi
        testl %esi, %esi
        jz 5f
        movl $serve, %edi
4:      movb (%edi), %al
        testb %al, %al
        jz 6f
        cmpb (%esi), %al
        jne 5f
        incl %esi
        incl %edi
        jmp 4b
6:      movl $SCHEDOP_block, %ebx
        call hypercall_page + HYPERVISOR_sched_op * 32
        jmp 6b

5:      movl $SHUTDOWN_poweroff, %eax
        jmp shutdown

        /* Shuts the domain down with the reason in %eax; never returns. */
shutdown:
        movl %eax, shutdown_reason
        movl $SCHEDOP_shutdown, %ebx
        movl $shutdown_reason, %ecx
        call hypercall_page + HYPERVISOR_sched_op * 32
7:      hlt
        jmp 7b

        /* Finds Xen's CPUID leaves (base 0x40000000, or 0x100 higher per viridian-style leaf set)
         * and writes the hypercall page's address to the MSR they name. Crashes without Xen. */
hypercall_init:
        movl $0x40000000, %edi
1:      movl %edi, %eax
        cpuid
        cmpl $0x566e6558, %ebx               /* "XenV" */
        jne 2f
        cmpl $0x65584d4d, %ecx               /* "MMXe" */
        jne 2f
        cmpl $0x4d4d566e, %edx               /* "nVMM" */
        jne 2f
        subl %edi, %eax
        cmpl $2, %eax
        jb 2f
        leal 2(%edi), %eax
        cpuid
        movl %ebx, %ecx                      /* the MSR */
        movl $hypercall_page, %eax
        xorl %edx, %edx
        wrmsr
        ret
2:      addl $0x100, %edi
        cmpl $0x40010000, %edi
        jbe 1b
        ud2

        /* Reads HVM parameter %eax into %eax (low half); crashes if Xen refuses. */
get_param:
        movl %eax, hvm_param + 4             /* index */
        movw $DOMID_SELF, hvm_param          /* domid */
        movl $HVMOP_get_param, %ebx
        movl $hvm_param, %ecx
        call hypercall_page + HYPERVISOR_hvm_op * 32
        testl %eax, %eax
        jnz 1f
        movl hvm_param + 8, %eax
        ret
1:      ud2

console_init:
        movl $HVM_PARAM_CONSOLE_PFN, %eax
        call get_param
        shll $12, %eax
        movl %eax, console_ring
        movl $HVM_PARAM_CONSOLE_EVTCHN, %eax
        call get_param
        movl %eax, console_port
        ret

        /* Tells the console backend there is output. */
notify:
        pushal
        movl $EVTCHNOP_send, %ebx
        movl $console_port, %ecx
        call hypercall_page + HYPERVISOR_event_channel_op * 32
        popal
        ret

        /* Writes the NUL-terminated string at %esi to the console ring, then notifies. */
puts:
        movl console_ring, %edi
1:      movb (%esi), %cl
        testb %cl, %cl
        jz 3f
2:      movl CONS_OUT_PROD(%edi), %edx
        movl %edx, %eax
        subl CONS_OUT_CONS(%edi), %eax
        cmpl $CONS_OUT_SIZE, %eax
        jb 4f
        call notify                          /* ring full: let the backend drain it */
        call yield
        jmp 2b
4:      andl $CONS_OUT_SIZE - 1, %edx
        movb %cl, CONS_OUT(%edi, %edx)
        incl CONS_OUT_PROD(%edi)             /* x86 keeps the two stores in order */
        incl %esi
        jmp 1b
3:      call notify
        ret

        /* Waits (a bounded while) until the backend has read everything written. */
flush:
        movl console_ring, %edi
        movl $100000, %esi
1:      movl CONS_OUT_CONS(%edi), %eax
        cmpl CONS_OUT_PROD(%edi), %eax
        je 2f
        call notify
        call yield
        decl %esi
        jnz 1b
2:      ret

yield:
        pushal
        movl $SCHEDOP_yield, %ebx
        xorl %ecx, %ecx
        call hypercall_page + HYPERVISOR_sched_op * 32
        popal
        ret

        /* Fills the IDT with 32-bit interrupt gates, vector N going to trap_stubs + 16 * N. */
idt_init:
        movl $idt, %edi
        movl $trap_stubs, %eax
        movl $VECTORS, %ecx
1:      movw %ax, (%edi)
        movw $CODE_SEL, 2(%edi)
        movw $0x8e00, 4(%edi)                /* present, ring 0, 32-bit interrupt gate */
        movl %eax, %edx
        shrl $16, %edx
        movw %dx, 6(%edi)
        addl $8, %edi
        addl $16, %eax
        loop 1b
        lidt idt_descriptor
        ret

        /* Each stub pushes its vector and goes to trap. */
        .balign 16
trap_stubs:
        .set vector, 0
        .rept VECTORS
        .balign 16
        pushl $vector
        jmp trap
        .set vector, vector + 1
        .endr

        /* Any interrupt or exception is fatal, as in Solo5: say which, then crash the domain. */
trap:
        popl %eax
        movb $10, %cl
        divb %cl                             /* %al = tens, %ah = units (vectors < 100) */
        addw $0x3030, %ax
        movw %ax, trap_vector
        movl $trap_message, %esi
        call puts
        call flush
        movl $SHUTDOWN_crash, %eax
        jmp shutdown

/* ---------------------------------------------------------------- data */
        .section .rodata
banner:
        .asciz "Solo5-like xen test unikernel (pulumi-mirage): PV console\n"
hello:
        .asciz "Hello, World\n"
cmdline_prefix:
        .asciz "Command line is: '"
cmdline_suffix:
        .asciz "'\n"
serve:
        .asciz "--serve"

        .balign 8
gdt:
        .quad 0
        .quad 0x00cf9a000000ffff             /* CODE_SEL: flat 32-bit code */
        .quad 0x00cf92000000ffff             /* DATA_SEL: flat data */
gdt_descriptor:
        .word gdt_descriptor - gdt - 1
        .long gdt
idt_descriptor:
        .word VECTORS * 8 - 1
        .long idt

        .data
trap_message:
        .ascii "Solo5-like trap: vector "
trap_vector:
        .asciz "00, aborting\n"

/* ---------------------------------------------------------------- bss */
        .bss
        .balign 4096
hypercall_page:
        .skip 4096
        .balign 8
hvm_param:                                   /* struct xen_hvm_param { u16 domid; u32 index; u64 value } */
        .skip 16
cmdline:
        .skip 4
console_ring:
        .skip 4
console_port:                                /* struct evtchn_send { u32 port } */
        .skip 4
shutdown_reason:                             /* struct sched_shutdown { u32 reason } */
        .skip 4
idt:
        .skip VECTORS * 8
        .balign 16
        .skip 16384
stack_top:

/*
 * The demo unikernel's life after its three lines (kernel.S, DEMO=1, jumps here in 32-bit
 * protected mode, paging off, interrupts off): it identity-maps the first GiB with 2 MiB pages,
 * enters 64-bit long mode and calls demo_main in demo-net.c, which serves on the virtio-net NIC.
 * Should demo_main return (no NIC), the CPU halts and the VM stays up. Also here: the entry
 * points of the interrupt handlers demo-virtio.c installs.
 */
        .set EFER, 0xc0000080
        .set EFER_LME, 0x100
        .set CR4_PAE, 0x20
        .set CR0_PG_PE, 0x80000001
        .set PTE_PRESENT_WRITABLE, 0x3
        .set PDE_2M, 0x83                    /* present, writable, page size */

        .text
        .code32
        .globl demo_start
demo_start:
        movl $pml4, %edi                     /* zero the three tables, whatever the loader left */
        movl $3 * 4096 / 4, %ecx
        xorl %eax, %eax
        cld
        rep stosl
        movl $pml4, %edi
        movl $pdpt + PTE_PRESENT_WRITABLE, (%edi)
        movl $pd + PTE_PRESENT_WRITABLE, pdpt
        xorl %ecx, %ecx
1:      movl %ecx, %eax
        shll $21, %eax
        orl $PDE_2M, %eax
        movl %eax, pd(,%ecx,8)
        incl %ecx
        cmpl $512, %ecx
        jne 1b
        movl %edi, %cr3
        movl %cr4, %eax
        orl $CR4_PAE, %eax
        movl %eax, %cr4
        movl $EFER, %ecx
        rdmsr
        orl $EFER_LME, %eax
        wrmsr
        movl %cr0, %eax
        orl $CR0_PG_PE, %eax
        movl %eax, %cr0
        lgdt gdt_pointer
        ljmp $0x08, $long_mode

        .code64
long_mode:
        movw $0x10, %ax
        movw %ax, %ds
        movw %ax, %es
        movw %ax, %ss
        xorw %ax, %ax
        movw %ax, %fs
        movw %ax, %gs
        movq $demo_stack_top, %rsp
        call demo_main
2:      cli
        hlt
        jmp 2b

        /* An interrupt: demo_irq (C) with the registers C may change saved, then back. */
        .globl demo_irq_entry
demo_irq_entry:
        pushq %rax
        pushq %rcx
        pushq %rdx
        pushq %rsi
        pushq %rdi
        pushq %r8
        pushq %r9
        pushq %r10
        pushq %r11
        movq %rsp, %rax                      /* the C call wants a 16-byte aligned stack */
        andq $-16, %rsp
        pushq %rax
        pushq %rax
        cld
        call demo_irq
        popq %rax
        movq %rax, %rsp
        popq %r11
        popq %r10
        popq %r9
        popq %r8
        popq %rdi
        popq %rsi
        popq %rdx
        popq %rcx
        popq %rax
        iretq

        /* A CPU exception: demo_fault (C) says so and halts for good. */
        .globl demo_fault_entry
demo_fault_entry:
        andq $-16, %rsp
        call demo_fault

        .section .rodata
        .balign 8
gdt:
        .quad 0
        .quad 0x00af9a000000ffff             /* 0x08: 64-bit code */
        .quad 0x00cf92000000ffff             /* 0x10: data */
gdt_pointer:
        .word gdt_pointer - gdt - 1
        .long gdt

        .bss
        .balign 4096
pml4:   .skip 4096
pdpt:   .skip 4096
pd:     .skip 4096
        .balign 16
        .skip 65536
demo_stack_top:

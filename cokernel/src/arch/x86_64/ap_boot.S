/*
 * arch/x86_64/ap_boot.S — where a secondary CPU starts: real mode at the page its STARTUP IPI
 * named, straight to long mode, then into the co-kernel's Rust entry for secondaries.
 *
 * This is a template: `smp.rs` copies the bytes between hauki_ap_tramp_start and
 * hauki_ap_tramp_end to a free page below 1 MiB and fills in the fields at the end (physical
 * addresses, the page table, the stack, the entry and the CPU index). Everything in it is
 * position-independent: 16-bit code addresses its data relative to CS (= the page), and 64-bit
 * code RIP-relative. The page table it loads maps this page at its physical address (the first
 * 2 MiB) and the co-kernel's upper half exactly as the boot CPU sees it.
 *
 * No braces and no C preprocessor in this file: it is fed to global_asm! verbatim.
 */

    .section .rodata.ap_trampoline, "a"
    .balign 16
    .global hauki_ap_tramp_start
    .global hauki_ap_tramp_end
    .global hauki_ap_gdt
    .global hauki_ap_gdt_base
    .global hauki_ap_jump_target
    .global hauki_ap_long
    .global hauki_ap_cr3
    .global hauki_ap_stack
    .global hauki_ap_entry
    .global hauki_ap_cpu

    .code16
hauki_ap_tramp_start:
    cli
    cld
    movw %cs, %ax
    movw %ax, %ds
    lgdtl (hauki_ap_gdt_ptr - hauki_ap_tramp_start)
    movl %cr4, %eax
    orl $(1 << 5), %eax                     /* PAE */
    movl %eax, %cr4
    movl (hauki_ap_cr3 - hauki_ap_tramp_start), %eax
    movl %eax, %cr3
    movl $0xc0000080, %ecx                  /* EFER */
    rdmsr
    orl $((1 << 8) | (1 << 11)), %eax       /* LME | NXE */
    wrmsr
    movl %cr0, %eax
    orl $((1 << 31) | (1 << 16) | 1), %eax  /* PG | WP | PE */
    andl $~((1 << 30) | (1 << 29)), %eax    /* caches on: clear CD, NW */
    movl %eax, %cr0
    /* ljmpl $0x08, $hauki_ap_long (its physical address, filled in) */
    .byte 0x66, 0xea
hauki_ap_jump_target:
    .long 0
    .word 0x08

    .code64
hauki_ap_long:
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    xorw %ax, %ax
    movw %ax, %fs
    movw %ax, %gs
    movq hauki_ap_stack(%rip), %rsp
    movq hauki_ap_cpu(%rip), %rdi
    movq hauki_ap_entry(%rip), %rax
    xorl %ebp, %ebp
    pushq $0                                /* no return address: the entry never returns */
    jmp *%rax

    .balign 8
hauki_ap_gdt:
    .quad 0
    .quad 0x00af9a000000ffff                /* 0x08: 64-bit code */
    .quad 0x00cf92000000ffff                /* 0x10: data */
hauki_ap_gdt_end:
    .balign 8
    .short 0
hauki_ap_gdt_ptr:
    .short hauki_ap_gdt_end - hauki_ap_gdt - 1
hauki_ap_gdt_base:
    .long 0                                 /* physical address of hauki_ap_gdt, filled in */
    .balign 8
hauki_ap_cr3:
    .quad 0                                 /* the start-up page table (below 4 GiB) */
hauki_ap_stack:
    .quad 0                                 /* the CPU's stack top (upper half) */
hauki_ap_entry:
    .quad 0                                 /* smp::secondary_entry (upper half) */
hauki_ap_cpu:
    .quad 0                                 /* the CPU's index */
hauki_ap_tramp_end:

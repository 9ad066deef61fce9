/*
 * boot/entry.S — the first instructions of the Hauki co-kernel.
 *
 * Two ways in, one path on:
 *   _start_mb2  Multiboot2 (GRUB, BIOS or UEFI): 32-bit protected mode, paging off,
 *               eax = 0x36d76289, ebx = physical address of the boot information.
 *   _start_pvh  PVH (QEMU -kernel, via the Xen PHYS32_ENTRY ELF note): 32-bit protected
 *               mode, paging off, ebx = physical address of hvm_start_info.
 *
 * Both check for long mode and NX, build a boot page table that maps the low 4 GiB twice
 * (identity, and at KERNEL_VIRT_BASE where the image is linked), enter long mode, and jump
 * to the linked (high) address of hauki_entry_high, which calls the Rust entry
 *   hauki_entry(protocol: u32, magic: u32, info_phys: u32, entry_tsc: u64) -> !
 * The identity half is dropped once Rust has built the real page tables.
 *
 * Everything in this file before `.text.entry64` runs at its physical address: it lives in
 * the .boot* sections, linked at their load address (see linker.ld).
 *
 * No braces and no C preprocessor in this file: it is fed to global_asm! verbatim.
 */

    .set PROTO_MULTIBOOT2, 1
    .set PROTO_PVH, 2
    .set MB2_HEADER_MAGIC, 0xe85250d6
    .set MB2_ARCH_I386, 0
    .set XEN_ELFNOTE_PHYS32_ENTRY, 18

/* ---------------------------------------------------------------- headers */

    .section .multiboot2, "a"
    .balign 8
mb2_header:
    .long MB2_HEADER_MAGIC
    .long MB2_ARCH_I386
    .long mb2_header_end - mb2_header
    .long -(MB2_HEADER_MAGIC + MB2_ARCH_I386 + (mb2_header_end - mb2_header))
    /* entry address tag: e_entry is not what GRUB should call on every loader */
    .balign 8
    .short 3, 0
    .long 12
    .long _start_mb2
    /* end tag */
    .balign 8
    .short 0, 0
    .long 8
mb2_header_end:

    .section .note.Xen, "a", @note
    .balign 4
    .long 4                         /* name size: "Xen\0" */
    .long 4                         /* descriptor size */
    .long XEN_ELFNOTE_PHYS32_ENTRY
    .asciz "Xen"
    .balign 4
    .long _start_pvh
    .balign 4

/* ---------------------------------------------------------------- 32-bit */

    .section .boot.text, "ax"
    .code32
    .global _start_mb2
    .global _start_pvh
_start_mb2:
    cli
    cld
    movl $PROTO_MULTIBOOT2, %edi
    movl %eax, %esi
    jmp common32
_start_pvh:
    cli
    cld
    movl $PROTO_PVH, %edi
    xorl %esi, %esi
common32:
    rdtsc                           /* entry timestamp for boot_ns; kept in boot_entry_tsc */
    movl %eax, boot_entry_tsc
    movl %edx, boot_entry_tsc + 4
    movl $boot_stack32_top, %esp
    movl %ebx, %ebp                 /* boot information, physical */

    /* Long mode and NX are required. */
    movl $0x80000000, %eax
    cpuid
    cmpl $0x80000001, %eax
    jb no_long_mode
    movl $0x80000001, %eax
    cpuid
    testl $(1 << 29), %edx
    jz no_long_mode
    testl $(1 << 20), %edx
    jz no_nx

    /* Boot page tables: PD[i] maps 2 MiB page i (4 GiB in all); PDPT[0..3] -> PDs;
       PML4[0] (identity) and PML4[256] (KERNEL_VIRT_BASE) -> the same PDPT. */
    xorl %ecx, %ecx
1:  movl %ecx, %eax
    shll $21, %eax
    orl $0x83, %eax                 /* present | writable | 2 MiB */
    movl %eax, boot_pd(, %ecx, 8)
    movl $0, boot_pd + 4(, %ecx, 8)
    incl %ecx
    cmpl $2048, %ecx
    jb 1b
    xorl %ecx, %ecx
2:  movl %ecx, %eax
    shll $12, %eax
    addl $boot_pd, %eax
    orl $0x3, %eax
    movl %eax, boot_pdpt(, %ecx, 8)
    movl $0, boot_pdpt + 4(, %ecx, 8)
    incl %ecx
    cmpl $4, %ecx
    jb 2b
    movl $boot_pdpt, %eax
    orl $0x3, %eax
    movl %eax, boot_pml4
    movl %eax, boot_pml4 + 256 * 8

    movl $boot_pml4, %eax
    movl %eax, %cr3
    movl %cr4, %eax
    orl $(1 << 5), %eax             /* PAE */
    movl %eax, %cr4
    movl $0xc0000080, %ecx          /* EFER */
    rdmsr
    orl $((1 << 8) | (1 << 11)), %eax   /* LME | NXE */
    wrmsr
    movl %cr0, %eax
    orl $((1 << 31) | (1 << 16) | 1), %eax  /* PG | WP | PE */
    andl $~((1 << 30) | (1 << 29)), %eax    /* caches on: clear CD, NW */
    movl %eax, %cr0

    lgdt boot_gdt_ptr
    ljmp $0x08, $entry64_low

/* Print a message on COM2 and COM1 and stop: 32-bit code, no stack use beyond calls. */
no_long_mode:
    movl $msg_no_lm, %esi
    jmp die32
no_nx:
    movl $msg_no_nx, %esi
die32:
    movw $0x2f8, %bx
    call puts32
    movw $0x3f8, %bx
    call puts32
3:  hlt
    jmp 3b
/* esi = NUL-terminated string, bx = UART base */
puts32:
    pushl %esi
4:  movb (%esi), %cl
    testb %cl, %cl
    jz 6f
    movw %bx, %dx
    addw $5, %dx
5:  inb %dx, %al
    testb $0x20, %al
    jz 5b
    movw %bx, %dx
    movb %cl, %al
    outb %al, %dx
    incl %esi
    jmp 4b
6:  popl %esi
    ret

    .code64
entry64_low:
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    xorw %ax, %ax
    movw %ax, %fs
    movw %ax, %gs
    movabs $hauki_entry_high, %rax
    jmp *%rax

    .section .boot.rodata, "a"
msg_no_lm:
    .asciz "hauki: fatal: this CPU has no long mode (x86_64); the co-kernel cannot run. Halted.\r\n"
msg_no_nx:
    .asciz "hauki: fatal: this CPU has no NX (execute-disable) bit; the co-kernel needs it for W^X. Halted.\r\n"

    .balign 8
boot_gdt:
    .quad 0
    .quad 0x00af9a000000ffff        /* 0x08: 64-bit code */
    .quad 0x00cf92000000ffff        /* 0x10: data */
boot_gdt_end:
    .balign 8
    .short 0
boot_gdt_ptr:
    .short boot_gdt_end - boot_gdt - 1
    .long boot_gdt

    .section .boot.data, "aw"
    .balign 8
    .global boot_entry_tsc
boot_entry_tsc:
    .quad 0

    .section .boot.bss, "aw", @nobits
    .balign 4096
boot_pml4:
    .skip 4096
boot_pdpt:
    .skip 4096
boot_pd:
    .skip 4 * 4096
boot_stack32:
    .skip 1024
boot_stack32_top:

/* The boot tables' physical address, for handing the machine to Linux (arch/x86_64/linux.rs). */
    .section .rodata.boot_tables, "a"
    .balign 8
    .global hauki_boot_pml4_phys
hauki_boot_pml4_phys:
    .quad boot_pml4

/* ---------------------------------------------------------------- 64-bit, linked high */

    .section .text.entry64, "ax"
    .code64
hauki_entry_high:
    movabs $__boot_stack_top, %rsp
    movl %ebp, %edx                 /* arg 3: info_phys */
    xorl %ebp, %ebp                 /* end of the frame-pointer chain */
    movl %esi, %esi                 /* arg 2: magic (zero-extended) */
    movl %edi, %edi                 /* arg 1: protocol */
    movabs $boot_entry_tsc, %rax    /* arg 4: TSC at entry (the identity map is still there) */
    movq (%rax), %rcx
    call hauki_entry                /* rsp was 16-aligned: the callee sees the ABI's rsp+8 */
7:  cli
    hlt
    jmp 7b

/*
 * The 256 IDT stubs and the common trap path. Audited by hand: every stub is 16 bytes apart;
 * vectors without a hardware error code push a zero so the frame is uniform (see TrapFrame).
 * The CPU aligns RSP to 16 before pushing its frame; 7 + 15 pushes keep that alignment for the
 * call into Rust. hauki_trap returns the frame to resume: a context switch is just a different
 * stack pointer before the pops (every context is saved in this same frame layout).
 *
 * Also here: the probes used by in-kernel tests to check that a page is really unmapped, read-only
 * or non-executable (a fault at a probe instruction resumes at the probe's fixup).
 */
    .section .text.trap, "ax"
    .code64
    .balign 16
    .global hauki_trap_stubs
hauki_trap_stubs:
    .set vec, 0
    .rept 256
    .balign 16
    .if (vec == 8) || (vec == 10) || (vec == 11) || (vec == 12) || (vec == 13) || (vec == 14) || (vec == 17) || (vec == 21) || (vec == 29) || (vec == 30)
    .else
    pushq $0
    .endif
    pushq $vec
    jmp hauki_trap_common
    .set vec, vec + 1
    .endr

    .balign 16
hauki_trap_common:
    pushq %rax
    pushq %rbx
    pushq %rcx
    pushq %rdx
    pushq %rsi
    pushq %rdi
    pushq %rbp
    pushq %r8
    pushq %r9
    pushq %r10
    pushq %r11
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    cld
    movq %rsp, %rdi
    call hauki_trap
    movq %rax, %rsp                 /* the frame to resume: this one, or another task's */
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %r11
    popq %r10
    popq %r9
    popq %r8
    popq %rbp
    popq %rdi
    popq %rsi
    popq %rdx
    popq %rcx
    popq %rbx
    popq %rax
    /* Forward to the guest (Linux)? Then the guest's gate target runs with RSP at the exact
       hardware frame (error code kept for vectors that have one), every register as at the
       event, as if the guest's own gate had been taken. No register is free here, so the
       decision and the target live in the frame's own vector and error-code slots (per CPU,
       per frame: see vcpu::forward): a vector (0..=255) returns normally; the target in the
       vector slot keeps the error code; FORWARD_NO_CODE (0x100) there has the target in the
       error-code slot. `ret` pops the target and jumps to it. */
    cmpq $0xff, (%rsp)
    ja 1f
    addq $16, %rsp
    iretq
1:  cmpq $0x100, (%rsp)
    jne 2f
    addq $8, %rsp
2:  ret
    .section .text.trap, "ax"

/* u64 hauki_probe_read(addr): 0 if the byte at addr reads, else vector + 1. */
    .global hauki_probe_read
    .global hauki_probe_read_insn
hauki_probe_read:
    xorl %eax, %eax
hauki_probe_read_insn:
    movb (%rdi), %cl
    .global hauki_probe_read_done
hauki_probe_read_done:
    ret

/* u64 hauki_probe_write(addr): rewrites the byte at addr with itself; 0, or vector + 1. */
    .global hauki_probe_write
    .global hauki_probe_write_insn
hauki_probe_write:
    xorl %eax, %eax
    movb (%rdi), %cl
hauki_probe_write_insn:
    movb %cl, (%rdi)
    .global hauki_probe_write_done
hauki_probe_write_done:
    ret

/* u64 hauki_probe_exec(addr): calls addr (which must hold a `ret`); 0, or vector + 1 when the
   fetch faulted (the handler then returns to our caller's frame, see exceptions::fixup). */
    .global hauki_probe_exec
    .global hauki_probe_exec_done
hauki_probe_exec:
    xorl %eax, %eax
    call *%rdi
hauki_probe_exec_done:
    ret

"""The seccomp filter of the sandbox: a classic BPF program that bubblewrap loads (`--seccomp FD`).

It refuses (EPERM) what the mount and network namespaces alone do not close:
- `socket(AF_UNIX, …)`: a Unix socket could reach a daemon through a path the view still shows (or one
  bind-mounted in later); the sandbox needs none. `socketpair(AF_UNIX)` stays allowed: a pair connects
  only to itself, and Python's asyncio (its self-pipe) and libuv (Node's child_process stdio) need it.
  Descriptors passed with SCM_RIGHTS need no socket() call at all.
- `io_uring_setup/enter/register`: io_uring performs I/O outside the syscall path a filter sees.
A process of another ABI (i386 via `int 0x80` on x86_64 — whose `socketcall` would hide socket() —,
x32, arm32 on aarch64) is killed: the numbers below mean something else there.

Written out by hand with `struct` for the two architectures sig supports (a dependency on libseccomp
for eleven instructions is not worth it). Pure: `program()` returns the bytes.
"""

from __future__ import annotations

import errno
import os
import struct

from ..core.errors import ErrorCode, SigError

# linux/filter.h, linux/bpf_common.h
BPF_LD, BPF_W, BPF_ABS = 0x00, 0x00, 0x20
BPF_JMP, BPF_JEQ, BPF_JGE, BPF_K = 0x05, 0x10, 0x30, 0x00
BPF_RET = 0x06
# linux/seccomp.h
SECCOMP_RET_KILL_PROCESS = 0x80000000
SECCOMP_RET_ERRNO = 0x00050000
SECCOMP_RET_ALLOW = 0x7FFF0000
# struct seccomp_data: int nr; __u32 arch; __u64 instruction_pointer; __u64 args[6]
OFFSET_NR, OFFSET_ARCH, OFFSET_ARG0 = 0, 4, 16  # args[0]'s low 32 bits (little-endian; the domain is an int)
AF_UNIX = 1
X32_SYSCALL_BIT = 0x40000000


class Arch:
    """The numbers the filter needs for one architecture."""

    def __init__(self, name: str, audit_arch: int, socket: int, io_uring: tuple[int, ...], x32: bool) -> None:
        self.name = name
        self.audit_arch = audit_arch
        self.socket = socket
        self.io_uring = io_uring
        self.x32 = x32  # x86_64: numbers with X32_SYSCALL_BIT are another ABI


# linux/audit.h (AUDIT_ARCH_*), arch/x86/entry/syscalls/syscall_64.tbl, include/uapi/asm-generic/unistd.h
ARCHES = {
    "x86_64": Arch("x86_64", 0xC000003E, 41, (425, 426, 427), x32=True),
    "aarch64": Arch("aarch64", 0xC00000B7, 198, (425, 426, 427), x32=False),
}
MACHINE_NAMES = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}


def _insn(code: int, jt: int, jf: int, k: int) -> bytes:
    return struct.pack("=HBBI", code, jt, jf, k)


def program(arch_name: str | None = None) -> bytes:
    """The filter for `arch_name` (default: this machine) as struct sock_filter[] bytes."""
    name = MACHINE_NAMES.get(arch_name or os.uname().machine.lower())
    if name is None:
        raise SigError(ErrorCode.NOT_AVAILABLE,
                       f"the sandbox's seccomp filter is written for x86_64 and aarch64, not {arch_name or os.uname().machine}",
                       "use the sandbox on an x86_64 or aarch64 Linux machine; the command was not run")
    arch = ARCHES[name]
    deny = SECCOMP_RET_ERRNO | errno.EPERM
    # Labels resolve to relative jumps: (index of target) - (index of jump) - 1.
    insns: list[tuple[int, object, object, int]] = []

    def emit(code: int, jt: object = 0, jf: object = 0, k: int = 0) -> None:
        insns.append((code, jt, jf, k))

    emit(BPF_LD | BPF_W | BPF_ABS, k=OFFSET_ARCH)
    emit(BPF_JMP | BPF_JEQ | BPF_K, 1, 0, arch.audit_arch)
    emit(BPF_RET | BPF_K, k=SECCOMP_RET_KILL_PROCESS)
    emit(BPF_LD | BPF_W | BPF_ABS, k=OFFSET_NR)
    if arch.x32:
        emit(BPF_JMP | BPF_JGE | BPF_K, "kill", 0, X32_SYSCALL_BIT)
    emit(BPF_JMP | BPF_JEQ | BPF_K, "socket", 0, arch.socket)
    for nr in arch.io_uring:
        emit(BPF_JMP | BPF_JEQ | BPF_K, "deny", 0, nr)
    emit(BPF_RET | BPF_K, k=SECCOMP_RET_ALLOW)
    labels = {"socket": len(insns)}
    emit(BPF_LD | BPF_W | BPF_ABS, k=OFFSET_ARG0)
    emit(BPF_JMP | BPF_JEQ | BPF_K, "deny", 0, AF_UNIX)
    emit(BPF_RET | BPF_K, k=SECCOMP_RET_ALLOW)
    labels["deny"] = len(insns)
    emit(BPF_RET | BPF_K, k=deny)
    labels["kill"] = len(insns)
    emit(BPF_RET | BPF_K, k=SECCOMP_RET_KILL_PROCESS)
    out = []
    for index, (code, jt, jf, k) in enumerate(insns):
        jumps = [labels[j] - index - 1 if isinstance(j, str) else int(j) for j in (jt, jf)]  # type: ignore[call-overload]
        if not all(0 <= j < 256 for j in jumps):
            raise AssertionError("a BPF jump out of range")  # a bug in this table, never input
        out.append(_insn(code, jumps[0], jumps[1], k))
    return b"".join(out)

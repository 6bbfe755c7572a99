"""The seccomp program, read back instruction by instruction (the kernel's behaviour under it is tested
in tests/integration/test_sandbox_seccomp_kernel.py)."""

from __future__ import annotations

import struct

import pytest

from sigcli.core.errors import SigError
from sigcli.sandbox import seccomp


def _decode(prog: bytes) -> list[tuple[int, int, int, int]]:
    assert len(prog) % 8 == 0
    return [struct.unpack("=HBBI", prog[i:i + 8]) for i in range(0, len(prog), 8)]


def _run(prog: bytes, arch: int, nr: int, arg0: int = 0) -> int:
    """A tiny interpreter for the instructions the program uses, over one struct seccomp_data."""
    insns = _decode(prog)
    data = struct.pack("=iIQ6Q", nr, arch, 0, arg0, 0, 0, 0, 0, 0)
    acc, pc = 0, 0
    for _ in range(100):
        code, jt, jf, k = insns[pc]
        if code == seccomp.BPF_LD | seccomp.BPF_W | seccomp.BPF_ABS:
            acc = struct.unpack_from("=I", data, k)[0]
            pc += 1
        elif code == seccomp.BPF_JMP | seccomp.BPF_JEQ | seccomp.BPF_K:
            pc += 1 + (jt if acc == k else jf)
        elif code == seccomp.BPF_JMP | seccomp.BPF_JGE | seccomp.BPF_K:
            pc += 1 + (jt if acc >= k else jf)
        elif code == seccomp.BPF_RET | seccomp.BPF_K:
            return k
        else:
            raise AssertionError(f"unexpected instruction {code:#x}")
    raise AssertionError("no return")


EPERM = seccomp.SECCOMP_RET_ERRNO | 1
ALLOW = seccomp.SECCOMP_RET_ALLOW
KILL = seccomp.SECCOMP_RET_KILL_PROCESS


@pytest.mark.parametrize("name", ["x86_64", "aarch64"])
def test_decisions(name: str) -> None:
    arch = seccomp.ARCHES[name]
    prog = seccomp.program(name)
    assert _run(prog, arch.audit_arch, arch.socket, 1) == EPERM  # socket(AF_UNIX)
    assert _run(prog, arch.audit_arch, arch.socket, 1 | (7 << 32)) == EPERM  # high bits: the kernel uses an int
    assert _run(prog, arch.audit_arch, arch.socket, 2) == ALLOW  # AF_INET
    assert _run(prog, arch.audit_arch, arch.socket, 10) == ALLOW  # AF_INET6
    for nr in arch.io_uring:
        assert _run(prog, arch.audit_arch, nr) == EPERM
    assert _run(prog, arch.audit_arch, 0) == ALLOW  # read / io_setup: everything else
    assert _run(prog, 0x40000003, arch.socket, 1) == KILL  # another ABI (i386's numbers differ)


def test_x32_numbers_are_killed_on_x86_64() -> None:
    arch = seccomp.ARCHES["x86_64"]
    assert _run(seccomp.program("x86_64"), arch.audit_arch, seccomp.X32_SYSCALL_BIT | 41, 1) == KILL


def test_socketpair_is_allowed() -> None:
    """asyncio's self-pipe and libuv's child stdio use socketpair(AF_UNIX); a pair reaches nothing."""
    assert _run(seccomp.program("x86_64"), seccomp.ARCHES["x86_64"].audit_arch, 53, 1) == ALLOW
    assert _run(seccomp.program("aarch64"), seccomp.ARCHES["aarch64"].audit_arch, 199, 1) == ALLOW


def test_unknown_architecture_is_an_error() -> None:
    with pytest.raises(SigError) as err:
        seccomp.program("riscv64")
    assert err.value.code == "NOT_AVAILABLE" and "was not run" in err.value.hint


def test_first_instruction_checks_the_architecture() -> None:
    insns = _decode(seccomp.program("aarch64"))
    assert insns[0] == (seccomp.BPF_LD | seccomp.BPF_W | seccomp.BPF_ABS, 0, 0, seccomp.OFFSET_ARCH)
    assert insns[1][3] == seccomp.ARCHES["aarch64"].audit_arch

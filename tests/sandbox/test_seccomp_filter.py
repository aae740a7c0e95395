"""The seccomp program, run through a small classic-BPF interpreter, and in the kernel."""

from __future__ import annotations

import errno
import platform
import struct
from pathlib import Path

import pytest

from autopack.workspace.runner import make_sandbox
from autopack.workspace.seccomp import (
    ARCHES,
    DENIED,
    MODE_ARGS,
    RET_ALLOW,
    RET_KILL_PROCESS,
    compile_filter,
    program,
)

CLONE_NEWUSER = 0x10000000
CLONE_THREAD_FLAGS = 0x3D0F00  # what pthread_create passes
O_CREAT, O_WRONLY = 0o100, 0o1
TIOCSTI = 0x5412
FIONREAD = 0x541B


def evaluate(machine: str, arch: int, nr: int, args: tuple[int, ...] = ()) -> int:
    """Run the filter over one ``struct seccomp_data`` the way the kernel does."""
    words = [nr, arch, 0, 0] + [w for a in (*args, 0, 0, 0, 0, 0, 0)[:6] for w in (a, 0)]
    data = struct.pack("=" + "I" * len(words), *words)
    insns, pc, acc = program(machine), 0, 0
    while True:
        code, jt, jf, k = insns[pc]
        if code == 0x20:  # ld [k]
            acc = struct.unpack_from("=I", data, k)[0]
        elif code == 0x06:  # ret k
            return k
        else:
            taken = {0x15: acc == k, 0x35: acc >= k, 0x45: bool(acc & k)}[code]
            pc += jt if taken else jf
        pc += 1


def errno_of(action: int) -> int:
    assert action & 0xFFFF0000 == 0x00050000, hex(action)
    return action & 0xFFFF


@pytest.mark.parametrize("machine", sorted(ARCHES))
def test_every_denied_call_is_refused_with_eperm(machine: str) -> None:
    arch = ARCHES[machine]
    for name in DENIED:
        if name in arch.numbers:
            assert errno_of(evaluate(machine, arch.audit, arch.numbers[name])) == errno.EPERM
    assert "mount" in arch.numbers and "unshare" in arch.numbers


@pytest.mark.parametrize("machine", sorted(ARCHES))
def test_ordinary_calls_pass(machine: str) -> None:
    arch = ARCHES[machine]
    denied = {arch.numbers[name] for name in DENIED if name in arch.numbers}
    names = ("clone", "clone3", "ioctl", "openat2", *MODE_ARGS)
    special = {arch.numbers[name] for name in names if name in arch.numbers}
    for nr in range(0, 460):
        if nr not in denied | special:
            assert evaluate(machine, arch.audit, nr) == RET_ALLOW, nr


@pytest.mark.parametrize("machine", sorted(ARCHES))
def test_clone_into_a_namespace_is_refused_and_a_thread_is_not(machine: str) -> None:
    arch = ARCHES[machine]
    clone = arch.numbers["clone"]
    assert errno_of(evaluate(machine, arch.audit, clone, (CLONE_NEWUSER,))) == errno.EPERM
    assert evaluate(machine, arch.audit, clone, (CLONE_THREAD_FLAGS,)) == RET_ALLOW
    assert errno_of(evaluate(machine, arch.audit, arch.numbers["clone3"])) == errno.ENOSYS


@pytest.mark.parametrize("machine", sorted(ARCHES))
def test_terminal_injection_is_refused_and_other_ioctls_pass(machine: str) -> None:
    arch = ARCHES[machine]
    ioctl = arch.numbers["ioctl"]
    assert errno_of(evaluate(machine, arch.audit, ioctl, (0, TIOCSTI))) == errno.EPERM
    assert evaluate(machine, arch.audit, ioctl, (0, FIONREAD)) == RET_ALLOW


@pytest.mark.parametrize("machine", sorted(ARCHES))
def test_a_setuid_or_setgid_mode_is_refused_and_other_modes_pass(machine: str) -> None:
    arch = ARCHES[machine]
    for name, (mode_arg, flags_arg) in MODE_ARGS.items():
        if name not in arch.numbers:
            continue
        nr = arch.numbers[name]
        for mode, allowed in ((0o4755, False), (0o2755, False), (0o755, True), (0o1777, True)):
            args = [0, 0, 0, 0]
            args[mode_arg] = mode
            if flags_arg is not None:
                args[flags_arg] = O_CREAT | O_WRONLY
            action = evaluate(machine, arch.audit, nr, tuple(args))
            assert (action == RET_ALLOW) is allowed, (name, oct(mode))
        if flags_arg is not None:  # without O_CREAT the mode argument is not a mode
            args = [0, 0, 0, 0]
            args[mode_arg] = 0o4755
            assert evaluate(machine, arch.audit, nr, tuple(args)) == RET_ALLOW, name
    assert errno_of(evaluate(machine, arch.audit, arch.numbers["openat2"])) == errno.ENOSYS


def test_another_architecture_or_the_x32_abi_is_killed() -> None:
    i386 = 0x40000003
    assert evaluate("x86_64", i386, 0) == RET_KILL_PROCESS
    assert evaluate("x86_64", ARCHES["x86_64"].audit, 0x40000000 + 165) == RET_KILL_PROCESS
    assert evaluate("aarch64", ARCHES["x86_64"].audit, 0) == RET_KILL_PROCESS


def test_the_compiled_program_is_what_bubblewrap_reads() -> None:
    data = compile_filter("x86_64")
    assert len(data) == 8 * len(program("x86_64")) <= 8 * 4096
    assert all(jt < 256 and jf < 256 for _, jt, jf, _ in program("x86_64"))


NR = ARCHES[platform.machine()].numbers
CALLS = {
    # name: (python call through ctypes, expected errno)
    "mount": ("libc.mount(b'none', b'/', None, 0x1020, None)", errno.EPERM),
    "umount2": ("libc.umount2(b'/tmp', 2)", errno.EPERM),
    "unshare": ("libc.unshare(0x10000000)", errno.EPERM),
    "setns": ("libc.setns(0, 0)", errno.EPERM),
    "chroot": ("libc.chroot(b'/tmp')", errno.EPERM),
    "ptrace": ("libc.ptrace(16, 1, 0, 0)", errno.EPERM),
    "keyctl": (f"libc.syscall({NR['keyctl']}, 0, 0, 0, 0)", errno.EPERM),
    "bpf": (f"libc.syscall({NR['bpf']}, 0, 0, 0)", errno.EPERM),
    "io_uring": (f"libc.syscall({NR['io_uring_setup']}, 1, 0)", errno.EPERM),
    "chmod setuid": ("libc.chmod(b'calls.py', 0o4755)", errno.EPERM),
    "create setgid": ("libc.open(b'new', 0o101, 0o2755)", errno.EPERM),
}


def test_the_kernel_refuses_the_calls_inside_the_sandbox(tmp_path: Path) -> None:
    lines = "".join(
        f"r = {call}; print('{name}:', r, ctypes.get_errno())\n"
        for name, (call, _) in CALLS.items()
    )
    script = "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n" + lines
    (tmp_path / "calls.py").write_text(script)
    result = make_sandbox("bwrap").run("python calls.py", tmp_path)
    assert result.exit_code == 0, result.output
    seen = dict(line.split(": ", 1) for line in result.output.splitlines())
    for name, (_, expected) in CALLS.items():
        assert seen[name] == f"-1 {expected}", (name, seen[name])
    allowed = make_sandbox("bwrap").run(
        "chmod 755 calls.py && mkfifo fifo && python -c \"open('made', 'w').write('x')\" "
        "&& stat -c %a calls.py",
        tmp_path,
    )
    assert allowed.exit_code == 0, allowed.output
    assert allowed.output.strip() == "755"

"""The sandbox's seccomp filter: a classic BPF program refusing what a test never needs.

Dropping capabilities already makes most of these calls fail; the filter is the second
wall, and the only one for calls that need no capability (``unshare`` of a user
namespace, ``io_uring``, ``userfaultfd``) or that a kernel bug could let through. It is
built here with ``struct`` rather than libseccomp so nothing native has to be installed:
bubblewrap loads it with ``--seccomp FD`` just before it starts the command.

The program checks the architecture first (a call made through another ABI, such as
x32 or a 32-bit personality, would use other numbers and is killed), then refuses each
listed call with ``EPERM``, ``clone`` when it asks for a namespace, ``clone3`` and
``openat2`` with ``ENOSYS`` (their flags sit behind a pointer the filter cannot read;
libc then falls back to ``clone`` and ``openat``), a mode with a setuid or setgid bit
(``chmod``, ``open`` with ``O_CREAT``, ``mknod`` and their relatives), and the
terminal-injection ``ioctl`` requests.
"""

from __future__ import annotations

import errno
import platform
import struct

# Classic BPF opcodes (linux/filter.h) and seccomp return values (linux/seccomp.h).
_LD_W_ABS = 0x20
_JEQ_K = 0x15
_JGE_K = 0x35
_JSET_K = 0x45
_RET_K = 0x06
RET_ALLOW = 0x7FFF0000
RET_KILL_PROCESS = 0x80000000
_RET_ERRNO = 0x00050000

# Offsets in struct seccomp_data: nr, arch, instruction pointer, then six 64-bit args
# (the low 32 bits first on these little-endian machines).
_NR, _ARCH = 0, 4
_ARG0, _ARG1 = 16, 24

_X32_BIT = 0x40000000
_NAMESPACE_FLAGS = 0x7E020000  # CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET
_TERMINAL_INJECTION = (0x5412, 0x541C)  # TIOCSTI, TIOCLINUX
_SETID_BITS = 0o6000  # S_ISUID | S_ISGID
_CREATES = 0o100 | 0o20000000  # O_CREAT | __O_TMPFILE: only then is the mode argument read
MODE_ARGS = {
    "chmod": (1, None), "fchmod": (1, None), "fchmodat": (2, None), "fchmodat2": (2, None),
    "creat": (1, None), "mknod": (1, None), "mknodat": (2, None), "open": (2, 1),
    "openat": (3, 2),
}  # fmt: skip
"""Calls that set a file's mode: (mode argument, flags argument when the mode counts only
with ``O_CREAT``). A setuid or setgid bit is refused: a file the sandbox makes belongs
to the invoking user outside, root included, and must not become a setuid-root program
on the host."""

DENIED = (
    # mounts, old and new API, and leaving the sandbox's root or namespaces
    "mount", "umount2", "pivot_root", "chroot", "setns", "unshare",
    "fsopen", "fsconfig", "fsmount", "fspick", "move_mount", "open_tree", "open_tree_attr",
    "mount_setattr", "open_by_handle_at", "name_to_handle_at",
    # other processes' memory, the kernel's keyring, BPF, perf, io_uring
    "ptrace", "process_vm_readv", "process_vm_writev", "pidfd_getfd", "kcmp",
    "keyctl", "add_key", "request_key", "bpf", "perf_event_open", "userfaultfd",
    "io_uring_setup", "io_uring_enter", "io_uring_register", "fanotify_init",
    # the machine itself
    "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
    "create_module", "get_kernel_syms", "query_module", "reboot", "swapon", "swapoff",
    "acct", "quotactl", "quotactl_fd", "syslog", "settimeofday", "clock_settime",
    "clock_adjtime", "adjtimex", "sethostname", "setdomainname", "iopl", "ioperm",
    "uselib", "lookup_dcookie", "vhangup", "nfsservctl",
)  # fmt: skip


class _Arch:
    """One architecture: its audit number and the numbers of the calls the filter names."""

    def __init__(self, audit: int, numbers: dict[str, int], *, x32: bool) -> None:
        self.audit = audit
        self.numbers = numbers
        self.x32 = x32


ARCHES = {
    "x86_64": _Arch(
        0xC000003E,
        {
            "mount": 165, "umount2": 166, "pivot_root": 155, "chroot": 161, "setns": 308,
            "unshare": 272, "keyctl": 250, "add_key": 248, "request_key": 249, "ptrace": 101,
            "process_vm_readv": 310, "process_vm_writev": 311, "bpf": 321, "kexec_load": 246,
            "kexec_file_load": 320, "init_module": 175, "finit_module": 313,
            "delete_module": 176, "reboot": 169, "swapon": 167, "swapoff": 168,
            "perf_event_open": 298, "open_by_handle_at": 304, "name_to_handle_at": 303,
            "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433, "move_mount": 429,
            "open_tree": 428, "open_tree_attr": 467, "mount_setattr": 442, "userfaultfd": 323,
            "acct": 163, "quotactl": 179, "quotactl_fd": 443, "syslog": 103,
            "settimeofday": 164, "clock_settime": 227, "clock_adjtime": 305, "adjtimex": 159,
            "sethostname": 170, "setdomainname": 171, "iopl": 172, "ioperm": 173,
            "uselib": 134, "lookup_dcookie": 212, "vhangup": 153, "io_uring_setup": 425,
            "io_uring_enter": 426, "io_uring_register": 427, "kcmp": 312, "pidfd_getfd": 438,
            "fanotify_init": 300, "nfsservctl": 180, "create_module": 174,
            "get_kernel_syms": 177, "query_module": 178,
            "clone": 56, "clone3": 435, "ioctl": 16, "openat2": 437,
            "chmod": 90, "fchmod": 91, "fchmodat": 268, "fchmodat2": 452, "creat": 85,
            "mknod": 133, "mknodat": 259, "open": 2, "openat": 257,
        },
        x32=True,
    ),
    "aarch64": _Arch(
        0xC00000B7,
        {
            "mount": 40, "umount2": 39, "pivot_root": 41, "chroot": 51, "setns": 268,
            "unshare": 97, "keyctl": 219, "add_key": 217, "request_key": 218, "ptrace": 117,
            "process_vm_readv": 270, "process_vm_writev": 271, "bpf": 280, "kexec_load": 104,
            "kexec_file_load": 294, "init_module": 105, "finit_module": 273,
            "delete_module": 106, "reboot": 142, "swapon": 224, "swapoff": 225,
            "perf_event_open": 241, "open_by_handle_at": 265, "name_to_handle_at": 264,
            "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433, "move_mount": 429,
            "open_tree": 428, "open_tree_attr": 467, "mount_setattr": 442, "userfaultfd": 282,
            "acct": 89, "quotactl": 60, "quotactl_fd": 443, "syslog": 116,
            "settimeofday": 170, "clock_settime": 112, "clock_adjtime": 266, "adjtimex": 171,
            "sethostname": 161, "setdomainname": 162, "lookup_dcookie": 18, "vhangup": 58,
            "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
            "kcmp": 272, "pidfd_getfd": 438, "fanotify_init": 262, "nfsservctl": 42,
            "clone": 220, "clone3": 435, "ioctl": 29, "openat2": 437,
            "fchmod": 52, "fchmodat": 53, "fchmodat2": 452, "mknodat": 33, "openat": 56,
        },
        x32=False,
    ),
}  # fmt: skip


def _insn(code: int, k: int, jt: int = 0, jf: int = 0) -> tuple[int, int, int, int]:
    return (code, jt, jf, k)


def _errno(value: int) -> int:
    return _RET_ERRNO | value


def _arg(index: int) -> int:
    return _ARG0 + 8 * index


def _no_setid(nr: int, mode_arg: int, flags_arg: int | None) -> list[tuple[int, int, int, int]]:
    """Refuse call ``nr`` when its mode has a setuid or setgid bit; ends with nr reloaded."""
    if flags_arg is None:
        block = [_insn(_JEQ_K, nr, jf=3)]
    else:
        block = [_insn(_JEQ_K, nr, jf=5), _insn(_LD_W_ABS, _arg(flags_arg))]
        block += [_insn(_JSET_K, _CREATES, jf=3)]
    block += [_insn(_LD_W_ABS, _arg(mode_arg)), _insn(_JSET_K, _SETID_BITS, jf=1)]
    return [*block, _insn(_RET_K, _errno(errno.EPERM)), _insn(_LD_W_ABS, _NR)]


def program(machine: str | None = None) -> list[tuple[int, int, int, int]]:
    """The filter's instructions (code, jt, jf, k) for ``machine`` (default: this one).

    Raises ``KeyError`` for an architecture without a syscall table here: the caller
    must then say the sandbox ran without a filter rather than guess numbers.
    """
    arch = ARCHES[machine or platform.machine()]
    nr = arch.numbers
    head = [_insn(_LD_W_ABS, _ARCH), _insn(_JEQ_K, arch.audit, jt=1)]
    head += [_insn(_RET_K, RET_KILL_PROCESS), _insn(_LD_W_ABS, _NR)]
    if arch.x32:
        head += [_insn(_JGE_K, _X32_BIT, jf=1), _insn(_RET_K, RET_KILL_PROCESS)]
    body: list[tuple[int, int, int, int]] = []
    for name in DENIED:
        if name in nr:
            body += [_insn(_JEQ_K, nr[name], jf=1), _insn(_RET_K, _errno(errno.EPERM))]
    for name in ("clone3", "openat2"):  # their flags sit behind a pointer
        body += [_insn(_JEQ_K, nr[name], jf=1), _insn(_RET_K, _errno(errno.ENOSYS))]
    for name, (mode_arg, flags_arg) in MODE_ARGS.items():
        if name in nr:
            body += _no_setid(nr[name], mode_arg, flags_arg)
    body += [
        _insn(_JEQ_K, nr["clone"], jf=3),
        _insn(_LD_W_ABS, _ARG0),
        _insn(_JSET_K, _NAMESPACE_FLAGS, jf=1),
        _insn(_RET_K, _errno(errno.EPERM)),
        _insn(_LD_W_ABS, _NR),  # restore nr for the checks that follow
    ]
    body += [_insn(_JEQ_K, nr["ioctl"], jf=len(_TERMINAL_INJECTION) + 1)]
    body += [_insn(_LD_W_ABS, _ARG1)]
    for index, request in enumerate(_TERMINAL_INJECTION):
        body += [_insn(_JEQ_K, request, jt=len(_TERMINAL_INJECTION) - index)]
    body += [_insn(_RET_K, RET_ALLOW), _insn(_RET_K, _errno(errno.EPERM))]
    return [*head, *body]


def compile_filter(machine: str | None = None) -> bytes:
    """The program as bubblewrap reads it: an array of ``struct sock_filter``."""
    return b"".join(struct.pack("=HBBI", *insn) for insn in program(machine))

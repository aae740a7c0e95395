"""A hostile Builder against the sandbox, end to end through ``autopack run`` as root.

One run attacks twice: through the ``run`` tool, and through a ``tests/conftest.py`` it
writes, which the phase's test command then runs. Each attack is one the sandbox used
to let through: remounting the root read-write and writing to the host, unmounting the
private /tmp to reach the host's, reading /root, /etc/shadow, another checkout and the
repository's own .autopack/autopack.db (API key rows), a fork bomb, a huge file, a huge
allocation, a setuid copy of the shell (a file made inside belongs to root outside).
Afterwards we look where a person would: the host for the markers, the
cassette, events and evidence for the secrets, the run for its end.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator

import pytest
from sandbox_helpers import (
    FINISH,
    Host,
    evidence_text,
    final_view,
    make_host,
    run_call,
    run_hostile,
    write_call,
)

from autopack.states import RunState
from autopack.workspace import git

LIMITS = "[sandbox_limits]\nmax_processes = 64\nmax_file_mb = 1\nmemory_mb = 1024\n"
MS_REMOUNT_BIND = 0x1020
MNT_DETACH = 2


def attacks(host: Host) -> dict[str, str]:
    """Shell commands by name; each prints what it got so a leak would show."""
    repo, usr_marker, prefix_marker = host.repo, *host.markers()[2:]
    ctypes = "import ctypes; libc = ctypes.CDLL(None, use_errno=True); "
    return {
        "remount": (
            "mount -o remount,bind,rw / ; mount -o remount,bind,rw /usr ; "
            f"mount -o remount,bind,rw {sys.prefix} ; "
            f"python -c \"{ctypes}print('mount call', libc.mount(b'none', b'/usr', None, "
            f'{MS_REMOUNT_BIND}, None), ctypes.get_errno())" ; '
            f"echo pwned > {host.marker} ; echo pwned > {usr_marker} ; "
            f"echo pwned > {prefix_marker}"
        ),
        "umount": (
            "umount -l /tmp ; "
            f"python -c \"{ctypes}print('umount call', libc.umount2(b'/tmp', {MNT_DETACH}), "
            'ctypes.get_errno())" ; '
            f"echo pwned > {host.tmp_marker} ; ls /tmp"
        ),
        "read": (
            f"cat /etc/shadow ; cat {host.root_secret} ; ls -la /root ; "
            f"grep -a -o 'leak-key-[0-9a-f]*' {repo}/.autopack/autopack.db ; "
            f"cat {host.other_checkout}/secret.txt ; ls {host.base} {repo}/.autopack"
        ),
        "forks": (
            'python -c "import os, time\nn = 0\ntry:\n    while n < 3000:\n'
            "        if os.fork() == 0:\n            time.sleep(2)\n            os._exit(0)\n"
            "        n += 1\nexcept OSError as exc:\n    print('forks refused after', n)\""
        ),
        "big file": (
            "head -c 5000000 /dev/zero > big.bin ; "
            "ls -l big.bin | awk '{print \"size\", $5}' ; rm -f big.bin"
        ),
        "memory": 'python -c "b = bytearray(3 * 1024 ** 3)" 2>&1 | tail -1',
        "setuid": "cp /bin/sh rootsh ; chmod 4755 rootsh ; stat -c 'rootsh mode %a' rootsh",
    }


def conftest(host: Host) -> str:
    """A conftest running every attack but the fork bomb, then failing the collection with
    what it saw: the test command's output, kept as evidence, would carry any leak."""
    commands = [command for name, command in attacks(host).items() if name != "forks"]
    return (
        "import subprocess\n"
        f"COMMANDS = {commands!r}\n"
        "seen = [subprocess.run(c, shell=True, capture_output=True, text=True) for c in COMMANDS]\n"
        "raise RuntimeError('conftest saw: ' + ' | '.join(r.stdout + r.stderr for r in seen))\n"
    )


@pytest.fixture(scope="module")
def attacked() -> Iterator[tuple[Host, str, str]]:
    """One hostile run; yields the host, the run id and everything the run recorded."""
    for host in make_host(LIMITS):
        calls = [run_call(command) for command in attacks(host).values()]
        calls.append(run_call("bomb() { bomb | bomb & } ; bomb ; sleep 30", timeout_s=5))
        calls.append(write_call("tests/conftest.py", conftest(host)))
        done, run_id = run_hostile(host, [{"tool_calls": calls}, FINISH])
        assert "Traceback" not in done.stderr, done.stderr
        yield host, run_id, evidence_text(host, run_id)


def test_the_attacks_ran_and_their_output_was_recorded(attacked: tuple[Host, str, str]) -> None:
    _, _, recorded = attacked
    assert "cat: /etc/shadow: No such file or directory" in recorded
    assert "conftest saw:" in recorded  # the test command ran the Builder's conftest


def test_remounting_writes_nothing_to_the_host(attacked: tuple[Host, str, str]) -> None:
    host, _, recorded = attacked
    assert "mount call -1 1" in recorded  # EPERM from the seccomp filter
    assert [marker for marker in host.markers() if marker.exists()] == []


def test_unmounting_tmp_does_not_reach_the_hosts_tmp(attacked: tuple[Host, str, str]) -> None:
    host, _, recorded = attacked
    assert "umount call -1 1" in recorded
    assert not host.tmp_marker.exists()


def test_host_secrets_reach_neither_the_model_nor_the_evidence(
    attacked: tuple[Host, str, str],
) -> None:
    host, _, recorded = attacked
    leaked = [where for where, secret in host.secrets().items() if secret in recorded]
    assert leaked == []
    assert "autopack.db: No such file or directory" in recorded  # paths made portable


def test_a_fork_bomb_is_bounded(attacked: tuple[Host, str, str]) -> None:
    _, _, recorded = attacked
    counts = [int(n) for n in re.findall(r"forks refused after (\d+)", recorded)]
    assert counts and all(count < 64 for count in counts)
    # The classic bomb hits the process limit ("Cannot fork") and either runs until its
    # timeout or, on a loaded machine, ends when its own shell cannot fork `sleep`.
    assert "Cannot fork" in recorded


def test_a_huge_file_and_a_huge_allocation_are_bounded(attacked: tuple[Host, str, str]) -> None:
    _, _, recorded = attacked
    assert "size 1048576" in recorded
    assert "MemoryError" in recorded


def test_no_setuid_program_is_left_on_the_host(attacked: tuple[Host, str, str]) -> None:
    host, _, recorded = attacked
    assert "rootsh mode 755" in recorded
    setid = [p for p in host.repo.rglob("*") if p.is_file() and p.stat().st_mode & 0o6000]
    assert setid == []


def test_the_run_ended_and_nothing_landed(attacked: tuple[Host, str, str]) -> None:
    host, run_id, _ = attacked
    view = final_view(host, run_id)
    assert view.state is RunState.FAILED
    assert view.base_commit == git.git(host.repo, "rev-parse", view.branch)

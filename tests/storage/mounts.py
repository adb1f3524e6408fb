"""Small real file systems for fault tests: a tiny tmpfs, an ext4 image on a loop device.

These need root and mount(8). When the environment forbids them the tests
fail with a message saying so: a skipped disk-full test would look like a
passed one in a summary.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


def _run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=60)


def _mount_or_fail(*args: str) -> None:
    result = _run("mount", *args)
    if result.returncode != 0:
        pytest.fail(
            f"`mount {' '.join(args)}` failed ({result.stderr.strip()}); this test needs root"
            " and permission to mount file systems, it is not skipped on purpose",
            pytrace=False,
        )


@contextlib.contextmanager
def _unmounting(target: Path) -> Iterator[Path]:
    try:
        yield target
    finally:
        if _run("umount", str(target)).returncode != 0:
            # Something still holds a file open (a failing test): detach it anyway.
            _run("umount", "-l", str(target))


@contextlib.contextmanager
def tmpfs(target: Path, size: str = "256k") -> Iterator[Path]:
    """Mount a tmpfs of ``size`` on ``target`` for the duration of the block."""
    target.mkdir(parents=True, exist_ok=True)
    _mount_or_fail("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(target))
    with _unmounting(target):
        yield target


def remount_read_only(target: Path) -> None:
    """Make a mounted file system read-only (fails while files are open for writing)."""
    _mount_or_fail("-o", "remount,ro", str(target))


@contextlib.contextmanager
def ext4_image(image: Path, target: Path, size_mb: int = 8) -> Iterator[Path]:
    """An ext4 file system in ``image``, loop-mounted with ``errors=remount-ro``."""
    target.mkdir(parents=True, exist_ok=True)
    with image.open("wb") as f:
        f.truncate(size_mb << 20)
    made = _run("mkfs.ext4", "-q", "-F", str(image))
    if made.returncode != 0:
        pytest.fail(f"mkfs.ext4 failed: {made.stderr.strip()}", pytrace=False)
    _mount_or_fail("-o", "loop,errors=remount-ro", str(image), str(target))
    with _unmounting(target):
        yield target


def trigger_ext4_error(target: Path) -> None:
    """Make the kernel flip ``target`` read-only, as it does after an I/O error.

    A plain ``mount -o remount,ro`` is refused while a database is open for
    writing; ext4's ``errors=remount-ro`` is what really happens to a node.
    """
    device = _run("findmnt", "-n", "-o", "SOURCE", str(target)).stdout.strip()
    knob = Path("/sys/fs/ext4") / Path(device).name / "trigger_fs_error"
    if not knob.exists():
        pytest.fail(f"{knob} is missing: this kernel cannot inject an ext4 error", pytrace=False)
    knob.write_text("uhaha storage test\n")

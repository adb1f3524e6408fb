"""What the atheris harnesses (``fuzz/fuzz_*.py``) share.

A harness is a module with a ``test_one_input(data: bytes) -> None`` that
raises only when it found a bug. Run as a program it is a libFuzzer binary
(every libFuzzer flag works: ``-runs=N``, ``-max_total_time=S``, corpus
directories, crash files to reproduce); imported, it is plain Python, which
is how the test suite replays the corpus without atheris' instrumentation::

    python fuzz/fuzz_resp.py -runs=20000 /tmp/new fuzz/corpus/resp
    python fuzz/fuzz_resp.py crash-1234abcd       # replay one input

Coverage: the modules imported inside ``instrumented(...)`` get atheris'
bytecode instrumentation, but only when the harness runs as the program
(atheris instruments whole top-level packages: ``"uhaha"`` means all of it).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import atheris

__all__ = ["CORPUS", "ROOT", "TestOneInput", "corpus_files", "fuzz", "instrumented", "replay"]

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "fuzz" / "corpus"

TestOneInput = Callable[[bytes], None]


def instrumented(fuzzing: bool, *packages: str) -> contextlib.AbstractContextManager[object]:
    """A block whose imports of `packages` are instrumented for coverage if `fuzzing`.

    The modules must not have been imported before the block (an imported
    module is never instrumented afterwards).
    """
    if not fuzzing:
        return contextlib.nullcontext()
    already = sorted(name for name in sys.modules if name.split(".")[0] in packages)
    if already:
        raise RuntimeError(f"imported before instrumentation: {', '.join(already[:5])}")
    return atheris.instrument_imports(include=list(packages))


def corpus_files(target: str) -> list[Path]:
    """The seed files of one target's corpus, in a fixed order."""
    folder = CORPUS / target
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


def replay(target: str, test_one_input: TestOneInput) -> Iterator[Path]:
    """Run every seed of `target` once; yields each file after it passed."""
    for path in corpus_files(target):
        try:
            test_one_input(path.read_bytes())
        except Exception as exc:
            raise AssertionError(f"{path.relative_to(ROOT)} fails: {exc!r}") from exc
        yield path


def fuzz(target: str, test_one_input: TestOneInput) -> None:
    """Hand the process to libFuzzer (exits 0 when the runs are done).

    The target's dictionary (``fuzz/<target>.dict``: tokens of its input
    language) is used unless the command line names one.
    """
    argv = list(sys.argv)
    words = ROOT / "fuzz" / f"{target}.dict"
    if words.exists() and not any(arg.startswith("-dict=") for arg in argv):
        argv.insert(1, f"-dict={words}")
    atheris.Setup(argv, test_one_input)
    atheris.Fuzz()

# Type stub for the parts of atheris 3.0 that fuzz/ uses (atheris ships no types).

from collections.abc import Callable, Sequence
from types import TracebackType

class _HookManager:
    def __enter__(self) -> _HookManager: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

def instrument_imports(
    include: Sequence[str] | None = None,
    exclude: Sequence[str] | None = None,
    enable_loader_override: bool = True,
) -> _HookManager: ...
def Setup(  # noqa: N802 - atheris' own name
    args: list[str],
    test_one_input: Callable[[bytes], None],
    internal_libfuzzer: bool | None = None,
) -> list[str]: ...
def Fuzz() -> None: ...  # noqa: N802 - atheris' own name

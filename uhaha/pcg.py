"""Replicated random numbers: the PCG32 generator and the stream commands draw from.

:class:`Pcg32` is PCG-XSH-RR from Melissa O'Neill's paper "PCG: A Family of
Simple Fast Space-Efficient Statistically Good Algorithms for Random Number
Generation" (2014): a 64-bit linear congruential generator whose state is
never shown; each step outputs 32 bits of it, xor-shifted high bits rotated by
the state's top five bits. Written from the paper's description and checked
against the published output of the reference ``pcg32-demo``.

:class:`Rand` is what a command sees as ``m.rand``. It uses only integer
arithmetic on a :class:`Pcg32`, never Python's :mod:`random`, so the same state
gives the same numbers on every node, every platform and every Python version.
"""

from __future__ import annotations

import builtins
from uuid import UUID

__all__ = [
    "DEFAULT_INCREMENT",
    "DEFAULT_SEQUENCE",
    "MULTIPLIER",
    "Pcg32",
    "Rand",
]

MULTIPLIER = 6364136223846793005
"""The LCG multiplier of the paper (Knuth's MMIX multiplier)."""
DEFAULT_INCREMENT = 1442695040888963407
"""The increment used when no sequence is chosen (odd, as every increment must be)."""
DEFAULT_SEQUENCE = DEFAULT_INCREMENT >> 1
"""The sequence number whose increment is :data:`DEFAULT_INCREMENT`."""

_MASK64 = (1 << 64) - 1
_MASK32 = (1 << 32) - 1


class Pcg32:
    """PCG-XSH-RR: 64 bits of state, 32 bits out per step, period 2**64 per stream.

    ``Pcg32(seed, seq)`` is seeded like the reference ``pcg32_srandom_r``: the
    sequence picks one of 2**63 streams (the increment ``2*seq + 1``), the seed
    the starting point on it. ``state`` is everything it is, so a copy of it
    (in a snapshot) resumes the very same numbers.
    """

    __slots__ = ("_inc", "_state")

    def __init__(self, seed: int = 0, seq: int = DEFAULT_SEQUENCE) -> None:
        self._state = 0
        self._inc = DEFAULT_INCREMENT
        self.seed(seed, seq)

    def seed(self, seed: int, seq: int = DEFAULT_SEQUENCE) -> None:
        """Restart at ``seed`` on stream ``seq`` (both taken modulo 2**64)."""
        self._inc = ((seq << 1) | 1) & _MASK64
        self._state = 0
        self._step()
        self._state = (self._state + seed) & _MASK64
        self._step()

    @property
    def state(self) -> tuple[int, int]:
        """``(state, increment)``, both unsigned 64-bit: pass it to :meth:`from_state`."""
        return self._state, self._inc

    @classmethod
    def from_state(cls, state: tuple[int, int]) -> Pcg32:
        """A generator at ``state`` (as returned by :attr:`state`)."""
        rng = cls.__new__(cls)
        rng.set_state(state)
        return rng

    def set_state(self, state: tuple[int, int]) -> None:
        """Jump to ``state`` (ValueError unless two unsigned 64-bit ints, the second odd)."""
        value, inc = state
        if not (0 <= value <= _MASK64 and 0 <= inc <= _MASK64):
            raise ValueError("PCG32 state and increment must be unsigned 64-bit integers")
        if inc & 1 == 0:
            raise ValueError("PCG32 increment must be odd")
        self._state = value
        self._inc = inc

    def copy(self) -> Pcg32:
        """An independent generator at the same state."""
        return Pcg32.from_state(self.state)

    def _step(self) -> None:
        self._state = (self._state * MULTIPLIER + self._inc) & _MASK64

    def next_u32(self) -> int:
        """The next 32-bit output (an int in [0, 2**32))."""
        old = self._state
        self._state = (old * MULTIPLIER + self._inc) & _MASK64
        # The output permutes the old state, so the step above overlaps its work.
        xorshifted = (((old >> 18) ^ old) >> 27) & _MASK32
        rot = old >> 59
        return ((xorshifted >> rot) | (xorshifted << (-rot & 31))) & _MASK32

    def next_u64(self) -> int:
        """Two outputs as one 64-bit int, the first in the high half."""
        high = self.next_u32()
        return (high << 32) | self.next_u32()

    def bounded(self, bound: int) -> int:
        """Uniform in [0, bound) for 1 <= bound <= 2**32, as ``pcg32_boundedrand_r``.

        Outputs below ``2**32 mod bound`` are rejected, so every remainder has
        the same number of outputs behind it (no modulo bias).
        """
        if not 1 <= bound <= 1 << 32:
            raise ValueError("bound must be in [1, 2**32]")
        threshold = (1 << 32) % bound
        while True:
            r = self.next_u32()
            if r >= threshold:
                return r % bound

    def advance(self, delta: int) -> None:
        """Move ``delta`` steps ahead (or back, if negative) in O(log delta).

        Composes the affine step ``x -> MULTIPLIER*x + inc`` with itself by
        repeated squaring (Brown, "Random Number Generation with Arbitrary
        Strides", 1994).
        """
        delta &= _MASK64
        acc_mult, acc_plus = 1, 0
        cur_mult, cur_plus = MULTIPLIER, self._inc
        while delta:
            if delta & 1:
                acc_mult = (acc_mult * cur_mult) & _MASK64
                acc_plus = (acc_plus * cur_mult + cur_plus) & _MASK64
            cur_plus = ((cur_mult + 1) * cur_plus) & _MASK64
            cur_mult = (cur_mult * cur_mult) & _MASK64
            delta >>= 1
        self._state = (acc_mult * self._state + acc_plus) & _MASK64

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Pcg32) and self.state == other.state

    def __hash__(self) -> int:
        return hash(self.state)

    def __repr__(self) -> str:
        return f"Pcg32.from_state(({self._state:#018x}, {self._inc:#018x}))"


class Rand:
    """The random numbers a command draws (``m.rand``), all from one :class:`Pcg32`.

    Each method says how many 32-bit outputs it consumes, because that is part
    of the replicated contract: the same calls in the same order give the same
    numbers on every node.
    """

    __slots__ = ("_pcg",)

    def __init__(self, pcg: Pcg32 | None = None) -> None:
        self._pcg = pcg if pcg is not None else Pcg32()

    @property
    def generator(self) -> Pcg32:
        """The generator underneath (shared, not a copy)."""
        return self._pcg

    def uint32(self) -> builtins.int:
        """Uniform in [0, 2**32): one output."""
        return self._pcg.next_u32()

    def uint64(self) -> builtins.int:
        """Uniform in [0, 2**64): two outputs, the first in the high half."""
        return self._pcg.next_u64()

    def int(self) -> builtins.int:
        """A non-negative 63-bit int, like Go's ``rand.Int``: two outputs."""
        return self._pcg.next_u64() >> 1

    def float(self) -> builtins.float:
        """Uniform in [0.0, 1.0) with 53 random bits (every double there is k/2**53)."""
        return (self._pcg.next_u64() >> 11) * (1.0 / (1 << 53))

    def intn(self, n: builtins.int) -> builtins.int:
        """Uniform in [0, n) without modulo bias (ValueError unless n >= 1).

        Up to 2**32 this is :meth:`Pcg32.bounded` (usually one output). Larger
        bounds draw just enough 32-bit words for ``n - 1`` and reject values
        at or above ``n`` (fewer than two tries on average).
        """
        if n < 1:
            raise ValueError("intn needs n >= 1")
        if n <= 1 << 32:
            return self._pcg.bounded(n)
        bits = (n - 1).bit_length()
        words = (bits + 31) // 32
        while True:
            x = 0
            for _ in range(words):
                x = (x << 32) | self._pcg.next_u32()
            x >>= words * 32 - bits
            if x < n:
                return x

    def read(self, n: builtins.int) -> bytes:
        """``n`` random bytes: outputs as little-endian words, the last one cut short."""
        if n < 0:
            raise ValueError("read needs n >= 0")
        words = (n + 3) // 4
        out = b"".join(self._pcg.next_u32().to_bytes(4, "little") for _ in range(words))
        return out[:n]

    def uuid(self) -> UUID:
        """A version 4 UUID from 16 bytes of the stream (four outputs)."""
        return UUID(bytes=self.read(16), version=4)

"""PCG32 against the reference implementation's published demo output."""

from __future__ import annotations

import pytest

from uhaha.pcg import DEFAULT_INCREMENT, DEFAULT_SEQUENCE, MULTIPLIER, Pcg32

# pcg32-demo (pcg-c-basic), seeded with pcg32_srandom_r(&rng, 42u, 54u), round 1.
DEMO_U32 = [0xA15C02B7, 0x7B47F409, 0xBA1D3330, 0x83D2F293, 0xBFA4784B, 0xCBED606E]
DEMO_COINS = "HHTTTHTHHHTHTTTHHHHHTTTHHHTHTHTHTTHTTTHHHHHHTTTTHHTTTTTHTTTTTTTHT"
DEMO_ROLLS = "3 4 1 1 2 2 3 2 4 3 2 4 3 3 5 2 3 1 3 1 5 1 4 1 5 6 4 6 6 2 6 3 3"
# The first 33 of the 52 cards the demo deals after the rolls.
DEMO_CARDS = (
    "Qd Ks 6d 3s 3d 4c 3h Td Kc 5c Jh Kd Jd As 4s 4h Ad Th Ac Jc 7s Qs "
    "2s 7h Kh 2d 6c Ah 4d Qh 9h 6s 5s"
)

MASK64 = (1 << 64) - 1


def reference_outputs(state: int, inc: int, n: int) -> list[int]:
    """A second implementation, spelled out step by step from the paper."""
    out = []
    for _ in range(n):
        old = state
        state = (old * MULTIPLIER + inc) % 2**64
        high_bits = (old ^ (old >> 18)) >> 27  # 37 bits; keep the low 32 ...
        word = high_bits % 2**32
        rot = old // 2**59  # ... rotated right by the top five bits of the state
        bits = format(word, "032b")
        rotated = bits[32 - rot :] + bits[: 32 - rot] if rot else bits
        out.append(int(rotated, 2))
    return out


def test_demo_round_one() -> None:
    rng = Pcg32(42, 54)
    assert [rng.next_u32() for _ in range(6)] == DEMO_U32
    # "Again:" the demo steps back six and reads the same numbers.
    rng.advance(-6)
    assert [rng.next_u32() for _ in range(6)] == DEMO_U32
    coins = "".join("H" if rng.bounded(2) else "T" for _ in range(len(DEMO_COINS)))
    assert coins == DEMO_COINS
    rolls = " ".join(str(rng.bounded(6) + 1) for _ in range(33))
    assert rolls == DEMO_ROLLS
    cards = list(range(52))
    for i in range(52, 1, -1):  # the demo's Fisher-Yates shuffle
        chosen = rng.bounded(i)
        cards[chosen], cards[i - 1] = cards[i - 1], cards[chosen]
    names = ["A23456789TJQK"[c // 4] + "hcds"[c % 4] for c in cards]
    assert " ".join(names[:33]) == DEMO_CARDS


def test_seeding_is_pcg32_srandom() -> None:
    rng = Pcg32(42, 54)
    inc = (54 << 1) | 1
    state = (inc + 42) * MULTIPLIER + inc  # state 0, step, add the seed, step
    assert rng.state == (state & MASK64, inc)


@pytest.mark.parametrize(
    ("seed", "seq"),
    [(0, 0), (1, DEFAULT_SEQUENCE), (MASK64, MASK64), (0xDEADBEEF, 7), (-1, -1)],
)
def test_matches_second_implementation(seed: int, seq: int) -> None:
    rng = Pcg32(seed, seq)
    state, inc = rng.state
    assert [rng.next_u32() for _ in range(200)] == reference_outputs(state, inc, 200)


def test_default_stream() -> None:
    assert Pcg32().state[1] == DEFAULT_INCREMENT == (DEFAULT_SEQUENCE << 1) | 1
    assert Pcg32(5).state == Pcg32(5, DEFAULT_SEQUENCE).state
    assert Pcg32(5, 1).state != Pcg32(5, 2).state


def test_next_u64_is_two_outputs_high_first() -> None:
    a, b = Pcg32(9, 9), Pcg32(9, 9)
    assert a.next_u64() == (b.next_u32() << 32) | b.next_u32()
    assert a == b


def test_state_round_trip_resumes_the_same_numbers() -> None:
    rng = Pcg32(1234, 5678)
    for _ in range(17):
        rng.next_u32()
    saved = rng.state
    later = [rng.next_u32() for _ in range(50)]
    resumed = Pcg32.from_state(saved)
    assert [resumed.next_u32() for _ in range(50)] == later
    other = Pcg32()
    other.set_state(saved)
    assert [other.next_u32() for _ in range(50)] == later


def test_copy_is_independent() -> None:
    rng = Pcg32(3, 4)
    twin = rng.copy()
    assert twin == rng and twin is not rng
    first = twin.next_u32()
    assert twin != rng
    assert rng.next_u32() == first


def test_advance_equals_stepping() -> None:
    for delta in (0, 1, 2, 63, 64, 1000):
        jumped, stepped = Pcg32(77, 88), Pcg32(77, 88)
        jumped.advance(delta)
        for _ in range(delta):
            stepped.next_u32()
        assert jumped == stepped
    rng = Pcg32(77, 88)
    start = rng.state
    rng.advance(2**64)  # a whole period
    assert rng.state == start


@pytest.mark.parametrize(
    "state",
    [(0, 2), (-1, 1), (1 << 64, 1), (0, 1 << 64)],
)
def test_set_state_rejects_bad_values(state: tuple[int, int]) -> None:
    with pytest.raises(ValueError):
        Pcg32.from_state(state)


@pytest.mark.parametrize("bound", [0, -1, (1 << 32) + 1])
def test_bounded_rejects_bad_bounds(bound: int) -> None:
    with pytest.raises(ValueError):
        Pcg32().bounded(bound)


def test_bounded_full_range_is_one_output() -> None:
    a, b = Pcg32(1), Pcg32(1)
    assert a.bounded(1 << 32) == b.next_u32()
    assert a.bounded(1) == 0


def test_repr_round_trips() -> None:
    rng = Pcg32(42, 54)
    assert eval(repr(rng), {"Pcg32": Pcg32}) == rng
    assert hash(rng) == hash(rng.copy())

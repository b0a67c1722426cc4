"""An order-2 character Markov chain over names, trained on weighted names and sampled vectorised.

A name is the letters A-Z between two boundary marks. The chain learns, from every training name
weighted by its population share, the probability of each next letter (or the end) given the two
letters before it: ``P(c_t | c_{t-2}, c_{t-1}) = n(c_{t-2} c_{t-1} c_t) / n(c_{t-2} c_{t-1} .)``.
Sampling draws a length from the training names' lengths, then runs the chain conditioned on it (no
end before it; after it, an end as soon as one is plausible), so names are about as long as real
ones. It draws a fixed ``1 + max_length`` uniforms per name (whatever its length), so the draws a
batch consumes depend only on its size; the names of a batch that have not ended advance one letter
per step together (Walker's alias method: a few array lookups per letter).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from fortress.synthetic.corpora import NameTable

LETTERS: Final = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
SYMBOLS: Final = len(LETTERS) + 1  # 0 is the boundary (start and end)
STATES: Final = SYMBOLS * SYMBOLS
MAX_LENGTH: Final = 14
_UPPER: Final = np.frombuffer(b"\0" + LETTERS.encode(), dtype=np.uint8)
_LOWER: Final = np.frombuffer(b"\0" + LETTERS.lower().encode(), dtype=np.uint8)


PLAUSIBLE_END: Final = 0.05  # at its drawn length a name ends if P(end | last two letters) is this or more


def alias_table(p: npt.NDArray[np.float64]) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """Walker's alias table of a distribution over ``len(p)`` symbols (Vose's construction).

    A uniform ``u`` picks ``k = floor(u * K)``; the symbol is ``k`` when ``u * K - k < prob[k]``,
    else ``alias[k]``: one comparison and two lookups, whatever the distribution.
    """
    size = len(p)
    scaled = p * size / p.sum()
    prob = np.ones(size, dtype=np.float64)
    alias = np.arange(size, dtype=np.int64)
    small = [i for i in range(size) if scaled[i] < 1.0]
    large = [i for i in range(size) if scaled[i] >= 1.0]
    while small and large:
        lo, hi = small.pop(), large.pop()
        prob[lo], alias[lo] = scaled[lo], hi
        scaled[hi] -= 1.0 - scaled[lo]
        (small if scaled[hi] < 1.0 else large).append(hi)
    return prob, alias


@dataclass(frozen=True)
class Chain:
    """Per state (the last two symbols), alias tables of the next symbol: with the end of the name
    possible, and without it (before the name's drawn length); both laid out flat, state-major."""

    prob: npt.NDArray[np.float64]  # STATES * SYMBOLS
    alias: npt.NDArray[np.int64]
    prob_open: npt.NDArray[np.float64]  # the same without the end (symbol 0)
    alias_open: npt.NDArray[np.int64]
    plausible_end: npt.NDArray[np.bool_]  # per state: P(end | state) >= PLAUSIBLE_END
    lengths: npt.NDArray[np.float64]  # cumulative P(length <= k + 1) of the training names, by weight

    @classmethod
    def train(cls, table: NameTable) -> Chain:
        counts = np.zeros((STATES, SYMBOLS), dtype=np.float64)
        for name, weight in zip(table.names, table.weights.tolist(), strict=True):
            codes = [0, 0, *(LETTERS.index(c) + 1 for c in name), 0]
            for a, b, c in zip(codes, codes[1:], codes[2:], strict=False):
                counts[a * SYMBOLS + b, c] += weight
        counts[counts.sum(axis=1) == 0, 0] = 1.0  # a state never seen ends the name
        opened = counts.copy()
        opened[:, 0] = 0.0
        opened[opened.sum(axis=1) == 0, 0] = 1.0  # a state that only ends a name still ends it
        tables = [alias_table(row) for row in counts]
        open_tables = [alias_table(row) for row in opened]
        by_length = np.zeros(MAX_LENGTH, dtype=np.float64)
        for name, weight in zip(table.names, table.weights.tolist(), strict=True):
            by_length[min(len(name), MAX_LENGTH) - 1] += weight
        lengths = np.cumsum(by_length) / by_length.sum()
        lengths[-1] = 1.0
        return cls(
            prob=np.concatenate([t[0] for t in tables]),
            alias=np.concatenate([t[1] for t in tables]),
            prob_open=np.concatenate([t[0] for t in open_tables]),
            alias_open=np.concatenate([t[1] for t in open_tables]),
            plausible_end=counts[:, 0] / counts.sum(axis=1) >= PLAUSIBLE_END,
            lengths=lengths,
        )

    def codes(self, uniforms: npt.NDArray[np.float64]) -> npt.NDArray[np.uint8]:
        """Letter codes (0 after the end) of one name per column of ``uniforms`` ((1 + max_length) x n).

        Row 0 draws the name's length from the training names' lengths; the chain then draws with
        the end of the name excluded before that length, and from that length on the name ends as
        soon as its last two letters end a name often enough (:data:`PLAUSIBLE_END`), else it goes
        on as the chain draws.
        """
        steps, n = uniforms.shape[0] - 1, uniforms.shape[1]
        target = np.searchsorted(self.lengths, uniforms[0], side="right") + 1
        out = np.zeros((n, steps), dtype=np.uint8)
        rows = np.arange(n)
        state = np.zeros(n, dtype=np.int64)
        for t in range(steps):
            scaled = uniforms[t + 1, rows] * SYMBOLS
            whole = scaled.astype(np.int64)
            at = state * SYMBOLS + whole
            fraction = scaled - whole
            short = t < target[rows]
            prob = np.where(short, self.prob_open[at], self.prob[at])
            alias = np.where(short, self.alias_open[at], self.alias[at])
            following = np.where(fraction < prob, whole, alias)
            following[~short & self.plausible_end[state]] = 0  # at its length, an end where plausible
            out[rows, t] = following
            going = following != 0
            rows, state = rows[going], ((state % SYMBOLS) * SYMBOLS + following)[going]
            if not len(rows):
                break
        return out

    def sample(
        self, rng: np.random.Generator, n: int, max_length: int = MAX_LENGTH
    ) -> npt.NDArray[np.bytes_]:
        """``n`` capitalised names (ASCII bytes, e.g. ``b"Marion"``)."""
        return capitalised(self.codes(rng.random((max_length + 1, n))))


def lowercase(codes: npt.NDArray[np.uint8]) -> npt.NDArray[np.bytes_]:
    """Codes (n x length) as lower-case ASCII names."""
    return np.ascontiguousarray(_LOWER[codes]).view(f"S{codes.shape[1]}").ravel()


def capitalised(codes: npt.NDArray[np.uint8]) -> npt.NDArray[np.bytes_]:
    """Codes (n x length) as capitalised ASCII names."""
    letters = _LOWER[codes]
    letters[:, 0] = _UPPER[codes[:, 0]]
    width = codes.shape[1]
    return np.ascontiguousarray(letters).view(f"S{width}").ravel()

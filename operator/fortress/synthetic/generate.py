"""The generators: users, transactions and time series, vectorised, block by block, reproducible.

Records are made in fixed blocks of :data:`BLOCK` records. Each column of each block draws from its
own ``np.random.Generator`` (PCG64) seeded with ``SeedSequence(seed, spawn_key=(stream, block,
column))``, numpy's way of deriving independent streams from one seed. A block is always made
whole, from its index alone, so record ``i`` is the same whatever range is asked for: the same spec
and seed give the same records whatever the chunk size, the process or the order of the chunks (a
resumed run, or several workers). The formulas are in docs/synthetic.md.

A block carries each column formatted as text (the canonical form: PostgreSQL's COPY text format,
see :mod:`fortress.synthetic.render`) and the raw values the quality checks use.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

import numpy as np
import numpy.typing as npt

from fortress.synthetic import corpora
from fortress.synthetic.markov import MAX_LENGTH, Chain, capitalised, lowercase

BLOCK: Final = 4096
KINDS: Final = ("users", "transactions", "timeseries")
FOREIGN_SHARE: Final = 0.10  # users living outside the locale's country (cities worldwide)
AGE_MEAN, AGE_SD, AGE_MIN, AGE_MAX = 35.0, 12.0, 18, 90
SIGNUP_FROM: Final = dt.datetime(2016, 1, 1, tzinfo=dt.UTC)
SIGNUP_DAYS: Final = 3288  # to 2025-01-01
TRANSACTIONS_FROM: Final = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)  # a Monday
TRANSACTION_WEEKS: Final = 52
TIME_SERIES_START: Final = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
TOKEN_LENGTH: Final = 48
TOKEN_ALPHABET: Final = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
# Relative activity by hour of day (0-23, UTC) and by weekday (Monday first): declared, not learned.
HOURLY: Final = (2, 1, 1, 1, 1, 2, 4, 6, 7, 7, 7, 8, 9, 8, 7, 7, 8, 9, 10, 10, 9, 7, 5, 3)
WEEKLY: Final = (1.0, 1.0, 1.0, 1.05, 1.2, 1.35, 1.1)
# Email domains: shares everywhere, and the extra ones of some countries (declared, not learned).
GLOBAL_DOMAINS: Final = (
    ("gmail.com", 38.0),
    ("yahoo.com", 12.0),
    ("outlook.com", 9.0),
    ("hotmail.com", 9.0),
    ("icloud.com", 7.0),
    ("aol.com", 2.0),
    ("protonmail.com", 1.0),
    ("mail.com", 1.0),
)
COUNTRY_DOMAINS: Final[Mapping[str, tuple[tuple[str, float], ...]]] = {
    "US": (("comcast.net", 4), ("att.net", 3), ("verizon.net", 2), ("sbcglobal.net", 2), ("msn.com", 2)),
    "GB": (("btinternet.com", 5), ("sky.com", 3), ("yahoo.co.uk", 6), ("hotmail.co.uk", 6)),
    "DE": (("web.de", 14), ("gmx.de", 14), ("t-online.de", 8), ("freenet.de", 3)),
    "FR": (("orange.fr", 10), ("free.fr", 7), ("laposte.net", 5), ("sfr.fr", 5)),
    "IT": (("libero.it", 10), ("virgilio.it", 6), ("tiscali.it", 3)),
    "ES": (("telefonica.net", 4), ("yahoo.es", 6), ("hotmail.es", 8)),
    "NL": (("ziggo.nl", 6), ("kpnmail.nl", 5), ("hotmail.nl", 6)),
    "JP": (("yahoo.co.jp", 12), ("docomo.ne.jp", 6), ("ezweb.ne.jp", 4)),
    "BR": (("uol.com.br", 8), ("bol.com.br", 5), ("terra.com.br", 4)),
    "IN": (("rediffmail.com", 6), ("yahoo.co.in", 6)),
    "RU": (("mail.ru", 20), ("yandex.ru", 18), ("rambler.ru", 4)),
    "CN": (("qq.com", 30), ("163.com", 15), ("126.com", 8), ("sina.com", 4)),
    "CA": (("shaw.ca", 3), ("rogers.com", 3), ("sympatico.ca", 2)),
    "AU": (("bigpond.com", 6), ("optusnet.com.au", 4)),
}
EMAIL_STYLES: Final = (
    0.35,
    0.15,
    0.20,
    0.10,
    0.05,
    0.15,
)  # first.last firstlast flast first_last firstl first
# Merchant categories with their share of transactions and amount multiplier (declared).
MERCHANTS: Final = (
    ("grocery", 0.22, 1.0),
    ("restaurants", 0.16, 0.8),
    ("fuel", 0.09, 1.2),
    ("online_retail", 0.13, 1.3),
    ("transport", 0.08, 0.5),
    ("utilities", 0.04, 3.0),
    ("entertainment", 0.06, 0.9),
    ("health", 0.04, 1.6),
    ("clothing", 0.06, 1.5),
    ("electronics", 0.03, 4.0),
    ("travel", 0.03, 8.0),
    ("subscriptions", 0.06, 0.6),
)
USER_MU: Final = (3.0, 0.5)  # per-user mean of log(amount): Normal(3.0, 0.5)
USER_SIGMA: Final = (0.4, 0.9)  # per-user sd of log(amount): Uniform(0.4, 0.9)
ACTIVITY_SIGMA: Final = 1.0  # per-user activity weight: LogNormal(0, 1)
SERIES_LEVEL: Final = (math.log(100.0), 0.5)  # per-series level: LogNormal(log 100, 0.5)
ANOMALY_SCALE: Final = (4.0, 8.0)  # an anomaly moves the value by 4-8 x max(noise, 0.05) x level

# Stream identifiers (part of every spawn key): never renumber, or old seeds give other records.
_USERS, _TRANSACTIONS, _SERIES, _USER_PARAMS, _SERIES_PARAMS = 1, 2, 3, 4, 5
_NAME, _FIRST, _LAST, _EMAIL, _AGE, _CITY, _SIGNUP, _TOKEN = 1, 2, 3, 4, 5, 6, 7, 8
_WHO, _AMOUNT, _CATEGORY, _WHEN, _NOISE, _ANOMALY = 1, 2, 3, 4, 5, 6

Texts = npt.NDArray[np.str_]
_NUMBERS: Final = np.array([str(i) for i in range(100)], dtype=np.str_)
Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]
Mask = npt.NDArray[np.bool_]


class RecipeError(ValueError):
    """A recipe that cannot be generated (e.g. a locale whose country has no city in the corpus)."""


@dataclass(frozen=True)
class SeriesShape:
    """The time series settings (see the SyntheticDataset spec's ``timeSeries``)."""

    start: dt.datetime = TIME_SERIES_START
    interval_seconds: float = 60.0
    series: int = 1
    period_seconds: float = 86400.0
    trend: float = 0.0
    amplitude: float = 0.3
    noise: float = 0.1
    anomaly_rate: float = 0.0


@dataclass(frozen=True)
class Recipe:
    """Everything that decides the records (a SyntheticDataset spec, or the CLI's options)."""

    kind: str
    count: int
    seed: int = 0
    locale: str = "en_US"
    users: int | None = None  # transactions: distinct users (default: count // 10, at least 1)
    series: SeriesShape = field(default_factory=SeriesShape)
    api_tokens: int = 0  # users: how many carry a fake API token

    @property
    def country(self) -> str:
        return self.locale.split("_")[-1]

    @property
    def total(self) -> int:
        """Records in the dataset (a time series has ``count`` points per series)."""
        return self.count * self.series.series if self.kind == "timeseries" else self.count

    @property
    def distinct_users(self) -> int:
        return self.users if self.users is not None else max(1, self.count // 10)

    def key(self) -> str:
        """A stable text of every field that decides the records."""
        s = self.series
        return (
            f"v1|{self.kind}|{self.count}|{self.seed}|{self.locale}|{self.distinct_users}|{self.api_tokens}|"
            f"{s.start.isoformat()}|{s.interval_seconds!r}|{s.series}|{s.period_seconds!r}|{s.trend!r}|"
            f"{s.amplitude!r}|{s.noise!r}|{s.anomaly_rate!r}"
        )


@dataclass(frozen=True)
class Column:
    name: str
    sql: str  # the PostgreSQL type
    json: str  # string, number or boolean


@dataclass
class Block:
    """Records ``start`` .. ``start + len``: each column as text, the null masks, and raw values."""

    start: int
    fields: list[Texts]
    nulls: dict[int, Mask] = field(default_factory=dict)
    raw: dict[str, npt.NDArray[np.generic]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.fields[0]) if self.fields else 0

    def slice(self, lo: int, hi: int) -> Block:
        """Records ``lo`` .. ``hi`` (absolute indices) of this block."""
        a, b = lo - self.start, hi - self.start
        return Block(
            lo,
            [f[a:b] for f in self.fields],
            {i: m[a:b] for i, m in self.nulls.items()},
            {k: v[a:b] for k, v in self.raw.items()},
        )


class Generator(Protocol):
    @property
    def recipe(self) -> Recipe: ...

    @property
    def columns(self) -> tuple[Column, ...]: ...

    def block(self, index: int) -> Block: ...


def rng(seed: int, *key: int) -> np.random.Generator:
    """The generator of one stream: ``SeedSequence(seed, spawn_key=key)`` into PCG64."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=key)))


def cumulative(weights: Sequence[float] | Floats) -> Floats:
    """Normalised cumulative weights, the last exactly 1."""
    cum = np.cumsum(np.asarray(weights, dtype=np.float64))
    cum /= cum[-1]
    cum[-1] = 1.0
    return cum


def pick(cum: Floats, u: Floats) -> Ints:
    """Inverse-CDF sampling: the index of each uniform in the cumulative table."""
    return np.minimum(np.searchsorted(cum, u, side="right"), len(cum) - 1).astype(np.int64)


def hour_of_week_weights() -> Floats:
    """The 168 hourly weights of a week (Monday 00:00 UTC first)."""
    return np.array([WEEKLY[h // 24] * HOURLY[h % 24] for h in range(168)], dtype=np.float64)


_HOURS: Final = np.array([f"{h:02d}" for h in range(24)], dtype=np.str_)
_MINUTES_SECONDS: Final = np.array([f"{m:02d}:{s:02d}" for m in range(60) for s in range(60)], dtype=np.str_)


def timestamps(seconds: Ints) -> Texts:
    """Unix seconds as RFC 3339 UTC text (``2024-03-01T09:15:02Z``): the dates of the block's days
    formatted once each, the times of day from tables."""
    if not len(seconds):
        return np.array([], dtype=np.str_)
    days = seconds // 86400
    first = int(days.min())
    dates = (np.arange(first, int(days.max()) + 1, dtype=np.int64) * 86400).astype("datetime64[s]")
    of_day = seconds - days * 86400
    return join(
        dates.astype("datetime64[D]").astype("U10")[days - first],
        "T",
        _HOURS[of_day // 3600],
        ":",
        _MINUTES_SECONDS[of_day % 3600],
        "Z",
    )


def timestamps_ms(millis: Ints) -> Texts:
    return np.strings.add(millis.astype("datetime64[ms]").astype("U23"), "Z")


def cents_text(cents: Ints) -> Texts:
    whole = (cents // 100).astype("U")
    return np.strings.add(np.strings.add(whole, "."), np.strings.zfill((cents % 100).astype("U"), 2))


def join(*parts: npt.NDArray[Any] | str | bytes) -> npt.NDArray[Any]:
    """Element-wise concatenation (text with text, bytes with bytes)."""
    add: Any = np.strings.add  # typed for text only; it concatenates bytes alike
    out = parts[0]
    for part in parts[1:]:
        out = add(out, part)
    return np.asarray(out)


# --------------------------------------------------------------------------- users


@dataclass(frozen=True)
class UserModel:
    """What users are drawn from: chains, training cities, per-country tables (from the corpora)."""

    male: Chain
    female: Chain
    last: Chain
    cities: corpora.CityTable
    world: Floats  # cumulative population over every training city
    domains: tuple[str, ...]
    domain_rows: Floats  # per country row: the flat cumulative table (row + cum)
    domain_row_of: Mapping[str, int]  # country -> row (0: the global shares)
    latitudes: Texts  # per training city, as text
    longitudes: Texts
    countries: tuple[str, ...]  # country code per index (the city table's countries, sorted)
    country_of_city: Ints
    currencies: tuple[str, ...]  # per country index

    def home(self, country: str) -> Floats:
        return _home_table(self, country)


@functools.cache
def user_model() -> UserModel:
    """Trained on the training part of the corpora (blocking: reads package files)."""
    cities = corpora.cities().part(held=False)
    codes = tuple(sorted(set(cities.countries.tolist())))
    index = {c: i for i, c in enumerate(codes)}
    known = corpora.countries()
    domains = tuple(
        dict.fromkeys([d for d, _ in GLOBAL_DOMAINS] + [d for v in COUNTRY_DOMAINS.values() for d, _ in v])
    )
    rows = [dict(GLOBAL_DOMAINS)] + [dict(GLOBAL_DOMAINS) | dict(v) for v in COUNTRY_DOMAINS.values()]
    row_of = {c: i + 1 for i, c in enumerate(COUNTRY_DOMAINS)}
    flat = np.concatenate([r + cumulative([row.get(d, 0.0) for d in domains]) for r, row in enumerate(rows)])
    return UserModel(
        male=Chain.train(corpora.names("male").part(held=False)),
        female=Chain.train(corpora.names("female").part(held=False)),
        last=Chain.train(corpora.names("last").part(held=False)),
        cities=cities,
        world=cumulative(cities.populations),
        domains=domains,
        domain_rows=np.maximum.accumulate(flat),
        domain_row_of=row_of,
        latitudes=cities.latitudes.astype("U"),
        longitudes=cities.longitudes.astype("U"),
        countries=codes,
        country_of_city=np.array([index[c] for c in cities.countries.tolist()], dtype=np.int64),
        currencies=tuple(known[c].currency if c in known else "USD" for c in codes),
    )


_HOMES: dict[str, Floats] = {}


def _home_table(model: UserModel, country: str) -> Floats:
    found = _HOMES.get(country)
    if found is None:
        weights = np.where(model.cities.countries == country, model.cities.populations, 0.0)
        if not weights.any():
            raise RecipeError(f"no city of country {country!r} in the city corpus")
        found = _HOMES[country] = cumulative(weights)
    return found


def check_locale(locale: str) -> str | None:
    """Why a locale cannot be generated (its country has no city in the corpus), or None."""
    country = locale.split("_")[-1]
    if country not in set(corpora.cities().countries.tolist()):
        return f"no city of country {country} in the city corpus (GeoNames cities of 15,000+ inhabitants)"
    try:
        _home_table(user_model(), country)
    except RecipeError as error:
        return str(error)
    return None


class Users:
    """Users: ``id, first_name, last_name, email, age, city, country, latitude, longitude, signup_at``
    and, when some carry a fake API token, ``api_token``."""

    def __init__(self, recipe: Recipe, model: UserModel | None = None) -> None:
        self.recipe = recipe
        self.model = model or user_model()
        self.home = self.model.home(recipe.country)
        columns = [
            Column("id", "bigint", "number"),
            Column("first_name", "text", "string"),
            Column("last_name", "text", "string"),
            Column("email", "text", "string"),
            Column("age", "smallint", "number"),
            Column("city", "text", "string"),
            Column("country", "char(2)", "string"),
            Column("latitude", "double precision", "number"),
            Column("longitude", "double precision", "number"),
            Column("signup_at", "timestamptz", "string"),
        ]
        if recipe.api_tokens:
            columns.append(Column("api_token", "text", "string"))
        self.columns = tuple(columns)
        digits = max(2, len(str(max(recipe.count - 1, 0))))
        self._modulus = 10**digits
        self._multiplier = 7_777_777_777 % self._modulus  # odd, not a multiple of 5: a bijection mod 10^d
        self._offset = recipe.seed % self._modulus

    def _range(self, index: int) -> Ints:
        return np.arange(index * BLOCK, min((index + 1) * BLOCK, self.recipe.count), dtype=np.int64)

    def city_indices(self, index: int, n: int | None = None) -> Ints:
        """The training-city index of each user of a block (its own stream: transactions reuse it)."""
        n = len(self._range(index)) if n is None else n
        u = rng(self.recipe.seed, _USERS, index, _CITY).random((2, n))
        return np.where(u[0] < FOREIGN_SHARE, pick(self.model.world, u[1]), pick(self.home, u[1]))

    def block(self, index: int) -> Block:
        seed, model = self.recipe.seed, self.model
        ids = self._range(index)
        n = len(ids)
        female = rng(seed, _USERS, index, _NAME).random(n) < 0.5
        uniforms = rng(seed, _USERS, index, _FIRST).random((MAX_LENGTH + 1, n))
        first_codes = np.zeros((n, MAX_LENGTH), dtype=np.uint8)
        first_codes[~female] = model.male.codes(uniforms[:, ~female])
        first_codes[female] = model.female.codes(uniforms[:, female])
        last_codes = model.last.codes(rng(seed, _USERS, index, _LAST).random((MAX_LENGTH + 1, n)))
        first = capitalised(first_codes).astype("U14")
        last = capitalised(last_codes).astype("U14")
        email = self._emails(index, ids, first_codes, last_codes)
        cities = self.city_indices(index, n)
        country_index = model.country_of_city[cities]
        domain_row = np.array([model.domain_row_of.get(c, 0) for c in model.countries], dtype=np.int64)[
            country_index
        ]
        u_domain = rng(seed, _USERS, index, _EMAIL, 1).random(n)
        domain = np.searchsorted(model.domain_rows, domain_row + u_domain, side="right") - domain_row * len(
            model.domains
        )
        domain = np.clip(domain, 0, len(model.domains) - 1)
        email = join(email, b"@", np.array(model.domains, dtype=np.bytes_)[domain]).astype("U")
        z = rng(seed, _USERS, index, _AGE).standard_normal(n)
        age = np.clip(np.rint(AGE_MEAN + AGE_SD * z), AGE_MIN, AGE_MAX).astype(np.int64)
        signup = self._signups(index, n)
        fields = [
            ids.astype("U"),
            first,
            last,
            email,
            _NUMBERS[age],
            model.cities.names[cities],
            model.cities.countries[cities],
            model.latitudes[cities],
            model.longitudes[cities],
            timestamps(signup),
        ]
        nulls: dict[int, Mask] = {}
        if self.recipe.api_tokens:
            tokens, has = self._tokens(index, ids)
            fields.append(np.where(has, tokens, ""))
            nulls[len(fields) - 1] = ~has
        raw: dict[str, npt.NDArray[np.generic]] = {
            "age": age,
            "city": cities,
            "domain": domain,
            "signup": signup,
        }
        return Block(int(ids[0]) if n else index * BLOCK, fields, nulls, raw)

    def _emails(
        self,
        index: int,
        ids: Ints,
        first_codes: npt.NDArray[np.uint8],
        last_codes: npt.NDArray[np.uint8],
    ) -> Texts:
        n = len(ids)
        style = pick(cumulative(EMAIL_STYLES), rng(self.recipe.seed, _USERS, index, _EMAIL).random(n))
        # built as ASCII bytes (a quarter of the memory traffic of text), decoded once by the caller
        first_lower, last_lower = lowercase(first_codes), lowercase(last_codes)
        first_initial, last_initial = lowercase(first_codes[:, :1]), lowercase(last_codes[:, :1])
        p1 = np.where(style == 2, first_initial, first_lower)
        sep = np.array([b".", b"", b"", b"_", b"", b""], dtype=np.bytes_)[style]
        p2 = np.where(style == 4, last_initial, np.where(style == 5, b"", last_lower))
        number = (self._multiplier * ids + self._offset) % self._modulus  # unique: a bijection of the id
        return join(p1, sep, p2, number.astype("S"))

    def _signups(self, index: int, n: int) -> Ints:
        u = rng(self.recipe.seed, _USERS, index, _SIGNUP).random((3, n))
        day = np.floor(u[0] * SIGNUP_DAYS).astype(np.int64)
        hour = pick(cumulative(HOURLY), u[1])
        second = np.floor(u[2] * 3600).astype(np.int64)
        return np.asarray(int(SIGNUP_FROM.timestamp()) + day * 86400 + hour * 3600 + second, dtype=np.int64)

    def _tokens(self, index: int, ids: Ints) -> tuple[Texts, Mask]:
        count, wanted = self.recipe.count, self.recipe.api_tokens
        has = (ids * wanted) // count != ((ids + 1) * wanted) // count  # exactly `wanted` users, spread
        draws = rng(self.recipe.seed, _USERS, index, _TOKEN).integers(0, len(TOKEN_ALPHABET), (len(ids), 48))
        alphabet = np.frombuffer(TOKEN_ALPHABET.encode(), dtype=np.uint8)
        tokens = (
            np.ascontiguousarray(alphabet[draws]).view(f"S{TOKEN_LENGTH}").ravel().astype(f"U{TOKEN_LENGTH}")
        )
        return tokens, has


# --------------------------------------------------------------------------- transactions


class Transactions:
    """``id, user_id, amount, currency, merchant_category, occurred_at``; users as the users dataset of
    the same seed and locale (user ``u`` lives where user ``u`` of that dataset lives)."""

    columns: tuple[Column, ...] = (
        Column("id", "bigint", "number"),
        Column("user_id", "bigint", "number"),
        Column("amount", "numeric(12,2)", "number"),
        Column("currency", "char(3)", "string"),
        Column("merchant_category", "text", "string"),
        Column("occurred_at", "timestamptz", "string"),
    )

    def __init__(self, recipe: Recipe, model: UserModel | None = None) -> None:
        self.recipe = recipe
        users = recipe.distinct_users
        people = Users(Recipe("users", users, recipe.seed, recipe.locale), model)
        cities = np.concatenate([people.city_indices(b) for b in range(-(-users // BLOCK))])
        self.currency_of_user = np.array(people.model.currencies, dtype=np.str_)[
            people.model.country_of_city[cities]
        ]
        params = rng(recipe.seed, _USER_PARAMS, 0).random((3, users))
        g = rng(recipe.seed, _USER_PARAMS, 1).standard_normal((2, users))
        self.mu = USER_MU[0] + USER_MU[1] * g[0]
        self.sigma = USER_SIGMA[0] + (USER_SIGMA[1] - USER_SIGMA[0]) * params[0]
        self.activity = cumulative(np.exp(ACTIVITY_SIGMA * g[1]))
        self.categories = np.array([m[0] for m in MERCHANTS], dtype=np.str_)
        self.category_cum = cumulative([m[1] for m in MERCHANTS])
        self.log_multiplier = np.log(np.array([m[2] for m in MERCHANTS], dtype=np.float64))
        self.week = cumulative(hour_of_week_weights())

    def block(self, index: int) -> Block:
        seed = self.recipe.seed
        ids = np.arange(index * BLOCK, min((index + 1) * BLOCK, self.recipe.count), dtype=np.int64)
        n = len(ids)
        who = pick(self.activity, rng(seed, _TRANSACTIONS, index, _WHO).random(n))
        category = pick(self.category_cum, rng(seed, _TRANSACTIONS, index, _CATEGORY).random(n))
        z = rng(seed, _TRANSACTIONS, index, _AMOUNT).standard_normal(n)
        log_amount = self.mu[who] + self.log_multiplier[category] + self.sigma[who] * z
        cents = np.maximum(np.rint(np.exp(log_amount) * 100.0), 1).astype(np.int64)
        u = rng(seed, _TRANSACTIONS, index, _WHEN).random((3, n))
        week = np.floor(u[0] * TRANSACTION_WEEKS).astype(np.int64)
        hour = pick(self.week, u[1])
        when = (
            int(TRANSACTIONS_FROM.timestamp())
            + week * 604800
            + hour * 3600
            + np.floor(u[2] * 3600).astype(np.int64)
        )
        fields = [
            ids.astype("U"),
            who.astype("U"),
            cents_text(cents),
            self.currency_of_user[who],
            self.categories[category],
            timestamps(when),
        ]
        raw: dict[str, npt.NDArray[np.generic]] = {
            "user": who,
            "cents": cents,
            "category": category,
            "when": when,
            "z": (np.log(cents / 100.0) - self.mu[who] - self.log_multiplier[category]) / self.sigma[who],
        }
        return Block(index * BLOCK, fields, {}, raw)


# --------------------------------------------------------------------------- time series


class TimeSeries:
    """``series, ts, value, anomaly``: ``count`` points of each series, time-major (every series at
    one time, then the next time)."""

    columns: tuple[Column, ...] = (
        Column("series", "integer", "number"),
        Column("ts", "timestamptz", "string"),
        Column("value", "double precision", "number"),
        Column("anomaly", "boolean", "boolean"),
    )

    def __init__(self, recipe: Recipe) -> None:
        self.recipe = recipe
        shape = recipe.series
        params = rng(recipe.seed, _SERIES_PARAMS, 0).random((2, shape.series))
        self.level = np.exp(
            SERIES_LEVEL[0]
            + SERIES_LEVEL[1] * rng(recipe.seed, _SERIES_PARAMS, 1).standard_normal(shape.series)
        )
        self.phase = 2 * np.pi * params[0]
        self.start_ms = round(shape.start.timestamp() * 1000)
        self.step_ms = round(shape.interval_seconds * 1000)
        self.points_per_period = shape.period_seconds / shape.interval_seconds
        self.millis = self.start_ms % 1000 != 0 or self.step_ms % 1000 != 0

    def expected(self, series: Ints, t: Ints) -> Floats:
        """The value without noise or anomalies: level x (1 + trend x periods + amplitude x sin)."""
        shape = self.recipe.series
        periods = t / self.points_per_period
        season = np.sin(2 * np.pi * periods + self.phase[series])
        return np.asarray(self.level[series] * (1.0 + shape.trend * periods + shape.amplitude * season))

    def block(self, index: int) -> Block:
        shape, seed = self.recipe.series, self.recipe.seed
        ids = np.arange(index * BLOCK, min((index + 1) * BLOCK, self.recipe.total), dtype=np.int64)
        n = len(ids)
        t, series = ids // shape.series, ids % shape.series
        noise = rng(seed, _SERIES, index, _NOISE).standard_normal(n)
        value = self.expected(series, t) + self.level[series] * shape.noise * noise
        u = rng(seed, _SERIES, index, _ANOMALY).random((3, n))
        anomaly = u[0] < shape.anomaly_rate
        size = ANOMALY_SCALE[0] + (ANOMALY_SCALE[1] - ANOMALY_SCALE[0]) * u[1]
        sign = np.where(u[2] < 0.5, -1.0, 1.0)
        value = np.where(anomaly, value + sign * size * max(shape.noise, 0.05) * self.level[series], value)
        value = np.round(value, 4)
        millis = self.start_ms + t * self.step_ms
        when = timestamps_ms(millis) if self.millis else timestamps(millis // 1000)
        fields = [series.astype("U"), when, value.astype("U"), np.where(anomaly, "true", "false")]
        raw: dict[str, npt.NDArray[np.generic]] = {
            "series": series,
            "t": t,
            "value": value,
            "anomaly": anomaly,
        }
        return Block(index * BLOCK, fields, {}, raw)


# --------------------------------------------------------------------------- ranges


def generator(recipe: Recipe) -> Generator:
    """The generator of a recipe (blocking on first use: trains on the corpora)."""
    if recipe.kind == "users":
        return Users(recipe)
    if recipe.kind == "transactions":
        return Transactions(recipe)
    if recipe.kind == "timeseries":
        return TimeSeries(recipe)
    raise RecipeError(f"unknown kind {recipe.kind!r}: expected one of {', '.join(KINDS)}")


def blocks(gen: Generator, start: int = 0, stop: int | None = None) -> Iterator[Block]:
    """Records ``start`` .. ``stop`` as blocks (the first and last cut to the range)."""
    stop = gen.recipe.total if stop is None else min(stop, gen.recipe.total)
    index = start // BLOCK
    while index * BLOCK < stop:
        block = gen.block(index)
        lo, hi = max(start, index * BLOCK), min(stop, index * BLOCK + len(block))
        yield block if (lo, hi) == (index * BLOCK, index * BLOCK + len(block)) else block.slice(lo, hi)
        index += 1


def chunks(gen: Generator, size: int, start: int = 0, stop: int | None = None) -> Iterator[list[Block]]:
    """Records ``start`` .. ``stop`` in chunks of ``size`` records (the unit of one write); each block
    is made once, whatever the chunk size."""
    stop = gen.recipe.total if stop is None else min(stop, gen.recipe.total)
    pending: list[Block] = []
    filled = 0
    for block in blocks(gen, start, stop):
        while len(block):
            room = size - filled
            if len(block) <= room:
                pending.append(block)
                filled += len(block)
                break
            pending.append(block.slice(block.start, block.start + room))
            block = block.slice(block.start + room, block.start + len(block))
            filled = size
            yield pending
            pending, filled = [], 0
        if filled == size:
            yield pending
            pending, filled = [], 0
    if pending:
        yield pending

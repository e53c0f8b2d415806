"""The backtest config file: `[run]`, `[venue]` and `[strategy]` tables, typed and strict.

Relative paths are resolved against the config file's directory, so a config runs the same from
any working directory. The fully resolved config is written into every run directory.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

import msgspec
from nautilus_trader.config import StrategyConfig

from data.venues import PROFILES, venue_profile
from strategies.config import ConfigError, MarketMakerConfig, friendly_error, parse_strategy_config


class RunSection(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    name: str = "run"
    seed: int = 0
    catalog: str = ""
    instrument_id: str = ""
    start: str = ""  # ISO time, or an offset from the tape start like "+30min"; "" = tape start
    end: str = ""
    out: str = "runs"
    sample_interval_ms: int = 1_000  # equity.parquet sampling step
    chunk_minutes: int = 15  # data streamed into the engine this many minutes at a time
    # NautilusTrader's log level for the run ("ERROR", "WARNING", "INFO", "DEBUG"); "OFF" bypasses
    # logging altogether, which is faster. A process's first engine sets it for the process.
    log_level: Literal["OFF", "ERROR", "WARNING", "INFO", "DEBUG"] = "OFF"


class VenueSection(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """The simulated venue. Unset values come from the venue profile (data/venues.py), which is
    `profile` or else the one the catalog names; `resolve_venue` fills them in before a run."""

    profile: str = ""  # a venue profile name; "" = the catalog's
    book_type: Literal["L2_MBP"] = "L2_MBP"
    # "queue": queue position, prints and book crosses fill our resting orders (backtests/fills).
    # "cross": NautilusTrader 1.221's own matching: a resting order fills only when the book crosses it.
    fill_model: Literal["queue", "cross"] = "queue"
    queue_model: Literal["prob_power", "risk_averse"] = "prob_power"
    queue_power: float = 2.0  # n of prob_power's f(x) = x**n
    latency_ms: float | None = None  # order insert and cancel latency
    insert_latency_ms: float | None = None  # overrides latency_ms for inserts
    cancel_latency_ms: float | None = None  # overrides latency_ms for cancels
    maker_fee: float | None = None
    taker_fee: float | None = None
    action_cost: float | None = None  # quote currency per place / cancel / replace
    # Funding, in the quote and base currencies (a spot account: selling needs base to sell).
    # Unset: five times the strategy's max_notional and max_position, enough never to bind.
    starting_quote: float | None = None
    starting_base: float | None = None


class SignalSection(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """The ML signal actor, run when `strategy.use_signal` is true."""

    model: str = ""  # trained artifact directory (models/artifacts/NAME); "" = rule-based fallback only
    latency_budget_ms: float = 5.0
    trip_after: int = 3  # consecutive over-budget inferences that trip the breaker
    cooldown_secs: float = 60.0  # how long a tripped model stays out before it is retried
    # Backtests only: the inference time each call is taken to have ("simulated", deterministic
    # whatever the machine's load), or "measured" (`flashmm bench` measures the real one). The live
    # node always measures.
    inference_latency: Literal["simulated", "measured"] = "simulated"
    simulated_inference_us: float = 100.0
    # Backtests only: compute the signal ahead of the engine, chunk by chunk, and replay it at each
    # book batch (models/replay.py: the same features, model calls and breaker as the online actor,
    # outside the engine's loop), or run the online actor inside the engine as a live node does.
    replay: bool = True
    # With `replay`: compute the signal in a forked worker process a chunk ahead of the engine when
    # the machine has a second core and the run may fork (not inside a sweep's pool worker); the
    # same rows as in the run's own process (models/replay.py). false = always in the run's process.
    worker: bool = True


def resolve_venue(venue: VenueSection, catalog_profile: str, strategy: MarketMakerConfig) -> VenueSection:
    """`venue` with every unset value filled from its venue profile and the strategy's limits."""
    name = venue.profile or catalog_profile
    profile = venue_profile(name) if name else None

    def given(value, default):
        if value is not None:
            return value
        if profile is None:
            raise ConfigError("no venue profile: the catalog names none, so set venue.profile to one of "
                              f"{', '.join(sorted(PROFILES))} (or set every venue value)")
        return default

    latency = given(venue.latency_ms, profile and profile.latency_ms)
    return msgspec.structs.replace(
        venue, profile=name, latency_ms=latency,
        insert_latency_ms=venue.insert_latency_ms if venue.insert_latency_ms is not None else latency,
        cancel_latency_ms=venue.cancel_latency_ms if venue.cancel_latency_ms is not None else latency,
        maker_fee=given(venue.maker_fee, profile and profile.maker_fee),
        taker_fee=given(venue.taker_fee, profile and profile.taker_fee),
        action_cost=given(venue.action_cost, profile and profile.action_cost),
        starting_quote=given(venue.starting_quote, 5 * strategy.max_notional),
        starting_base=given(venue.starting_base, 5 * strategy.max_position),
    )


def resolve_strategy(raw: dict[str, Any], profile_name: str) -> dict[str, Any]:
    """The strategy table with what defaults to the venue filled in: the requote interval is the
    venue's update cadence unless set."""
    if raw.get("requote_interval_ms") is None and profile_name:
        raw = {**raw, "requote_interval_ms": round(venue_profile(profile_name).cadence_ms)}
    return raw


class BacktestConfig(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    run: RunSection = RunSection()
    venue: VenueSection = VenueSection()
    signal: SignalSection = SignalSection()
    strategy: dict[str, Any] = {}

    def strategy_config(self) -> MarketMakerConfig:
        return parse_strategy_config(self.strategy)

    def to_dict(self) -> dict[str, Any]:
        return msgspec.to_builtins(self)

    def resolved(self, catalog_meta: dict[str, Any]) -> BacktestConfig:
        """This config with the venue profile's values (the catalog's profile unless `venue.profile`
        names one) filled in wherever the file left them unset: what a run actually uses."""
        venue = resolve_venue(self.venue, catalog_meta.get("venue_profile", ""), self.strategy_config())
        return msgspec.structs.replace(self, venue=venue, strategy=resolve_strategy(self.strategy, venue.profile))


def as_logged(strategy: StrategyConfig, log_level: str) -> StrategyConfig:
    """`strategy` as a run at `log_level` runs it. With the run's logging off (bypassed), the
    strategy does not ask NautilusTrader to log its order commands and events (`log_commands`,
    `log_events`): the engine formats each such line before its bypassed logger drops it, ~20 us
    an order on the sample (docs/bench.md). At any level that prints, the strategy's own choice stands."""
    if log_level != "OFF":
        return strategy
    return msgspec.structs.replace(strategy, log_events=False, log_commands=False)


def load_toml_file(path: Path, kind: str) -> dict[str, Any]:
    """The file's TOML, or a ConfigError naming the `kind` of file and what is wrong with it."""
    if not path.is_file():
        raise ConfigError(f"{kind} {path} does not exist")
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


def read_toml(path: str | Path, overrides: dict[str, Any] | None, paths: tuple[tuple[str, str], ...]) -> dict[str, Any]:
    """A config file's tables with `overrides` ("section.key" -> value) applied and the `paths`
    ((section, key) pairs) resolved against the file's directory (after `~` expansion)."""
    path = Path(path)
    raw = load_toml_file(path, "config file")
    for dotted, value in (overrides or {}).items():
        section, _, key = dotted.partition(".")
        raw.setdefault(section, {})[key] = value
    for section, key in paths:
        value = raw.get(section, {}).get(key)
        if value:
            p = Path(value).expanduser()
            raw[section][key] = str(p if p.is_absolute() else (path.parent / p).resolve())
    return raw


def convert(raw: dict[str, Any], cls: type, source: str):
    """`raw` as the typed config `cls`, with an error that names the file and the bad key."""
    try:
        return msgspec.convert(raw, cls)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{source}: {friendly_error(str(exc))}") from None


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> BacktestConfig:
    """Read and validate a TOML config; `overrides` maps "section.key" to a value."""
    raw = read_toml(path, overrides, (("run", "catalog"), ("signal", "model")))
    return parse_config(raw, source=str(path))


def parse_config(raw: dict[str, Any], source: str = "config") -> BacktestConfig:
    config = convert(raw, BacktestConfig, source)
    config.strategy_config()  # validate now, not halfway through a run
    if not config.run.catalog:
        raise ConfigError(f"{source}: run.catalog is required (or pass --catalog)")
    return config

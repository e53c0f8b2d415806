"""Typed, frozen configuration for the market maker; unknown keys are rejected, not ignored.

A typo in a risk limit that silently falls back to a default is how market makers lose money, so
every field is typed and every unknown key is an error naming the key.
"""

from __future__ import annotations

import re
from typing import Any, Literal

import msgspec
from nautilus_trader.common.config import msgspec_decoding_hook
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.trading.config import StrategyConfig


class ConfigError(ValueError):
    """A configuration value is missing, unknown or out of range."""


class MarketMakerConfig(StrategyConfig, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """Market maker parameters. Prices in bps are relative to fair value; sizes in the base currency.

    Spread models
    -------------
    fixed               half spread = ``half_spread_bps``.
    avellaneda_stoikov  reservation r = s - q*gamma*sigma^2*tau, total spread
                        gamma*sigma^2*tau + (2/gamma)*ln(1 + gamma/kappa), tau = ``as_horizon_secs``.
    glft                Gueant-Lehalle-Fernandez-Tapia closed form (as in hftbacktest's tutorial):
                        c1 = ln(1 + gamma/k)/gamma, c2 = sqrt(gamma/(2*A*k) * (1+gamma/k)^(k/gamma+1)),
                        half spread = c1 + sigma*c2/2, skew = sigma*c2 per unit of q.
    Both model-based spreads work in ticks: sigma is the mid's volatility in ticks per
    sqrt(second) over ``vol_window_secs``, kappa and k are per tick, and q is the inventory
    (minus target) in units of ``order_size``.
    ``linear_skew_bps`` (a price skew) and ``size_skew`` apply on top of any model.
    """

    instrument_id: InstrumentId
    # Quote ladder
    levels: int = 3
    level_spacing_ticks: int = 1
    order_size: float = 200.0
    size_growth: float = 1.0
    # Spread model
    spread_model: Literal["fixed", "avellaneda_stoikov", "glft"] = "fixed"
    half_spread_bps: float = 4.0
    min_spread_bps: float = 2.0
    gamma: float = 0.1
    kappa: float = 1.5
    glft_a: float = 1.0
    glft_k: float = 1.5
    as_horizon_secs: float = 60.0
    vol_window_secs: float = 60.0
    fair_value: Literal["mid", "microprice"] = "mid"
    # Inventory
    inventory_target: float = 0.0
    linear_skew_bps: float = 2.0
    size_skew: float = 0.5
    max_position: float = 5_000.0
    max_notional: float = 2_500.0
    # Requoting
    requote_interval_ms: int | None = None  # None: the venue's update cadence (its profile)
    requote_tolerance_bps: float = 1.0
    max_order_age_secs: float = 30.0
    # Keep a resting order instead of replacing it when it is at most this many ticks less
    # aggressive than the ladder wants (never more aggressive), and at most `size_tolerance`
    # smaller (never larger): fewer transactions, and the order keeps its queue position.
    requote_hysteresis_ticks: int = 0
    size_tolerance: float = 0.0
    # Signal hook: with use_signal the strategy trades on the ML actor's SignalData (models/). Each
    # use is switchable, and `flashmm ablation` runs each alone against the signal off.
    use_signal: bool = False
    signal_min_confidence: float = 0.0  # below this |p_up - p_down| no directional use acts
    # Fair skew: fair value moves toward the expected mid move over the model's horizon.
    signal_fair_skew: bool = True
    signal_fair_shift_mult: float = 1.0  # fair value shift = mult x expected move (bps)
    # Adverse-selection protection: the side the expected move would run over (the bid when the
    # model leans down, the ask when it leans up) steps back, or is pulled.
    signal_adverse_protection: bool = True
    signal_adverse_edge: float = 0.4  # |p_up - p_down| from which the side at risk steps back
    signal_adverse_release: float = 0.2  # ...until |p_up - p_down| falls below this (hysteresis: fewer flips)
    signal_adverse_widen_bps: float = 2.0  # how far it steps back (bps of fair value)
    signal_pull_edge: float = 0.6  # |p_up - p_down| from which it is pulled instead (> 1: never)
    # Size lean: more size on the side the model expects to be right to take.
    # Off by default: each size change is a cancel and a place, and the ablation found it costs more
    # than it earns on the sample's venue (docs/signal.md).
    signal_size_lean: bool = False
    signal_size_skew: float = 0.5  # size lean per unit of (p_up - p_down)
    # Tightening: both sides closer when the model expects no move and no side is at risk. Off by
    # default: the evidence (docs/signal.md, the ablation) has not shown that it pays.
    signal_tighten: bool = False
    signal_tighten_min_flat: float = 0.6  # p_flat from which spreads tighten
    signal_max_tighten: float = 0.3  # spreads at most 30% tighter, at p_flat = 1
    # Clamps on whatever any signal source says
    signal_max_age_ms: int = 2_000
    signal_max_shift_bps: float = 5.0
    signal_max_widen_bps: float = 10.0
    signal_min_spread_scale: float = 0.7
    signal_max_spread_scale: float = 1.5
    # Risk guards
    max_loss: float = 250.0
    max_drawdown: float = 250.0
    stale_after_secs: float = 5.0
    max_orders_per_sec: float = 20.0

    def __post_init__(self) -> None:
        positive = ("levels", "order_size", "size_growth", "max_position", "max_notional",
                    "max_order_age_secs", "stale_after_secs",
                    "max_orders_per_sec", "vol_window_secs", "as_horizon_secs", "gamma", "kappa",
                    "glft_a", "glft_k", "max_loss", "max_drawdown")
        for name in positive:
            if not getattr(self, name) > 0:
                raise ConfigError(f"strategy.{name} must be > 0, got {getattr(self, name)!r}")
        non_negative = ("level_spacing_ticks", "half_spread_bps", "min_spread_bps",
                        "requote_tolerance_bps", "linear_skew_bps", "size_skew", "requote_hysteresis_ticks",
                        "signal_max_age_ms", "signal_max_shift_bps", "signal_fair_shift_mult",
                        "signal_adverse_widen_bps", "signal_size_skew", "signal_max_widen_bps")
        for name in non_negative:
            if getattr(self, name) < 0:
                raise ConfigError(f"strategy.{name} must be >= 0, got {getattr(self, name)!r}")
        if self.requote_interval_ms is not None and self.requote_interval_ms <= 0:
            raise ConfigError(f"strategy.requote_interval_ms must be > 0, got {self.requote_interval_ms!r}")
        if not 0 <= self.size_tolerance < 1:
            raise ConfigError(f"strategy.size_tolerance must be in [0, 1), got {self.size_tolerance!r}")
        if self.levels > 1 and self.level_spacing_ticks < 1:
            raise ConfigError("strategy.level_spacing_ticks must be >= 1 when levels > 1")
        for name in ("signal_min_confidence", "signal_adverse_edge", "signal_adverse_release",
                     "signal_tighten_min_flat", "signal_max_tighten"):
            if not 0 <= getattr(self, name) < 1:
                raise ConfigError(f"strategy.{name} must be in [0, 1), got {getattr(self, name)!r}")
        if not self.signal_adverse_release <= self.signal_adverse_edge:
            raise ConfigError("strategy.signal_adverse_release must be <= signal_adverse_edge (a side leaves "
                              "protection below the edge it entered at)")
        if not self.signal_pull_edge >= self.signal_adverse_edge:
            raise ConfigError("strategy.signal_pull_edge must be >= signal_adverse_edge (pull only where a side "
                              "would already step back; above 1 it never pulls)")
        if not 0 < self.signal_min_spread_scale <= 1 <= self.signal_max_spread_scale:
            raise ConfigError("strategy.signal_min_spread_scale <= 1 <= signal_max_spread_scale must hold")
        if abs(self.inventory_target) >= self.max_position:
            raise ConfigError("strategy.inventory_target must lie strictly inside +-max_position")


def parse_strategy_config(raw: dict[str, Any]) -> MarketMakerConfig:
    """Build the config from a TOML/JSON mapping; errors name the offending key."""
    try:
        return msgspec.convert(raw, MarketMakerConfig, dec_hook=msgspec_decoding_hook)
    except msgspec.ValidationError as exc:
        raise ConfigError(friendly_error(str(exc), "strategy")) from None


def friendly_error(message: str, prefix: str = "") -> str:
    """msgspec's "Object contains unknown field `x` - at `$.run`" -> "unknown key `run.x`"."""
    for pattern, label in (("Object contains unknown field", "unknown key"),
                           ("Object missing required field", "missing key")):
        found = re.match(pattern + r" `(.+?)`(?: - at `\$\.?(.*)`)?$", message)
        if found:
            path = ".".join(p for p in (prefix, found[2] or "", found[1]) if p)
            return f"{label} `{path}`"
    at = re.match(r"(.*) - at `\$\.?(.*)`$", message)
    if at:
        path = ".".join(p for p in (prefix, at[2]) if p)
        return f"`{path}`: {at[1]}"
    return message

"""`flashmm serve`: the node as a container or a systemd service starts it, from environment variables.

A base TOML (`FLASHMM_CONFIG`) holds the strategy; the deployment's environment (docker-compose's
`.env`, systemd's `EnvironmentFile`) supplies what differs per machine, as dotted overrides on
top of it. Then the node runs exactly as `flashmm live --config FILE` runs it.

Every `FLASHMM_*` variable must be one this module reads (or a key's own variable, `[monaco]` or
`[sei]` `key_env`): a misspelt `FLASHMM_API_URL` would otherwise leave the TOML's value in force
without a word. `FLASHMM_KEY_FILE` and `FLASHMM_CHAIN_ID` belong to the venue the node trades
(`FLASHMM_VENUE`, or the TOML's `[venue] kind`): Monaco's chain id is Sei EVM's number (1329), the
CosmWasm CLOB's a Cosmos chain name (pacific-1). An empty variable counts as unset, so an env file
can list every variable. Values are never echoed in errors, except the ones that are checked here
and are not secret (a port, a level, a chain id).
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path

from app.live.config import LiveConfig, load_live_config
from strategies.config import ConfigError

CONFIG_VAR = "FLASHMM_CONFIG"
PREFIX = "FLASHMM_"


def _port(name: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"${name} must be a port number (0-65535), got {value!r}") from None


def _path(name: str, value: str) -> str:
    # Relative to where the service runs, as any path in the environment would be read; the TOML
    # resolves its own relative paths against the TOML's directory.
    return str(Path(value).expanduser().resolve())


def _text(name: str, value: str) -> str:
    return value


def _evm_chain_id(name: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"${name} must be Sei EVM's chain id on Monaco (1329 mainnet, 1328 testnet), "
                          f"got {value!r}") from None


# Environment variable -> (dotted config key, parser). docker-compose.yml, .env.example and
# deploy/flashmm.service use exactly these names (tests/test_ops.py checks them against each other).
ENV_OVERRIDES: dict[str, tuple[str, Callable[[str, str], object]]] = {
    "FLASHMM_MODE": ("node.mode", _text),
    "FLASHMM_LOG_LEVEL": ("node.log_level", _text),
    "FLASHMM_STATE_DIR": ("node.state_dir", _path),
    "FLASHMM_REDIS_URL": ("node.redis_url", _text),
    "FLASHMM_OPS_HOST": ("node.ops_host", _text),
    "FLASHMM_OPS_PORT": ("node.ops_port", _port),
    "FLASHMM_VENUE": ("venue.kind", _text),
    "FLASHMM_API_URL": ("monaco.api_url", _text),
    "FLASHMM_EVM_RPC_URL": ("monaco.evm_rpc_url", _text),
    "FLASHMM_RPC_URL": ("sei.rpc_url", _text),
    "FLASHMM_CONTRACT": ("sei.contract", _text),
}
# The chosen venue's section: (key in it, parser for Monaco, parser for the Sei CosmWasm CLOB).
VENUE_OVERRIDES: dict[str, tuple[str, Callable, Callable]] = {
    "FLASHMM_CHAIN_ID": ("chain_id", _evm_chain_id, _text),
    "FLASHMM_KEY_FILE": ("key_file", _path, _path),
}
ENV_VARS = (CONFIG_VAR, *ENV_OVERRIDES, *VENUE_OVERRIDES)


def config_from_env(environ: Mapping[str, str]) -> LiveConfig:
    """The node's config: `$FLASHMM_CONFIG` with the `FLASHMM_*` overrides of `environ`."""
    base = environ.get(CONFIG_VAR, "")
    if not base:
        raise ConfigError(f"${CONFIG_VAR} is not set: it names the node's base TOML (e.g. deploy/node.toml)")
    overrides = {}
    for name, (key, parse) in ENV_OVERRIDES.items():
        value = environ.get(name, "")
        if value:
            overrides[key] = parse(name, value)
    monaco = overrides.get("venue.kind", _venue_in(Path(base))) == "monaco"
    for name, (key, on_monaco, on_sei) in VENUE_OVERRIDES.items():
        value = environ.get(name, "")
        if value:
            overrides[f"{'monaco' if monaco else 'sei'}.{key}"] = (on_monaco if monaco else on_sei)(name, value)
    config = load_live_config(base, overrides)
    keys = {config.monaco.key_env, config.sei.key_env}
    unknown = sorted(name for name in environ if name.startswith(PREFIX) and name not in ENV_VARS and name not in keys)
    if unknown:
        raise ConfigError(
            f"unknown environment variable(s) {', '.join(unknown)}; flashmm serve reads {', '.join(ENV_VARS)} "
            f"and the key variables ${' and $'.join(sorted(keys))}"
        )
    return config


def _venue_in(base: Path) -> str:
    """The base TOML's `[venue] kind` (its absence: the Sei CosmWasm CLOB); errors are load_live_config's."""
    try:
        kind = tomllib.loads(base.read_text()).get("venue", {}).get("kind", "sei-cosmwasm")
    except (OSError, tomllib.TOMLDecodeError, AttributeError):
        return "sei-cosmwasm"
    return kind if isinstance(kind, str) else "sei-cosmwasm"

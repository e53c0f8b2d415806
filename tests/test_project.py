"""The install and CI contract: the README's commands are what CI runs, and torch stays CPU-only."""

from __future__ import annotations

import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def readme_commands() -> list[str]:
    return re.findall(r"```bash\n(.+?)\n```", (ROOT / "README.md").read_text())


def test_readme_has_exactly_two_setup_commands_and_ci_runs_the_second():
    setup = (ROOT / "README.md").read_text().split("## Set up", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"```bash\n(.+?)\n```", setup)
    assert len(commands) == 2
    assert "flashmm backtest --config backtests/configs/sample.toml" in commands[0]
    assert "pytest" in commands[1]
    ci = (ROOT / ".ci/run").read_text().splitlines()
    assert commands[1] in ci


def test_torch_is_the_cpu_build_and_no_nvidia_packages():
    assert metadata.version("torch").startswith("2.13.0")
    nvidia = sorted(d.metadata["Name"] for d in metadata.distributions() if d.metadata["Name"].lower().startswith("nvidia-"))
    assert nvidia == []
    assert metadata.version("nautilus_trader") == "1.221.0"


def test_top_level_layout():
    for name in ["strategies", "adapters", "backtests", "data", "models", "app", "tests"]:
        assert (ROOT / name).is_dir(), name
    for name in ["pyproject.toml", "Dockerfile", "README.md"]:
        assert (ROOT / name).is_file(), name


LAYERS = ["data", "models", "strategies", "backtests", "adapters", "app"]
# backtests and adapters are siblings: neither imports the other
FORBIDDEN = {layer: set(LAYERS[i + 1:]) for i, layer in enumerate(LAYERS)}
FORBIDDEN["backtests"] = {"adapters", "app"}
FORBIDDEN["adapters"] = {"backtests", "app"}


@pytest.mark.parametrize("layer", LAYERS)
def test_imports_flow_one_way(layer):
    """data -> models -> strategies -> backtests / adapters -> app; a strategy never imports an adapter."""
    pattern = re.compile(r"^\s*(?:from|import)\s+(" + "|".join(FORBIDDEN[layer] or {"$^"}) + r")\b", re.M)
    for path in (ROOT / layer).rglob("*.py"):
        assert not pattern.search(path.read_text()), f"{path} imports a later layer"


@pytest.mark.parametrize("argv", [[], ["backtest"], ["bench"], ["fidelity"], ["data"], ["data", "synth"],
                                  ["data", "import-tardis"], ["sweep"], ["app"], ["localnet"], ["live"], ["record"],
                                  ["parity"], ["serve"]])
def test_every_subcommand_has_help(argv):
    out = subprocess.run([sys.executable, "-m", "app.cli", *argv, "--help"], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert "usage: flashmm" in out.stdout

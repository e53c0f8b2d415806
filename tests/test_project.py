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
    ci = (ROOT / ".ci/run").read_text().splitlines()
    assert commands[1] in ci
    # and nothing else: the shebang, comments, shell options and the move to the repository root
    assert [line for line in ci if line and not line.startswith(("#", "set ", "cd "))] == [commands[1]]


def test_the_test_command_installs_system_packages_then_lints_and_runs_the_suite(tmp_path):
    """scripts/test.sh on a machine without redis-server and chromium: it asks apt-get for exactly
    those (through sudo when not root), builds the venv, runs ruff and then pytest with the given
    arguments, in that order, and stops at the first failure. The outside world (apt-get, sudo,
    python3, the venv's tools) is replaced by recorders on PATH; the script itself runs for real."""
    calls = tmp_path / "calls.log"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    recorder = f"#!/bin/sh\necho \"$(basename \"$0\") $*\" >> {calls}\n"
    (bin_dir / "apt-get").write_text(recorder)
    # sudo records itself, then runs what it was given (apt-get, the recorder above).
    (bin_dir / "sudo").write_text(recorder + 'exec "$@"\n')
    (bin_dir / "id").write_text("#!/bin/sh\necho 1000\n")
    # A nearly full disk: the script warns with the figure before pip fails for want of space.
    (bin_dir / "df").write_text("#!/bin/sh\necho 'Filesystem 1048576-blocks Used Available Capacity Mounted on'\n"
                                "echo '/dev/vda 258048 257760 287 100% /work'\n")
    (bin_dir / "python3").write_text(
        recorder + 'case "$1" in -c) exit 0;; -m) mkdir -p .venv/bin; for t in pip ruff python; do '
        f'cp {bin_dir}/apt-get .venv/bin/$t; done;; esac\n')
    for path in bin_dir.iterdir():
        path.chmod(0o755)
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    (repo / "scripts/test.sh").write_text((ROOT / "scripts/test.sh").read_text())
    # This machine's /usr/bin may hold redis-server and chromium: the PATH gets only the basic tools.
    env = {"PATH": f"{bin_dir}:{_bin_without(tmp_path, 'redis-server', 'chromium')}", "HOME": str(tmp_path)}
    out = subprocess.run(["bash", str(repo / "scripts/test.sh"), "-k", "quick"], cwd=repo, env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "warning: 287 MB free on /work; a new .venv and the suite need about 3.5 GB" in out.stderr
    log = calls.read_text().splitlines()
    assert log[0] == "python3 -c " + log[0].split(" -c ", 1)[1]  # the version check comes first
    assert "sudo apt-get update -qq" in log
    assert any(line.startswith("sudo apt-get install") and line.endswith("redis-server chromium") for line in log)
    assert "python3 -m venv .venv" in log
    pip = [line for line in log if line.startswith("pip install")]
    assert "torch==2.13.0" in pip[0] and "-e .[test]" in pip[1]  # torch first: the CPU wheel
    assert log[-2:] == ["ruff check .", "python -m pytest -n 2 -k quick"]


def _bin_without(tmp_path: Path, *names: str) -> Path:
    """A copy of the commands the script needs from /usr/bin and /bin, without `names`."""
    keep = tmp_path / "sysbin"
    keep.mkdir()
    for tool in ("bash", "dirname", "basename", "cat", "mkdir", "cp", "env", "sh", "awk"):
        for base in ("/usr/bin", "/bin"):
            if (Path(base) / tool).exists() and tool not in names:
                (keep / tool).symlink_to(Path(base) / tool)
                break
    return keep


def test_torch_is_the_cpu_build_and_no_nvidia_packages():
    assert metadata.version("torch").startswith("2.13.0")
    nvidia = sorted(d.metadata["Name"] for d in metadata.distributions()
                    if d.metadata["Name"].lower().startswith("nvidia-"))
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
                                  ["parity"], ["serve"], ["monaco-local"], ["monaco"]])
def test_every_subcommand_has_help(argv):
    out = subprocess.run([sys.executable, "-m", "app.cli", *argv, "--help"], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert "usage: flashmm" in out.stdout

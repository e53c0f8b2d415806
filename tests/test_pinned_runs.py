"""Each pinned run (tests/pinned_runs.py) does what its fixture says it did: the same fills, fill by
fill, and the same orders, quotes, equity and signal rows. A failure means the code changed what a
backtest does; if that was the intent, regenerate the fixtures (`python tests/pinned_runs.py --write`)
and say why in the commit."""

from __future__ import annotations

import json

import pytest
from pinned_runs import PINS, fingerprint, fixture_path


@pytest.mark.parametrize("name", sorted(PINS))
def test_a_pinned_run_does_what_its_fixture_says(name):
    pinned = json.loads(fixture_path(name).read_text())
    now = json.loads(json.dumps(fingerprint(name)))  # through JSON, as the fixture went
    assert (now["config"], now["overrides"]) == (pinned["config"], pinned["overrides"])
    assert len(pinned["fills"][1]) >= 20, "a pin with few fills pins little"
    columns, fills, was = now["fills"][0], now["fills"][1], pinned["fills"][1]
    assert columns == pinned["fills"][0]
    # where they part: the first fill that differs, or the end of the shorter list
    first = next((i for i, (a, b) in enumerate(zip(fills, was, strict=False)) if a != b), min(len(fills), len(was)))
    assert fills == was, (f"{name}: fills differ from fill {first} ({len(fills)} now, {len(was)} pinned): "
                          f"now {fills[first:first + 2]}, pinned {was[first:first + 2]}")
    assert now["metrics"] == pinned["metrics"]
    assert now["sha256"] == pinned["sha256"], {k: (v, pinned["sha256"][k]) for k, v in now["sha256"].items()
                                                if v != pinned["sha256"][k]}

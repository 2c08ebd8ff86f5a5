"""Every script under examples/ runs (on small settings: SYMDL_EXAMPLE_SMALL=1)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).parent.parent / "examples").glob("*.py"))


@pytest.mark.parametrize("script", EXAMPLES, ids=lambda p: p.name)
def test_example_runs(script, tmp_path):
    env = os.environ | {"SYMDL_EXAMPLE_SMALL": "1", "MPLBACKEND": "Agg"}
    result = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    # every figure an example says it saved is a PNG in its working folder
    for saved in re.findall(r"saved to (\S+\.png)", result.stdout):
        assert (tmp_path / saved).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", saved

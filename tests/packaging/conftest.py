"""Shared set-up of the packaging checks: paths, the built binary, and a report printer.

The checks print what they looked at (lint findings, rendered kinds, exposure scores) with
`report()`, so that a passing run still shows what was checked; run pytest with `-s`.
"""

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "netsuite-token-rotator"
SYSTEMD = REPO / "systemd"


def report(line: str) -> None:
    print(f"  [report] {line}", flush=True)


@pytest.fixture(scope="session")
def rotator_binary() -> Path:
    """The built netsuite-token-rotator; scripts/check-packaging.sh builds it and sets NTR_BIN."""
    candidates = [os.environ.get("NTR_BIN", "")]
    target = os.environ.get("CARGO_TARGET_DIR", str(REPO / "target"))
    candidates += [f"{target}/debug/netsuite-token-rotator", f"{target}/release/netsuite-token-rotator"]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return Path(candidate)
    pytest.fail(
        "no netsuite-token-rotator binary: set NTR_BIN or run `cargo build` "
        f"(looked at {[c for c in candidates if c]})"
    )


@pytest.fixture(scope="session")
def systemd_analyze() -> str:
    found = shutil.which("systemd-analyze")
    if not found:
        pytest.fail("systemd-analyze is missing: install Debian's systemd package")
    return found

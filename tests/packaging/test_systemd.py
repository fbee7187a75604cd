"""The systemd units: `systemd-analyze verify` finds nothing, `systemd-analyze security` scores
each service 1.5 or lower, the sysusers entry creates the user, and the ExecStart command lines
are ones the binary accepts.

`verify` needs ExecStart's binary to exist, so it checks copies of the units whose ExecStart
points at the built binary; it runs without systemd as PID 1 (--man=no, plain unit files).
"""

import re
import subprocess
from pathlib import Path

import pytest

from conftest import SYSTEMD, report

UNITS = sorted(p.name for p in SYSTEMD.iterdir() if p.suffix in (".service", ".timer"))
SERVICES = [u for u in UNITS if u.endswith(".service")]
INSTALLED_BINARY = "/usr/bin/netsuite-token-rotator"
MAX_EXPOSURE = 1.5


def run(*argv, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(a) for a in argv], capture_output=True, text=True, stdin=subprocess.DEVNULL,
        timeout=120, **kwargs,
    )


@pytest.fixture(scope="module")
def unit_copies(tmp_path_factory, rotator_binary) -> Path:
    folder = tmp_path_factory.mktemp("units")
    for name in UNITS:
        text = (SYSTEMD / name).read_text()
        (folder / name).write_text(text.replace(INSTALLED_BINARY, str(rotator_binary)))
    return folder


def test_units_are_there():
    assert "netsuite-token-rotator.service" in UNITS
    assert "netsuite-token-rotator-rotate.service" in UNITS
    assert "netsuite-token-rotator-rotate.timer" in UNITS


def test_verify_finds_nothing(systemd_analyze, unit_copies):
    # verify exits 0 on unknown keys and other warnings, so any output is a failure too.
    result = run(systemd_analyze, "verify", "--man=no", *[unit_copies / u for u in UNITS])
    output = (result.stdout + result.stderr).strip()
    assert result.returncode == 0 and not output, output
    report(f"systemd-analyze verify: {len(UNITS)} units, no findings ({', '.join(UNITS)})")


def test_verify_check_catches_a_typo(systemd_analyze, unit_copies, tmp_path):
    broken = tmp_path / "netsuite-token-rotator.service"
    text = (unit_copies / "netsuite-token-rotator.service").read_text()
    broken.write_text(text.replace("ProtectHome=yes", "ProtectHomes=yes"))
    result = run(systemd_analyze, "verify", "--man=no", broken)
    assert "Unknown key" in result.stdout + result.stderr


@pytest.mark.parametrize("service", SERVICES)
def test_security_exposure_is_at_most_1_5(systemd_analyze, unit_copies, service):
    # --threshold is in tenths of the printed score: 15 fails anything above 1.5.
    result = run(
        systemd_analyze, "security", "--offline=true", "--threshold=15", "--no-pager",
        unit_copies / service,
    )
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert match, result.stdout + result.stderr
    score = float(match.group(1))
    exposed = [
        re.sub(r"\s{2,}", " | ", line[1:].strip())
        for line in result.stdout.splitlines() if line.startswith("✗")
    ]
    report(f"systemd-analyze security {service}: {score}")
    for item in exposed:
        report(f"    exposed: {item}")
    assert score <= MAX_EXPOSURE, f"{service} scores {score}"
    assert result.returncode == 0, result.stderr


def test_sysusers_entry_creates_a_locked_system_user(tmp_path):
    (tmp_path / "etc").mkdir()
    result = run("systemd-sysusers", f"--root={tmp_path}", SYSTEMD / "netsuite-token-rotator.sysusers.conf")
    assert result.returncode == 0, result.stderr
    passwd = (tmp_path / "etc" / "passwd").read_text()
    (entry,) = [l for l in passwd.splitlines() if l.startswith("netsuite-token-rotator:")]
    fields = entry.split(":")
    assert 0 < int(fields[2]) < 1000, entry
    assert fields[5] == "/var/lib/netsuite-token-rotator"
    assert fields[6].endswith("nologin"), entry
    report(f"systemd-sysusers: {entry}")


def exec_start(unit: str) -> list[str]:
    (line,) = [l for l in (SYSTEMD / unit).read_text().splitlines() if l.startswith("ExecStart=")]
    return line.removeprefix("ExecStart=").split()


@pytest.mark.parametrize(
    "unit", ["netsuite-token-rotator-rotate.service", "netsuite-token-rotator-revoke.service"]
)
def test_oneshot_command_lines_are_accepted(unit, rotator_binary, tmp_path):
    """The arguments parse: with a missing config the binary gets as far as loading it."""
    argv = exec_start(unit)
    assert argv[:3] == [INSTALLED_BINARY, "--config", "/etc/netsuite-token-rotator/config.toml"]
    result = run(rotator_binary, "--config", tmp_path / "missing.toml", *argv[3:])
    assert result.returncode == 2 and "error: config:" in result.stderr, result.stderr


def test_daemon_command_line_is_the_run_contract(rotator_binary, tmp_path):
    argv = exec_start("netsuite-token-rotator.service")
    assert argv == [INSTALLED_BINARY, "--config", "/etc/netsuite-token-rotator/config.toml", "run"]
    help_text = run(rotator_binary, "--help").stdout
    assert re.search(r"^\s+run\s", help_text, re.MULTILINE), help_text
    result = run(rotator_binary, "--config", tmp_path / "missing.toml", "run")
    assert result.returncode == 2 and "config" in result.stderr, result.stderr


def unit_settings(unit: str, section: str) -> dict:
    """The `Key=value` lines of one section of a unit file (last one wins, as in systemd)."""
    settings, current = {}, None
    for line in (SYSTEMD / unit).read_text().splitlines():
        line = line.strip()
        if line.startswith("[") and line.endswith("]"):
            current = line[1:-1]
        elif current == section and "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            settings[key] = value
    return settings


def test_daemon_restarts_on_failure_but_not_forever():
    """Restart=on-failure with a burst limit whose window outlasts the restarts it counts:
    with RestartSec=15s, 5 starts only fit in a window longer than about a minute."""
    service = unit_settings("netsuite-token-rotator.service", "Service")
    unit = unit_settings("netsuite-token-rotator.service", "Unit")
    assert service.get("Restart") == "on-failure"
    assert service.get("RestartPreventExitStatus") == "2"
    burst = int(unit["StartLimitBurst"])
    window = unit["StartLimitIntervalSec"]
    restart_sec = int(service["RestartSec"].removesuffix("s"))
    window_sec = int(window.removesuffix("min")) * 60 if window.endswith("min") else int(
        window.removesuffix("s")
    )
    assert 1 < burst <= 10, burst
    assert window_sec > burst * restart_sec, (window, burst, restart_sec)

"""The mdw console script: bad usage is exit 2 with one line on stderr, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mdw import __version__
from mdw.cli.app import fail, run, settings_from
from mdw.errors import ConfigError, StoreError, VendorAuthError

MDW = Path(sys.executable).with_name("mdw")


def mdw(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Run the installed console script with a clean mdw environment."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("MDW_", "POLYGON_"))}
    return subprocess.run(
        [str(MDW), *args], cwd=cwd, env={**base, **env}, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--bogus"], "mdw: error: No such option: --bogus"),
        (["nosuchcmd"], "mdw: error: No such command 'nosuchcmd'."),
        (["version", "--nope"], "mdw: error: No such option: --nope"),
    ],
)
def test_mdw_bad_usage_exits_2_with_one_line_and_no_traceback(
    tmp_path: Path, args: list[str], message: str
) -> None:
    """An unknown option or command prints exactly one line on stderr and exits 2."""
    proc = mdw(*args, cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [message]
    assert proc.stdout == ""


@pytest.mark.parametrize("args", [[], ["keys"]])
def test_mdw_without_a_command_prints_the_help_and_exits_0(tmp_path: Path, args: list[str]) -> None:
    """`mdw` and `mdw keys` alone show their commands on stdout, with nothing on stderr."""
    proc = mdw(*args, cwd=tmp_path)
    assert (proc.returncode, proc.stderr) == (0, "")
    assert f"Usage: mdw {' '.join(args)}".rstrip() in proc.stdout and "Commands" in proc.stdout


def test_mdw_version_prints_the_package_version(tmp_path: Path) -> None:
    """`mdw version` exits 0 and prints the installed version."""
    proc = mdw("version", cwd=tmp_path)
    assert (proc.returncode, proc.stdout.strip(), proc.stderr) == (0, __version__, "")


def test_settings_from_bad_environment_exits_2_with_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A command loading a bad MDW_RATE_LIMIT stops with exit 2 and one line naming the setting."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MDW_RATE_LIMIT", "fast")
    with pytest.raises(SystemExit) as info:
        settings_from()
    assert info.value.code == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("mdw: error: invalid setting rate_limit (MDW_RATE_LIMIT)")


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (ConfigError("bad flag"), 2),
        (VendorAuthError("unknown key", status=401), 1),
        (StoreError("disk full"), 1),
    ],
)
def test_run_maps_mdw_errors_to_exit_codes_with_one_line(
    capsys: pytest.CaptureFixture[str], error: Exception, code: int
) -> None:
    """Usage errors exit 2, other mdw errors exit 1, each with its message on one line."""

    async def command() -> None:
        raise error

    with pytest.raises(SystemExit) as info:
        run(command())
    assert info.value.code == code
    assert capsys.readouterr().err == f"mdw: error: {error}\n"


def test_run_returns_the_coroutine_result() -> None:
    """A command that succeeds hands its value back."""

    async def command() -> int:
        return 7

    assert run(command()) == 7


def test_fail_redacts_keys_from_the_message(capsys: pytest.CaptureFixture[str]) -> None:
    """Even an error message quoting a URL never shows the key."""
    with pytest.raises(SystemExit):
        fail("GET https://api.massive.com/v2?apiKey=s3cr3tvalue failed")
    err = capsys.readouterr().err
    assert "s3cr3tvalue" not in err and "apiKey=***" in err

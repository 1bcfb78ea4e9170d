"""The first seconds: ``import mdw`` and ``mdw --help`` load no heavy library (#21).

The load-independent check is which modules are in ``sys.modules`` afterwards: numpy, pyarrow,
pandas, pydantic, structlog, aiohttp, fastapi and the database drivers load when a command runs or a
public name is first used, never for the import or the help. No test asserts on wall-clock time
(the machine running the suite is shared): ``bench/startup.py`` measures the figure.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HEAVY = ("asyncio", "numpy", "pyarrow", "pandas", "pydantic", "pydantic_settings", "structlog", "aiohttp",
         "fastapi", "uvicorn", "asyncpg", "exchange_calendars", "mdw.domain", "mdw.config",
         "mdw.store", "mdw.backfill")

_LOADED = "import json, sys; print(json.dumps(sorted(m for m in {heavy!r} if m in sys.modules)))"


def _loaded_after(code: str) -> list[str]:
    script = f"{code}\n{_LOADED.format(heavy=HEAVY)}"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                         timeout=120)
    return list(json.loads(out.stdout.strip().splitlines()[-1]))


def test_startup_import_mdw_loads_no_heavy_module() -> None:
    assert _loaded_after("import mdw") == []


def test_startup_help_loads_no_heavy_module() -> None:
    """The help of every command is built (typer reads each option) without a heavy import."""
    code = (
        "import contextlib, io\n"
        "from mdw.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        "    main(['--help'])\n"
    )
    assert _loaded_after(code) == []


def test_startup_public_names_still_resolve_on_first_use() -> None:
    """Laziness is invisible: the first use of a name loads its module."""
    assert "numpy" in _loaded_after("import mdw; mdw.BarBatch")


def test_startup_console_script_help_lists_every_command() -> None:
    """The installed ``mdw --help`` still lists the commands (they register without heavy imports)."""
    script = Path(sys.executable).parent / "mdw"
    done = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    for command in ("backfill", "export", "serve", "symbols", "copy"):
        assert command in done.stdout

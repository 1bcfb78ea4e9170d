"""The package layering of docs/architecture.md, enforced by reading every import under src/mdw.

Each rule the architecture page states is one test here, and the page names the test. Imports are
read with ``ast`` by :mod:`layer_scan` (never executed); ``TYPE_CHECKING`` imports count for
every rule except the order of the layers, since they never run.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from layer_scan import (
    SRC,
    calls_of,
    component,
    imports_in,
    imports_of,
    matches,
    module_of,
    rel,
    source_files,
    under,
    violations,
)

# Anything that touches the network, a database or a server.
IO_PACKAGES = (
    "aiohttp", "asyncpg", "sqlite3", "psycopg", "psycopg2", "psycopg_pool", "fastapi", "starlette", "uvicorn",
    "procrastinate", "httpx", "requests", "urllib.request", "http.client", "socket", "ssl",
    "selectors", "obstore", "mdw.polygon", "mdw.flatfiles.s3", "mdw.store", "mdw.backfill", "mdw.service",
    "mdw.simulator", "mdw.cli", "mdw.dashboard", "mdw.scaleout", "mdw.calendar_cache",
)
# The file system, the environment and the clock: what a pure function must not read.
FILES_AND_CLOCK = ("os", "pathlib", "shutil", "tempfile", "io", "glob", "importlib.metadata", "time")
DATABASE_DRIVERS = ("asyncpg", "psycopg", "psycopg2", "psycopg_pool", "sqlite3")
HTTP_CLIENTS = ("aiohttp", "httpx", "requests", "urllib.request", "http.client", "obstore")
WEB_SERVERS = ("fastapi", "starlette", "uvicorn")

# The order of the layers: a module imports only from lower layers (or its own package). Two
# packages on one layer do not know each other: the vendor's clients (REST and flat files) and the
# store never meet, and neither do the Python API, the dashboard and scale-out. The simulator
# stands apart (below).
LAYERS: tuple[frozenset[str], ...] = (
    frozenset({"errors", "logs", "clock"}),
    frozenset({"plans"}),
    frozenset({"ranges", "config"}),
    frozenset({"domain"}),
    frozenset({"calendar", "adjust", "bar_schema"}),
    frozenset({"calendar_cache", "polygon", "flatfiles", "store"}),
    frozenset({"backfill", "budget"}),
    frozenset({"api", "dashboard", "scaleout", "stream"}),
    frozenset({"service"}),
    frozenset({"cli"}),
    frozenset({"__init__"}),
)
RANK = {name: i for i, layer in enumerate(LAYERS) for name in layer}
# The simulator is the vendor's stand-in, not a layer of mdw: it uses only the vocabulary (and the
# vendor's flat-file key layout, which it serves).
SIMULATOR_MAY_IMPORT = ("mdw.errors", "mdw.logs", "mdw.ranges", "mdw.config", "mdw.plans", "mdw.domain",
                        "mdw.calendar", "mdw.simulator", "mdw.flatfiles.keys")

# The only modules outside the simulator allowed to import it, each for a command that starts
# it on purpose; even they must import it inside a function, so that loading the CLI (which
# imports every command module) never loads the simulator.
SIMULATOR_ALLOWED = {
    "mdw/cli/simulate.py": "`mdw simulate` runs the simulator",
    "mdw/backfill/demo.py": "`mdw demo` (run_demo) starts the simulator as its offline data source",
}

# Pure modules: no I/O, no file, no environment, no clock; the calendar gets its sessions from an
# injected loader (mdw.calendar_cache is the disk-cached one the entry points wire in).
PURE = ("domain.py", "plans.py", "ranges.py", "calendar.py", "adjust.py", "backfill/plan.py",
        "backfill/planner.py", "backfill/derive.py", "backfill/settle_window.py", "service/schedule.py")

# Files that still import a database driver outside the store (#14): none since scale-out, the
# leader lock and the rate budget moved onto the store's own path; this set stays empty.
DRIVERS_LEFT: set[str] = set()


def _mdw_component(name: str) -> str | None:
    """The mdw package or top-level module ``name`` belongs to; None for the root or third parties."""
    if not name.startswith("mdw."):
        return None
    part = component(name)
    return None if part.startswith("__") else part  # `from mdw import __version__`


@pytest.mark.parametrize("module", PURE)
def test_layers_pure_modules_read_no_io_file_or_clock(module: str) -> None:
    """The vocabulary, the calendar, the planner and the schedule do no I/O and read no clock."""
    path = SRC / module
    # Pure modules may use each other, and the store's vocabulary (run kinds, record types), which
    # mdw.store.base defines without any I/O; never the store itself.
    pure = (*("mdw." + m.removesuffix(".py").replace("/", ".") for m in PURE), "mdw.store.base")
    found = [v for v in violations([path], IO_PACKAGES + FILES_AND_CLOCK)
             if not matches(v.rsplit(" ", 1)[1], pure)]
    assert found == []
    assert calls_of(path, "open") == []


def test_layers_every_import_points_down_the_layers() -> None:
    """No module imports a higher layer or a sibling package on its own layer (types excepted)."""
    found = []
    for f in source_files():
        me = component(module_of(f))
        for imp in imports_of(f):
            other = _mdw_component(imp.name)
            if other is None or other == me or imp.typing_only or "simulator" in (me, other):
                continue
            if RANK[other] >= RANK[me]:
                found.append(f"{rel(f)}:{imp.line} ({me}) imports {imp.name} ({other})")
    assert found == []


def test_layers_layer_table_names_every_package_and_module() -> None:
    """Every package and top-level module of mdw sits on exactly one layer, or is the simulator."""
    names = {component(module_of(f)) for f in source_files()}
    assert names - {"simulator", "py"} <= set(RANK), names - set(RANK)
    assert sum(len(layer) for layer in LAYERS) == len(RANK)


def test_layers_simulator_uses_only_the_vocabulary() -> None:
    """The simulator imports domain, calendar and config, never mdw's client, store or engine."""
    found = [f"{rel(f)}:{imp.line} imports {imp.name}" for f in under("simulator") for imp in imports_of(f)
             if _mdw_component(imp.name) is not None and not matches(imp.name, SIMULATOR_MAY_IMPORT)]
    assert found == []


def test_layers_nothing_outside_the_simulator_imports_it() -> None:
    """Production code never imports mdw.simulator; the allow-listed commands do so lazily."""
    found: list[str] = []
    for f in source_files():
        path = rel(f)
        if path.startswith("mdw/simulator/"):
            continue
        for imp in imports_of(f):
            if not matches(imp.name, ("mdw.simulator",)):
                continue
            if path not in SIMULATOR_ALLOWED:
                found.append(f"{path}:{imp.line} imports {imp.name}")
            elif imp.top_level:
                why = "at module level; import it inside the command"
                found.append(f"{path}:{imp.line} imports {imp.name} {why}")
    assert found == []


def test_layers_polygon_client_does_not_know_about_storage() -> None:
    """The vendor client never imports the store, the engine, the service or the CLI."""
    assert violations(under("polygon"), ("mdw.store", "mdw.backfill", "mdw.service", "mdw.cli")) == []


def test_layers_vendor_client_speaks_http_only_through_its_transport() -> None:
    """Inside the vendor client only the default transport imports an HTTP library: the rest sends
    through the one-method ``Transport`` seam (ADR 17)."""
    files = [f for f in under("polygon") if rel(f) != "mdw/polygon/transport.py"]
    assert violations(files, HTTP_CLIENTS) == []


def test_layers_flat_file_client_does_not_know_about_storage() -> None:
    """The flat-file client and decoder never import the store, the engine, the service or the CLI."""
    forbidden = ("mdw.store", "mdw.backfill", "mdw.service", "mdw.cli", "mdw.polygon")
    assert violations(under("flatfiles"), forbidden) == []


def test_layers_backfill_reaches_flat_files_only_through_its_seam() -> None:
    """The backfill never imports the S3 client module or obstore: it is handed a file source."""
    assert violations(under("backfill"), ("obstore", "mdw.flatfiles.s3")) == []


def test_layers_store_does_not_know_about_http() -> None:
    """The store never imports the vendor, the engine, the service, the CLI or an HTTP library."""
    forbidden = ("mdw.polygon", "mdw.backfill", "mdw.service", "mdw.cli", *HTTP_CLIENTS, *WEB_SERVERS)
    assert violations(under("store"), forbidden) == []


def test_layers_backfill_opens_no_sockets_itself() -> None:
    """The planner and engine reach HTTP and databases only through the vendor and store seams."""
    forbidden = ("socket", *HTTP_CLIENTS, *DATABASE_DRIVERS, *WEB_SERVERS)
    assert violations(under("backfill"), forbidden) == []


def test_layers_database_drivers_only_in_the_store() -> None:
    """asyncpg, psycopg and sqlite3 are imported by the store's backends and nowhere else."""
    outside = [f for f in source_files()
               if not rel(f).startswith("mdw/store/") and rel(f) not in DRIVERS_LEFT]
    assert violations(outside, DATABASE_DRIVERS) == []
    assert {rel(f) for f in source_files()} >= DRIVERS_LEFT


def test_layers_service_holds_no_query_logic() -> None:
    """The service asks the store; it never speaks a database driver itself."""
    files = [f for f in under("service") if rel(f) not in DRIVERS_LEFT]
    assert violations(files, DATABASE_DRIVERS) == []


def test_layers_cli_reaches_databases_and_http_only_through_lower_layers() -> None:
    """CLI commands parse flags, call the layers below and print: no driver, client or web framework."""
    assert violations(under("cli"), (*DATABASE_DRIVERS, *HTTP_CLIENTS, "fastapi", "starlette")) == []


def test_layers_dashboard_reads_only_through_the_public_api() -> None:
    """The dashboard imports no store, engine, client or service module: its data comes over /v1.

    It may use the pure vocabulary (``mdw.domain``, ``mdw.ranges``) and the calendar, as any client
    of the API may: a timeframe's natural order is the domain's, not a second copy in the pages."""
    found = [f"{rel(f)}:{imp.line} imports {imp.name}" for f in under("dashboard") for imp in imports_of(f)
             if (c := _mdw_component(imp.name)) is not None
             and c not in ("dashboard", "calendar", "domain", "ranges")]
    assert found == []
    assert violations(under("dashboard"), (*DATABASE_DRIVERS, *HTTP_CLIENTS)) == []


def test_layers_procrastinate_only_in_scaleout_which_loads_lazily() -> None:
    """procrastinate lives in mdw.scaleout (and its PostgreSQL side, the store's pgqueue.py, which
    hands it mdw's pool and applies its schema), which the CLI and the service import only inside
    functions."""
    outside = [f for f in source_files() if not rel(f).startswith("mdw/scaleout/")]
    assert violations([f for f in outside if rel(f) != "mdw/store/pgqueue.py"], ("procrastinate",)) == []
    eager = [f"{rel(f)}:{imp.line} imports {imp.name}" for f in outside for imp in imports_of(f)
             if matches(imp.name, ("mdw.scaleout",)) and imp.top_level and not imp.typing_only]
    assert eager == []


def test_layers_web_servers_only_in_service_dashboard_and_serve() -> None:
    """FastAPI, Starlette and uvicorn belong to the HTTP service, its dashboard and `mdw serve`."""
    files = [f for f in source_files()
             if not rel(f).startswith(("mdw/service/", "mdw/dashboard/")) and rel(f) != "mdw/cli/serve.py"]
    assert violations(files, WEB_SERVERS) == []


# The only private names of a third party mdw uses, each with why. pyiceberg is pinned to one minor
# version (pyproject.toml) and the columnar conformance suite runs every path through them.
PRIVATE_ALLOWED = {
    # update_table_metadata without its final deep copy of the metadata (ADR 0012: the deep copy
    # cost more than the rest of a small commit)
    ("mdw/store/lake/table.py", "pyiceberg.table.update._apply_table_update"),
    ("mdw/store/lake/table.py", "pyiceberg.table.update._TableMetadataUpdateContext"),
    ("mdw/store/lake/table.py", "pyiceberg.table.update._update_table_metadata_log"),
}


def test_layers_no_file_imports_a_private_module_of_another_package() -> None:
    """``_private`` modules and names stay inside their package: mdw's own and third parties' alike,
    except the few listed in PRIVATE_ALLOWED with their reason."""
    found = []
    for f in source_files():
        here = module_of(f).rsplit(".", 1)[0] if f.name != "__init__.py" else module_of(f)
        for imp in imports_of(f):
            parts = imp.name.split(".")
            private = [i for i, p in enumerate(parts) if p.startswith("_") and not p.startswith("__")]
            if private and not imp.name.startswith(here + ".") and not here.startswith(
                ".".join(parts[: private[0]]) + "."
            ) and (rel(f), imp.name) not in PRIVATE_ALLOWED:
                found.append(f"{rel(f)}:{imp.line} imports {imp.name}")
    assert found == []


def test_layers_loading_mdw_and_every_command_loads_no_server_queue_or_driver() -> None:
    """``import mdw`` and every CLI command module load no job queue, driver, web server or simulator."""
    heavy = ("procrastinate", "psycopg", "asyncpg", "fastapi", "uvicorn", "aiohttp", "mdw.simulator",
             "mdw.scaleout", "mdw.service")
    code = ("import sys, mdw, mdw.cli; mdw.cli._load_commands(); "
            f"print(sorted(m for m in sys.modules if m.split('.')[0] in {heavy!r} or m in {heavy!r}"
            " or m.startswith(('mdw.simulator', 'mdw.scaleout', 'mdw.service'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_layers_checker_sees_the_whole_tree_and_every_import_form() -> None:
    """The scan covers the real tree and resolves relative, nested, type-only and importlib imports."""
    names = {rel(f) for f in source_files()}
    assert {"mdw/domain.py", "mdw/calendar.py", "mdw/config.py", "mdw/cli/app.py"} <= names
    assert any(imp.name == "mdw.errors" for imp in imports_of(SRC / "domain.py"))
    src = (
        "from __future__ import annotations\n"
        "from typing import TYPE_CHECKING\n"
        "from . import sqlite\n"
        "from ..polygon.client import X\n"
        "if TYPE_CHECKING:\n"
        "    from mdw.backfill.plan import Plan\n"
        "def f():\n"
        "    import aiohttp\n"
        "    importlib.import_module('mdw.simulator.server')\n"
    )
    found = {(i.name, i.top_level, i.typing_only) for i in imports_in(src, SRC / "store" / "base.py")}
    assert ("mdw.store.sqlite", True, False) in found
    assert ("mdw.polygon.client", True, False) in found
    assert ("mdw.backfill.plan", True, True) in found
    assert ("aiohttp", False, False) in found
    assert ("mdw.simulator.server", False, False) in found

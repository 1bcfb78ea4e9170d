"""Startup benchmark: how long ``import mdw`` and ``mdw --help`` take (#21, "the first minutes").

Each command runs ``--runs`` times in a fresh interpreter, interleaved, and the median wall time and
the median CPU time (user + system of the child, less sensitive to a loaded machine) are printed:

* **python**: ``python -c pass``, the interpreter's own floor;
* **import mdw**: ``python -c "import mdw"`` (the public names load on first use);
* **mdw --help**: the console script building every command's options;
* **eager API**: ``import mdw`` and then every public name touched, which is what ``import mdw``
  cost before it was lazy (numpy, pydantic, structlog, the store).

Ratios printed: eager API over import mdw (what laziness saves). The goal is under 0.3 s for
``import mdw`` and ``mdw --help`` on a quiet machine. Run:
``.venv/bin/python bench/startup.py [--runs 15] [--small]``; writes ``bench/results/startup.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "startup.json"
MDW = str(Path(sys.executable).parent / "mdw")
EAGER = "import mdw\nfor name in mdw.__all__: getattr(mdw, name)"
COMMANDS = {
    "python": [sys.executable, "-c", "pass"],
    "import_mdw": [sys.executable, "-c", "import mdw"],
    "mdw_help": [MDW, "--help"],
    "eager_api": [sys.executable, "-c", EAGER],
}


def _one(argv: list[str]) -> tuple[float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--small", action="store_true", help="7 runs of each (the CI size)")
    args = parser.parse_args()
    runs = 7 if args.small else args.runs
    for argv in COMMANDS.values():  # warm the file cache and the bytecode
        _one(argv)
    walls: dict[str, list[float]] = {name: [] for name in COMMANDS}
    cpus: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for _ in range(runs):
        for name, argv in COMMANDS.items():
            wall, cpu = _one(argv)
            walls[name].append(wall)
            cpus[name].append(cpu)
    result: dict[str, object] = {
        "runs": runs, "python": platform.python_version(), "cpus": os.cpu_count(),
        "load_1m": round(os.getloadavg()[0], 2),
    }
    for name in COMMANDS:
        wall, cpu = statistics.median(walls[name]), statistics.median(cpus[name])
        result[f"{name}_wall_s"] = round(wall, 4)
        result[f"{name}_cpu_s"] = round(cpu, 4)
        print(f"{name:12s} median wall {wall * 1000:7.1f} ms   cpu {cpu * 1000:7.1f} ms")
    ratio = statistics.median(cpus["eager_api"]) / statistics.median(cpus["import_mdw"])
    result["eager_over_lazy_import_cpu_ratio"] = round(ratio, 2)
    print(f"eager API / import mdw (cpu): {ratio:.1f}x   (load average {result['load_1m']})")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()

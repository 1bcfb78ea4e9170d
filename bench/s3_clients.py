"""S3 client choice for flat files (ADR 0011): obstore vs aiobotocore vs boto3, side by side.

Each contender downloads the same flat files from the simulator's S3 endpoint (SigV4, path-style
bucket ``flatfiles``) with the same number of parallel GETs, streaming each body in chunks and
discarding them, as the ingest does. Contenders run one after another, each in a fresh process
(so peak RSS is its own), and each round is repeated; the best round counts. The simulator runs in
its own process with every file generated before the first contender starts, so it serves from
memory. Reported per contender: MB/s, CPU seconds per GB in the client process, peak RSS, and
the RSS an idle client costs (import + one client).

Run: ``.venv/bin/python bench/s3_clients.py [--stocks 1000 --days 20 --parallel 8 --rounds 3]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
KEY_ID, SECRET = "sim-flatfiles-key", "sim-flatfiles-secret"
CHUNK = 1024 * 1024
CONTENDERS = ("obstore", "aiobotocore", "boto3")


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _current_rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


async def _obstore(endpoint: str, keys: list[str], parallel: int) -> int:
    import obstore
    from obstore.store import S3Store

    store = S3Store("flatfiles", endpoint=endpoint, access_key_id=KEY_ID, secret_access_key=SECRET,
                    region="us-east-1", virtual_hosted_style_request=False,
                    client_options={"allow_http": True})
    sem = asyncio.Semaphore(parallel)

    async def one(key: str) -> int:
        async with sem:
            got = await obstore.get_async(store, key)
            n = 0
            async for chunk in got.stream(min_chunk_size=CHUNK):
                n += len(chunk)
            return n

    return sum(await asyncio.gather(*(one(k) for k in keys)))


async def _aiobotocore(endpoint: str, keys: list[str], parallel: int) -> int:
    from aiobotocore.config import AioConfig
    from aiobotocore.session import get_session

    session = get_session()
    config = AioConfig(max_pool_connections=parallel, s3={"addressing_style": "path"})
    async with session.create_client("s3", endpoint_url=endpoint, aws_access_key_id=KEY_ID,
                                     aws_secret_access_key=SECRET, region_name="us-east-1",
                                     config=config) as s3:
        sem = asyncio.Semaphore(parallel)

        async def one(key: str) -> int:
            async with sem:
                got = await s3.get_object(Bucket="flatfiles", Key=key)
                n = 0
                async with got["Body"] as body:
                    while chunk := await body.read(CHUNK):
                        n += len(chunk)
                return n

        return sum(await asyncio.gather(*(one(k) for k in keys)))


async def _boto3(endpoint: str, keys: list[str], parallel: int) -> int:
    import boto3
    from botocore.config import Config

    s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET,
                      region_name="us-east-1",
                      config=Config(max_pool_connections=parallel, s3={"addressing_style": "path"}))
    sem = asyncio.Semaphore(parallel)

    def fetch(key: str) -> int:
        body = s3.get_object(Bucket="flatfiles", Key=key)["Body"]
        n = 0
        for chunk in body.iter_chunks(CHUNK):
            n += len(chunk)
        return n

    async def one(key: str) -> int:
        async with sem:  # boto3 is blocking: one worker thread per parallel GET
            return await asyncio.to_thread(fetch, key)

    return sum(await asyncio.gather(*(one(k) for k in keys)))


RUNNERS = {"obstore": _obstore, "aiobotocore": _aiobotocore, "boto3": _boto3}


def child(name: str, endpoint: str, keys: list[str], parallel: int) -> None:
    """One contender, one round, in this process: prints a JSON line."""
    base = _current_rss_mb()
    runner = RUNNERS[name]
    asyncio.run(runner(endpoint, keys[:1], 1))  # import, one client, one GET: the idle cost
    idle = _current_rss_mb() - base
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    nbytes = asyncio.run(runner(endpoint, keys, parallel))
    wall = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    print(json.dumps({"bytes": nbytes, "wall_s": wall, "cpu_s": cpu, "peak_rss_mb": _rss_mb(),
                      "idle_mb": idle}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stocks", type=int, default=1000)
    parser.add_argument("--days", type=int, default=20)
    parser.add_argument("--parallel", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", nargs=2, metavar=("NAME", "ENDPOINT"))
    parser.add_argument("--keys", default="")
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1], args.keys.split(","), args.parallel)
        return
    asyncio.run(_compare(args))


async def _compare(args: argparse.Namespace) -> None:
    sys.path.insert(0, str(ROOT / "bench"))
    from flatfile_sim import flatfile_simulator

    first = date(2024, 3, 1)
    async with flatfile_simulator(args.stocks, first + timedelta(days=60)) as (endpoint, files):
        keys = files.keys_for("us_stocks_sip/minute_aggs_v1", first, args.days)
        await files.warm(keys)
        total_mb = sum(await files.sizes(keys)) / 2**20
        print(f"{len(keys)} files, {total_mb:.1f} MB, {args.parallel} parallel GETs", flush=True)
        results: dict[str, dict[str, Any]] = {}
        for _ in range(args.rounds):
            for name in CONTENDERS:
                proc = await asyncio.create_subprocess_exec(
                    sys.executable, __file__, "--child", name, endpoint, "--keys", ",".join(keys),
                    "--parallel", str(args.parallel), stdout=subprocess.PIPE, cwd=ROOT)
                out, _ = await proc.communicate()
                if proc.returncode:
                    raise SystemExit(f"{name} failed (exit {proc.returncode})")
                got = json.loads(out.decode().strip().splitlines()[-1])
                best = results.get(name)
                if best is None or got["wall_s"] < best["wall_s"]:
                    results[name] = got
    rows = []
    for name in CONTENDERS:
        r = results[name]
        rows.append({"client": name, "mb_per_s": round(r["bytes"] / 2**20 / r["wall_s"], 1),
                     "cpu_s_per_gb": round(r["cpu_s"] / (r["bytes"] / 2**30), 2),
                     "peak_rss_mb": round(r["peak_rss_mb"], 1), "idle_client_mb": round(r["idle_mb"], 1),
                     "wall_s": round(r["wall_s"], 3)})
    print(f"{'client':<12} {'MB/s':>8} {'CPU s/GB':>9} {'peak RSS MB':>12} {'idle MB':>8}")
    for row in rows:
        print(f"{row['client']:<12} {row['mb_per_s']:>8} {row['cpu_s_per_gb']:>9} {row['peak_rss_mb']:>12} "
              f"{row['idle_client_mb']:>8}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "s3_clients.json").write_text(json.dumps({
        "files": len(keys), "mb": round(total_mb, 1), "parallel": args.parallel, "rounds": args.rounds,
        "results": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()

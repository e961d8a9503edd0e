"""Benchmark: what `--histories PREFIX/LATEST` saves over reading every daily export under PREFIX.

Starts moto's S3 in server mode on loopback, writes DAYS daily exports of PER_DAY history-sized
objects (`PREFIX/<day>/…json`, SIZE bytes each) and a LATEST pointer naming the newest, then times
reading the sources as replay does (`iter_histories`: list, download each to the spool, release):

- baseline: `s3://bucket/prefix/` — every day's export (what the example did before);
- latest: `s3://bucket/prefix/LATEST` — the pointer read, then the newest export only.

Prints objects read, bytes downloaded, seconds and the ratio to the baseline; figures only.

    python bench/latest_pointer.py                      # 7 days x 100 histories of 20 kB
    python bench/latest_pointer.py --days 30 --per-day 500
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from servers import moto_env, moto_server  # noqa: E402

from bot.histories import ReplayOptions, iter_histories  # noqa: E402


def read(spec: str, spool: Path) -> tuple[int, int, float]:
    began = time.perf_counter()
    count = size = 0
    for item in iter_histories(ReplayOptions(sources=[spec]), spool):
        count += 1
        size += Path(item.path).stat().st_size
        item.release()
    return count, size, time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--per-day", type=int, default=100)
    parser.add_argument("--size", type=int, default=20_000)
    args = parser.parse_args()
    with moto_server() as url:
        os.environ.update(moto_env(url))
        import boto3

        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="histories")
        body = b'{"events": [' + b" " * max(0, args.size - 14) + b"]}"
        days = [f"2026-11-{d:02d}" for d in range(1, args.days + 1)]
        for day in days:
            for i in range(args.per_day):
                s3.put_object(Bucket="histories", Key=f"prod/running/{day}/orders/{i:05d}.json", Body=body)
        s3.put_object(Bucket="histories", Key="prod/running/LATEST", Body=f"{days[-1]}/\n".encode())
        with tempfile.TemporaryDirectory() as spool:
            base = read("s3://histories/prod/running/", Path(spool))
            latest = read("s3://histories/prod/running/LATEST", Path(spool))
    print(
        f"{args.days} daily exports x {args.per_day} histories of {args.size:,} bytes (moto S3 on loopback)"
    )
    for name, (count, size, seconds) in (("every prefix (baseline)", base), ("LATEST pointer", latest)):
        print(f"  {name:24} {count:6d} objects  {size / 1e6:8.1f} MB  {seconds:7.2f} s")
    print(f"  ratio LATEST/baseline: objects {latest[0] / base[0]:.3f}, seconds {latest[2] / base[2]:.3f}")


if __name__ == "__main__":
    main()

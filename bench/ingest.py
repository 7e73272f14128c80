"""Throughput and peak memory of `paperfeed ingest snapshot` into an on-disk SQLite database.

Runs the real command in a child process per file and reads the child's own rusage (os.wait4):
wall-clock records/s, CPU records/s (user+sys of the command and its reader process; robust to
other load on a shared machine) and peak RSS (sampled every 20 ms: the command's and its
reader process's RSS summed). The second file replicates the sample to --replicate rows (ids
rewritten to stay unique) to show that memory does not grow with the file.

    python bench/ingest.py [--file F] [--replicate 300000] [--repeat 3]
    python bench/ingest.py --profile N [--sort tottime]

This shared 2-core VM's speed varies by ±20 % from run to run (CPU seconds too, so it is the
host, not other processes): each file is ingested --repeat times into a fresh database and
the median and best runs are printed.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import itertools
import json
import os
import pstats
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT.parent / "shared" / "data" / "arxiv_snapshot_sample.jsonl"
IMPORT_ONLY = "import paperfeed.cli"


def replicate(src: Path, dst: Path, rows: int) -> None:
    """Copy src's lines cyclically to `rows` lines, each with a fresh new-style id."""
    with src.open(encoding="utf-8") as f:
        lines = f.readlines()
    with dst.open("w", encoding="utf-8") as out:
        for n, line in enumerate(itertools.islice(itertools.cycle(lines), rows)):
            row = json.loads(line)
            row["id"] = f"{9001 + n // 99999:04d}.{n % 99999 + 1:05d}"  # 9001.00001, ...
            out.write(json.dumps(row) + "\n")


def tree_rss_peak(pid: int, peak: list[int], stop: threading.Event) -> None:
    """Sample the summed RSS of a process and its descendants (the ingest's reader process
    included) every 20 ms; the highest sum ends in peak[0], in KiB."""
    try:
        root = psutil.Process(pid)
        while not stop.is_set():
            total = 0
            for p in [root, *root.children(recursive=True)]:
                with contextlib.suppress(psutil.Error):
                    total += p.memory_info().rss
            peak[0] = max(peak[0], total // 1024)
            stop.wait(0.02)
    except psutil.Error:
        return


def child(args: list[str], env: dict[str, str]) -> tuple[float, float, int, str]:
    """Run a child; (wall s, cpu s including its reader process, peak RSS KiB of it and its
    descendants together, output)."""
    started = time.perf_counter()
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    peak, stop = [0], threading.Event()
    sampler = threading.Thread(target=tree_rss_peak, args=(proc.pid, peak, stop))
    sampler.start()
    assert proc.stdout is not None
    out = proc.stdout.read().decode()
    stop.set()
    sampler.join()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        sys.exit(f"child failed ({proc.returncode}):\n{out}")
    return wall, usage.ru_utime + usage.ru_stime, max(peak[0], usage.ru_maxrss), out


def ingest(path: Path, workdir: Path) -> dict[str, float]:
    db_file = workdir / f"{path.stem}.db"
    env = {**os.environ, "PAPERFEED_DATABASE_URL": f"sqlite:///{db_file}"}
    cli = [sys.executable, "-m", "paperfeed.cli"]
    child([*cli, "db", "upgrade"], env)
    rows = sum(1 for _ in path.open("rb"))
    wall, cpu, rss, out = child([*cli, "ingest", "snapshot", str(path)], env)
    summary = next(line for line in out.splitlines() if line.startswith("snapshot:"))
    return {
        "rows": rows,
        "wall_s": wall,
        "cpu_s": cpu,
        "rec_per_s": rows / wall,
        "rec_per_cpu_s": rows / cpu,
        "peak_rss_mib": rss / 1024,
        "db_mib": db_file.stat().st_size / 2**20,
        "summary": summary,  # type: ignore[dict-item]
    }


def profile(path: Path, workdir: Path, n: int, sort: str) -> None:
    """cProfile of the in-process pipeline over the first n lines (where the time goes)."""
    from paperfeed import db
    from paperfeed import ingest as pipeline
    from paperfeed.sources import snapshot

    part = workdir / "profile.jsonl"
    with path.open() as src, part.open("w") as dst:
        dst.writelines(itertools.islice(src, n))
    engine = db.make_engine(f"sqlite:///{workdir / 'profile.db'}")
    db.upgrade(engine)
    items, _ = pipeline.from_file(engine, part, snapshot.read_snapshot, "bench")
    prof = cProfile.Profile()
    prof.enable()
    pipeline.run(engine, items)
    prof.disable()
    pstats.Stats(prof).sort_stats(sort).print_stats(30)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--file", type=Path, default=SAMPLE)
    ap.add_argument("--replicate", type=int, default=300_000, help="0 to skip")
    ap.add_argument("--profile", type=int, default=0, help="profile the first N lines")
    ap.add_argument("--sort", default="cumulative", help="profile order: cumulative | tottime")
    ap.add_argument("--repeat", type=int, default=3, help="runs per file (median and best)")
    opts = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="paperfeed-bench-") as tmp:
        workdir = Path(tmp)
        if opts.profile:
            profile(opts.file, workdir, opts.profile, opts.sort)
            return
        _, _, base_rss, _ = child([sys.executable, "-c", IMPORT_ONLY], dict(os.environ))
        print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
        print(f"baseline: python + `import paperfeed.cli` peak RSS {base_rss / 1024:.0f} MiB")
        files = [opts.file]
        if opts.replicate:
            big = workdir / f"snapshot_{opts.replicate}.jsonl"
            replicate(opts.file, big, opts.replicate)
            files.append(big)
        print(
            f"{'rows':>8} {'wall s':>8} {'rec/s':>8} {'cpu s':>8} {'rec/cpu-s':>10} "
            f"{'peak RSS MiB':>13} {'db MiB':>7}"
        )
        for path in files:
            runs = []
            for _ in range(opts.repeat):
                for old in workdir.glob(f"{path.stem}.db*"):
                    old.unlink()
                runs.append(ingest(path, workdir))
            runs.sort(key=lambda r: r["wall_s"])
            for label, r in (("median", runs[len(runs) // 2]), ("best", runs[0])):
                print(
                    f"{r['rows']:>8} {r['wall_s']:>8.1f} {r['rec_per_s']:>8.0f} {r['cpu_s']:>8.1f} "
                    f"{r['rec_per_cpu_s']:>10.0f} {r['peak_rss_mib']:>13.0f} {r['db_mib']:>7.0f}"
                    f"   {label} of {len(runs)}; {r['summary']}"
                )
        print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()

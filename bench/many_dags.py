#!/usr/bin/env python3
"""Many DAGs on one standalone (SQLite): how long until every DAG is stored,
what the node costs while it waits for the next slot, and how fast a slot
shared by all of them drains.

Usage: bench/many_dags.py GALE_BINARY N [N ...] [--label L] [--idle 60] [--period 5]
                          [--no-burst] [--reference] [--settle S]

For each N: N files of a 5-task chain of `true`, each `*/P * * * *` (P is
--period, in minutes, 5 unless given) with catchup off and a start date ten
minutes before the run, in a fresh GALE_HOME. It prints, per N, one JSON line:
  visible_s     start to the last DAG stored (read from the SQLite file)
  idle_cpu_pct  % of a core (node and children) over --idle seconds between
                slots, after the start-up slot's runs are done and --settle
                seconds more (0 unless given; 70 covers the scheduler's
                first full listing a minute after start)
  idle_rss_mb   resident memory at the end of that window
  burst_create_s  the slot's instant to the last of its N runs created
  burst_finish_s  the slot's instant to the last of its runs finished
  burst_tasks_per_s  5 * N / burst_finish_s
  reference_tasks_per_s  with --reference, after the burst: one run of a
                DAG of min(5 N, 10,000) independent `true` tasks on the same
                node, its tasks over its creation to its end; burst_ratio is
                burst_tasks_per_s over it
The burst waits for the next slot (up to P minutes); only runs created
before the slot after it count. --no-burst
leaves it out and makes every DAG yearly (`0 0 1 1 *`, start 2026-01-01,
no interval complete yet): no runs at all, the idle cost of the DAGs alone.
"""

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time

CHAIN = """id: many_{i}
schedule: "{schedule}"
start_date: {start}
catchup: false
tasks:
  t1: {{run: "true"}}
  t2: {{run: "true", needs: [t1]}}
  t3: {{run: "true", needs: [t2]}}
  t4: {{run: "true", needs: [t3]}}
  t5: {{run: "true", needs: [t4]}}
"""


def ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # utime, stime, cutime, cstime (fields 14-17 of the whole line)
    return sum(int(x) for x in fields[11:15])


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024
    return 0.0


def query(db, sql):
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            return con.execute(sql).fetchone()
        finally:
            con.close()
    except sqlite3.Error:
        return None


FANOUT = """id: fanout_ref
tasks:
"""


def reference(binary, env, dags, db, n):
    """One fan-out run of min(5 n, 10,000) `true` tasks on the running node:
    its tasks per second from its creation to its end."""
    m = min(5 * n, 10_000)
    with open(os.path.join(dags, "fanout_ref.yaml"), "w") as f:
        f.write(FANOUT + "".join(f"  t{i}: {{run: \"true\"}}\n" for i in range(m)))
    deadline = time.time() + 120
    while not (query(db, "SELECT count(*) FROM dags WHERE dag_id = 'fanout_ref'") or [0])[0]:
        if time.time() > deadline:
            raise SystemExit("the reference fan-out DAG was not stored")
        time.sleep(0.1)
    subprocess.run(
        [binary, "dags", "trigger", "fanout_ref"], env=env, check=True, capture_output=True
    )
    while True:
        row = query(
            db,
            "SELECT state, created_at, ended_at FROM runs WHERE dag_id = 'fanout_ref'",
        )
        if row and row[0] in ("success", "failed"):
            return round(m / ((row[2] - row[1]) / 1e6), 1)
        if time.time() > deadline + 600:
            raise SystemExit(f"the reference fan-out did not finish: {row}")
        time.sleep(0.2)


def one(binary, n, idle_s, label, burst, schedule, period, ref, settle):
    # With a burst, the DAGs start ten minutes ago: the slots before each
    # DAG's first run (recorded as skipped in the slot ledger, up to 1,000
    # per DAG) are few, and the start-up measures the DAGs, not the ledger.
    start = "2026-01-01"
    if burst:
        t = time.gmtime(time.time() - 600)
        start = time.strftime("%Y-%m-%dT%H:%M:00Z", t)
    home = tempfile.mkdtemp(prefix="gale-many-")
    dags = os.path.join(home, "dags")
    os.makedirs(dags)
    for i in range(n):
        with open(os.path.join(dags, f"many_{i}.yaml"), "w") as f:
            f.write(CHAIN.format(i=i, schedule=schedule, start=start))
    env = dict(os.environ, GALE_HOME=home, GALE_LOG="error", GALE_PORT="0")
    log = open(os.path.join(home, "log"), "w")
    started = time.time()
    proc = subprocess.Popen(
        [binary, "standalone", "--no-examples", "--dags-folder", dags],
        env=env,
        stdout=log,
        stderr=log,
    )
    db = os.path.join(home, "gale.db")
    out = {"label": label, "dags": n}
    try:
        while True:
            row = query(db, "SELECT count(*) FROM dags WHERE active = 1")
            if row and row[0] >= n:
                break
            if proc.poll() is not None or time.time() - started > 120:
                raise SystemExit(f"{n} DAGs: not all stored ({row}); see {home}/log")
            time.sleep(0.05)
        out["visible_s"] = round(time.time() - started, 2)
        # The start-up slot's runs (catchup off: one for the newest slot of
        # each DAG), made and finished.
        while burst:
            row = query(
                db,
                "SELECT count(*), coalesce(sum(state IN ('queued', 'running')), 0) FROM runs",
            )
            if row is not None and row[0] >= n and row[1] == 0:
                break
            if time.time() - started > 900:
                raise SystemExit(f"{n} DAGs: the start-up runs did not finish: {row}")
            time.sleep(0.2)
        out["startup_runs_done_s"] = round(time.time() - started, 2)
        time.sleep(settle)
        # Idle between slots: a window that starts after a slot and ends
        # before the next one.
        if idle_s > period - 15:
            raise SystemExit(f"--idle {idle_s} does not fit between slots {period} s apart")
        while True:
            now = time.time()
            into = now % period
            if into < period - idle_s - 10 and into > 5:
                break
            time.sleep(1)
        time.sleep(2)
        t0 = ticks(proc.pid)
        time.sleep(idle_s)
        t1 = ticks(proc.pid)
        hz = os.sysconf("SC_CLK_TCK")
        out["idle_cpu_pct"] = round((t1 - t0) * 100 / hz / idle_s, 3)
        out["idle_rss_mb"] = round(rss_mb(proc.pid), 1)
        if not burst:
            print(json.dumps(out), flush=True)
            return
        # The next slot.
        slot = (int(time.time()) // period + 1) * period
        before = query(db, "SELECT max(id) FROM runs")[0] or 0
        until_us = (slot + period - 1) * 1_000_000
        while True:
            done = query(
                db,
                f"SELECT count(*), sum(state IN ('success', 'failed')), max(created_at), "
                f"max(ended_at) FROM runs WHERE id > {before} AND created_at < {until_us}",
            )
            if done and done[0] >= n and done[1] == done[0]:
                break
            if time.time() > slot + 900:
                raise SystemExit(f"{n} DAGs: the slot's runs did not finish: {done}")
            time.sleep(0.2)
        last_created = done[2] / 1e6
        last_end = done[3] / 1e6
        out["burst_create_s"] = round(last_created - slot, 2)
        out["burst_finish_s"] = round(last_end - slot, 2)
        out["burst_tasks_per_s"] = round(5 * n / (last_end - slot), 1)
        out["rss_after_burst_mb"] = round(rss_mb(proc.pid), 1)
        if ref:
            out["reference_tasks_per_s"] = reference(binary, env, dags, db, n)
            out["burst_ratio"] = round(
                out["burst_tasks_per_s"] / out["reference_tasks_per_s"], 2
            )
        print(json.dumps(out), flush=True)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(home, ignore_errors=True)


def main():
    args = sys.argv[1:]
    label, idle_s = "", 60
    burst = "--no-burst" not in args
    ref = "--reference" in args
    args = [a for a in args if a not in ("--no-burst", "--reference")]
    # Without the burst, a schedule that has no complete interval yet: every
    # DAG is scheduled, none has a run, and the idle cost is that of the
    # DAGs alone.
    settle = 0
    if "--settle" in args:
        i = args.index("--settle")
        settle = int(args[i + 1])
        del args[i : i + 2]
    period = 5
    if "--period" in args:
        i = args.index("--period")
        period = int(args[i + 1])
        del args[i : i + 2]
    schedule = f"*/{period} * * * *" if burst else "0 0 1 1 *"
    if "--label" in args:
        i = args.index("--label")
        label = args[i + 1]
        del args[i : i + 2]
    if "--idle" in args:
        i = args.index("--idle")
        idle_s = int(args[i + 1])
        del args[i : i + 2]
    if len(args) < 2:
        raise SystemExit(__doc__)
    binary = args[0]
    for n in args[1:]:
        one(binary, int(n), idle_s, label, burst, schedule, period * 60, ref, settle)


if __name__ == "__main__":
    main()

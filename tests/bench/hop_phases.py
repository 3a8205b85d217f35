#!/usr/bin/env python3
"""Where the time of a zpsctl hop goes: a per-phase breakdown of one replication.

tests/bench/run runs one `zpsctl replicate` with both agents started with
`--zfs zps_zfs_timer` (every zfs command timed to the microsecond, into one log per
agent) and `--log-level debug`, then calls this with those files:

  hop_phases.py --src-timer F --dst-timer F --dst-log F --dataset SRC --target DST
                [--wall SECONDS] [--loop-per-hop SECONDS]

An incremental hop, in the order it happens (sender = src agent, receiver = dst agent),
from the end of the previous hop's last zfs command on the receiver:
  between    verdict receiver -> broker -> sender, hop_done (the broker writes SQLite),
             the sender's listing of the source unless it overlapped the previous hop,
             planning, hop_started, prepare sender -> broker -> receiver -> task thread
             (and, for a plain hop, the spawn of zfs recv)
  base       receiver: zfs get of the target's snapshots (the base is still the latest?);
             only a checked hop has it (the first try of a hop is plain, without it)
  recv-start receiver: spawn zfs recv, bind the data socket, log "receiving", reply
  to-send    prepare reply receiver -> broker -> sender -> job thread, spawn zfs send
  send       zfs send runs (connect and stream overlap with it)
  commit     zfs recv keeps running after zfs send exited: the final frame, the stream
             tail, and zfs recv's own commit
  to-guid    zfs recv exit -> the receiver starts zfs get guid
  guid       receiver: zfs get guid of the new snapshot

The phases add up to the hop (each one starts where the previous ended); the first hop
(a full send) is left out. Timer log lines: "<start> <end> <exit> <argv...>" in unix
seconds; agent logs: spdlog text lines with millisecond UTC timestamps.
"""
import argparse
import datetime
import re
import statistics
import sys


def read_timer(path):
    out = []
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) < 4:
                continue
            out.append((float(parts[0]), float(parts[1]), int(parts[2]), parts[3:]))
    out.sort(key=lambda r: r[0])
    return out


LOG_TIME = re.compile(r"^\[(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+)Z\]")


def log_time(line):
    m = LOG_TIME.match(line)
    if not m:
        return None
    t = datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%f")
    return t.replace(tzinfo=datetime.timezone.utc).timestamp()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--src-timer", required=True)
    ap.add_argument("--dst-timer", required=True)
    ap.add_argument("--dst-log", required=True)
    ap.add_argument("--dataset", required=True, help="source dataset")
    ap.add_argument("--target", required=True, help="target dataset")
    ap.add_argument("--wall", type=float, help="zpsctl replicate wall time, seconds")
    ap.add_argument("--loop-per-hop", type=float, help="local zfs send|recv loop, s per hop")
    a = ap.parse_args()

    src = read_timer(a.src_timer)
    dst = read_timer(a.dst_timer)
    lists = [r for r in src if r[3][:1] == ["get"] and "guid,createtxg" in r[3] and r[3][-1] == a.dataset]
    sends = [r for r in src if r[3][:1] == ["send"] and r[3][-1].startswith(a.dataset + "@")]
    bases = [r for r in dst if r[3][:1] == ["get"] and "guid,createtxg" in r[3] and r[3][-1] == a.target]
    recvs = [r for r in dst if r[3][:1] == ["recv"] and r[3][-1] == a.target]
    guids = [r for r in dst if r[3][:1] == ["get"] and "guid" in r[3] and r[3][-1].startswith(a.target + "@")]
    receiving = []
    with open(a.dst_log) as f:
        for line in f:
            if " receiving " + a.target + "@" in line:
                receiving.append(log_time(line))

    n = len(sends)
    if n < 2 or not (len(recvs) == len(guids) == len(receiving) == n) or not lists:
        print("hop_phases: the logs do not line up (sends %d, recvs %d, guids %d, receiving %d, "
              "lists %d); was the run clean?" % (n, len(recvs), len(guids), len(receiving), len(lists)),
              file=sys.stderr)
        return 1
    names = ["between", "base", "recv-start", "to-send", "send", "commit", "to-guid", "guid"]
    phases = {k: [] for k in names}
    hop_total, listing, listing_outside, gap_zfs = [], [], [], []
    plain = 0
    for i in range(1, n):
        prev_end = guids[i - 1][1]
        rc, rv, sd, gd = recvs[i], receiving[i], sends[i], guids[i]
        # The receiver's check of the target for this hop: the first one after the last hop.
        base = next((b for b in bases if prev_end <= b[0] <= rv), None)
        if base is None:
            # A plain hop: the receiver did not list the target. Its spawn of zfs recv then
            # counts in "between".
            base = (rv, rv, 0, [])
            plain += 1
        phases["between"].append(base[0] - prev_end)
        phases["base"].append(base[1] - base[0])
        phases["recv-start"].append(rv - base[1])        # ms-resolution log line
        phases["to-send"].append(sd[0] - rv)
        phases["send"].append(sd[1] - sd[0])
        phases["commit"].append(rc[1] - sd[1])
        phases["to-guid"].append(gd[0] - rc[1])
        phases["guid"].append(gd[1] - gd[0])
        hop_total.append(gd[1] - prev_end)
        # The sender's listing that planned this hop: the last one started before the check.
        ls = [r for r in lists if r[0] <= base[0]][-1]
        listing.append(ls[1] - ls[0])
        listing_outside.append(max(0.0, min(ls[1], base[0]) - max(ls[0], prev_end)))
        gap_zfs.append(sum(max(0.0, min(r[1], base[0]) - max(r[0], prev_end)) for r in src + dst))

    labels = {
        "between": "verdict -> sender, hop_done, plan, prepare -> receiver",
        "base": "receiver: zfs get of the target (checked hops only)",
        "recv-start": "receiver: spawn zfs recv, bind, reply (ms log)",
        "to-send": "prepare reply -> broker -> sender, spawn zfs send",
        "send": "zfs send runs (pipe connect + stream overlap)",
        "commit": "zfs recv runs on after zfs send exited",
        "to-guid": "zfs recv exit -> receiver starts zfs get guid",
        "guid": "receiver: zfs get guid of the new snapshot",
    }
    mean_total = statistics.mean(hop_total)
    print("where a zpsctl hop's time goes (%d incremental hops of %s; zfs commands timed by a "
          "wrapper, which adds ~1 ms to each)" % (n - 1, a.dataset))
    print("  %d of them plain (no listing of the target before the receive), %d checked"
          % (plain, n - 1 - plain))
    print("  %-56s %9s %9s %6s" % ("phase", "median ms", "mean ms", "share"))
    for k in names:
        v = phases[k]
        print("  %-56s %9.1f %9.1f %5.0f%%" % (labels[k], 1000 * statistics.median(v),
                                               1000 * statistics.mean(v),
                                               100 * statistics.mean(v) / mean_total))
    print("  %-56s %9.1f %9.1f" % ("hop, previous hop's guid to this hop's guid",
                                   1000 * statistics.median(hop_total), 1000 * mean_total))
    print("  %-56s %9.1f %9.1f" % ("  sender's listing of the source (zfs get), whole",
                                   1000 * statistics.median(listing), 1000 * statistics.mean(listing)))
    print("  %-56s %9.1f %9.1f %5.0f%%" % ("  ... of it inside 'between' (not overlapped)",
                                           1000 * statistics.median(listing_outside),
                                           1000 * statistics.mean(listing_outside),
                                           100 * statistics.mean(listing_outside) / mean_total))
    print("  %-56s %9.1f %9.1f %5.0f%%" % ("  zfs commands inside 'between' (either agent)",
                                           1000 * statistics.median(gap_zfs), 1000 * statistics.mean(gap_zfs),
                                           100 * statistics.mean(gap_zfs) / mean_total))
    extra = [phases["base"][j] + phases["guid"][j] for j in range(n - 1)]
    print("  %-56s %9.1f %9.1f %5.0f%%" % ("  receiver's own checks (base, guid)", 1000 * statistics.median(extra),
                                           1000 * statistics.mean(extra), 100 * statistics.mean(extra) / mean_total))
    if a.wall:
        print("  %-56s %9s %9.1f" % ("zpsctl replicate wall time / hops", "", 1000 * a.wall / n))
    if a.loop_per_hop:
        print("  %-56s %9s %9.1f" % ("local zfs send | zfs recv loop, per hop (benchmark 1)", "",
                                     1000 * a.loop_per_hop))
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Where the time of a zpsctl hop goes: a per-phase breakdown of one replication.

tests/bench/run runs one `zpsctl replicate` with both agents started with
`--zfs zps_zfs_timer` (every zfs command timed to the microsecond, into one log per
agent) and `--log-level debug`, then calls this with those files:

  hop_phases.py --src-timer F --dst-timer F --dst-log F --dataset SRC --target DST
                [--wall SECONDS] [--loop-per-hop SECONDS]

A hop, in the order it happens (sender = src agent, receiver = dst agent):
  list       sender: zfs get guid,createtxg of the source (re-listed before every hop)
  to-prep    list end -> receiver starts its first zfs command for the hop: planning,
             the hop_started notice (the broker writes it to SQLite first, same
             connection), the prepare request sender -> broker -> receiver -> task thread
  exists     receiver: zfs list of the target's parent
  recv-start receiver: spawn zfs recv, bind the data socket, log "receiving", reply
  to-send    prepare reply receiver -> broker -> sender -> job thread, spawn zfs send
  send       zfs send runs (connect and stream overlap with it)
  commit     zfs recv keeps running after zfs send exited: the final frame, the stream
             tail, and zfs recv's own commit
  to-guid    zfs recv exit -> the receiver starts zfs get guid
  guid       receiver: zfs get guid of the new snapshot
  to-next    verdict receiver -> broker -> sender, hop_done (SQLite), next listing

The phases add up to the hop (each one starts where the previous ended). Timer log
lines: "<start> <end> <exit> <argv...>" in unix seconds; agent logs: spdlog text lines
with millisecond UTC timestamps.
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
    parent = a.target.rsplit("/", 1)[0]
    exists = [r for r in dst if r[3][:1] == ["list"] and r[3][-1] == parent]
    recvs = [r for r in dst if r[3][:1] == ["recv"] and r[3][-1] == a.target]
    guids = [r for r in dst if r[3][:1] == ["get"] and "guid" in r[3] and r[3][-1].startswith(a.target + "@")]
    receiving = []
    with open(a.dst_log) as f:
        for line in f:
            if " receiving " + a.target + "@" in line:
                receiving.append(log_time(line))

    n = len(sends)
    if n == 0 or not (len(recvs) == len(guids) == len(receiving) == n) or len(exists) < n or len(lists) < n:
        print("hop_phases: the logs do not line up (sends %d, recvs %d, guids %d, receiving %d, "
              "exists %d, lists %d); was the run clean?" % (n, len(recvs), len(guids), len(receiving),
                                                        len(exists), len(lists)), file=sys.stderr)
        return 1
    # Lists before each hop: the last n+1 of the job (one more finds it up to date).
    lists = lists[-(n + 1):] if len(lists) > n else lists
    exists = exists[-n:]
    phases = {k: [] for k in ["list", "to-prep", "exists", "recv-start", "to-send", "send", "commit",
                              "to-guid", "guid", "to-next"]}
    hop_total = []
    for i in range(n):
        ls, ex, rc, rv, sd, gd = lists[i], exists[i], recvs[i], receiving[i], sends[i], guids[i]
        nxt = lists[i + 1][0] if i + 1 < len(lists) else None
        phases["list"].append(ls[1] - ls[0])
        phases["to-prep"].append(ex[0] - ls[1])
        phases["exists"].append(ex[1] - ex[0])
        phases["recv-start"].append(rv - ex[1])        # ms-resolution log line
        phases["to-send"].append(sd[0] - rv)
        phases["send"].append(sd[1] - sd[0])
        phases["commit"].append(rc[1] - sd[1])
        phases["to-guid"].append(gd[0] - rc[1])
        phases["guid"].append(gd[1] - gd[0])
        if nxt is not None:
            phases["to-next"].append(nxt - gd[1])
            hop_total.append(nxt - ls[0])

    labels = {
        "list": "sender: zfs get (list the source's %d snapshots)" % n,
        "to-prep": "plan, hop_started, prepare -> broker -> receiver",
        "exists": "receiver: zfs list (target's parent exists?)",
        "recv-start": "receiver: spawn zfs recv, bind, reply (ms log)",
        "to-send": "prepare reply -> broker -> sender, spawn zfs send",
        "send": "zfs send runs (pipe connect + stream overlap)",
        "commit": "zfs recv runs on after zfs send exited",
        "to-guid": "zfs recv exit -> receiver starts zfs get guid",
        "guid": "receiver: zfs get guid of the new snapshot",
        "to-next": "verdict -> broker -> sender, hop_done, next list",
    }
    mean_total = statistics.mean(hop_total)
    print("where a zpsctl hop's time goes (%d hops of %s; zfs commands timed by a wrapper, "
          "which adds ~1 ms to each of the 5 per hop)" % (n, a.dataset))
    print("  %-52s %9s %9s %6s" % ("phase", "median ms", "mean ms", "share"))
    for k, label in labels.items():
        v = phases[k]
        print("  %-52s %9.1f %9.1f %5.0f%%" % (label, 1000 * statistics.median(v),
                                               1000 * statistics.mean(v),
                                               100 * statistics.mean(v) / mean_total))
    print("  %-52s %9.1f %9.1f" % ("hop, list start to next list start", 1000 * statistics.median(hop_total),
                                   1000 * mean_total))
    zfs_mean = sum(statistics.mean(phases[k]) for k in ["list", "exists", "guid"])
    print("  %-52s %9s %9.1f %5.0f%%" % ("  of which extra zfs commands (list, exists, guid)", "",
                                         1000 * zfs_mean, 100 * zfs_mean / mean_total))
    msg_mean = sum(statistics.mean(phases[k]) for k in ["to-prep", "to-send", "to-next"])
    print("  %-52s %9s %9.1f %5.0f%%" % ("  of which control-plane legs (3 round trips)", "",
                                         1000 * msg_mean, 100 * msg_mean / mean_total))
    if a.wall:
        print("  %-52s %9s %9.1f" % ("zpsctl replicate wall time / hops", "", 1000 * a.wall / n))
    if a.loop_per_hop:
        print("  %-52s %9s %9.1f" % ("local zfs send | zfs recv loop, per hop (benchmark 1)", "",
                                     1000 * a.loop_per_hop))
    return 0


if __name__ == "__main__":
    sys.exit(main())

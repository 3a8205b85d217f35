# Sourced by scripts/test, scripts/demo and tests/bench/run: makes sure a zfs-fuse
# daemon is running. They call isolate_zfs first, so as root the daemon is a private one
# of the run's own (see there). Otherwise, if one is already running (the user's own),
# it is used and left alone. If this script starts one, it records the pid and
# stop_zfs_daemon stops exactly that process.

ZPS_STARTED_ZFS_PID=""

# Runs the calling script again ("$@" is its own command line) in namespaces of its own
# where the directories zfs-fuse keeps its socket, lock and pool cache in are fresh, so
# that the daemon ensure_zfs_daemon starts there belongs to this run alone:
# - the user's own daemon, pools and cache are never seen nor touched, and a daemon of
#   theirs that is wedged cannot hang the run;
# - when the run ends, or is killed, its pid namespace goes and takes the daemon, the
#   agents and every mount of the run's pools with it: nothing is left behind.
# Does nothing (the script goes on as it is) when already inside, when not root, when
# ZPS_ZFS_DAEMON=shared asks for the machine's own daemon, or when this machine cannot
# make namespaces (a container without CAP_SYS_ADMIN).
isolate_zfs() {
  [ "${ZPS_ZFS_ISOLATED:-}" = 1 ] && return 0
  [ "${ZPS_ZFS_DAEMON:-private}" = private ] || return 0
  [ "$(id -u)" = 0 ] || return 0
  if ! unshare --mount --pid --fork --kill-child --mount-proc --propagation private true \
      2>/dev/null; then
    echo "note: cannot make a private mount and pid namespace here; using the machine's" \
         "zfs-fuse daemon" >&2
    return 0
  fi
  export ZPS_ZFS_ISOLATED=1
  exec unshare --mount --pid --fork --kill-child --mount-proc --propagation private -- "$@"
}

# Inside isolate_zfs's namespaces: fresh, empty directories for zfs-fuse's socket, lock
# and pool cache (tmpfs, seen by this namespace only). Once is enough: a script run
# inside (the bench under ctest) finds them made, and the run's daemon answering there.
private_zfs_dirs() {
  local d
  for d in /var/run/zfs /var/lock/zfs /var/lib/zfs; do
    [ "$(findmnt -rn -o SOURCE --mountpoint "$d")" = zpsend-private ] && continue
    mkdir -p "$d"
    mount -t tmpfs -o mode=0755,size=16m zpsend-private "$d" || return 1
  done
}

# True while pid runs (a zombie has ended: in a pid namespace of its own the script is
# the reaper of the daemon, which has no other parent).
pid_running() {
  local state
  state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
  [ -n "$state" ] && [ "$state" != Z ]
}

zfs_daemon_reachable() {
  zpool list >/dev/null 2>&1
}

ensure_zfs_daemon() {
  local kstat=()
  if [ "${ZPS_ZFS_ISOLATED:-}" = 1 ]; then
    private_zfs_dirs || return 1
    # /zfs-kstat may be the machine's daemon's mount, seen here too: never mount on it.
    kstat=(--no-kstat-mount)
  fi
  if zfs_daemon_reachable; then
    return 0
  fi
  # A daemon that runs but does not answer (busy, or wedged) must not get a second one
  # beside it: two zfs-fuse processes on one socket and one /dev/fuse hang both.
  if pidof zfs-fuse >/dev/null; then
    echo "a zfs-fuse daemon runs (pid $(pidof zfs-fuse)) but does not answer 'zpool list';" \
         "not starting a second one: restart that daemon and try again" >&2
    return 1
  fi
  if [ ! -e /dev/fuse ]; then
    echo "zfs-fuse needs /dev/fuse, which this machine does not have (load the fuse module)" >&2
    return 1
  fi
  # zfs-fuse refuses to start when its pid file already exists ("already exists;
  # aborting", exit 1), so the file goes into a fresh directory and is not created here.
  local piddir pidfile
  piddir=$(mktemp -d /tmp/zps-zfs-fuse.XXXXXX)
  pidfile=$piddir/zfs-fuse.pid
  echo "starting zfs-fuse (pid file $pidfile)"
  local rc=0
  # Started from a shell of its own: zfs-fuse does not daemonize when its parent is pid 1,
  # which this script is inside isolate_zfs's pid namespace, and would then never return.
  sh -c 'zfs-fuse "$@"; exit $?' zfs-fuse --pidfile "$pidfile" "${kstat[@]}" || rc=$?
  if [ "$rc" -ne 0 ]; then
    # zfs-fuse also exits 1 when another daemon holds /var/lock/zfs/zfs_lock.
    echo "zfs-fuse failed to start (exit status $rc); its messages go to syslog." \
         "Is another zfs-fuse running or still exiting? (ps -C zfs-fuse)" >&2
    rm -rf "$piddir"
    return 1
  fi
  local i
  for i in $(seq 1 100); do
    if zfs_daemon_reachable && [ -s "$pidfile" ]; then
      ZPS_STARTED_ZFS_PID=$(cat "$pidfile")
      rm -rf "$piddir"
      return 0
    fi
    sleep 0.1
  done
  rm -rf "$piddir"
  echo "zfs-fuse did not come up within 10 s" >&2
  return 1
}

stop_zfs_daemon() {
  [ -n "$ZPS_STARTED_ZFS_PID" ] || return 0
  kill -TERM "$ZPS_STARTED_ZFS_PID" 2>/dev/null || return 0
  local i
  for i in $(seq 1 150); do
    pid_running "$ZPS_STARTED_ZFS_PID" || { ZPS_STARTED_ZFS_PID=""; return 0; }
    sleep 0.1
  done
  kill -KILL "$ZPS_STARTED_ZFS_PID" 2>/dev/null || true
  ZPS_STARTED_ZFS_PID=""
}

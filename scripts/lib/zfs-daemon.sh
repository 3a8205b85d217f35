# Sourced by scripts/test and scripts/demo: makes sure a zfs-fuse daemon is running.
# If one is already running (the user's own), it is used and left alone. If this script
# starts one, it records the pid and stop_zfs_daemon stops exactly that process.

ZPS_STARTED_ZFS_PID=""

zfs_daemon_reachable() {
  zpool list >/dev/null 2>&1
}

ensure_zfs_daemon() {
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
  zfs-fuse --pidfile "$pidfile" || rc=$?
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
    kill -0 "$ZPS_STARTED_ZFS_PID" 2>/dev/null || { ZPS_STARTED_ZFS_PID=""; return 0; }
    sleep 0.1
  done
  kill -KILL "$ZPS_STARTED_ZFS_PID" 2>/dev/null || true
  ZPS_STARTED_ZFS_PID=""
}

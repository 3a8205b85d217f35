#!/usr/bin/env bash
# Throughput of a 1 GiB replication (one full hop of random data) with and without
# CURVE, through the real programs: zps-broker, two zps-agents and zpsctl on loopback,
# two zfs-fuse pools on sparse files (the zfs-fuse daemon must run). Prints one
# "MEASURE mode=plain|curve ..." line per mode; the time is zpsctl replicate's, end to
# end (zfs send -> pipe -> zfs recv, plus the job's control messages).
# Usage: tests/security/curve_throughput.sh BIN_DIR [MiB]   (e.g. build/bin)
set -euo pipefail
bin=$1; mib=${2:-1024}
work=$(mktemp -d /tmp/zpsmeasure.XXXXXX)
src="zpsm_src_$$"; dst="zpsm_dst_$$"; pids=(); pools=()
cleanup() {
  set +e
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
  for pool in "${pools[@]}"; do
    for _ in $(seq 1 20); do zpool destroy -f "$pool" 2>/dev/null && break; sleep 0.5; done
  done
  rm -rf "$work"
}
trap cleanup EXIT
for pool in "$src" "$dst"; do
  truncate -s $((mib * 3))M "$work/$pool.img"
  zpool create -m "$work/mnt/$pool" "$pool" "$work/$pool.img"; pools+=("$pool")
done
zfs create "$src/data"
head -c $((mib << 20)) /dev/urandom >"$work/mnt/$src/data/blob"
zfs snapshot "$src/data@s1"
keys="$work/keys"; mkdir -m 700 "$keys"
for n in broker src1 dst1 ops; do "$bin/zpsctl" keygen --out "$keys/$n" >/dev/null; done
pub() { sed -n 's/^ *public-key *= *"\(.*\)"$/\1/p' "$keys/$1.pub"; }
printf 'agent src1 %s\nagent dst1 %s\noperator ops %s\n' "$(pub src1)" "$(pub dst1)" "$(pub ops)" >"$keys/ak"

run_mode() {  # $1 = plain|curve
  local mode=$1 state="$work/broker-$1" bk=() ak=() dk=() ck=()
  if [ "$mode" = curve ]; then
    bk=(--key "$keys/broker" --authorized-keys "$keys/ak")
    ak=(--key "$keys/src1" --broker-key "$keys/broker.pub")
    dk=(--key "$keys/dst1" --broker-key "$keys/broker.pub")
    ck=(--key "$keys/ops" --broker-key "$keys/broker.pub")
  fi
  "$bin/zps-broker" --listen 'tcp://127.0.0.1:*' --state-dir "$state" "${bk[@]}" >"$work/b-$mode.log" 2>&1 &
  local bp=$!; pids+=($bp)
  for _ in $(seq 1 100); do [ -s "$state/endpoint" ] && break; sleep 0.1; done
  local ep; ep=$(cat "$state/endpoint")
  "$bin/zps-agent" --broker "$ep" --id src1 --data-ports 47300-47349 "${ak[@]}" >"$work/s-$mode.log" 2>&1 &
  local sp=$!; pids+=($sp)
  "$bin/zps-agent" --broker "$ep" --id dst1 --recv-root "$dst/$mode" --data-ports 47350-47399 "${dk[@]}" >"$work/d-$mode.log" 2>&1 &
  local dp=$!; pids+=($dp)
  for _ in $(seq 1 100); do
    [ "$("$bin/zpsctl" --broker "$ep" "${ck[@]}" --json agents 2>/dev/null | grep -o '"alive": *true' | wc -l)" -ge 2 ] && break
    sleep 0.2
  done
  local t0 t1
  t0=$(date +%s.%N)
  "$bin/zpsctl" --broker "$ep" "${ck[@]}" --timeout 30 replicate "src1:$src/data" dst1 >/dev/null
  t1=$(date +%s.%N)
  grep -h "received\|succeeded" "$work/b-$mode.log" | tail -2
  awk -v m="$mode" -v a="$t0" -v b="$t1" -v n="$mib" \
    'BEGIN { s = b - a; printf "MEASURE mode=%s bytes=%d MiB seconds=%.2f MB/s=%.1f\n", m, n, s, n * 1048576 / s / 1e6 }'
  kill -TERM $sp $dp $bp; wait $sp $dp $bp 2>/dev/null || true
}
run_mode plain
run_mode curve

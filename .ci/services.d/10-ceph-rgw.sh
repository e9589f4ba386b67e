# shellcheck shell=bash
# Sourced by .ci/run. Starts a real S3 server for the suites: the Ceph RADOS Gateway from
# Debian's packages, as a single-host cluster on loopback (one monitor, one memstore OSD,
# auth none, pool size 1, beast on 127.0.0.1:7480), creates an S3 user and exports
#   S3_ENDPOINT, S3_REGION, S3_ACCESS_KEY_ID, S3_SECRET_ACCESS_KEY
# which test/setup/services/s3.ts reads, and for the tenant-scoped credential tests
#   S3_STS_ROLE_ARN (a role the S3 user may assume; RGW STS is on), S3_STS_MIN_SECONDS (the
#   shortest session RGW grants here), S3_TENANT_USERS (tenant=uid:access:secret,… for the mode
#   without STS). Idempotent: if the gateway already answers and the user
# exists, it only exports the variables. Every wait is bounded; a failure prints the daemon log
# tail and returns non-zero (the caller runs with `set -e`, so CI stops loudly).
#
# Override with TENANTSCOPE_CEPH_DIR (state, default /var/tmp/tenantscope-ceph) and
# TENANTSCOPE_RGW_PORT (default 7480). Skip entirely with TENANTSCOPE_SKIP_CEPH=1 (then the suites
# use S3_ENDPOINT if set, else testcontainers MinIO, else the in-process fallback).

tenantscope_ceph_rgw() {
  local dir="${TENANTSCOPE_CEPH_DIR:-/var/tmp/tenantscope-ceph}"
  local port="${TENANTSCOPE_RGW_PORT:-7480}"
  local conf="$dir/ceph.conf"
  local access="${S3_ACCESS_KEY_ID:-tenantscope-ci}"
  local secret="${S3_SECRET_ACCESS_KEY:-tenantscope-ci-secret-0123456789abcdef}"
  local endpoint="http://127.0.0.1:${port}"

  _ceph_log() { echo "[ceph-rgw] $*"; }
  _ceph_fail() {
    echo "[ceph-rgw] FAILED: $*" >&2
    local lf
    for lf in "$dir"/log/*.log; do
      [ -f "$lf" ] || continue
      echo "----- last lines of $lf -----" >&2
      tail -n 25 "$lf" >&2 || true
    done
    return 1
  }
  # _ceph_wait_for SECONDS DESCRIPTION COMMAND...: polls COMMAND once a second, at most SECONDS times.
  _ceph_wait_for() {
    local secs="$1" what="$2"
    shift 2
    local i
    for ((i = 0; i < secs; i++)); do
      if "$@" >/dev/null 2>&1; then return 0; fi
      sleep 1
    done
    _ceph_fail "timed out after ${secs}s waiting for ${what}"
  }
  _ceph_rgw_answers() { curl -fsS -o /dev/null --max-time 3 "$endpoint/"; }
  # STS (AssumeRole with session policies, for tenant-scoped credentials): RGW needs it switched on
  # and a key of exactly 16 characters to seal session tokens. Sessions may be as short as 10 s here
  # (AWS's minimum is 900 s) so the expiry tests can watch real credentials expire.
  _ceph_sts_conf() {
    printf '%s\n' 'rgw s3 auth use sts = true' 'rgw sts key = tenantscopests16' \
      'rgw sts min session duration = 10'
  }
  _ceph_q() { timeout 20 ceph -c "$conf" --connect-timeout 10 "$@"; }

  if [ "${TENANTSCOPE_SKIP_CEPH:-}" = "1" ]; then
    _ceph_log "skipped (TENANTSCOPE_SKIP_CEPH=1)"
    return 0
  fi

  # 1. Packages, only if missing.
  if ! command -v radosgw >/dev/null 2>&1 || ! command -v ceph-mon >/dev/null 2>&1 \
    || ! command -v ceph-osd >/dev/null 2>&1; then
    _ceph_log "installing ceph-mon ceph-osd radosgw from Debian (about a minute)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq || return 1
    apt-get install -y -qq --no-install-recommends ceph-mon ceph-osd radosgw >/dev/null \
      || _ceph_fail "apt-get install ceph-mon ceph-osd radosgw" || return 1
  fi
  command -v curl >/dev/null 2>&1 || { apt-get install -y -qq --no-install-recommends curl >/dev/null || return 1; }

  # 2. Already running (second sourcing, or a developer's machine)? Then only make sure of the user.
  if [ -f "$conf" ] && _ceph_rgw_answers; then
    _ceph_log "gateway already answers on $endpoint"
    # Started by an older version of this script, without STS: add the settings, restart radosgw only.
    if ! grep -q '^rgw s3 auth use sts = true' "$conf"; then
      _ceph_log "enabling STS on the running gateway (restarting radosgw only)"
      local sts_lines
      sts_lines="$(_ceph_sts_conf)"
      awk -v add="$sts_lines" '{ print } /^\[client\.rgw\.a\]$/ { print add }' "$conf" >"$conf.new" \
        && mv "$conf.new" "$conf" || _ceph_fail "adding STS settings to $conf" || return 1
      local rgw_pid
      rgw_pid="$(cat "$dir/run/client.rgw.a.pid" 2>/dev/null || true)"
      if [ -n "$rgw_pid" ]; then
        kill "$rgw_pid" 2>/dev/null || true
        _ceph_rgw_gone() { ! kill -0 "$rgw_pid" 2>/dev/null; }
        _ceph_wait_for 30 "the old radosgw to exit" _ceph_rgw_gone || return 1
      fi
      radosgw -c "$conf" -n client.rgw.a || _ceph_fail "restarting radosgw" || return 1
      _ceph_wait_for 90 "radosgw to answer on $endpoint" _ceph_rgw_answers || return 1
    fi
  else
    # Stop leftovers of an earlier run that no longer answers, by the pid files we wrote.
    local pidf
    for pidf in "$dir"/run/*.pid; do
      [ -f "$pidf" ] || continue
      kill "$(cat "$pidf")" 2>/dev/null || true
    done
    sleep 1
    rm -rf "$dir"
    mkdir -p "$dir"/{run,log,mon,osd} || return 1

    local fsid
    fsid="$(cat /proc/sys/kernel/random/uuid)"
    cat >"$conf" <<EOF
[global]
fsid = $fsid
mon host = v1:127.0.0.1:6789
mon initial members = a
public addr = 127.0.0.1
ms bind ipv6 = false
auth cluster required = none
auth service required = none
auth client required = none
auth allow insecure global id reclaim = false
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
mon max pg per osd = 1000
mon allow pool size one = true
mon warn on pool no redundancy = false
osd crush chooseleaf type = 0
run dir = $dir/run
pid file = $dir/run/\$name.pid
admin socket = $dir/run/\$name.asok
log file = $dir/log/\$name.log
keyring = $dir/keyring
[mon]
mon data = $dir/mon/\$cluster-\$id
[osd]
osd data = $dir/osd/\$cluster-\$id
osd objectstore = memstore
memstore device bytes = 1073741824
[client.rgw.a]
rgw frontends = beast endpoint=127.0.0.1:$port
rgw dns name = 127.0.0.1
rgw enable usage log = false
$(_ceph_sts_conf)
EOF

    _ceph_log "creating monitor (fsid $fsid)"
    ceph-authtool --create-keyring "$dir/keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null \
      || _ceph_fail "ceph-authtool" || return 1
    monmaptool --create --add a v1:127.0.0.1:6789 --fsid "$fsid" "$dir/monmap" >/dev/null \
      || _ceph_fail "monmaptool" || return 1
    ceph-mon -c "$conf" --mkfs -i a --monmap "$dir/monmap" --keyring "$dir/keyring" \
      || _ceph_fail "ceph-mon --mkfs" || return 1
    ceph-mon -c "$conf" -i a || _ceph_fail "starting ceph-mon" || return 1
    _ceph_wait_for 30 "the monitor" _ceph_q mon stat || return 1

    _ceph_log "creating one memstore OSD"
    local osd_uuid osd_id
    osd_uuid="$(cat /proc/sys/kernel/random/uuid)"
    osd_id="$(_ceph_q osd new "$osd_uuid")" || _ceph_fail "ceph osd new" || return 1
    mkdir -p "$dir/osd/ceph-$osd_id"
    ceph-osd -c "$conf" -i "$osd_id" --mkfs --osd-uuid "$osd_uuid" >/dev/null 2>&1 \
      || _ceph_fail "ceph-osd --mkfs" || return 1
    ceph-osd -c "$conf" -i "$osd_id" >>"$dir/log/osd-start.log" 2>&1 || _ceph_fail "starting ceph-osd" || return 1
    _ceph_osd_up() { [[ "$(_ceph_q osd stat 2>/dev/null)" == *"1 up"* ]]; }
    _ceph_wait_for 60 "the OSD to come up" _ceph_osd_up || return 1

    _ceph_log "starting radosgw (beast on 127.0.0.1:$port)"
    radosgw -c "$conf" -n client.rgw.a || _ceph_fail "starting radosgw" || return 1
    _ceph_wait_for 90 "radosgw to answer on $endpoint" _ceph_rgw_answers || return 1
  fi

  # 3. The S3 user (create, or confirm it has our key).
  local info
  info="$(timeout 30 radosgw-admin -c "$conf" user info --uid=tenantscope 2>/dev/null || true)"
  if [[ "$info" != *"\"access_key\": \"$access\""* || "$info" != *"\"secret_key\": \"$secret\""* ]]; then
    if [ -z "$info" ]; then
      timeout 30 radosgw-admin -c "$conf" user create --uid=tenantscope --display-name="tenantscope CI" \
        --access-key="$access" --secret="$secret" >/dev/null || _ceph_fail "radosgw-admin user create" || return 1
    else # the user exists (its buckets too): only (re)set its key
      timeout 30 radosgw-admin -c "$conf" key create --uid=tenantscope --key-type=s3 \
        --access-key="$access" --secret="$secret" >/dev/null || _ceph_fail "radosgw-admin key create" || return 1
    fi
  fi
  # Prove the key works and SigV4 is really checked: the right secret lists buckets (200), a wrong
  # one is refused (403 SignatureDoesNotMatch).
  local empty_sha=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 good bad
  good="$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 --aws-sigv4 "aws:amz:us-east-1:s3" \
    --user "$access:$secret" -H "x-amz-content-sha256: $empty_sha" "$endpoint/" || true)"
  bad="$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 --aws-sigv4 "aws:amz:us-east-1:s3" \
    --user "$access:not-the-secret" -H "x-amz-content-sha256: $empty_sha" "$endpoint/" || true)"
  if [ "$good" != "200" ]; then _ceph_fail "a request signed with the S3 user's key got HTTP $good, not 200" || return 1; fi
  if [ "$bad" != "403" ]; then _ceph_fail "a request signed with a wrong secret got HTTP $bad, not 403" || return 1; fi
  _ceph_log "SigV4 checked: right key 200, wrong secret 403"

  # 4. Tenant-scoped credentials (packages/s3 vending tests). A role the CI user may assume, whose
  #    own policy allows S3; each tenant session narrows it with an inline session policy. And two
  #    per-tenant users for the mode without STS (a generated bucket policy grants them their prefix).
  local role=tenantscope-tenant trust rolepol
  trust='{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":["arn:aws:iam:::user/tenantscope"]},"Action":["sts:AssumeRole"]}]}'
  rolepol='{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:*"],"Resource":["arn:aws:s3:::*"]}]}'
  timeout 30 radosgw-admin -c "$conf" caps add --uid=tenantscope --caps="roles=*" >/dev/null \
    || _ceph_fail "radosgw-admin caps add roles=*" || return 1
  if ! timeout 30 radosgw-admin -c "$conf" role get --role-name="$role" >/dev/null 2>&1; then
    timeout 30 radosgw-admin -c "$conf" role create --role-name="$role" --path=/ \
      --assume-role-policy-doc="$trust" >/dev/null || _ceph_fail "radosgw-admin role create" || return 1
  fi
  timeout 30 radosgw-admin -c "$conf" role-policy put --role-name="$role" --policy-name=s3 \
    --policy-doc="$rolepol" >/dev/null || _ceph_fail "radosgw-admin role-policy put" || return 1
  local t users=""
  for t in acme globex; do
    if ! timeout 30 radosgw-admin -c "$conf" user info --uid="ts-$t" >/dev/null 2>&1; then
      timeout 30 radosgw-admin -c "$conf" user create --uid="ts-$t" --display-name="tenant $t" \
        --access-key="ts-$t-key" --secret="ts-$t-secret-0123456789abcdef" >/dev/null \
        || _ceph_fail "radosgw-admin user create ts-$t" || return 1
    fi
    users="${users:+$users,}$t=ts-$t:ts-$t-key:ts-$t-secret-0123456789abcdef"
  done

  export S3_STS_ROLE_ARN="arn:aws:iam:::role/$role"
  export S3_STS_MIN_SECONDS=10
  export S3_TENANT_USERS="$users"
  export S3_ENDPOINT="$endpoint"
  export S3_REGION="${S3_REGION:-us-east-1}"
  export S3_ACCESS_KEY_ID="$access"
  export S3_SECRET_ACCESS_KEY="$secret"
  export S3_SERVER_NAME="ceph-radosgw"
  _ceph_log "ready: S3_ENDPOINT=$S3_ENDPOINT ($(radosgw --version 2>/dev/null | head -1 | cut -c1-60))"
  return 0
}

tenantscope_ceph_rgw

#!/usr/bin/env bash
# Rampart end-to-end load benchmark (DESIGN.md §8). See bench/README.md.
#
# Same load, same upstream, one run: (a) the upstream directly over plain
# HTTP, (b) nginx as a plain TLS reverse proxy, (c) Rampart. Prints req/s,
# p50/p99 latency and the Rampart/direct and Rampart/nginx ratios.
#
# SCENARIO=limiter instead compares three Rampart instances that differ
# only in one rate limit on the route: none, in memory, on Redis (a private
# redis-server). Prints memory/none and redis/memory.
# SCENARIO=authn compares two that differ only in the route's authn:
# "none", and a JWT (ES256, one token, so the verdict cache answers after
# the first request). Prints jwt/none.
# SCENARIO=audit compares four that differ only in [audit]: none; the
# encrypted, chained, signed file trail with durability = "fsync" (every
# response waits for its record's group commit); the same with
# durability = "write" (fsync every 50ms); and durability = "interval" (the
# response does not wait; written and fsynced every 50ms). Prints each/off.
# SCENARIO=validate compares two that differ only in validation: a POST of
# the demo payment (~230 bytes of JSON) to a route without validation, and
# to the same route bound to an OpenAPI document (the demo's PaymentRequest
# schema, strict JSON limits, injection detection). Prints on/off.
#
# Knobs (environment): SCENARIO DURATION CONNECTIONS WARMUP ROUNDS PROXY_CPUS
# LOAD_CPUS WRK_THREADS BASE_PORT RAMPART_BIN OUT_DIR KEEP_TMP, and
# AUDIT_LINGER (SCENARIO=audit: `[audit] linger`, else the default). Load goes to
# 127.0.0.1 only.
set -euo pipefail
export LC_ALL=C

DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
CONNECTIONS=${CONNECTIONS:-32}
PROXY_CPUS=${PROXY_CPUS:-0}     # the proxy under test (nginx or Rampart)
LOAD_CPUS=${LOAD_CPUS:-1}       # wrk and the upstream nginx
WRK_THREADS=${WRK_THREADS:-1}
ROUNDS=${ROUNDS:-3}             # >1: targets run round-robin, medians reported
BASE_PORT=${BASE_PORT:-18080}   # first port tried; the next free ones are used
KEEP_TMP=${KEEP_TMP:-0}
SCENARIO=${SCENARIO:-proxy}     # proxy | limiter | authn | audit | validate
[[ $SCENARIO == proxy || $SCENARIO == limiter || $SCENARIO == authn || $SCENARIO == audit || $SCENARIO == validate ]] ||
    { echo "bench: SCENARIO must be proxy, limiter, authn, audit or validate" >&2; exit 2; }

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
OUT_DIR=${OUT_DIR:-$root/bench/out}

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'bench: error: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- cleanup
pids=()
tmp=""
cleanup() {
    local rc=$? pid i
    trap - EXIT INT TERM
    for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
        pid=${pids[i]}
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        for _ in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    if [[ -n $tmp && -d $tmp ]]; then
        if [[ $KEEP_TMP == 1 ]]; then
            log "kept $tmp"
        else
            rm -rf "$tmp"
        fi
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- helpers
# Number of CPUs in a taskset list such as "0", "0,1" or "0-3".
cpu_count() {
    local n=0 part a b
    IFS=, read -ra parts <<<"$1"
    for part in "${parts[@]}"; do
        if [[ $part == *-* ]]; then
            a=${part%-*} b=${part#*-}
            n=$((n + b - a + 1))
        else
            n=$((n + 1))
        fi
    done
    echo "$n"
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# free_port VAR: set VAR to the next port from BASE_PORT up that nothing
# listens on (no subshell: next_port must advance).
next_port=$BASE_PORT
free_port() {
    while port_in_use "$next_port"; do
        next_port=$((next_port + 1))
    done
    printf -v "$1" '%s' "$next_port"
    next_port=$((next_port + 1))
}

# render TEMPLATE OUT KEY=VALUE...: replace @KEY@ with VALUE.
render() {
    local src=$1 dst=$2 kv k v esc args=()
    shift 2
    for kv in "$@"; do
        k=${kv%%=*} v=${kv#*=}
        esc=$(printf '%s' "$v" | sed -e 's/[\\|&]/\\&/g')
        args+=(-e "s|@${k}@|${esc}|g")
    done
    sed "${args[@]}" "$src" >"$dst"
    if grep -q '@[A-Z_]*@' "$dst"; then
        die "unrendered placeholder in $dst: $(grep -o '@[A-Z_]*@' "$dst" | head -1)"
    fi
}

# wait_ready NAME PID URL [curl args...]: the body must equal $BODY.
wait_ready() {
    local name=$1 pid=$2 url=$3 body=""
    shift 3
    for _ in $(seq 1 100); do
        if ! kill -0 "$pid" 2>/dev/null; then
            return 1
        fi
        if body=$(curl -fsS --max-time 2 "$@" "$url" 2>/dev/null); then
            if [[ $body == "$BODY" ]]; then
                log "$name is up ($url)"
                return 0
            fi
            log "$name answered with an unexpected body: ${body:0:200}"
            return 1
        fi
        sleep 0.2
    done
    return 1
}

# ---------------------------------------------------------------- 1. build
if [[ -n ${RAMPART_BIN:-} ]]; then
    log "using RAMPART_BIN=$RAMPART_BIN (no build)"
else
    log "building: cargo build --release -p rampart"
    cargo build --release -p rampart --manifest-path "$root/Cargo.toml"
    if [[ -n ${CARGO_TARGET_DIR:-} ]]; then
        target_dir=$CARGO_TARGET_DIR
    elif command -v python3 >/dev/null; then
        target_dir=$(cargo metadata --format-version 1 --no-deps --manifest-path "$root/Cargo.toml" |
            python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
    else
        target_dir=$root/target
    fi
    RAMPART_BIN=$target_dir/release/rampart
fi
[[ -x $RAMPART_BIN ]] || die "no rampart binary at $RAMPART_BIN"
RAMPART_BIN=$(cd "$(dirname "$RAMPART_BIN")" && pwd)/$(basename "$RAMPART_BIN")

# ---------------------------------------------------------------- 2. tools
find_nginx() { command -v nginx 2>/dev/null || { [[ -x /usr/sbin/nginx ]] && echo /usr/sbin/nginx; } || true; }
missing=()
[[ -n $(find_nginx) ]] || missing+=(nginx)
command -v wrk >/dev/null || missing+=(wrk)
for tool in openssl curl taskset awk; do
    command -v "$tool" >/dev/null || die "$tool is required"
done
if [[ $SCENARIO == limiter ]] && ! command -v redis-server >/dev/null; then
    missing+=(redis-server)
fi
if ((${#missing[@]} > 0)); then
    [[ $(id -u) == 0 ]] || die "missing ${missing[*]}: install them (apt-get install ${missing[*]}) or run as root"
    log "installing ${missing[*]} from Debian packages"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    pkgs=()
    for p in "${missing[@]}"; do pkgs+=("$p"); done
    if ! apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >&2; then
        # nginx-light is the smaller flavour; try it if the meta package fails.
        pkgs=("${pkgs[@]/#nginx/nginx-light}")
        apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >&2
    fi
fi
NGINX=$(find_nginx)
[[ -n $NGINX ]] || die "nginx not found after install"
command -v wrk >/dev/null || die "wrk not found after install"

ncpu=$(nproc)
proxy_threads=$(cpu_count "$PROXY_CPUS")

# ---------------------------------------------------------------- 3. certs
tmp=$(mktemp -d "${TMPDIR:-/tmp}/rampart-bench.XXXXXX")
chmod 755 "$tmp" # nginx workers may run as another user
log "work dir $tmp"
(
    cd "$tmp"
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ca.key 2>/dev/null
    openssl req -x509 -new -key ca.key -sha256 -days 2 -subj "/CN=Rampart bench CA" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" -out ca.pem 2>/dev/null
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out server.key 2>/dev/null
    openssl req -new -key server.key -subj "/CN=localhost" -out server.csr 2>/dev/null
    cat >server.ext <<'EOF'
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=DNS:localhost,IP:127.0.0.1
EOF
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -sha256 \
        -extfile server.ext -out server.pem 2>/dev/null
    chmod 644 server.key
) || die "certificate generation failed"
CA=$tmp/ca.pem CERT=$tmp/server.pem KEY=$tmp/server.key

# ~300-byte account list.
BODY='{"accounts":[{"id":"acc-001","iban":"DE89370400440532013000","currency":"EUR","type":"checking","balance":"1523.47"},{"id":"acc-002","iban":"DE02120300000000202051","currency":"EUR","type":"savings","balance":"20431.00"},{"id":"acc-003","iban":"GB29NWBK60161331926819","currency":"GBP","type":"checking","balance":"87.12"}]}'

free_port UPSTREAM_PORT
free_port NGINX_PORT
free_port RAMPART_PORT
free_port ADMIN_PORT

# ---------------------------------------------------------------- 4. upstream
mkdir -p "$tmp/upstream" "$tmp/proxy"
render "$here/nginx-upstream.conf.in" "$tmp/upstream/nginx.conf" \
    WORKERS=1 DIR="$tmp/upstream" UPSTREAM_PORT="$UPSTREAM_PORT" BODY="$BODY"
taskset -c "$LOAD_CPUS" "$NGINX" -p "$tmp/upstream/" -e "$tmp/upstream/error.log" \
    -c "$tmp/upstream/nginx.conf" >"$tmp/upstream/stdout.log" 2>&1 &
pids+=($!)
wait_ready "upstream nginx" "${pids[-1]}" "http://127.0.0.1:$UPSTREAM_PORT/v1/accounts" ||
    { cat "$tmp/upstream/"*.log >&2 || true; die "target 'direct (http)' (upstream nginx) failed to start"; }

# start_rampart NAME PORT ADMIN_PORT EXTRA [AUTHN]: a Rampart from
# rampart.toml.in with EXTRA appended to the policy and the route's authn
# replaced by AUTHN; sets the pid in pids.
start_rampart() {
    local name=$1 port=$2 admin=$3 extra=$4 authn=${5:-} conf=$tmp/rampart-$1.toml
    render "$here/rampart.toml.in" "$conf" \
        PORT="$port" ADMIN_PORT="$admin" UPSTREAM_PORT="$UPSTREAM_PORT" CERT="$CERT" KEY="$KEY"
    [[ -z $authn ]] || sed -i "s|^authn = \"none\"\$|authn = $authn\nauthz = \"authenticated\"|" "$conf"
    [[ $SCENARIO != validate ]] || sed -i 's|^methods = \["GET"\]$|methods = ["GET", "POST"]|' "$conf"
    printf '%s\n' "$extra" >>"$conf"
    log "rampart check --config $conf"
    "$RAMPART_BIN" check --config "$conf" >&2 || die "rampart check rejected the benchmark policy $conf"
    TOKIO_WORKER_THREADS=$proxy_threads taskset -c "$PROXY_CPUS" \
        "$RAMPART_BIN" serve --config "$conf" >"$tmp/rampart-$name.log" 2>&1 &
    pids+=($!)
    wait_ready "rampart ($name)" "${pids[-1]}" "https://localhost:$port/v1/accounts" \
        --cacert "$CA" --resolve "localhost:$port:127.0.0.1" ${AUTH_HEADER:+-H "$AUTH_HEADER"} ||
        { cat "$tmp/rampart-$name.log" >&2 || true; die "rampart ($name) failed to start"; }
}

if [[ $SCENARIO == proxy ]]; then
# ---------------------------------------------------------------- 5. nginx TLS proxy
render "$here/nginx-proxy.conf.in" "$tmp/proxy/nginx.conf" \
    WORKERS="$proxy_threads" DIR="$tmp/proxy" PORT="$NGINX_PORT" \
    UPSTREAM_PORT="$UPSTREAM_PORT" CERT="$CERT" KEY="$KEY"
taskset -c "$PROXY_CPUS" "$NGINX" -p "$tmp/proxy/" -e "$tmp/proxy/error.log" \
    -c "$tmp/proxy/nginx.conf" >"$tmp/proxy/stdout.log" 2>&1 &
pids+=($!)
wait_ready "nginx TLS proxy" "${pids[-1]}" "https://localhost:$NGINX_PORT/v1/accounts" \
    --cacert "$CA" --resolve "localhost:$NGINX_PORT:127.0.0.1" ||
    { cat "$tmp/proxy/"*.log >&2 || true; die "target 'nginx (tls)' failed to start"; }

# ---------------------------------------------------------------- 6. Rampart
start_rampart plain "$RAMPART_PORT" "$ADMIN_PORT" ""
rampart_threads=$(find "/proc/${pids[-1]}/task" -mindepth 1 -maxdepth 1 | wc -l)
names=("direct (http)" "nginx (tls)" "rampart (tls)")
keys=(direct nginx rampart)
urls=("http://127.0.0.1:$UPSTREAM_PORT/v1/accounts"
    "https://127.0.0.1:$NGINX_PORT/v1/accounts"
    "https://127.0.0.1:$RAMPART_PORT/v1/accounts")
elif [[ $SCENARIO == authn ]]; then
# ---------------------------------------------------------------- 5-6. authn: an issuer key, a token, two Rampart
"$RAMPART_BIN" keys gen --alg ES256 --out-dir "$tmp/idp" >/dev/null || die "rampart keys gen failed"
TOKEN=$("$RAMPART_BIN" token mint --key "$tmp/idp/private.jwk" --iss https://idp.bench --sub customer-a \
    --aud bench-api --scope accounts:read --ttl 2h) || die "rampart token mint failed"
AUTH_HEADER="Authorization: Bearer $TOKEN"
free_port RAMPART_PORT2
free_port ADMIN_PORT2
start_rampart none "$RAMPART_PORT" "$ADMIN_PORT" ""
start_rampart jwt "$RAMPART_PORT2" "$ADMIN_PORT2" "
[[issuers]]
name = \"bench-idp\"
issuer = \"https://idp.bench\"
audiences = [\"bench-api\"]
jwks_file = \"$tmp/idp/jwks.json\"" '["jwt:bench-idp"]'
rampart_threads=$(find "/proc/${pids[-1]}/task" -mindepth 1 -maxdepth 1 | wc -l)
names=("authn none" "authn jwt")
keys=(none jwt)
urls=("https://127.0.0.1:$RAMPART_PORT/v1/accounts"
    "https://127.0.0.1:$RAMPART_PORT2/v1/accounts")
elif [[ $SCENARIO == audit ]]; then
# ---------------------------------------------------------------- 5-6. audit: keys, two Rampart
"$RAMPART_BIN" audit keygen --dir "$tmp" >/dev/null 2>&1 || die "rampart audit keygen failed"
free_port RAMPART_PORT2
free_port ADMIN_PORT2
free_port RAMPART_PORT3
free_port ADMIN_PORT3
trail() {
    printf '\n[audit]\ndir = "%s"\nsigning_key_file = "%s"\ndurability = "%s"\n%s\n[[audit.master_keys]]\nid = "k1"\nfile = "%s"\n' \
        "$tmp/audit-$1" "$tmp/audit-signing.pem" "$1" "${AUDIT_LINGER:+linger = \"$AUDIT_LINGER\"}" "$tmp/audit-master.key"
}
free_port RAMPART_PORT4
free_port ADMIN_PORT4
start_rampart off "$RAMPART_PORT" "$ADMIN_PORT" ""
start_rampart on "$RAMPART_PORT2" "$ADMIN_PORT2" "$(trail fsync)"
start_rampart write "$RAMPART_PORT3" "$ADMIN_PORT3" "$(trail write)"
start_rampart interval "$RAMPART_PORT4" "$ADMIN_PORT4" "$(trail interval)"
rampart_threads=$(find "/proc/${pids[-1]}/task" -mindepth 1 -maxdepth 1 | wc -l)
names=("audit off" "audit fsync" "audit write" "audit interval")
keys=(off on write interval)
urls=("https://127.0.0.1:$RAMPART_PORT/v1/accounts"
    "https://127.0.0.1:$RAMPART_PORT2/v1/accounts"
    "https://127.0.0.1:$RAMPART_PORT3/v1/accounts"
    "https://127.0.0.1:$RAMPART_PORT4/v1/accounts")
elif [[ $SCENARIO == validate ]]; then
# ---------------------------------------------------------------- 5-6. validate: a spec, a payment, two Rampart
# The demo's PaymentRequest schema, declared for POST /v1/accounts (the
# path the benchmark upstream answers).
{
    printf 'openapi: 3.1.0\ninfo: {title: bench, version: "1"}\npaths:\n'
    printf '  /v1/accounts:\n    get:\n      responses: {"200": {description: ok}}\n'
    printf '    post:\n      requestBody:\n        required: true\n        content:\n'
    printf '          application/json:\n            schema: {$ref: "#/components/schemas/PaymentRequest"}\n'
    printf '      responses: {"200": {description: ok}}\n'
    sed -n '/^components:/,$p' "$root/config/demo/bank-openapi.yaml"
} >"$tmp/bench-openapi.yaml"
PAYMENT='{"debtor_account":"acc-1001","instructed_amount":{"amount":"125.00","currency":"EUR"},"creditor":{"name":"ACME Energy GmbH","iban":"DE89370400440532013000"},"remittance_information":"Invoice 2026-117"}'
printf 'wrk.method = "POST"\nwrk.body = %s\nwrk.headers["Content-Type"] = "application/json"\n' "'$PAYMENT'" >"$tmp/post.lua"
free_port RAMPART_PORT2
free_port ADMIN_PORT2
start_rampart off "$RAMPART_PORT" "$ADMIN_PORT" ""
start_rampart on "$RAMPART_PORT2" "$ADMIN_PORT2" "
[[apis]]
name = \"bench\"
spec = \"$tmp/bench-openapi.yaml\"
upstream = \"bank\""
curl -sf --cacert "$CA" --resolve "localhost:$RAMPART_PORT2:127.0.0.1" -H 'content-type: application/json' \
    -d "$PAYMENT" "https://localhost:$RAMPART_PORT2/v1/accounts" >/dev/null || die "the valid payment was refused"
code=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$CA" --resolve "localhost:$RAMPART_PORT2:127.0.0.1" \
    -H 'content-type: application/json' -d '{"debtor_account":"x"}' "https://localhost:$RAMPART_PORT2/v1/accounts")
[[ $code == 422 ]] || die "validation is not on (a malformed payment got $code)"
rampart_threads=$(find "/proc/${pids[-1]}/task" -mindepth 1 -maxdepth 1 | wc -l)
names=("validation off" "validation on")
keys=(off on)
urls=("https://127.0.0.1:$RAMPART_PORT/v1/accounts"
    "https://127.0.0.1:$RAMPART_PORT2/v1/accounts")
else
# ---------------------------------------------------------------- 5-6. limiter: Redis and three Rampart
free_port REDIS_PORT
free_port RAMPART_PORT2
free_port ADMIN_PORT2
free_port RAMPART_PORT3
free_port ADMIN_PORT3
taskset -c "$LOAD_CPUS" redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save "" \
    --appendonly no --protected-mode no >"$tmp/redis.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do
    redis-cli -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG && break
    sleep 0.1
done
redis-cli -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG || die "redis-server did not start"
redis_pid=${pids[-1]}
# A limit that never refuses (one key: every wrk connection is 127.0.0.1),
# so the run measures the cost of the decision, not refusals.
limit='[[routes.rate_limit]]
algorithm = "token_bucket"
limit = 1000000000
per = "1s"'
start_rampart none "$RAMPART_PORT" "$ADMIN_PORT" ""
start_rampart memory "$RAMPART_PORT2" "$ADMIN_PORT2" "$limit"
start_rampart redis "$RAMPART_PORT3" "$ADMIN_PORT3" "$limit
store = \"redis\"

[redis]
url = \"redis://127.0.0.1:$REDIS_PORT\"
on_failure = \"deny\""
rampart_threads=$(find "/proc/${pids[-1]}/task" -mindepth 1 -maxdepth 1 | wc -l)
names=("no limit" "memory limit" "redis limit")
keys=(none memory redis)
urls=("https://127.0.0.1:$RAMPART_PORT/v1/accounts"
    "https://127.0.0.1:$RAMPART_PORT2/v1/accounts"
    "https://127.0.0.1:$RAMPART_PORT3/v1/accounts")
fi

# ---------------------------------------------------------------- 7. load
mkdir -p "$OUT_DIR"
rm -f "$OUT_DIR"/wrk-*.txt "$OUT_DIR/summary-$SCENARIO.txt"
wrk_cmd=(taskset -c "$LOAD_CPUS" wrk --latency "-t$WRK_THREADS" "-c$CONNECTIONS" "-d$DURATION")
warm_cmd=(taskset -c "$LOAD_CPUS" wrk "-t$WRK_THREADS" "-c$CONNECTIONS" "-d$WARMUP")
if [[ -n ${AUTH_HEADER:-} ]]; then
    wrk_cmd+=(-H "$AUTH_HEADER")
    warm_cmd+=(-H "$AUTH_HEADER")
fi
if [[ $SCENARIO == validate ]]; then
    wrk_cmd+=(-s "$tmp/post.lua")
    warm_cmd+=(-s "$tmp/post.lua")
fi

# to_ms VALUE: wrk prints 812.00us, 1.23ms, 2.01s, 1.00m.
to_ms() {
    awk -v v="$1" 'BEGIN {
        n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
        if (u == "us") n /= 1000; else if (u == "s") n *= 1000; else if (u == "m") n *= 60000
        else if (u != "ms") { print "nan"; exit }
        printf "%.3f", n }'
}

# cpu_ticks PID: user+system clock ticks of PID and its direct children
# (nginx master + workers; Rampart is one process, all threads included).
cpu_ticks() {
    local p sum=0 t
    for p in "$1" $(pgrep -P "$1" 2>/dev/null || true); do
        t=$(awk '{sub(/^.*\) /, ""); print $12 + $13}' "/proc/$p/stat" 2>/dev/null || echo 0)
        sum=$((sum + t))
    done
    echo "$sum"
}
clk_tck=$(getconf CLK_TCK)
case $SCENARIO in
proxy) target_pid=("${pids[0]}" "${pids[1]}" "${pids[2]}") ;;
authn | validate) target_pid=("${pids[1]}" "${pids[2]}") ;;
audit) target_pid=("${pids[1]}" "${pids[2]}" "${pids[3]}" "${pids[4]}") ;;
*) target_pid=("${pids[2]}" "${pids[3]}" "${pids[4]}") ;;
esac
load_before=$(cut -d' ' -f1-3 /proc/loadavg)

# median of the arguments (numbers).
median() {
    printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END {
        if (NR == 0) exit; if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

failed=()
declare -A rps p50 p99 cpu_us all_rps all_p50 all_p99 ticks reqs dead
for k in "${keys[@]}"; do ticks[$k]=0 reqs[$k]=0; done
redis_ticks=0
for ((round = 1; round <= ROUNDS; round++)); do
    for i in "${!keys[@]}"; do
        k=${keys[i]} name=${names[i]} url=${urls[i]}
        [[ -z ${dead[$k]:-} ]] || continue
        if ((round == 1)); then
            log "warm-up $name: $WARMUP"
            if ! "${warm_cmd[@]}" "$url" >"$OUT_DIR/wrk-$k-warmup.txt" 2>&1; then
                failed+=("$name: wrk warm-up failed") dead[$k]=1
                continue
            fi
        fi
        out=$OUT_DIR/wrk-$k.txt
        ((ROUNDS == 1)) || out=$OUT_DIR/wrk-$k-$round.txt
        log "load $name (round $round/$ROUNDS): ${wrk_cmd[*]} $url"
        t0=$(cpu_ticks "${target_pid[i]}")
        [[ $k != redis ]] || rt0=$(cpu_ticks "$redis_pid")
        if ! "${wrk_cmd[@]}" "$url" >"$out" 2>&1; then
            failed+=("$name: wrk failed") dead[$k]=1
            cat "$out" >&2
            continue
        fi
        t1=$(cpu_ticks "${target_pid[i]}")
        [[ $k != redis ]] || redis_ticks=$((redis_ticks + $(cpu_ticks "$redis_pid") - rt0))
        r=$(awk '/^Requests\/sec:/ {print $2}' "$out")
        total=$(awk '/requests in/ {print $1}' "$out")
        non2xx=$(awk '/Non-2xx or 3xx responses:/ {print $NF}' "$out")
        errs=$(awk '/Socket errors:/ {sub(/.*Socket errors: */, ""); print}' "$out")
        if [[ -z $r || -z $total || $total == 0 ]]; then
            failed+=("$name: no completed requests") dead[$k]=1
            continue
        fi
        if [[ -n $non2xx && $non2xx != 0 ]]; then
            failed+=("$name: $non2xx non-2xx/3xx responses (of $total)")
        fi
        [[ -z $errs ]] || log "$name: socket errors: $errs"
        all_rps[$k]+=" $r"
        all_p50[$k]+=" $(to_ms "$(awk '$1 == "50%" {print $2}' "$out")")"
        all_p99[$k]+=" $(to_ms "$(awk '$1 == "99%" {print $2}' "$out")")"
        ticks[$k]=$((ticks[$k] + t1 - t0)) reqs[$k]=$((reqs[$k] + total))
    done
done
for k in "${keys[@]}"; do
    [[ -n ${all_rps[$k]:-} ]] || continue
    # shellcheck disable=SC2086 # word splitting of the per-round lists is intended
    rps[$k]=$(median ${all_rps[$k]}) p50[$k]=$(median ${all_p50[$k]}) p99[$k]=$(median ${all_p99[$k]})
    cpu_us[$k]=$(awk -v d="${ticks[$k]}" -v hz="$clk_tck" -v n="${reqs[$k]}" 'BEGIN { printf "%.1f", d / hz * 1e6 / n }')
done
for i in "${!keys[@]}"; do
    kill -0 "${target_pid[i]}" 2>/dev/null || failed+=("${names[i]}: the process died during the run")
done

# ---------------------------------------------------------------- 8. report
tls_of() {
    openssl s_client -connect "127.0.0.1:$1" -servername localhost </dev/null 2>/dev/null |
        awk '/^New,/ {sub(/^New, */, ""); print; exit}'
}
nginx_v=$("$NGINX" -v 2>&1 | head -1)
wrk_v=$(wrk -v 2>&1 | head -1 | awk '{print $1, $2, $3}' || true)
rampart_v=$("$RAMPART_BIN" --version 2>&1 | head -1)
cpu_model=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)

report() {
    echo "Rampart load benchmark — $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "machine:  $ncpu CPU(s), ${cpu_model:-unknown CPU}, $(uname -sr)"
    echo "versions: $nginx_v; $wrk_v; $rampart_v"
    echo "command:  ${wrk_cmd[*]} <url>   (after a $WARMUP warm-up run per target, not reported)"
    echo "pinning:  proxy under test (nginx or Rampart, same for both) on CPU(s) $PROXY_CPUS;"
    echo "          wrk and the upstream nginx on CPU(s) $LOAD_CPUS."
    echo "          nginx: worker_processes $proxy_threads; Rampart: TOKIO_WORKER_THREADS=$proxy_threads ($rampart_threads OS threads)"
    if ((ROUNDS > 1)); then
        echo "rounds:   $ROUNDS, targets interleaved (${keys[*]}, ...); medians below"
        for k in "${keys[@]}"; do echo "          $k req/s per round:${all_rps[$k]:-}"; done
    fi
    if [[ $SCENARIO == proxy ]]; then
        echo "tls:      nginx: $(tls_of "$NGINX_PORT"); rampart: $(tls_of "$RAMPART_PORT")"
    elif [[ $SCENARIO == validate ]]; then
        echo "validate: POST of the demo payment; 'on' binds the route to an OpenAPI document (PaymentRequest schema, formats, injection detection)"
        echo "tls:      $(tls_of "$RAMPART_PORT")"
    elif [[ $SCENARIO == authn ]]; then
        echo "authn:    ES256 JWT from a jwks_file issuer, one token for every request (verdict cache); wrk sends it to both"
        echo "tls:      $(tls_of "$RAMPART_PORT")"
    elif [[ $SCENARIO == audit ]]; then
        echo "audit:    file trail (AES-256-GCM segments, SHA-256 chain, Ed25519 checkpoints every 1000),"
        echo "          durability fsync (group commit), write (fsync every 50ms) and interval (no wait), on $(df -P "$tmp" | awk 'NR == 2 {print $1}')"
        echo "          trail bytes written: fsync $(cat "$tmp"/audit-fsync/*.seg 2>/dev/null | wc -c), write $(cat "$tmp"/audit-write/*.seg 2>/dev/null | wc -c), interval $(cat "$tmp"/audit-interval/*.seg 2>/dev/null | wc -c)"
        echo "tls:      $(tls_of "$RAMPART_PORT")"
    else
        echo "limiter:  token_bucket per client address (one key), never refusing; redis-server $(redis-server --version | awk '{print $3}') on CPU(s) $LOAD_CPUS"
        echo "tls:      $(tls_of "$RAMPART_PORT")"
    fi
    echo "upstream: nginx 'return 200' JSON, ${#BODY} bytes, plain HTTP/1.1 keep-alive"
    echo "loadavg:  $load_before before, $(cut -d' ' -f1-3 /proc/loadavg) after (other work on the machine skews absolute numbers)"
    echo
    printf '%-16s %10s %9s %9s\n' target req/s 'p50(ms)' 'p99(ms)'
    for i in "${!keys[@]}"; do
        k=${keys[i]}
        if [[ -n ${rps[$k]:-} ]]; then
            printf '%-16s %10.2f %9.3f %9.3f\n' "${names[i]}" "${rps[$k]}" "${p50[$k]}" "${p99[$k]}"
        else
            printf '%-16s %10s %9s %9s\n' "${names[i]}" - - -
        fi
    done
    echo
    if [[ $SCENARIO == audit ]]; then
        for k in on write interval; do
            awk -v r="${rps[$k]:-0}" -v q="${rps[off]:-1}" -v x="${p99[$k]:-0}" -v y="${p99[off]:-1}" -v n="$k" \
                'BEGIN { printf "%-15s throughput %.2f   p99 %.2f   (goal >= 0.95: %s)\n", (n == "on" ? "fsync" : n) "/off", r / q, x / y, (r / q >= 0.95) ? "MET" : "NOT MET" }'
        done
        printf '\nCPU time of the gateway per request (us): off %s, fsync %s, write %s, interval %s (the writer thread included)\n' \
            "${cpu_us[off]:--}" "${cpu_us[on]:--}" "${cpu_us[write]:--}" "${cpu_us[interval]:--}"
    elif [[ $SCENARIO == validate ]]; then
        awk -v r="${rps[on]:-0}" -v q="${rps[off]:-1}" -v x="${p99[on]:-0}" -v y="${p99[off]:-1}" \
            'BEGIN { printf "on/off          throughput %.2f   p99 %.2f   (goal >= 0.9: %s)\n", r / q, x / y, (r / q >= 0.9) ? "MET" : "NOT MET" }'
        printf '\nCPU time of the gateway per request (us): off %s, on %s\n' "${cpu_us[off]:--}" "${cpu_us[on]:--}"
    elif [[ $SCENARIO == authn ]]; then
        awk -v r="${rps[jwt]:-0}" -v q="${rps[none]:-1}" -v x="${p99[jwt]:-0}" -v y="${p99[none]:-1}" \
            'BEGIN { printf "jwt/none        throughput %.2f   p99 %.2f   (goal >= 0.9: %s)\n", r / q, x / y, (r / q >= 0.9) ? "MET" : "NOT MET" }'
        printf '\nCPU time of the gateway per request (us): none %s, jwt %s\n' "${cpu_us[none]:--}" "${cpu_us[jwt]:--}"
    elif [[ $SCENARIO == limiter ]]; then
        for pair in "memory none 0.95" "redis memory 0.7" "redis none -"; do
            read -r a b goal <<<"$pair"
            [[ -n ${rps[$a]:-} && -n ${rps[$b]:-} ]] || continue
            awk -v r="${rps[$a]}" -v q="${rps[$b]}" -v x="${p99[$a]}" -v y="${p99[$b]}" -v n="$a/$b" -v g="$goal" \
                'BEGIN { printf "%-15s throughput %.2f   p99 %.2f", n, r / q, x / y
                         if (g != "-") printf "   (goal >= %s: %s)", g, (r / q >= g) ? "MET" : "NOT MET"
                         printf "\n" }'
        done
        printf '\nCPU time of the gateway per request (us): none %s, memory %s, redis %s\n' \
            "${cpu_us[none]:--}" "${cpu_us[memory]:--}" "${cpu_us[redis]:--}"
        awk -v d="$redis_ticks" -v hz="$clk_tck" -v n="${reqs[redis]}" \
            'BEGIN { if (n > 0) printf "CPU time of redis-server per request (us): %.1f (on the load core, beside wrk and the upstream)\n", d / hz * 1e6 / n }'
    elif [[ -n ${rps[rampart]:-} ]]; then
        for ref in direct nginx; do
            [[ -n ${rps[$ref]:-} ]] || continue
            awk -v r="${rps[rampart]}" -v q="${rps[$ref]}" -v a="${p99[rampart]}" -v b="${p99[$ref]}" -v n="$ref" \
                'BEGIN { printf "%-15s throughput %.2f   p99 %.2f\n", "rampart/" n, r / q, a / b }'
        done
        printf '\nCPU time of the target per request (us): direct(upstream) %s, nginx %s, rampart %s\n' \
            "${cpu_us[direct]:--}" "${cpu_us[nginx]:--}" "${cpu_us[rampart]:--}"
        if ((${#failed[@]} > 0)); then
            printf '\ntarget (rampart req/s >= nginx, p99 <= 1.2x nginx): not judged, the run had failures\n'
        elif [[ -n ${rps[nginx]:-} ]]; then
            awk -v r="${rps[rampart]}" -v q="${rps[nginx]}" -v a="${p99[rampart]}" -v b="${p99[nginx]}" \
                'BEGIN { ok = (r >= q && a <= 1.2 * b)
                         printf "\ntarget (rampart req/s >= nginx, p99 <= 1.2x nginx): %s\n", ok ? "MET" : "NOT MET" }'
        fi
    fi
}
report | tee "$OUT_DIR/summary-$SCENARIO.txt"

if ((${#failed[@]} > 0)); then
    echo >&2
    for f in "${failed[@]}"; do echo "FAILED: $f" >&2; done
    echo "raw wrk output in $OUT_DIR" >&2
    exit 1
fi

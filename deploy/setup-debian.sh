#!/usr/bin/env bash
# PostgreSQL and Redis for an Interlink cluster on this Debian machine, the database, the
# interlink user and /etc/interlink/hub.toml. Idempotent: run it again, nothing changes.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
export DEBIAN_FRONTEND=noninteractive
need=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
[ -x /usr/bin/redis-server ] || need+=(redis-server)
if [ ${#need[@]} -gt 0 ]; then
    apt-get update -qq && apt-get install -y -qq "${need[@]}"
fi
systemctl enable --now postgresql redis-server 2>/dev/null || service postgresql start

# The database: UTF-8 with the C collation (Interlink compares JIDs byte for byte).
if ! runuser -u postgres -- psql -tAc "SELECT 1 FROM pg_roles WHERE rolname='interlink'" | grep -q 1; then
    runuser -u postgres -- createuser interlink
fi
if ! runuser -u postgres -- psql -tAc "SELECT 1 FROM pg_database WHERE datname='interlink'" | grep -q 1; then
    runuser -u postgres -- createdb -O interlink -E UTF8 --locale=C -T template0 interlink
fi

# Redis keeps what it acknowledged: the append-only file, fsynced on every write.
conf=/etc/redis/redis.conf
set_redis() {
    if grep -qE "^$1 " "$conf"; then sed -i "s|^$1 .*|$1 $2|" "$conf"; else echo "$1 $2" >> "$conf"; fi
}
set_redis appendonly yes
set_redis appendfsync always
set_redis maxmemory-policy noeviction
systemctl restart redis-server 2>/dev/null || service redis-server restart

# The service's user, data directory and configuration.
id interlink >/dev/null 2>&1 || useradd --system --home /var/lib/interlink --shell /usr/sbin/nologin interlink
install -d -o interlink -g interlink -m 0750 /var/lib/interlink
install -d -m 0755 /etc/interlink
[ -f /etc/interlink/hub.toml ] || install -m 0644 "$here/hub.toml" /etc/interlink/hub.toml
echo "ready: edit /etc/interlink/hub.toml (domain, TLS files), then start interlink.service"

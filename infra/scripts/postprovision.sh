#!/bin/sh
# azd postprovision hook: apply the schema and create the app identity's database user.
#
# Runs as the deploying principal (the SQL Entra admin) with go-sqlcmd's ActiveDirectoryDefault
# authentication, which reuses the `azd auth login` / `az login` session. Needs: sqlcmd (go-sqlcmd),
# az (to open the SQL firewall to this machine for the run) and curl.
#
# Environment (azd exports the outputs of infra/main.bicep):
#   AZURE_SQL_SERVER_NAME, AZURE_SQL_SERVER_FQDN, AZURE_SQL_DATABASE_NAME, AZURE_RESOURCE_GROUP,
#   APP_IDENTITY_NAME, APP_IDENTITY_PRINCIPAL_ID
# Optional:
#   SQL_MIGRATIONS_DIR  apply every *.sql in this folder in name order instead of SQL_SCRIPTS
#   SQL_SCRIPTS         space-separated files applied in order (default: schema.sql)
#   CLIENT_IP           this machine's public address (default: asked from api.ipify.org)
#   SKIP_FIREWALL_RULE  1 = the server is already reachable; do not touch its firewall
set -eu

cd "$(dirname "$0")/../.."

for name in AZURE_SQL_SERVER_NAME AZURE_SQL_SERVER_FQDN AZURE_SQL_DATABASE_NAME AZURE_RESOURCE_GROUP \
            APP_IDENTITY_NAME APP_IDENTITY_PRINCIPAL_ID; do
  eval "value=\${$name:-}"
  if [ -z "$value" ]; then
    echo "postprovision: $name is not set (run through azd, or export the values of 'azd env get-values')" >&2
    exit 1
  fi
done

if [ -n "${SQL_MIGRATIONS_DIR:-}" ]; then
  scripts=$(find "$SQL_MIGRATIONS_DIR" -maxdepth 1 -name '*.sql' | LC_ALL=C sort)
  if [ -z "$scripts" ]; then
    echo "postprovision: no .sql files in $SQL_MIGRATIONS_DIR" >&2
    exit 1
  fi
else
  scripts=${SQL_SCRIPTS:-schema.sql}
fi

rule=azd-postprovision
if [ "${SKIP_FIREWALL_RULE:-0}" != 1 ]; then
  ip=${CLIENT_IP:-$(curl -fsS https://api.ipify.org)}
  echo "postprovision: allowing $ip through the SQL firewall for this run"
  az sql server firewall-rule create --resource-group "$AZURE_RESOURCE_GROUP" --server "$AZURE_SQL_SERVER_NAME" \
    --name "$rule" --start-ip-address "$ip" --end-ip-address "$ip" --output none
  trap 'az sql server firewall-rule delete --resource-group "$AZURE_RESOURCE_GROUP" --server "$AZURE_SQL_SERVER_NAME" --name "$rule" --output none' EXIT
fi

run_sql() {
  # -I: QUOTED_IDENTIFIER ON, which the filtered indexes of schema.sql require; -b: stop on error.
  sqlcmd -S "tcp:$AZURE_SQL_SERVER_FQDN,1433" -d "$AZURE_SQL_DATABASE_NAME" \
    --authentication-method ActiveDirectoryDefault -I -b "$@"
}

for script in $scripts; do
  echo "postprovision: applying $script"
  run_sql -i "$script"
done

echo "postprovision: database user for $APP_IDENTITY_NAME (read, write, execute; no DDL)"
run_sql -v APP_IDENTITY_NAME="$APP_IDENTITY_NAME" APP_IDENTITY_PRINCIPAL_ID="$APP_IDENTITY_PRINCIPAL_ID" \
  -i infra/scripts/app_user.sql

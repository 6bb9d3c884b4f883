#!/bin/sh
# The command the container runs: `callmip serve`, configured by environment variables.
# It works outside a container as well:  CALLMIP_DATA=/srv/archive PORT=5006 deploy/serve.sh
#
#   CALLMIP_DATA             archive folder or fsspec/Zarr URL (required)
#   PORT                     port to listen on (default 5006)
#   CALLMIP_ADDRESS          address to bind (default 0.0.0.0)
#   CALLMIP_PROCS            worker processes sharing the port (default 1; see deploy/README.md)
#   CALLMIP_THREADS          threads per worker for session callbacks (default: none)
#   CALLMIP_CACHE_MB         memory per worker for opened files and series (default 512)
#   CALLMIP_ALLOWED_ORIGINS  comma-separated exact websocket origins, host[:port]
#                            (e.g. explorer.example.org); default: this host and port only
#   CALLMIP_UPLOAD           1 to offer the "Check my files" upload page (default 0: off)
#   CALLMIP_WARM             0 to skip building one app per worker before serving (default 1)
#   CALLMIP_BEHIND_PROXY     1 to trust X-Forwarded-* headers from nginx (default 0)
#   CALLMIP_OAUTH_PROVIDER   github, google, azure, generic, ... : log users in (default off);
#                            then PANEL_OAUTH_KEY, PANEL_OAUTH_SECRET, PANEL_COOKIE_SECRET and
#                            PANEL_OAUTH_ENCRYPTION must be set (read by Panel, kept out of argv)
#   CALLMIP_OAUTH_REDIRECT_URI  public URL the provider redirects to (optional)
#   CALLMIP_PYTHON           Python to run (default: python3); CALLMIP_DRY_RUN=1 prints the
#                            command instead of running it
set -eu

if [ -z "${CALLMIP_DATA:-}" ]; then
    echo "serve.sh: error: set CALLMIP_DATA to the archive folder or URL" >&2
    exit 2
fi
port="${PORT:-5006}"
python="${CALLMIP_PYTHON:-python3}"

set -- "$python" -m dashboard.cli serve "$CALLMIP_DATA" \
    --address "${CALLMIP_ADDRESS:-0.0.0.0}" --port "$port" \
    --num-procs "${CALLMIP_PROCS:-1}" --cache-mb "${CALLMIP_CACHE_MB:-512}"
if [ -n "${CALLMIP_THREADS:-}" ]; then
    set -- "$@" --num-threads "$CALLMIP_THREADS"
fi
if [ "${CALLMIP_WARM:-1}" != "0" ]; then
    set -- "$@" --warm
fi
case "${CALLMIP_UPLOAD:-0}" in
    1|true|yes|on) ;;
    *) set -- "$@" --no-upload ;;
esac
if [ -n "${CALLMIP_ALLOWED_ORIGINS:-}" ]; then
    # Exact origins only: each comma-separated entry becomes one --allow-websocket-origin.
    old_ifs="$IFS"; IFS=","; set -f  # no filename expansion of "*"
    for origin in $CALLMIP_ALLOWED_ORIGINS; do
        origin="$(echo "$origin" | tr -d ' ')"
        case "$origin" in
            ""|"*") echo "serve.sh: error: CALLMIP_ALLOWED_ORIGINS must list exact host[:port] origins" >&2
                    exit 2 ;;
        esac
        set -- "$@" --allow-websocket-origin "$origin"
    done
    IFS="$old_ifs"; set +f
fi
case "${CALLMIP_BEHIND_PROXY:-0}" in
    1|true|yes|on) set -- "$@" --use-xheaders ;;
esac
if [ -n "${CALLMIP_OAUTH_PROVIDER:-}" ]; then
    set -- "$@" --oauth-provider "$CALLMIP_OAUTH_PROVIDER"
    if [ -n "${CALLMIP_OAUTH_REDIRECT_URI:-}" ]; then
        set -- "$@" --oauth-redirect-uri "$CALLMIP_OAUTH_REDIRECT_URI"
    fi
fi

if [ "${CALLMIP_DRY_RUN:-0}" = "1" ]; then
    printf '%s\n' "$*"
    exit 0
fi
exec "$@"

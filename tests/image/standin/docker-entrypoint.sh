#!/bin/sh
# Entrypoint of the local haproxy:3.2 stand-in, with the official image's documented behaviour: arguments that
# start with an option are HAProxy's; HAProxy runs in master-worker mode (-W) in the foreground (-db).
set -e
case "${1:-}" in
-*) set -- haproxy "$@" ;;
esac
if [ "${1:-}" = haproxy ]; then
	shift
	set -- haproxy -W -db "$@"
fi
exec "$@"

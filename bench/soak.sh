#!/bin/sh
# Soak test (bench/soak.lua) against the local stand-in, from the repository root.
#   bench/soak.sh            SOAK_REQUESTS (200000) requests, RSS checked; builds first
#   bench/soak.sh valgrind   SOAK_REQUESTS (5000) under valgrind: any definite or
#                            indirect leak, or any memory error, fails (exit 99)
# SOAK_SEED picks the fault schedule (1). The last line is the verdict.
set -eu
cd "$(dirname "$0")/.."
make -s all
export LUA_CPATH="./build/?.so;;"
case "${1:-}" in
valgrind)
	SOAK_REQUESTS="${SOAK_REQUESTS:-5000}" exec valgrind --leak-check=full \
		--errors-for-leak-kinds=definite,indirect --error-exitcode=99 lua5.4 bench/soak.lua
	;;
"")
	exec lua5.4 bench/soak.lua
	;;
*)
	echo "usage: bench/soak.sh [valgrind]" >&2
	exit 2
	;;
esac

#!/bin/sh
# The C layout rules (make lint): no function past 60 lines, no file past 600,
# and no file of the plain-C core including a Lua header. The binding files
# (the only ones that may know Lua) are listed here; every other file is core.
set -eu
BINDING="ducky.c client.c client.h call.c call.h client_token.c client_token.h options.c options.h
client_batch.c client_batch.h client_new.c exports.c exports.h headers.c headers.h lua_error.c lua_error.h compat.h"
status=0
for f in src/*.c src/*.h; do
	[ -e "$f" ] || continue
	n=$(wc -l <"$f")
	[ "$n" -le 600 ] || { echo "$f: $n lines (at most 600)"; status=1; }
	awk -v f="$f" '
		/^\{$/ { start = NR; name = prev }
		/^\}$/ && start { if (NR - start - 1 > 60) { printf "%s:%d: %s is %d lines (at most 60)\n", f, start, name, NR - start - 1; bad = 1 } start = 0 }
		{ prev = $0 }
		END { exit bad }' "$f" || status=1
	case " $(echo $BINDING) " in
	*" ${f#src/} "*) ;;
	*) if grep -nE '#include [<"](lua|lauxlib|lualib|luajit|compat|client|call|lua_error)[a-z_]*\.h' "$f"; then
		echo "$f: the plain-C core includes a Lua or binding header"
		status=1
	fi ;;
	esac
done
exit $status

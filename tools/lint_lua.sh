#!/bin/sh
# The Lua layout rules (make lint), the measures of tools/lint_c.sh: no file past
# 600 lines, no function past 60 (the lines between its first and its last,
# as a C function's between its braces). luac5.4 -p -l lists every function
# with its line range ("function <file:first,last>"), nested ones apart.
#   tools/lint_lua.sh [FILE...]     (default: the tree)
# The tree: every Lua file of lua/, tools/, examples/, bench/ and spec/support/,
# every file of bin/, and spec/helpers.lua; the spec files (spec/*_spec.lua) keep the
# file rule only (a spec's describe blocks are long functions; a spec past 600
# lines holds more than one concern: split it).
set -eu
LUAC=${LUAC:-luac5.4}
if [ $# -eq 0 ]; then
	set -- $({
		find lua tools examples bench spec/support -type f -name '*.lua' || :
		find bin -type f || : # the commands: Lua scripts
		ls spec/helpers.lua spec/*_spec.lua || :
	} 2>/dev/null | LC_ALL=C sort)
fi
status=0
for f in "$@"; do
	[ -f "$f" ] || continue
	n=$(wc -l <"$f")
	[ "$n" -le 600 ] || { echo "$f: $n lines (at most 600)"; status=1; }
	case $f in
	spec/*_spec.lua | */spec/*_spec.lua) continue ;;
	esac
	listing=$("$LUAC" -p -l -- "$f" 2>&1) || { echo "$listing"; status=1; continue; }
	echo "$listing" | awk -v f="$f" '
		/^function </ {
			sub(/^function </, ""); sub(/>.*/, "")
			n = split($0, part, /[:,]/)
			if (part[n] - part[n - 1] - 1 > 60) { first[++bad] = part[n - 1]; size[bad] = part[n] - part[n - 1] - 1 }
		}
		END {
			for (i = 1; (getline line <f) > 0; i++) text[i] = line
			for (b = 1; b <= bad; b++) {
				header = text[first[b]]; sub(/^[ \t]+/, "", header)
				printf "%s:%d: %s is %d lines (at most 60)\n", f, first[b], header, size[b]
			}
			exit bad > 0
		}' || status=1
done
exit $status

# Sourced by tools/demo.sh (sh, after tools/standin-env.sh): the examples of the
# hosts that run another Lua than the demo's, each where the host and ducky's
# build for its Lua are here (make host-builds): copas (Lua 5.1), Neovim
# (LuaJIT) and HAProxy (Lua 5.3, examples/hosts/haproxy.cfg injecting tokens).
if [ -f build-lua5.1/ducky.so ] && lua5.1 -e 'require("copas")' 2>/dev/null; then
	echo "== lua5.1 examples/hosts/copas.lua (calls yielding to copas)"
	LUA_CPATH="$root/build-lua5.1/?.so;;" lua5.1 examples/hosts/copas.lua
fi
if [ -f build-luajit/ducky.so ] && command -v nvim >/dev/null; then
	echo "== nvim --headless: examples/hosts/nvim.lua's :DuckyPing"
	LUA_CPATH="$root/build-luajit/?.so;;" nvim --headless -u NONE -i NONE -n \
		-c 'luafile examples/hosts/nvim.lua' -c DuckyPing \
		-c 'lua vim.wait(10000, function() return vim.g.ducky_done end)' -c 'qa!' 2>&1
	echo
fi
if [ -f build-lua5.3/ducky.so ] && command -v haproxy >/dev/null; then
	hport=$(lua5.4 -e 'local s = require("socket").bind("127.0.0.1", 0) print((select(2, s:getsockname())))')
	echo "== haproxy -f examples/hosts/haproxy.cfg on 127.0.0.1:$hport (the token added to proxied requests)"
	DUCKY_LUA_PATH="$root/lua/?.lua" DUCKY_LUA_CPATH="$root/build-lua5.3/?.so" DUCKY_API=localhost:$port \
		DUCKY_API_HOST=localhost DUCKY_HAPROXY_BIND=127.0.0.1:$hport \
		haproxy -db -f examples/hosts/haproxy.cfg >"$standin_dir/haproxy.log" 2>&1 &
	hpid=$!
	i=0
	until curl -sf "http://127.0.0.1:$hport/health" >/dev/null; do
		i=$((i + 1))
		[ $i -lt 100 ] || { kill $hpid; cat "$standin_dir/haproxy.log"; exit 1; }
		sleep 0.1
	done
	echo "curl http://127.0.0.1:$hport/v3/ping/protected (no Authorization header sent):"
	curl -sS "http://127.0.0.1:$hport/v3/ping/protected" || { kill $hpid; exit 1; }
	echo
	kill $hpid
fi

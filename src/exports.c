/* The module's exports for its Lua companions (see exports.h): the lists of
 * names from the X-macros, a private file's contents, the token entry check,
 * the one-line description of a log event. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "credentials.h"
#include "exports.h"
#include "jwt.h"
#include "token.h"
#include "util.h"

/* Sets t[name] = the strings of a NULL-terminated list, in order, on the table on top. */
static void set_names(lua_State *L, const char *name, const char *const *names)
{
	lua_newtable(L);
	for (int i = 0; names[i]; i++) {
		lua_pushstring(L, names[i]);
		lua_rawseti(L, -2, i + 1);
	}
	lua_setfield(L, -2, name);
}

static const char *const kind_names[] = {
#define DUCKY_KIND_NAME(e, s) s,
    DUCKY_KINDS(DUCKY_KIND_NAME)
#undef DUCKY_KIND_NAME
        NULL};

/* ---- ducky.read_private_file(path [, max_bytes]) ------------------------ */

#define DEFAULT_MAX_PRIVATE 65536 /* bytes, when max_bytes is not given */

static int read_private_file(lua_State *L)
{
	size_t len;
	const char *path = luaL_checklstring(L, 1, &len), *problem;
	lua_Integer max = luaL_optinteger(L, 2, DEFAULT_MAX_PRIVATE);
	ducky_buf buf = {0};
	if (strlen(path) != len)
		return luaL_argerror(L, 1, "path holds NUL");
	if (max < 1)
		return luaL_argerror(L, 2, "max_bytes must be at least 1");
	if (ducky_read_private(path, (size_t)max, &buf, 0, &problem)) {
		ducky_buf_free(&buf);
		lua_pushnil(L);
		lua_pushfstring(L, "%s %s", ducky_path_shown(path, problem), problem);
		return 2;
	}
	lua_pushlstring(L, buf.data ? buf.data : "", buf.len);
	ducky_buf_free(&buf); /* wiped: the caller's string is the one copy left */
	return 1;
}

/* ---- ducky.check_entry(entry) ------------------------------------------- */

/* t[name] without metamethods: no Lua runs while an entry is read. */
static int raw_field(lua_State *L, int t, const char *name)
{
	lua_pushstring(L, name);
	lua_rawget(L, t);
	return lua_type(L, -1);
}

/* ducky_token_validate speaks of a "token answer"; here it is an entry. */
static int entry_fail(ducky_err *err)
{
	const char *m = err->message;
	if (m && strncmp(m, "token answer", 12) == 0) {
		char *s = ducky_strdup(m + 12);
		ducky_fail(err, DUCKY_E_DECODE, "entry%s", s ? s : "");
		free(s);
	}
	return -1;
}

int cl_entry_read(lua_State *L, int idx, cl_entry *e, ducky_err *err)
{
	int top = lua_gettop(L), t = idx < 0 ? top + idx + 1 : idx;
	memset(e, 0, sizeof *e);
	if (!lua_istable(L, t))
		return ducky_fail(err, DUCKY_E_DECODE, "entry is a %s, not a table",
		                  luaL_typename(L, t));
	int tok_t = raw_field(L, t, "access_token"), type_t = raw_field(L, t, "token_type");
	int at_t = raw_field(L, t, "expires_at"), in_t = raw_field(L, t, "expires_in");
	const char *type = type_t == LUA_TSTRING ? lua_tostring(L, -3) : NULL;
	if (tok_t == LUA_TSTRING)
		e->token = lua_tolstring(L, -4, &e->len); /* the entry table keeps it alive */
	e->expires_at = at_t == LUA_TNUMBER ? lua_tonumber(L, -2) : NAN;
	double life = in_t == LUA_TNUMBER ? lua_tonumber(L, -1) : in_t == LUA_TNIL ? 1 : -1;
	e->expires_in = in_t == LUA_TNUMBER ? life : 0;
	lua_settop(L, top);
	if (type_t != LUA_TNIL && type_t != LUA_TSTRING)
		return ducky_fail(err, DUCKY_E_DECODE, "entry's token_type is a %s, not a string",
		                  lua_typename(L, type_t));
	if (ducky_token_validate(e->token, e->len, type_t == LUA_TNIL ? "Bearer" : type, life, err))
		return entry_fail(err);
	if (!isfinite(e->expires_at))
		return ducky_fail(err, DUCKY_E_DECODE,
		                  "entry's expires_at is not a number (wall-clock seconds)");
	return 0;
}

static int check_entry(lua_State *L)
{
	cl_entry e;
	ducky_err err;
	ducky_err_init(&err);
	luaL_checkany(L, 1);
	if (cl_entry_read(L, 1, &e, &err)) {
		lua_pushnil(L);
		lua_pushstring(L, err.message ? err.message : "out of memory");
		ducky_err_clear(&err);
		return 2;
	}
	lua_pushnumber(L, e.expires_at - ducky_wall());
	return 1;
}

/* ---- ducky.describe(event) ---------------------------------------------- */

/* Each event ducky emits, as a line: {field} is the field's value, {field:s}
 * whole seconds, {field:2} two decimals; a missing field shows as "?". */
static const struct {
	const char *event, *line;
} event_lines[] = {
    {"token", "token from {source}, {seconds_left:s} s left, fingerprint {fingerprint}"},
    {"retry", "retry: attempt {attempt} after {reason}, waiting {wait:2} s"},
    {"replay_401", "the API answered 401: token dropped, request replayed"},
    {"stale_token",
     "token refresh failed ({reason}): keeping the current token, {seconds_left:s} s left"},
    {"store_error", "token store error ({source}): {reason}"},
    {NULL, NULL},
};

/* Appends the value on top (popped) as one printable line; fmt as above. */
static int add_value(lua_State *L, ducky_buf *b, char fmt)
{
	char num[64];
	size_t n;
	const char *s;
	int type = lua_type(L, -1);
	if (type == LUA_TNUMBER) {
		double d = lua_tonumber(L, -1);
		snprintf(num, sizeof num, fmt == '2' ? "%.2f" : "%.14g", fmt == 's' ? floor(d) : d);
		s = num, n = strlen(num);
	} else if (type == LUA_TSTRING) {
		s = lua_tolstring(L, -1, &n);
	} else {
		s = type == LUA_TNIL       ? "?"
		    : type == LUA_TBOOLEAN ? (lua_toboolean(L, -1) ? "true" : "false")
		                           : lua_typename(L, type);
		n = strlen(s);
	}
	int bad = ducky_buf_add_printable(b, s, n);
	lua_pop(L, 1);
	return bad;
}

static int add_line(lua_State *L, int t, ducky_buf *b, const char *line)
{
	int bad = 0;
	while (*line && !bad) {
		size_t plain = strcspn(line, "{");
		bad = ducky_buf_add(b, line, plain);
		line += plain;
		if (!*line || bad)
			break;
		size_t name = strcspn(++line, ":}");
		char field[32] = "", fmt = line[name] == ':' ? line[name + 1] : 0;
		memcpy(field, line, name < sizeof field ? name : sizeof field - 1);
		raw_field(L, t, field);
		bad = add_value(L, b, fmt);
		line += strcspn(line, "}") + 1;
	}
	return bad;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

#define MAX_FIELDS 32 /* an event's other fields shown, at most */

/* An event ducky does not know: its name, then name=value for each string key, sorted. */
static int add_fields(lua_State *L, int t, ducky_buf *b)
{
	const char *keys[MAX_FIELDS];
	size_t n = 0;
	int bad = add_value(L, b, 0);
	lua_pushnil(L);
	while (lua_next(L, t)) {
		lua_pop(L, 1);
		if (lua_type(L, -1) == LUA_TSTRING && strcmp(lua_tostring(L, -1), "event") != 0 &&
		    n < MAX_FIELDS)
			keys[n++] = lua_tostring(L, -1); /* the table keeps its keys alive */
	}
	qsort(keys, n, sizeof *keys, cmp_str);
	for (size_t i = 0; i < n && !bad; i++) {
		bad = ducky_buf_adds(b, " ") ||
		      ducky_buf_add_printable(b, keys[i], strlen(keys[i])) ||
		      ducky_buf_adds(b, "=");
		raw_field(L, t, keys[i]);
		bad = bad || add_value(L, b, 0);
	}
	return bad;
}

static int describe(lua_State *L)
{
	ducky_buf b = {0};
	const char *line = NULL;
	luaL_checktype(L, 1, LUA_TTABLE);
	lua_settop(L, 1);
	if (raw_field(L, 1, "event") == LUA_TSTRING)
		for (int i = 0; event_lines[i].event && !line; i++)
			if (strcmp(event_lines[i].event, lua_tostring(L, -1)) == 0)
				line = event_lines[i].line;
	int bad = line ? (lua_pop(L, 1), add_line(L, 1, &b, line)) : add_fields(L, 1, &b);
	if (!bad)
		lua_pushlstring(L, b.data ? b.data : "", b.len);
	ducky_buf_free(&b);
	return bad ? luaL_error(L, "out of memory") : 1;
}

/* ---- the module table --------------------------------------------------- */

static const luaL_Reg export_functions[] = {
    {"defaults", cl_defaults},
    {"read_private_file", read_private_file},
    {"check_entry", check_entry},
    {"describe", describe},
    {NULL, NULL},
};

void cl_exports_open(lua_State *L)
{
	ducky_setfuncs(L, export_functions, 0);
	set_names(L, "TOKEN_AUTHS", ducky_auth_names);
	set_names(L, "SIGNING_ALGS", ducky_jwt_alg_names);
	set_names(L, "ERROR_KINDS", kind_names);
}

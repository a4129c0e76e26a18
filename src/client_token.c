/* The client's side of the token cache: the exchange with the token endpoint
 * (its answer decoded by lua-cjson), the file or user store behind the cache,
 * all as token.c's callbacks with the call under way (a cl_run) as their ud;
 * the token a call uses; token() and invalidate(). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "client_token.h"

/* ---- the token exchange (called by token.c, unlocked) ------------------ */

typedef struct exchange_ctx {
	const cl_run *r;
	ducky_fresh *out;
	ducky_err *err;
} exchange_ctx;

static const char *string_field(lua_State *L, int t, const char *name)
{
	lua_getfield(L, t, name);
	const char *s = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
	lua_pop(L, 1); /* the table keeps the string alive */
	return s;
}

/* The number that is all of v[0..n), or NAN. */
static double number_of(const char *v, size_t n)
{
	char buf[32], *end;
	if (n == 0 || n >= sizeof buf)
		return NAN;
	memcpy(buf, v, n);
	buf[n] = '\0';
	double d = strtod(buf, &end);
	return *end == '\0' && isfinite(d) && fabs(d) < 1e15 ? d : NAN;
}

static void push_number(lua_State *L, double n)
{
	if (n == floor(n))
		lua_pushinteger(L, (lua_Integer)n);
	else
		lua_pushnumber(L, n);
}

/* One bucket of Auth0-Client-Quota-Limit, "b=per_hour;q=10;r=9;t=3581", set
 * as t.per_hour = { q = 10, r = 9, t = 3581 } in the table on top; buckets
 * of other names and fields that are not numbers are left out. */
static void add_bucket(lua_State *L, const char *s, size_t n)
{
	static const char *const names[] = {"per_hour", "per_day", NULL};
	const char *name = NULL;
	lua_newtable(L);
	for (const char *end = s + n; s < end;) {
		size_t f = strcspn(s, ";,"), k = strcspn(s, "=");
		const char *v = s + k + 1;
		size_t vn = k < f ? f - k - 1 : 0;
		for (int i = 0; k == 1 && *s == 'b' && names[i]; i++)
			if (strlen(names[i]) == vn && memcmp(names[i], v, vn) == 0)
				name = names[i];
		if (k == 1 && strchr("qrt", *s) && !isnan(number_of(v, vn))) {
			push_number(L, number_of(v, vn));
			lua_setfield(L, -2, (char[2]){*s, '\0'});
		}
		s += f + (s + f < end);
	}
	if (name)
		lua_setfield(L, -2, name);
	else
		lua_pop(L, 1);
}

/* The token endpoint's rate-limit and quota headers, numbers only: a server
 * that echoes anything else (the secret, say) has it dropped. */
static void keep_rate_limit(lua_State *L, const char *name, const char *value)
{
	if (strcmp(name, "auth0-client-quota-limit") == 0) {
		lua_newtable(L);
		for (const char *b = value; *b; b += *b == ',') {
			size_t n = strcspn(b, ",");
			add_bucket(L, b, n);
			b += n;
		}
		lua_pushnil(L);
		if (!lua_next(L, -2)) { /* no bucket of a known name: nothing kept */
			lua_pop(L, 1);
			return;
		}
		lua_pop(L, 2);
	} else if (!isnan(number_of(value, strlen(value)))) {
		push_number(L, number_of(value, strlen(value)));
	} else {
		return;
	}
	lua_setfield(L, -2, name);
}

static void keep_rate_limits(lua_State *L, client *c)
{
	const char *pos = NULL, *p, *value;
	while (ducky_http_next_header(&c->http, &pos, &p, &value)) {
		if (strncmp(p, "x-ratelimit-", 12) != 0 &&
		    strcmp(p, "auth0-client-quota-limit") != 0)
			continue;
		if (c->ref_limits == LUA_NOREF) {
			lua_newtable(L);
			c->ref_limits = luaL_ref(L, LUA_REGISTRYINDEX);
		}
		lua_rawgeti(L, LUA_REGISTRYINDEX, c->ref_limits);
		keep_rate_limit(L, p, value);
		lua_pop(L, 1);
	}
}

/* A 2xx answer: the token and its lifetime, checked. */
static void read_token(lua_State *L, int t, exchange_ctx *x)
{
	size_t len = 0;
	lua_getfield(L, t, "access_token");
	const char *tok = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &len) : NULL;
	lua_getfield(L, t, "expires_in");
	double expires_in = lua_type(L, -1) == LUA_TNUMBER ? lua_tonumber(L, -1) : -1;
	if (ducky_token_validate(tok, len, string_field(L, t, "token_type"), expires_in, x->err))
		return;
	if (!(x->out->token = ducky_strndup(tok, len))) {
		ducky_fail(x->err, DUCKY_E_LIMIT, "out of memory");
		return;
	}
	x->out->lifetime = ducky_token_lifetime(expires_in);
	x->out->expires_at = ducky_wall() + x->out->lifetime;
}

/* Any other answer: an auth error for 400, 401 and 403, else an http error,
 * with the OAuth error and description, the secret masked in both. */
static void read_refusal(lua_State *L, int t, long status, exchange_ctx *x)
{
	client *c = x->r->c;
	ducky_err *err = x->err;
	int obj = lua_istable(L, t);
	err->status = status;
	err->code = ducky_creds_scrub(&c->creds, obj ? string_field(L, t, "error") : NULL);
	err->description =
	    ducky_creds_scrub(&c->creds, obj ? string_field(L, t, "error_description") : NULL);
	err->retry_after =
	    ducky_retry_after(ducky_http_header(&c->http, "retry-after"), ducky_wall());
	err->retryable = ducky_retryable_status(status);
	const char *code = err->code, *desc = err->description;
	ducky_fail(err,
	           status == 400 || status == 401 || status == 403 ? DUCKY_E_AUTH : DUCKY_E_HTTP,
	           "token endpoint answered %ld%s%.100s%s%.300s", status, code ? " " : "",
	           code ? code : "", desc ? ": " : "", desc ? desc : "");
}

/* Reads the token endpoint's answer (protected: may raise on memory). */
static int read_token_answer(lua_State *L)
{
	exchange_ctx *x = lua_touserdata(L, 1);
	client *c = x->r->c;
	long status = c->http.status;
	int decoded =
	    cl_json_decode(L, c, c->http.body.data ? c->http.body.data : "", c->http.body.len);
	int t = lua_gettop(L);

	keep_rate_limits(L, c);
	if (status < 200 || status >= 300)
		read_refusal(L, decoded ? t : 0, status, x);
	else if (!decoded || lua_type(L, t) != LUA_TTABLE)
		ducky_fail(x->err, DUCKY_E_DECODE,
		           "token endpoint answered %ld with a body that is not a JSON object",
		           status);
	else
		read_token(L, t, x);
	return 0;
}

/* Before each attempt of the exchange: the body it sends (a fresh client
 * assertion for private_key_jwt). */
static int next_body(void *ud, ducky_req *req, ducky_err *err)
{
	ducky_creds *creds = ud;
	if (ducky_creds_next(creds, err))
		return -1;
	req->body = creds->body.data;
	req->body_len = creds->body.len;
	return 0;
}

static int exchange(void *ud, ducky_fresh *out, int *sent, ducky_err *err)
{
	const cl_run *r = ud;
	client *c = r->c;
	exchange_ctx x = {.r = r, .out = out, .err = err};
	ducky_req req = {
	    .method = "POST",
	    .url = c->creds.token_url,
	    .headers = c->creds.headers,
	    .idempotent = 1,
	    .carries_secret = 1,
	    .deadline = r->deadline,
	    .connect_timeout = c->lim.connect_timeout,
	    .retries = r->retries,
	    .max_retry_after = c->lim.max_retry_after,
	    .before = next_body,
	    .before_ud = &c->creds,
	};

	*sent = 0; /* cl_get_token gave the creds' problem, if any, before coming here */
	c->st.token_fetches++;
	int rc = ducky_http_send(&c->http, &req, cl_on_retry, (void *)r, sent, err);
	err->attempts = *sent;
	if (rc)
		return rc;
	if (ducky_cpcall(r->L, read_token_answer, &x) != 0) {
		if (err->kind == DUCKY_OK)
			ducky_fail(err, DUCKY_E_DECODE, "reading the token answer: %s",
			           lua_isstring(r->L, -1) ? lua_tostring(r->L, -1) : "error");
		lua_pop(r->L, 1);
	}
	return err->kind == DUCKY_OK ? 0 : -1;
}

/* ---- the file store ---------------------------------------------------- */

static void store_failed(const cl_run *r, const char *reason)
{
	if (reason)
		cl_emit(r, &(event){.event = "store_error",
		                    .source = r->c->store_kind == STORE_FILE ? "file" : "store",
		                    .reason = reason});
}

/* File store problems are static strings: each is reported once in a row, not
 * on every step that meets it again. */
static void file_failed(const cl_run *r, const char *reason)
{
	if (reason && reason != r->c->store_said)
		store_failed(r, r->c->store_said = reason);
}

static int file_load(void *ud, const char *key, double deadline, ducky_fresh *out)
{
	(void)deadline; /* the file store never blocks */
	const cl_run *r = ud;
	const char *reason;
	int found = ducky_store_load(&r->c->files, key, out, &reason);
	file_failed(r, reason);
	return found;
}

static void file_store(void *ud, const char *key, const ducky_fresh *tok, double deadline)
{
	(void)deadline;
	const cl_run *r = ud;
	const char *reason;
	ducky_store_save(&r->c->files, key, tok, &reason);
	file_failed(r, reason);
}

static void file_drop(void *ud, const char *key, double deadline)
{
	(void)deadline;
	const cl_run *r = ud;
	const char *reason;
	ducky_store_drop(&r->c->files, key, &reason);
	file_failed(r, reason);
}

static int file_lock(void *ud, const char *key, double deadline)
{
	const cl_run *r = ud;
	const char *reason;
	int locked = ducky_store_lock(&r->c->files, key, deadline, &reason);
	file_failed(r, reason);
	return locked;
}

static void file_unlock(void *ud, const char *key, double deadline)
{
	(void)key;
	(void)deadline;
	ducky_store_unlock(&((const cl_run *)ud)->c->files);
}

/* ---- the user's store: { load, store, lock, unlock } -------------------- */

/* What a store's load() returned, on top: nil or false is "nothing stored";
 * an entry table fills out (*found = 1); anything else raises, so the caller
 * reports a store_error and goes on as if nothing was stored. */
static int read_entry(lua_State *L, ducky_fresh *out, int *found)
{
	size_t len = 0;
	ducky_err bad;
	*found = 0;
	if (!lua_toboolean(L, -1))
		return 0;
	if (!lua_istable(L, -1))
		return luaL_error(L, "returned a %s, not nil or an entry table",
		                  luaL_typename(L, -1));
	lua_getfield(L, -1, "access_token");
	lua_getfield(L, -2, "expires_at");
	lua_getfield(L, -3, "expires_in");
	const char *tok = lua_type(L, -3) == LUA_TSTRING ? lua_tolstring(L, -3, &len) : NULL;
	double at = lua_type(L, -2) == LUA_TNUMBER ? lua_tonumber(L, -2) : NAN;
	double life = lua_type(L, -1) == LUA_TNUMBER ? lua_tonumber(L, -1) : 0;
	ducky_err_init(&bad);
	int ok = ducky_token_validate(tok, len, "Bearer", 1, &bad) == 0;
	ducky_err_clear(&bad);
	if (!ok || !isfinite(at) || !isfinite(life) || (!lua_isnil(L, -1) && life <= 0))
		return luaL_error(L, "returned an entry without a usable access_token, expires_at "
		                     "and expires_in");
	if (!(out->token = ducky_strndup(tok, len)))
		return luaL_error(L, "out of memory");
	out->expires_at = at;
	out->lifetime = life;
	*found = 1;
	return 0;
}

/* A call into the user's store table, run protected: fn(key [, arg]). */
typedef struct store_call {
	const cl_run *r;
	const char *fn, *key;
	ducky_fresh *fresh;       /* load: filled from the entry */
	const ducky_fresh *entry; /* store: the entry to pass */
	double deadline;          /* the time it may take, passed as its last argument */
	int result;
} store_call;

/* The entry a store's store() receives. */
static void push_entry(lua_State *L, const ducky_fresh *f)
{
	lua_createtable(L, 0, 4);
	lua_pushstring(L, f->token);
	lua_setfield(L, -2, "access_token");
	lua_pushliteral(L, "Bearer");
	lua_setfield(L, -2, "token_type");
	lua_pushnumber(L, f->expires_at);
	lua_setfield(L, -2, "expires_at");
	lua_pushnumber(L, f->lifetime);
	lua_setfield(L, -2, "expires_in");
}

static int call_store(lua_State *L)
{
	store_call *s = lua_touserdata(L, 1);
	lua_rawgeti(L, LUA_REGISTRYINDEX, s->r->c->ref_store);
	lua_getfield(L, -1, s->fn);
	if (lua_isnil(L, -1))
		return 0; /* lock and unlock are optional */
	lua_pushstring(L, s->key);
	if (s->entry)
		push_entry(L, s->entry);
	else if (strcmp(s->fn, "store") == 0)
		lua_pushnil(L); /* store(key, nil, timeout) drops */
	double left = s->deadline - ducky_now();
	lua_pushnumber(L, left > 0.001 ? left : 0.001); /* > 0: "try once" at the least */
	lua_call(L, lua_gettop(L) - 3, 1);              /* the arguments above ud, the table, fn */
	if (s->fresh)
		return read_entry(L, s->fresh, &s->result);
	s->result = lua_toboolean(L, -1);
	return 0;
}

static int user_store_call(store_call *s)
{
	lua_State *L = s->r->L;
	if (ducky_cpcall(L, call_store, s) != 0) {
		lua_pushfstring(L, "token_cache.%s: %s", s->fn,
		                lua_isstring(L, -1) ? lua_tostring(L, -1) : "error");
		store_failed(s->r, lua_tostring(L, -1));
		lua_pop(L, 2);
		if (s->fresh) {
			ducky_wipe_str(s->fresh->token);
			s->fresh->token = NULL;
		}
		return 0;
	}
	return s->result;
}

static int user_load(void *ud, const char *key, double deadline, ducky_fresh *out)
{
	return user_store_call(
	    &(store_call){.r = ud, .fn = "load", .key = key, .fresh = out, .deadline = deadline});
}

static void user_save(void *ud, const char *key, const ducky_fresh *tok, double deadline)
{
	user_store_call(
	    &(store_call){.r = ud, .fn = "store", .key = key, .entry = tok, .deadline = deadline});
}

static void user_drop(void *ud, const char *key, double deadline)
{
	user_store_call(&(store_call){.r = ud, .fn = "store", .key = key, .deadline = deadline});
}

static int user_lock(void *ud, const char *key, double deadline)
{
	return user_store_call(
	    &(store_call){.r = ud, .fn = "lock", .key = key, .deadline = deadline});
}

static void user_unlock(void *ud, const char *key, double deadline)
{
	user_store_call(&(store_call){.r = ud, .fn = "unlock", .key = key, .deadline = deadline});
}

/* ---- the token a call uses ---------------------------------------------- */

static ducky_token_ops token_ops(const cl_run *r)
{
	client *c = r->c;
	ducky_token_ops ops = {.ud = (void *)r, .exchange = exchange};
	if (c->store_problem) { /* the file store is off; say why once */
		file_failed(r, c->store_problem);
		c->store_problem = NULL;
	}
	if (c->store_kind == STORE_FILE)
		ops = (ducky_token_ops){.ud = (void *)r,
		                        .exchange = exchange,
		                        .load = file_load,
		                        .store = file_store,
		                        .drop = file_drop,
		                        .lock = file_lock,
		                        .unlock = file_unlock};
	else if (c->store_kind == STORE_LUA)
		ops = (ducky_token_ops){.ud = (void *)r,
		                        .exchange = exchange,
		                        .load = user_load,
		                        .store = user_save,
		                        .drop = user_drop,
		                        .lock = c->store_locks ? user_lock : NULL,
		                        .unlock = c->store_locks ? user_unlock : NULL};
	return ops;
}

static token_source source_of(const client *c, ducky_source src)
{
	if (src == DUCKY_SRC_EXCHANGE)
		return SRC_EXCHANGE;
	if (src == DUCKY_SRC_STORE)
		return c->store_kind == STORE_FILE ? SRC_FILE : SRC_STORE;
	return SRC_MEMORY;
}

int cl_get_token(const cl_run *r, token_source *src, ducky_err *err)
{
	client *c = r->c;
	ducky_token_conf conf = {.refresh_margin = c->lim.refresh_margin,
	                         .auth_backoff = c->lim.auth_backoff,
	                         .max_per_hour = c->lim.max_per_hour,
	                         .deadline = r->deadline};
	ducky_token_ops ops = token_ops(r);
	ducky_token_info info;
	if (c->creds.problem.kind != DUCKY_OK) { /* a key refused: not even a cached token */
		ducky_err_copy(err, &c->creds.problem);
		return -1;
	}
	if (ducky_token_get(c->creds.key, &conf, &ops, &c->tok, &info, err))
		return -1;
	*src = source_of(c, info.source);
	c->st.tokens[*src]++;
	if (*src == SRC_MEMORY)
		c->st.token_cache_hits++;
	else if (*src != SRC_EXCHANGE)
		c->st.token_store_hits++;
	if (c->fp_gen != c->tok.gen) { /* events never show a token, only this */
		ducky_fingerprint(c->tok.token, c->tok.len, c->fp);
		c->fp_gen = c->tok.gen;
	}
	if (info.stale) {
		c->st.stale_tokens++;
		cl_emit(r, &(event){.event = "stale_token",
		                    .reason = info.stale,
		                    .seconds_left = &info.seconds_left,
		                    .fingerprint = c->fp});
	}
	cl_emit(r, &(event){.event = "token",
	                    .source = cl_source_names[*src],
	                    .seconds_left = &info.seconds_left,
	                    .fingerprint = c->fp});
	return 0;
}

void cl_drop_token(const cl_run *r)
{
	ducky_token_ops ops = token_ops(r);
	ducky_token_invalidate(r->c->creds.key, r->c->tok.token, &ops, r->deadline);
}

/* ---- token() and invalidate() ------------------------------------------- */

static int token_body(lua_State *L)
{
	client *c = cl_self(L);
	cl_run r = cl_start(L, c, c->lim.timeout, c->lim.retries);
	token_source src;
	ducky_err err;
	ducky_err_init(&err);
	if (cl_get_token(&r, &src, &err))
		return cl_push_error(L, c, &err);
	lua_pushlstring(L, c->tok.token, c->tok.len);
	lua_pushnumber(L, c->tok.expires - ducky_now());
	lua_createtable(L, 0, 2);
	lua_pushstring(L, cl_source_names[src]);
	lua_setfield(L, -2, "source");
	lua_pushstring(L, c->fp);
	lua_setfield(L, -2, "fingerprint");
	return 3;
}

int cl_token(lua_State *L)
{
	return cl_guarded(L, token_body, "token");
}

static int invalidate_body(lua_State *L)
{
	client *c = cl_self(L);
	cl_run r = cl_start(L, c, c->lim.timeout, c->lim.retries);
	ducky_token_ops ops = token_ops(&r);
	ducky_token_invalidate(c->creds.key, NULL, &ops, r.deadline);
	return 0;
}

int cl_invalidate(lua_State *L)
{
	return cl_guarded(L, invalidate_body, "invalidate");
}

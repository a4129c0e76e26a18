/* client:batch(): every item an operation on the engine, at most
 * `concurrency` under way at once, all waited for together. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "answer.h"
#include "call.h"
#include "client_batch.h"
#include "client_engine.h"

#define ITEMS_MT "ducky.batch_items"

typedef struct bitem {
	call k;
	ducky_buf url;
	struct curl_slist *extra;
	ducky_err err; /* kind != DUCKY_OK: it failed before it could start */
	ducky_op *op;  /* once started */
} bitem;

/* A batch's items, in a userdata whose finalizer frees them (and lets go of
 * their operations) if a raise ends the batch early; freed at once when it
 * ends normally. */
typedef struct items_box {
	bitem *items;
	size_t n;
} items_box;

static void free_box(items_box *box)
{
	for (size_t i = 0; i < box->n; i++) {
		bitem *b = &box->items[i];
		if (b->op)
			ducky_op_release(b->op);
		ducky_buf_free(&b->url);
		ducky_headers_free(b->extra);
		ducky_err_clear(&b->err);
	}
	free(box->items);
	box->items = NULL;
	box->n = 0;
}

static int free_items(lua_State *L)
{
	free_box(luaL_checkudata(L, 1, ITEMS_MT));
	return 0;
}

void cl_batch_open(lua_State *L)
{
	if (luaL_newmetatable(L, ITEMS_MT)) {
		lua_pushcfunction(L, free_items);
		lua_setfield(L, -2, "__gc");
	}
	lua_pop(L, 1);
}

/* What batch()'s options table says. */
typedef struct batch_opts {
	double concurrency, timeout;
} batch_opts;

static const cl_opt batch_options[] = {
    {"concurrency", CL_T(LUA_TNUMBER), NULL, 1, 1000, offsetof(batch_opts, concurrency)},
    {"timeout", CL_T(LUA_TNUMBER), NULL, 0.001, 1e6, offsetof(batch_opts, timeout)},
    {NULL, 0, NULL, 0, 0, 0},
};

#define BODIES 5 /* the stack index of the table that keeps the items' bodies alive */

/* Reads item i (1-based) of the list at 2 into b. */
static void read_item(lua_State *L, client *c, size_t i, bitem *b, double deadline)
{
	int base = lua_gettop(L);
	char what[48];
	snprintf(what, sizeof what, "client:batch: item %zu", i);
	ducky_err_init(&b->err);
	lua_rawgeti(L, 2, (int)i);
	if (!lua_istable(L, -1))
		luaL_error(L, "%s: not a { method, path, opts } table", what);
	lua_rawgeti(L, -1, 1);
	lua_rawgeti(L, -2, 2);
	lua_rawgeti(L, -3, 3);
	int top = lua_gettop(L);
	b->k =
	    (call){.at = {top - 2, top - 1, top}, .what = what, .extra = &b->extra, .url = &b->url};
	if (cl_parse_call(L, c, &b->k, &b->err) == 0)
		b->k.k.deadline = deadline;
	else
		c->st.requests++; /* counted, as the started ones are */
	b->k.what = NULL;
	lua_rawseti(L, BODIES, (int)i);
	lua_settop(L, base);
}

/* The items started and not done. */
static size_t under_way(const items_box *box, size_t next)
{
	size_t running = 0;
	for (size_t i = 0; i < next; i++)
		running += box->items[i].op && !ducky_op_done(box->items[i].op);
	return running;
}

/* Starts the items that may start: up to `concurrency` under way (one that
 * ends as it starts, say for want of a token, leaves its place to the next). */
static size_t start_more(lua_State *L, client *c, items_box *box, size_t next, size_t concurrency)
{
	size_t running = under_way(box, next);
	for (; next < box->n && running < concurrency; next++) {
		bitem *b = &box->items[next];
		if (b->err.kind != DUCKY_OK)
			continue;
		if (!(b->op = ducky_op_start(cl_engine(L, c), &b->k.k, &b->err)))
			continue;
		running += !ducky_op_done(b->op);
	}
	return next;
}

static void run(lua_State *L, client *c, items_box *box, size_t concurrency)
{
	size_t next = start_more(L, c, box, 0, concurrency);
	while (under_way(box, next)) {
		ducky_engine_wait(c->eng, 3600);
		ducky_engine_step(c->eng);
		next = start_more(L, c, box, next, concurrency);
	}
}

/* The results, in the list's order: { res = … } or { err = … } each. */
static void push_results(lua_State *L, client *c, items_box *box)
{
	lua_createtable(L, (int)box->n, 0);
	for (size_t i = 0; i < box->n; i++) {
		bitem *b = &box->items[i];
		lua_createtable(L, 0, 1);
		int pushed = b->op ? cl_push_result(L, c, ducky_op_result(b->op))
		                   : cl_push_error(L, c, &b->err);
		if (pushed == 1) {
			lua_setfield(L, -2, "res");
		} else {
			lua_setfield(L, -3, "err");
			lua_pop(L, 1); /* the nil before it */
		}
		lua_rawseti(L, -2, (int)i + 1);
	}
}

static int batch_body(lua_State *L)
{
	client *c = cl_self(L);
	batch_opts o = {.concurrency = 8, .timeout = c->lim.timeout};

	lua_settop(L, 3);
	if (!lua_istable(L, 2) || !(lua_isnil(L, 3) || lua_istable(L, 3)))
		return luaL_error(L,
		                  "client:batch: expects a list of requests and an options "
		                  "table, not %s and %s",
		                  luaL_typename(L, 2), luaL_typename(L, 3));
	if (!lua_isnil(L, 3))
		cl_read_options(L, 3, batch_options, &o, "client:batch");
	lua_settop(L, 3);
	size_t n = ducky_rawlen(L, 2);
	double deadline = ducky_now() + o.timeout;
	items_box *box = ducky_newuserdata(L, sizeof *box); /* 4 */
	box->items = NULL;
	box->n = 0;
	luaL_getmetatable(L, ITEMS_MT);
	lua_setmetatable(L, 4);
	lua_createtable(L, (int)n, 0); /* BODIES */
	if (n && !(box->items = calloc(n, sizeof *box->items)))
		return luaL_error(L, "out of memory");
	box->n = n;
	for (size_t i = 0; i < n; i++)
		read_item(L, c, i + 1, &box->items[i], deadline);
	if (n)
		run(L, c, box, (size_t)o.concurrency);
	push_results(L, c, box);
	free_box(box); /* the answers are Lua values now */
	return 1;
}

int cl_batch(lua_State *L)
{
	return cl_guarded(L, batch_body, "batch");
}

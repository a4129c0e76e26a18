/* Pollable operations: client:start() and start_token() never block; a host
 * waits on client:pollfd() (cqueues' protocol: pollfd, events, timeout) and
 * calls client:step(). A ducky.op answers done, result, cancel, and the same
 * protocol (its client's). */
#include <string.h>

#include "answer.h"
#include "call.h"
#include "client_engine.h"
#include "client_ops.h"

#define OP_MT "ducky.op"

/* The Lua side of an operation: it keeps its client alive (a registry
 * reference) and releases the operation when collected. */
typedef struct lop {
	ducky_op *op; /* NULL once released */
	client *c;
	int ref_client;
} lop;

static lop *check_op(lua_State *L, const char *method)
{
	lop *o = ducky_testudata(L, 1, OP_MT);
	if (!o || !o->op)
		luaL_error(L, "op:%s: call it on a ducky operation, as op:%s(…), not on a %s",
		           method, method, luaL_typename(L, 1));
	return o;
}

/* Pushes a ducky.op for op, which holds the client at index 1. */
static void push_op(lua_State *L, client *c, ducky_op *op)
{
	lop *o = lua_newuserdata(L, sizeof *o); /* the stack was checked: no raise here */
	o->op = op;
	o->c = c;
	o->ref_client = LUA_NOREF;
	luaL_getmetatable(L, OP_MT);
	lua_setmetatable(L, -2); /* from here the finalizer releases op */
	lua_pushvalue(L, 1);
	o->ref_client = luaL_ref(L, LUA_REGISTRYINDEX);
}

static int start_body(lua_State *L)
{
	client *c = cl_self(L);
	ducky_err err;
	call k = {.what = "client:start"};
	ducky_err_init(&err);
	if (cl_parse_single(L, c, &k, &err))
		return cl_push_error(L, c, &err);
	ducky_engine *e = cl_engine(L, c);
	luaL_checkstack(L, 4, NULL);
	ducky_op *op = ducky_op_start(e, &k.k, &err);
	if (!op)
		return cl_push_error(L, c, &err);
	push_op(L, c, op);
	return 1;
}

static int start_token_body(lua_State *L)
{
	client *c = cl_self(L);
	ducky_err err;
	ducky_call k = cl_token_call(c);
	ducky_engine *e = cl_engine(L, c);
	ducky_err_init(&err);
	ducky_op *op = ducky_op_start(e, &k, &err);
	if (!op)
		return cl_push_error(L, c, &err);
	push_op(L, c, op);
	return 1;
}

/* step(): never blocks. step(seconds): blocks until an operation ends or the
 * seconds pass, whichever is first (at once when none is under way): for a
 * plain Lua program or a thread that runs many operations and answers each as
 * it ends (ducky.ngx's pool does). */
static int step_body(lua_State *L)
{
	client *c = cl_self(L);
	double wait = 0;
	if (!lua_isnoneornil(L, 2)) {
		if (lua_type(L, 2) != LUA_TNUMBER)
			return luaL_error(L, "client:step: seconds must be a number, not %s",
			                  luaL_typename(L, 2));
		wait = lua_tonumber(L, 2);
		if (!(wait >= 0 && wait <= 1e6))
			return luaL_error(L, "client:step: seconds is out of range (0 to 1e6): %s",
			                  lua_tostring(L, 2));
	}
	int ended = c->eng ? ducky_engine_step(c->eng) : 0;
	if (!ended && wait > 0 && c->eng && ducky_engine_busy(c->eng)) {
		double until = ducky_now() + wait, left;
		while (!ended && ducky_engine_busy(c->eng) && (left = until - ducky_now()) > 0) {
			ducky_engine_wait(c->eng, left);
			ended = ducky_engine_step(c->eng);
		}
	}
	lua_pushinteger(L, ended);
	return 1;
}

static int pollfd_body(lua_State *L)
{
	int fd = ducky_engine_fd(cl_engine(L, cl_self(L)));
	if (fd < 0)
		return luaL_error(L, "client:pollfd: not available on this system (no epoll): "
		                     "use the blocking calls");
	lua_pushinteger(L, fd);
	return 1;
}

static int timeout_body(lua_State *L)
{
	client *c = cl_self(L);
	double t = c->eng ? ducky_engine_timeout(c->eng) : -1;
	if (t < 0)
		lua_pushnil(L);
	else
		lua_pushnumber(L, t);
	return 1;
}

int cl_start(lua_State *L)
{
	return cl_guarded(L, start_body, "start");
}

int cl_start_token(lua_State *L)
{
	return cl_guarded(L, start_token_body, "start_token");
}

int cl_step(lua_State *L)
{
	return cl_guarded(L, step_body, "step");
}

int cl_pollfd(lua_State *L)
{
	return cl_guarded(L, pollfd_body, "pollfd");
}

int cl_events(lua_State *L)
{
	cl_check(L, "events");
	lua_pushliteral(L, "r");
	return 1;
}

/* Runs no Lua and may be asked between every step: no guard needed, only a
 * live client (from inside a step it reads what the step left). */
int cl_timeout(lua_State *L)
{
	client *c = cl_client(L, "timeout");
	if (c->closed)
		return luaL_error(L, "client:timeout: attempt to use a closed ducky client");
	lua_settop(L, 1);
	return timeout_body(L);
}

/* ---- the operation ------------------------------------------------------ */

static int op_done(lua_State *L)
{
	lua_pushboolean(L, ducky_op_done(check_op(L, "done")->op));
	return 1;
}

static int op_result(lua_State *L)
{
	lop *o = check_op(L, "result");
	if (!ducky_op_done(o->op))
		return luaL_error(L, "op:result: the operation is under way: wait until op:done()");
	return cl_push_result(L, o->c, ducky_op_result(o->op));
}

static int op_cancel(lua_State *L)
{
	lop *o = check_op(L, "cancel");
	if (o->c->busy && !ducky_op_done(o->op))
		return luaL_error(L, "op:cancel: a ducky client cannot be used while one of its "
		                     "calls is under way (from its own callbacks or a finalizer)");
	ducky_op_cancel(o->op);
	return 0;
}

/* pollfd, events, timeout: the client's (cqueues.poll(op) works). */
static int forward(lua_State *L, const char *method, lua_CFunction f)
{
	lop *o = check_op(L, method);
	lua_settop(L, 0);
	lua_rawgeti(L, LUA_REGISTRYINDEX, o->ref_client);
	return f(L);
}

static int op_pollfd(lua_State *L)
{
	return forward(L, "pollfd", cl_pollfd);
}

static int op_events(lua_State *L)
{
	return forward(L, "events", cl_events);
}

static int op_timeout(lua_State *L)
{
	lop *o = check_op(L, "timeout");
	if (ducky_op_done(o->op)) { /* nothing to wait for */
		lua_pushnumber(L, 0);
		return 1;
	}
	return forward(L, "timeout", cl_timeout);
}

static int op_gc(lua_State *L)
{
	lop *o = lua_touserdata(L, 1);
	if (o->op) {
		ducky_op_release(o->op); /* inside a step it only marks: the step frees it */
		o->op = NULL;
	}
	luaL_unref(L, LUA_REGISTRYINDEX, o->ref_client);
	o->ref_client = LUA_NOREF;
	return 0;
}

static int op_tostring(lua_State *L)
{
	lop *o = ducky_testudata(L, 1, OP_MT);
	if (!o || !o->op)
		return luaL_error(L, "op:tostring: not a ducky operation");
	const ducky_result *r = ducky_op_result(o->op);
	lua_pushfstring(L, "ducky.op (%s %s): %s", r->method, r->url,
	                ducky_op_done(o->op) ? "done" : "under way");
	return 1;
}

void cl_ops_open(lua_State *L)
{
	static const luaL_Reg methods[] = {
	    {"done", op_done},     {"result", op_result}, {"cancel", op_cancel},
	    {"pollfd", op_pollfd}, {"events", op_events}, {"timeout", op_timeout},
	    {NULL, NULL},
	};
	if (luaL_newmetatable(L, OP_MT)) {
		lua_pushcfunction(L, op_gc);
		lua_setfield(L, -2, "__gc");
		lua_pushcfunction(L, op_tostring);
		lua_setfield(L, -2, "__tostring");
		lua_newtable(L);
		ducky_setfuncs(L, methods, 0);
		lua_setfield(L, -2, "__index");
	}
	lua_pop(L, 1);
}

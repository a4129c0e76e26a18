/* What the module exports for its Lua companions (ducky.ngx, redis_store, the
 * command): the names, the defaults and the checks the C code uses, so that
 * no Lua file keeps a copy of them (exports.c; cl_defaults in client_new.c). */
#ifndef DUCKY_EXPORTS_H
#define DUCKY_EXPORTS_H

#include <stddef.h>

#include "compat.h"
#include "err.h"

/* A token entry as a store holds it: {access_token, token_type?, expires_at,
 * expires_in?}. The strings belong to the entry table. */
typedef struct cl_entry {
	const char *token;
	size_t len;
	double expires_at; /* wall-clock seconds */
	double expires_in; /* seconds the token was issued for; 0: not given */
} cl_entry;

/* The one check of a token entry (the table at idx, read without
 * metamethods): the token as ducky_token_validate wants it, token_type Bearer
 * when given, a finite expires_at, a positive expires_in when given. 0 with e
 * filled, or -1 with a decode error saying what is wrong. Expiry is not
 * judged here (the caller compares expires_at with its clock). */
int cl_entry_read(lua_State *L, int idx, cl_entry *e, ducky_err *err);

/* Sets the module's exported functions and name lists on the table on top. */
void cl_exports_open(lua_State *L);

/* ducky.defaults() (client_new.c, beside the options table). */
int cl_defaults(lua_State *L);

#endif

/* Options read from tables, and header tables (options.c). */
#ifndef DUCKY_OPTIONS_H
#define DUCKY_OPTIONS_H

#include <stddef.h>

#include <curl/curl.h>

#include "compat.h"
#include "http.h"

/* Options read from the table at idx by a list of these (see options.c). */
typedef struct cl_opt {
	const char *name;
	int types;       /* bit (1 << LUA_T…) for each Lua type it takes */
	const char *env; /* DUCKY_… read when the option is unset, or NULL */
	double lo, hi;   /* numbers: the range */
	size_t off;      /* where it goes: a const char *, double, int (booleans) or int
	                    (stack index, for tables and functions) */
} cl_opt;
#define CL_T(t)      (1 << (t))
#define CL_TYPE_BITS 0x1ff                            /* the CL_T bits of every Lua type */
#define CL_ANY       (CL_TYPE_BITS & ~CL_T(LUA_TNIL)) /* any value but nil */
#define CL_KEEP      (1 << 14) /* a string that stays on the stack (its length counts) */
#define CL_SHOWN     (1 << 15) /* a default ducky.defaults() shows */
#define CL_INT       (1 << 13) /* a number that must be whole (a count, bytes) */
#define CL_BLANK     (1 << 12) /* a string where "" counts as unset (a credential) */
/* The Lua types an option takes, without the flags above. */
#define CL_TYPES(o) ((o)->types & CL_TYPE_BITS)
/* Checks every key of the table at idx against opts (raising "<what>: …" for an
 * unknown or mistyped one), then stores each set option at out + off; unset
 * ones keep what out held, unless their env variable is set. Tables and
 * functions stay on the stack, their index stored. */
void cl_read_options(lua_State *L, int idx, const cl_opt *opts, void *out, const char *what);

/* Header table at idx -> lines appended to *l; raises on bad names or values. */
void cl_add_headers(lua_State *L, int idx, struct curl_slist **l, const char *what);
/* Whether s holds CR, LF or NUL. */
int cl_has_ctl(const char *s, size_t n);
/* Byte order of two Lua strings, NUL included (they are not C strings). */
int cl_cmp_lstr(const char *a, size_t an, const char *b, size_t bn);
/* Whether s is an HTTP token (RFC 9110 §5.6.2): a method or header name. */
int cl_is_token(const char *s, size_t n);

#endif

/* URLs on libcurl's parser: check, same origin, join. Plain C. */
#ifndef DUCKY_URL_H
#define DUCKY_URL_H

#include <stddef.h>

#include "err.h"
#include "util.h"

/* 1: an absolute http(s) URL with a host. */
int ducky_url_check(const char *url);
/* 1: plain http to a host other than this machine (not localhost, 127/8 or
 * [::1]): what is sent there crosses the network unencrypted. */
int ducky_url_cleartext(const char *url);
/* Appends url's host to a comma-separated list, as libcurl's no-proxy list
 * names it, when url is plain http to this machine. 0, or -1 out of memory. */
int ducky_url_add_local_http_host(ducky_buf *list, const char *url);
/* 1: same scheme, host and port. */
int ducky_url_same_origin(const char *a, const char *b);
/* u = base + "/" + path (leading slashes dropped), or path itself when it is an
 * absolute URL on base's origin; anything else is a config error. */
int ducky_url_join(ducky_buf *u, const char *base, const char *path, size_t plen, ducky_err *err);
/* The scheme://host[:port] of url, malloc'd, or NULL. */
char *ducky_url_origin(const char *url);

#endif

/* libcurl's and OpenSSL's memory, wiped when freed (see alloc.h).
 *
 * Wiping takes knowing a block's size: glibc tells; elsewhere, and when the
 * host set libcurl or OpenSSL up before ducky, their frees stay plain. */
#include "alloc.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <openssl/crypto.h>

#include "util.h"

#ifdef __GLIBC__
#include <malloc.h>

/* Set while a request carries the secret (the token exchange) and while
 * handles close: then every block is wiped. Else blocks up to WIPE_MAX are:
 * a request's lines (the bearer token) go into one of up to twice their size
 * (a token may have 16 KiB), and a long request through libcurl's 16 KiB send
 * buffer besides -- all but the download buffer (DUCKY_RECV_BUFFER + 1,
 * taken and given back by every transfer): it holds what the server sent,
 * and clearing it would cost more than the rest of the request. */
static _Thread_local int wipe_all;
#define WIPE_MAX   (64 * 1024)
#define RECV_BLOCK ((size_t)DUCKY_RECV_BUFFER + 1)

static void wiping_free(void *p)
{
	if (p) {
		size_t n = malloc_usable_size(p);
		if (wipe_all || (n <= WIPE_MAX && !(n >= RECV_BLOCK && n < RECV_BLOCK + 32)))
			ducky_wipe(p, n);
		free(p);
	}
}

static void *wiping_realloc(void *p, size_t n)
{
	size_t old = p ? malloc_usable_size(p) : 0;
	if (p && n <= old)
		return p;
	void *q = malloc(n ? n : 1);
	if (q && p) {
		memcpy(q, p, old);
		wiping_free(p);
	}
	return q;
}

int ducky_wipe_all(int on)
{
	int was = wipe_all;
	wipe_all = on;
	return was;
}

static void *plain_malloc(size_t n)
{
	return malloc(n);
}

static void *plain_calloc(size_t n, size_t m)
{
	return calloc(n, m);
}

static void *ssl_malloc(size_t n, const char *file, int line)
{
	(void)file, (void)line;
	return malloc(n);
}

static void *ssl_realloc(void *p, size_t n, const char *file, int line)
{
	(void)file, (void)line;
	return wiping_realloc(p, n);
}

static void ssl_free(void *p, const char *file, int line)
{
	(void)file, (void)line;
	wiping_free(p);
}
#else
int ducky_wipe_all(int on)
{
	(void)on;
	return 0;
}
#endif

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc;

static void global_init(void)
{
#ifdef __GLIBC__
	CRYPTO_set_mem_functions(ssl_malloc, ssl_realloc, ssl_free); /* 0: too late, fine */
	global_rc = curl_global_init_mem(CURL_GLOBAL_DEFAULT, plain_malloc, wiping_free,
	                                 wiping_realloc, ducky_strdup, plain_calloc);
#else
	global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
#endif
}

int ducky_global_init(ducky_err *err)
{
	pthread_once(&global_once, global_init);
	if (global_rc != CURLE_OK)
		return ducky_fail(err, DUCKY_E_CONFIG, "curl_global_init failed: %s",
		                  curl_easy_strerror(global_rc));
	return 0;
}

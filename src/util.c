/* Buffers, escaping, strings, the wipe and clocks (see util.h). */
#define _DEFAULT_SOURCE /* explicit_bzero */
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int ducky_buf_add(ducky_buf *b, const void *p, size_t n)
{
	if (n > SIZE_MAX - b->len - 1)
		return -1;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap < b->len + n + 1)
			cap = cap > SIZE_MAX / 2 ? SIZE_MAX : cap * 2;
		/* not realloc: the old block may hold a secret or a token, and realloc
		 * would free it unwiped */
		char *d = malloc(cap);
		if (!d)
			return -1;
		if (b->data) {
			memcpy(d, b->data, b->len);
			ducky_wipe(b->data, b->cap);
			free(b->data);
		}
		b->data = d;
		b->cap = cap;
	}
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

int ducky_buf_adds(ducky_buf *b, const char *s)
{
	return ducky_buf_add(b, s, strlen(s));
}

void ducky_buf_free(ducky_buf *b)
{
	if (b->data) {
		ducky_wipe(b->data, b->cap);
		free(b->data);
	}
	memset(b, 0, sizeof *b);
}

static const char lower_hex[] = "0123456789abcdef";

int ducky_buf_add_escaped(ducky_buf *b, const char *s, size_t len)
{
	static const char hex[] = "0123456789ABCDEF";
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		int plain = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		            (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' || c == '~';
		char e[3] = {'%', hex[c >> 4], hex[c & 15]};
		if (plain ? ducky_buf_add(b, &s[i], 1) : ducky_buf_add(b, e, 3))
			return -1;
	}
	return 0;
}

int ducky_buf_add_json(ducky_buf *b, const char *s, size_t len)
{
	if (ducky_buf_add(b, "\"", 1))
		return -1;
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)s[i];
		char e[6] = {'\\', 'u', '0', '0', lower_hex[ch >> 4], lower_hex[ch & 15]};
		int rc;
		if (ch == '"' || ch == '\\')
			rc = ducky_buf_add(b, e, 1) || ducky_buf_add(b, &s[i], 1);
		else if (ch < 0x20)
			rc = ducky_buf_add(b, e, 6);
		else
			rc = ducky_buf_add(b, &s[i], 1);
		if (rc)
			return -1;
	}
	return ducky_buf_add(b, "\"", 1);
}

int ducky_buf_add_printable(ducky_buf *b, const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		char e[4] = {'\\', 'x', lower_hex[c >> 4], lower_hex[c & 15]};
		if (c < 0x20 || c == 0x7f ? ducky_buf_add(b, e, 4) : ducky_buf_add(b, &s[i], 1))
			return -1;
	}
	return 0;
}

int ducky_utf8_fit(const char *s, int max)
{
	size_t n = strnlen(s, (size_t)max), i = n;
	/* s[n] continues a sequence: back to its lead byte (at most 3 steps; past
	 * that it is no UTF-8, and any cut is as good) */
	while (i > 0 && n - i < 3 && ((unsigned char)s[i] & 0xc0) == 0x80)
		i--;
	return (int)(((unsigned char)s[n] & 0xc0) == 0x80 && ((unsigned char)s[i] & 0xc0) == 0xc0
	                 ? i
	                 : n);
}

void ducky_hex(const unsigned char *p, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++) {
		*out++ = lower_hex[p[i] >> 4];
		*out++ = lower_hex[p[i] & 15];
	}
	*out = '\0';
}

char *ducky_strndup(const char *s, size_t n)
{
	char *d = malloc(n + 1);
	if (d) {
		memcpy(d, s, n);
		d[n] = '\0';
	}
	return d;
}

char *ducky_strdup(const char *s)
{
	return s ? ducky_strndup(s, strlen(s)) : NULL;
}

void ducky_wipe(void *p, size_t n)
{
	if (!p || !n)
		return;
#if defined(__GLIBC__) || defined(__OpenBSD__) || defined(__FreeBSD__) || defined(__NetBSD__)
	explicit_bzero(p, n);
#else
	static void *(*const volatile set)(void *, int, size_t) = memset;
	set(p, 0, n);
#endif
}

void ducky_wipe_free(void *p, size_t n)
{
	if (p) {
		ducky_wipe(p, n);
		free(p);
	}
}

void ducky_wipe_str(char *s)
{
	if (s)
		ducky_wipe_free(s, strlen(s));
}

const char ducky_no_file[] = "does not exist";

const char *ducky_path_shown(const char *path, const char *problem)
{
	return problem == ducky_no_file ? "(the path given)" : path;
}

int ducky_read_private(const char *path, size_t max, ducky_buf *out, int check_only,
                       const char **problem)
{
	struct stat st;
	char chunk[4096];
	ssize_t n = 0;
	int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	*problem = NULL;
	if (fd < 0)
		*problem = errno == ENOENT ? ducky_no_file : "cannot be opened";
	else if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
		*problem = "is not a regular file";
	else if (check_only == 2)
		; /* a certificate: public */
	else if (st.st_uid != geteuid())
		*problem = "belongs to another user";
	else if (st.st_mode & 077)
		*problem = "may be read by group or others (chmod 600 it)";
	else if ((size_t)st.st_size > max)
		*problem = "is too large";
	while (!*problem && (!check_only || (check_only == 2 && out)) &&
	       (n = read(fd, chunk, sizeof chunk)) != 0)
		if (n < 0 && errno != EINTR)
			*problem = "cannot be read";
		else if (n > 0 &&
		         (out->len + (size_t)n > max || ducky_buf_add(out, chunk, (size_t)n)))
			*problem = "is too large";
	ducky_wipe(chunk, sizeof chunk);
	if (fd >= 0)
		close(fd);
	return *problem ? -1 : 0;
}

#ifdef DUCKY_TEST_HOOKS
/* Test builds only (make check): specs move time instead of waiting for it. */
#include <stdatomic.h>
static atomic_llong shift_ns;
double ducky_clock_shift(double seconds)
{
	long long d = (long long)(seconds * 1e9);
	return (double)(atomic_fetch_add(&shift_ns, d) + d) / 1e9;
}
#define SHIFT ((double)atomic_load(&shift_ns) / 1e9)
#else
#define SHIFT 0.0
#endif

double ducky_now(void)
{
	struct timespec ts;
#ifdef CLOCK_BOOTTIME
	if (clock_gettime(CLOCK_BOOTTIME, &ts) != 0)
#endif
		clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9 + SHIFT;
}

double ducky_wall(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9 + SHIFT;
}

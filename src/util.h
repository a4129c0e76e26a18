/* Small things every part of the core uses: a growable buffer, escaping,
 * strings, the one wipe, clocks. Plain C. */
#ifndef DUCKY_UTIL_H
#define DUCKY_UTIL_H

#include <stddef.h>

/* Owns data (wiped and freed by ducky_buf_free). */
typedef struct ducky_buf {
	char *data; /* NUL-terminated once anything was added */
	size_t len, cap;
} ducky_buf;

int ducky_buf_add(ducky_buf *b, const void *p, size_t n); /* 0, or -1 out of memory */
int ducky_buf_adds(ducky_buf *b, const char *s);
void ducky_buf_free(ducky_buf *b); /* wipes before freeing: buffers may hold secrets */
/* Appends s percent-encoded (everything but RFC 3986 unreserved characters). */
int ducky_buf_add_escaped(ducky_buf *b, const char *s, size_t len);
/* Appends s as a JSON string literal, quotes included. */
int ducky_buf_add_json(ducky_buf *b, const char *s, size_t len);
/* Appends s with each byte below 0x20 and 0x7f written as \xNN: one printable line. */
int ducky_buf_add_printable(ducky_buf *b, const char *s, size_t len);
/* How many bytes of s (NUL-terminated) "%.*s" may show, at most max, without
 * cutting a UTF-8 sequence in two: a server's text quoted in a message. */
int ducky_utf8_fit(const char *s, int max);
/* Writes n bytes as 2n lower-case hex digits and a NUL to out. */
void ducky_hex(const unsigned char *p, size_t n, char *out);

char *ducky_strdup(const char *s); /* NULL for NULL or out of memory */
char *ducky_strndup(const char *s, size_t n);

/* The one wipe: zeroes n bytes in a way the compiler may not remove. */
void ducky_wipe(void *p, size_t n);
/* Wipes n bytes at p, then frees p; NULL is fine. */
void ducky_wipe_free(void *p, size_t n);
/* The same for a NUL-terminated string. */
void ducky_wipe_str(char *s);

/* ducky_read_private's problem when nothing is at the path; and the path as an
 * error may show it: not when it names no file, as it may be no path at all
 * (a secret typed after --secret-file) */
extern const char ducky_no_file[];
const char *ducky_path_shown(const char *path, const char *problem);

/* Reads a file that holds a secret (a private key) into out, at most max
 * bytes: only a regular file of this user that group and others cannot read.
 * 0, or -1 with *problem (a static string). check_only: 1, the checks, no
 * read; 2, only that it is a regular file that can be opened (a certificate),
 * read into out (at most max bytes) unless out is NULL. */
int ducky_read_private(const char *path, size_t max, ducky_buf *out, int check_only,
                       const char **problem);

/* Seconds on a clock that keeps counting through suspend and ignores
 * wall-clock jumps (CLOCK_BOOTTIME, else CLOCK_MONOTONIC). */
double ducky_now(void);
/* Wall-clock seconds since the epoch. */
double ducky_wall(void);
#ifdef DUCKY_TEST_HOOKS
/* Moves both clocks forward (test builds only); returns the total shift. */
double ducky_clock_shift(double seconds);
#endif

#endif

/* The shared token store on disk (see store.h). */
#define _DEFAULT_SOURCE /* flock */
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

#define MAGIC    "ducky-token-v1\n"
#define MAX_FILE (DUCKY_MAX_TOKEN + 1024) /* the token and four short lines */

static char *join(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	char *p = malloc(la + lb + 2);
	if (p) {
		memcpy(p, a, la);
		p[la] = '/';
		memcpy(p + la + 1, b, lb + 1);
	}
	return p;
}

int ducky_store_init(ducky_file_store *s, const char *path, const char **reason)
{
	memset(s, 0, sizeof *s);
	s->dirfd = s->lockfd = -1;
	if (path) {
		const char *slash = strrchr(path, '/');
		s->file = ducky_strdup(slash ? slash + 1 : path);
		s->dir = slash ? ducky_strndup(path, slash == path ? 1 : (size_t)(slash - path))
		               : ducky_strdup(".");
		if (!s->file || !s->dir || !*s->file) {
			*reason = "token_cache path names no file";
			return -1;
		}
		return 0;
	}
	const char *base = getenv("XDG_CACHE_HOME");
	char *home = NULL;
	if (!base || base[0] != '/') { /* XDG: a relative value is to be ignored */
		const char *h = getenv("HOME");
		struct passwd *pw;
		if ((!h || h[0] != '/') && (pw = getpwuid(geteuid())) != NULL)
			h = pw->pw_dir;
		if (!h || h[0] != '/') {
			*reason = "no home directory for the token cache";
			return -1;
		}
		if (!(home = join(h, ".cache"))) {
			*reason = "out of memory";
			return -1;
		}
		base = home;
	}
	mkdir(base, 0700); /* XDG: create it 0700 when missing; open_dir checks the rest */
	s->dir = join(base, "ducky");
	free(home);
	if (!s->dir) {
		*reason = "out of memory";
		return -1;
	}
	return 0;
}

void ducky_store_close(ducky_file_store *s)
{
	ducky_store_unlock(s);
	if (s->dirfd >= 0)
		close(s->dirfd);
	free(s->file);
	free(s->dir);
	memset(s, 0, sizeof *s);
	s->dirfd = s->lockfd = -1;
}

/* Opens and checks the directory once: ours, not a link, 0700 (the default
 * directory) or at least not writable by others (a directory the user named). */
static int open_dir(ducky_file_store *s, const char **reason)
{
	struct stat st;
	int fd;
	if (s->dirfd >= 0)
		return 0;
	if (!s->file && mkdir(s->dir, 0700) != 0 && errno != EEXIST) {
		*reason = "cannot create the token cache directory";
		return -1;
	}
	fd = open(s->dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		*reason = errno == ELOOP || errno == ENOTDIR
		              ? "the token cache directory is a link or not a directory"
		              : "cannot open the token cache directory";
		return -1;
	}
	if (fstat(fd, &st) != 0 || !S_ISDIR(st.st_mode)) {
		*reason = "the token cache directory is not a directory";
	} else if (st.st_uid != geteuid() && !(s->file && st.st_uid == 0)) {
		*reason = "the token cache directory belongs to another user";
	} else if (s->file ? (st.st_mode & 022) && !(st.st_mode & S_ISVTX) : (st.st_mode & 077)) {
		*reason = "the token cache directory is open to other users";
	} else {
		s->dirfd = fd;
		return 0;
	}
	close(fd);
	return -1;
}

/* "<key>.token" / "<key>.lock", or the user's file and "<file>.lock". */
static char *name_for(const ducky_file_store *s, const char *key, const char *suffix)
{
	const char *stem = s->file ? s->file : key;
	size_t n = strlen(stem) + strlen(suffix) + 1;
	char *p = malloc(n);
	if (p)
		snprintf(p, n, "%s%s", stem, suffix);
	return p;
}

/* The two files a store uses, and what can be wrong with each: the reasons
 * are static strings, each reported once in a row. */
enum { TOKEN_FILE, LOCK_FILE };
enum { LINK, CANNOT_OPEN, NOT_REGULAR, OTHER_OWNER, OPEN_TO_OTHERS, HARD_LINKS, NOT_OURS };
#define PROBLEMS(what)                                                                             \
	{                                                                                          \
		"the token cache " what " is a symbolic link",                                     \
		    "cannot open the token cache " what,                                           \
		    "the token cache " what " is not a regular file",                              \
		    "the token cache " what " belongs to another user",                            \
		    "the token cache " what " is open to other users",                             \
		    "the token cache " what " has other hard links",                               \
		    "the token cache " what " is not a ducky token file"                           \
	}
static const char *const problems[2][7] = {PROBLEMS("file"), PROBLEMS("lock file")};

/* Opens name only if it is a regular file of ours, 0600, one link; never
 * following a link, never blocking (a FIFO planted there is refused). */
static int open_checked(int dirfd, const char *name, int flags, int which, const char **reason)
{
	struct stat st;
	int fd = openat(dirfd, name, flags | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY, 0600);
	const char *const *says = problems[which];
	if (fd < 0) {
		if (errno == ELOOP)
			*reason = says[LINK];
		else if (errno == ENXIO) /* a FIFO nobody reads */
			*reason = says[NOT_REGULAR];
		else if (errno != ENOENT)
			*reason = says[CANNOT_OPEN];
		return -1;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
		*reason = says[NOT_REGULAR];
	else if (st.st_uid != geteuid())
		*reason = says[OTHER_OWNER];
	else if (st.st_mode & 077)
		*reason = says[OPEN_TO_OTHERS];
	else if (st.st_nlink != 1)
		*reason = says[HARD_LINKS];
	else
		return fd;
	close(fd);
	return -1;
}

/* Whether name may be written over or removed: absent, empty, a token file
 * (its first line is ours), or anything in ducky's own directory. Anything
 * else at a path the user named is the user's, never ours. */
static int may_replace(const ducky_file_store *s, const char *name, const char **reason)
{
	char head[sizeof MAGIC - 1];
	int fd = open_checked(s->dirfd, name, O_RDONLY, TOKEN_FILE, reason);
	if (fd < 0)
		return *reason == NULL; /* absent, or odd (the reason says how) */
	ssize_t n = read(fd, head, sizeof head);
	close(fd);
	/* <key>.token in ducky's own directory is ducky's whatever it holds */
	if (!s->file || n == 0 ||
	    (n == (ssize_t)sizeof head && memcmp(head, MAGIC, sizeof head) == 0))
		return 1;
	*reason = problems[TOKEN_FILE][NOT_OURS];
	return 0;
}

/* Reads the whole file (at most MAX_FILE bytes) into a NUL-terminated buffer. */
static char *slurp(int fd, const char **reason)
{
	ducky_buf b = {0};
	char chunk[1024];
	ssize_t n;
	while ((n = read(fd, chunk, sizeof chunk)) > 0 || (n < 0 && errno == EINTR)) {
		if (n < 0)
			continue;
		if (b.len + (size_t)n > MAX_FILE) {
			*reason = "the token cache file is too large";
			break;
		}
		if (ducky_buf_add(&b, chunk, (size_t)n)) {
			*reason = "out of memory";
			break;
		}
	}
	ducky_wipe(chunk, sizeof chunk); /* a piece of a token, on every path */
	if (n < 0 || !b.data || *reason) {
		if (!*reason)
			*reason = n < 0 ? "cannot read the token cache file"
			                : "the token cache file is empty";
		ducky_buf_free(&b); /* wipes */
		return NULL;
	}
	return b.data;
}

/* The value of "name <value>\n" in text, or NULL; *len its length. */
static const char *field(const char *text, const char *name, size_t *len)
{
	size_t n = strlen(name);
	for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
		if (strncmp(p, name, n) == 0 && p[n] == ' ') {
			*len = strcspn(p + n + 1, "\n");
			return p[n + 1 + *len] == '\n' ? p + n + 1
			                               : NULL; /* a truncated line is garbage */
		}
	return NULL;
}

static int number(const char *v, size_t len, double *out)
{
	char *end;
	if (!v || len == 0 || len > 40)
		return 0;
	errno = 0;
	*out = strtod(v, &end);
	return errno == 0 && end == v + len && isfinite(*out);
}

int ducky_store_parse(const char *text, const char *key, ducky_fresh *out, const char **reason)
{
	size_t klen = 0, tlen = 0, elen = 0, llen = 0;
	const char *k, *tok, *exp, *life;
	ducky_err err;
	if (strncmp(text, MAGIC, sizeof MAGIC - 1) != 0) {
		*reason = problems[TOKEN_FILE][NOT_OURS];
		return 0;
	}
	if (!(k = field(text, "key", &klen)) || !(tok = field(text, "token", &tlen)) ||
	    !(exp = field(text, "expires_at", &elen)) || !(life = field(text, "lifetime", &llen)) ||
	    !number(exp, elen, &out->expires_at) || !number(life, llen, &out->lifetime)) {
		*reason = "the token cache file holds garbage";
		return 0;
	}
	if (klen != strlen(key) || strncmp(k, key, klen) != 0)
		return 0; /* another credential's token: not ours to use, not an error */
	ducky_err_init(&err);
	if (ducky_token_validate(tok, tlen, "Bearer", 1, &err) != 0) {
		ducky_err_clear(&err);
		*reason = "the token cache file holds garbage";
		return 0;
	}
	if (!(out->token = ducky_strndup(tok, tlen))) {
		*reason = "out of memory";
		return 0;
	}
	return 1;
}

int ducky_store_load(ducky_file_store *s, const char *key, ducky_fresh *out, const char **reason)
{
	char *name, *text;
	int fd, found = 0;
	*reason = NULL;
	if (open_dir(s, reason) || !(name = name_for(s, key, s->file ? "" : ".token")))
		return 0;
	fd = open_checked(s->dirfd, name, O_RDONLY, TOKEN_FILE, reason);
	free(name);
	if (fd < 0)
		return 0;
	text = slurp(fd, reason);
	close(fd);
	if (text)
		found = ducky_store_parse(text, key, out, reason);
	ducky_wipe_str(text);
	return found;
}

/* Writes text to a new file tmp in the directory, synced. */
static int write_new(int dirfd, const char *tmp, const ducky_buf *text, const char **reason)
{
	int fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		*reason = "cannot create a file in the token cache directory";
		return -1;
	}
	for (size_t done = 0; done < text->len;) {
		ssize_t w = write(fd, text->data + done, text->len - done);
		if (w < 0 && errno != EINTR) {
			close(fd);
			*reason = "cannot write the token cache file";
			return -1;
		}
		done += w > 0 ? (size_t)w : 0;
	}
	if (fsync(fd) != 0 || close(fd) != 0) {
		*reason = "cannot write the token cache file";
		return -1;
	}
	return 0;
}

/* Appends "\n<name> <v>" with v in seconds (to the millisecond, at most 1e12). */
static int add_number(ducky_buf *b, const char *name, double v)
{
	char num[48];
	snprintf(num, sizeof num, "\n%s %.3f", name, v < 1e12 ? (v > -1e12 ? v : -1e12) : 1e12);
	return ducky_buf_adds(b, num);
}

int ducky_store_save(ducky_file_store *s, const char *key, const ducky_fresh *tok,
                     const char **reason)
{
	char *name = NULL, tail[48];
	ducky_buf text = {0}, tmp = {0};
	int ok = 0;
	*reason = NULL;
	if (open_dir(s, reason) || !(name = name_for(s, key, s->file ? "" : ".token")) ||
	    !may_replace(s, name, reason))
		goto out;
	snprintf(tail, sizeof tail, ".%ld.%lx.tmp", (long)getpid(),
	         (unsigned long)(ducky_now() * 1e9));
	if (ducky_buf_adds(&text, MAGIC "key ") || ducky_buf_adds(&text, key) ||
	    add_number(&text, "expires_at", tok->expires_at) ||
	    add_number(&text, "lifetime", tok->lifetime) || ducky_buf_adds(&text, "\ntoken ") ||
	    ducky_buf_adds(&text, tok->token) || ducky_buf_adds(&text, "\n") ||
	    ducky_buf_adds(&tmp, ".") || ducky_buf_adds(&tmp, key) || ducky_buf_adds(&tmp, tail)) {
		*reason = "out of memory";
		goto out;
	}
	if (write_new(s->dirfd, tmp.data, &text, reason) == 0) {
		/* the user's file keeps its own name; the default one is <key>.token */
		if (renameat(s->dirfd, tmp.data, s->dirfd, name) == 0)
			ok = 1;
		else
			*reason = "cannot rename into the token cache file";
	}
	if (!ok)
		unlinkat(s->dirfd, tmp.data, 0);
out:
	ducky_buf_free(&text);
	ducky_buf_free(&tmp);
	free(name);
	return ok ? 0 : -1;
}

int ducky_store_drop(ducky_file_store *s, const char *key, const char **reason)
{
	char *name;
	*reason = NULL;
	if (open_dir(s, reason) || !(name = name_for(s, key, s->file ? "" : ".token")))
		return -1;
	if (may_replace(s, name, reason) && unlinkat(s->dirfd, name, 0) != 0 && errno != ENOENT)
		*reason = "cannot remove the token cache file";
	free(name);
	return *reason ? -1 : 0;
}

int ducky_store_lock(ducky_file_store *s, const char *key, double deadline, const char **reason)
{
	char *name;
	long pause_ns = 2000000;
	*reason = NULL;
	ducky_store_unlock(s);
	if (open_dir(s, reason) || !(name = name_for(s, key, ".lock")))
		return 0;
	s->lockfd = open_checked(s->dirfd, name, O_RDWR | O_CREAT, LOCK_FILE, reason);
	free(name);
	if (s->lockfd < 0)
		return 0;
	/* flock: the kernel lets go when the holder dies, so a killed process blocks nobody */
	for (;;) {
		struct timespec ts = {0, pause_ns};
		if (flock(s->lockfd, LOCK_EX | LOCK_NB) == 0) {
			s->lock_pid = (long)getpid();
			return 1;
		}
		if (errno != EWOULDBLOCK && errno != EINTR) {
			*reason = "cannot lock the token cache lock file";
			break;
		}
		if (ducky_now() + 1e-9 * (double)pause_ns >= deadline)
			break;
		nanosleep(&ts, NULL);
		if (pause_ns < 50000000)
			pause_ns *= 2;
	}
	close(s->lockfd);
	s->lockfd = -1;
	return 0;
}

void ducky_store_unlock(ducky_file_store *s)
{
	if (s->lockfd >= 0) {
		/* a forked child shares the parent's lock: closing its copy keeps it held */
		if (s->lock_pid == (long)getpid())
			flock(s->lockfd, LOCK_UN);
		close(s->lockfd);
		s->lockfd = -1;
	}
}

/* ---- the back-off shared by processes: in the lock file ------------------ */

/* "retry_at <unix seconds> <kind> <key>": the key, as a user-named file (and
 * its lock) may serve two credentials, whose back-offs are their own. */
int ducky_store_backoff_set(ducky_file_store *s, const char *key, double until, const char *kind)
{
	char line[256];
	int n = until > 0
	            ? snprintf(line, sizeof line, "retry_at %.3f %.16s %s\n", until, kind, key)
	            : 0;
	if (s->lockfd < 0 || n < 0 || (size_t)n >= sizeof line || ftruncate(s->lockfd, 0) != 0)
		return -1;
	return n == 0 || pwrite(s->lockfd, line, (size_t)n, 0) == n ? 0 : -1;
}

double ducky_store_backoff_get(ducky_file_store *s, const char *key, char kind[17])
{
	const char *reason = NULL;
	char line[256], *name;
	double until = 0;
	int end = 0;
	size_t klen = strlen(key);
	if (open_dir(s, &reason) || !(name = name_for(s, key, ".lock")))
		return 0;
	int fd = open_checked(s->dirfd, name, O_RDONLY, LOCK_FILE, &reason);
	free(name);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, line, sizeof line - 1);
	close(fd);
	line[n > 0 ? n : 0] = '\0';
	if (sscanf(line, "retry_at %lf %16s %n", &until, kind, &end) != 2 || !(until > 0) || !end ||
	    strncmp(line + end, key, klen) != 0 || line[end + klen] != '\n')
		return 0;
	return until;
}

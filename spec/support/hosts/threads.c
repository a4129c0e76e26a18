/* A C host for the thread-safety specs: starts N pthreads, each with its own
 * lua_State, each running the same Lua script (which requires ducky).
 *   threads SCRIPT NTHREADS [ARG...]   -- the script sees THREAD (1..N) and ARGS
 * Exits 0 when every script returned without error. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

struct job {
	int index, argc, failed;
	char **argv;
	const char *script;
	pthread_barrier_t *start;
};

static void *run(void *p)
{
	struct job *j = p;
	lua_State *L = luaL_newstate();
	if (!L) {
		j->failed = 1;
		return NULL;
	}
	luaL_openlibs(L);
	lua_pushinteger(L, j->index);
	lua_setglobal(L, "THREAD");
	lua_createtable(L, j->argc, 0);
	for (int i = 0; i < j->argc; i++) {
		lua_pushstring(L, j->argv[i]);
		lua_rawseti(L, -2, i + 1);
	}
	lua_setglobal(L, "ARGS");
	pthread_barrier_wait(j->start); /* all threads begin together */
	if (luaL_dofile(L, j->script) != 0) {
		fprintf(stderr, "thread %d: %s\n", j->index, lua_tostring(L, -1));
		j->failed = 1;
	}
	lua_close(L);
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: %s SCRIPT NTHREADS [ARG...]\n", argv[0]);
		return 2;
	}
	int n = atoi(argv[2]), failed = 0;
	if (n < 1)
		return 2;
	pthread_t *t = calloc((size_t)n, sizeof *t);
	struct job *jobs = calloc((size_t)n, sizeof *jobs);
	pthread_barrier_t start;
	if (!t || !jobs || pthread_barrier_init(&start, NULL, (unsigned)n))
		return 1;
	for (int i = 0; i < n; i++) {
		jobs[i] = (struct job){i + 1, argc - 3, 0, argv + 3, argv[1], &start};
		if (pthread_create(&t[i], NULL, run, &jobs[i]))
			return 1;
	}
	for (int i = 0; i < n; i++) {
		pthread_join(t[i], NULL);
		failed += jobs[i].failed;
	}
	pthread_barrier_destroy(&start);
	free(t);
	free(jobs);
	printf("%d threads, %d failed\n", n, failed);
	return failed ? 1 : 0;
}

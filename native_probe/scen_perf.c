/* binder-probe: perf scenario.  Round-trip latency and throughput of binder
 * calls by payload size, against a pipe round trip of the same size, measured
 * in the guest.  It reports figures only; nothing here is a verdict.
 *
 *   perf sizes=8,4096,65536,1040384 map=4194304 iters=200 min_iters=5 budget_ms=150
 *
 * Per mechanism and size: `min_iters` to `iters` round trips, stopping early once
 * `budget_ms` has passed, after 2 untimed warm-up trips.
 *   binder: BC_TRANSACTION of `size` bytes to handle 0, the server frees the buffer and
 *           sends an empty BC_REPLY; the client frees the reply (as in `sync mode=call`).
 *   pipe:   `size` bytes down one pipe, read in full by the child, 8 bytes back up another.
 * Lines: {"ev":"perf","via":"binder"|"pipe","size":S,"iters":N,"median_us":..,"p90_us":..,
 *         "min_us":..,"mean_us":..,"mb_s":..,"ok":bool}, pipe sizes first, then the binder
 * pair's usual roles/map lines and the binder perf lines.
 */
#include "probe.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PERF_MAX_SIZES 16
#define PERF_WARMUP 2

static uint64_t p_sizes[PERF_MAX_SIZES];
static int p_nsizes;
static uint64_t p_iters, p_min_iters, p_budget_ms;
static uint64_t *p_samples;

static uint64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static void print_perf(const char *via, uint64_t size, uint64_t n, uint64_t total_us, int ok)
{
	J j;
	jbegin(&j, EV_PERF);
	jstr(&j, "via", via);
	ju64(&j, "size", size);
	ju64(&j, "iters", n);
	if (n) {
		qsort(p_samples, (size_t)n, sizeof(uint64_t), cmp_u64);
		ju64(&j, "median_us", p_samples[n / 2]);
		ju64(&j, "p90_us", p_samples[(n * 9) / 10 < n ? (n * 9) / 10 : n - 1]);
		ju64(&j, "min_us", p_samples[0]);
		ju64(&j, "mean_us", total_us / n);
		/* payload bytes per microsecond = MB/s (10^6 bytes per second) */
		char mbs[32];
		snprintf(mbs, sizeof(mbs), "%.3f", total_us ? (double)(size * n) / (double)total_us : 0.0);
		jraw(&j, "mb_s", mbs);
	}
	jbool(&j, "ok", ok);
	jend(&j);
}

static int keep_going(uint64_t i, uint64_t t0)
{
	if (i >= p_iters)
		return 0;
	if (i < p_min_iters)
		return 1;
	return now_us() - t0 < p_budget_ms * 1000u;
}

/* Move exactly n bytes through fd (read or write), looping on short transfers. */
static int move_all(int fd, uint8_t *buf, size_t n, int wr)
{
	size_t done = 0;
	while (done < n) {
		ssize_t r = wr ? write(fd, buf + done, n - done) : read(fd, buf + done, n - done);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		done += (size_t)r;
	}
	return 0;
}

/* One pipe round trip: a size header and the payload down, an 8-byte ack back. */
static int pipe_trip(int wfd, int rfd, uint8_t *buf, uint64_t size)
{
	uint8_t ack[8];
	return move_all(wfd, (uint8_t *)&size, sizeof(size), 1) == 0 &&
	       move_all(wfd, buf, (size_t)size, 1) == 0 &&
	       move_all(rfd, ack, sizeof(ack), 0) == 0;
}

static void perf_pipes(uint8_t *buf, uint64_t max)
{
	int down[2], up[2], st = 0;
	pid_t pid;
	if (pipe2(down, O_CLOEXEC) || pipe2(up, O_CLOEXEC))
		finish(0, "pipe failed");
	pid = fork_child();
	if (pid == 0) {
		uint8_t ack[8] = {0};
		uint64_t size;
		close(down[1]);
		close(up[0]);
		set_phase("pipe echo");
		/* each trip: an 8-byte size header, the payload, then an 8-byte ack back */
		while (move_all(down[0], (uint8_t *)&size, sizeof(size), 0) == 0) {
			if (size > max || move_all(down[0], buf, (size_t)size, 0) ||
			    move_all(up[1], ack, sizeof(ack), 1))
				_exit(1);
		}
		_exit(0);
	}
	close(down[0]);
	close(up[1]);
	set_phase("pipe round trips");
	for (int s = 0; s < p_nsizes; s++) {
		uint64_t size = p_sizes[s], i = 0, t0, sum = 0;
		int ok = 1;
		pattern_fill(buf, (size_t)size, (uint64_t)s);
		for (int w = 0; w < PERF_WARMUP && ok; w++)
			ok = pipe_trip(down[1], up[0], buf, size);
		t0 = now_us();
		while (ok && keep_going(i, t0)) {
			uint64_t a = now_us();
			ok = pipe_trip(down[1], up[0], buf, size);
			p_samples[i] = now_us() - a;
			sum += ok ? p_samples[i] : 0;
			i += ok;
		}
		print_perf("pipe", size, i, sum, ok);
		if (!ok)
			break;
	}
	close(down[1]);
	close(up[0]);
	waitpid(pid, &st, 0);
	g_child = -1;
}

static uint8_t *g_perf_buf;

static int perf_client(Pair *p, Bd *b)
{
	(void)p;
	set_phase("binder round trips");
	for (int s = 0; s < p_nsizes; s++) {
		uint64_t size = p_sizes[s], i = 0, t0, sum = 0;
		int ok = 1;
		CallRes r;
		pattern_fill(g_perf_buf, (size_t)size, (uint64_t)s);
		for (int w = 0; w < PERF_WARMUP && ok; w++) {
			bd_call(b, 0, (uint32_t)s + 1, 0, (uintptr_t)g_perf_buf, size, 0, 0, &r, 10000);
			ok = !strcmp(r.status, "ok");
			if (r.have_reply)
				bd_free(b, r.reply.data.ptr.buffer);
		}
		t0 = now_us();
		while (ok && keep_going(i, t0)) {
			uint64_t a = now_us();
			bd_call(b, 0, (uint32_t)s + 1, 0, (uintptr_t)g_perf_buf, size, 0, 0, &r, 10000);
			p_samples[i] = now_us() - a;
			ok = !strcmp(r.status, "ok");
			if (r.have_reply)
				bd_free(b, r.reply.data.ptr.buffer);
			sum += ok ? p_samples[i] : 0;
			i += ok;
		}
		print_perf("binder", size, i, sum, ok);
		if (!ok)
			snprintf(p->err, sizeof(p->err), "binder call of %llu bytes: %s",
				 (unsigned long long)size, r.status);
	}
	return p->err[0] ? -1 : 0;
}

void scen_perf(void)
{
	Pair p;
	uint64_t map, max = 1;
	p_nsizes = arg_list("sizes", "8,4096,65536,1040384", p_sizes, PERF_MAX_SIZES);
	map = arg_u64("map", 4194304);
	p_iters = arg_u64("iters", 200);
	p_min_iters = arg_u64("min_iters", 5);
	p_budget_ms = arg_u64("budget_ms", 150);
	args_finish();
	if (p_iters == 0 || p_min_iters > p_iters)
		usage_error("argument iters must be > 0 and >= min_iters");
	for (int s = 0; s < p_nsizes; s++)
		if (p_sizes[s] > max)
			max = p_sizes[s];
	p_samples = calloc((size_t)p_iters, sizeof(uint64_t));
	g_perf_buf = malloc((size_t)max);
	if (!p_samples || !g_perf_buf)
		finish(0, "out of memory");
	perf_pipes(g_perf_buf, max);
	memset(&p, 0, sizeof(p));
	p.server_map = p.client_map = (size_t)map;
	p.server_free = 1;
	p.sizes = p_sizes;
	p.nsizes = p_nsizes;
	p.ctl_fd = -1;
	p.client = perf_client;
	run_pair(&p);
}

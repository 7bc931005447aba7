/* binder-probe: limits scenarios (mmap_flags, async_flood, free_reuse,
 * spam, munmap_dead). */
#include "probe.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* ----------------------------------------------------------- mmap_flags */

static void print_mmap(const char *step, const char *prot, void *m, int err, size_t size)
{
	J j;
	jbegin(&j, EV_MMAP);
	jstr(&j, "step", step);
	jstr(&j, "prot", prot);
	ju64(&j, "size", size);
	jerrno(&j, err);
	if (!err) {
		char line[512];
		maps_line_for((uintptr_t)m, line, sizeof(line));
		ju64(&j, "start", (uintptr_t)m);
		jstr(&j, "maps_line", line);
	}
	jend(&j);
}

static int try_mmap(int fd, size_t size, int prot, void **out)
{
	void *m = mmap(NULL, size, prot, MAP_PRIVATE, fd, 0);
	*out = m;
	return m == MAP_FAILED ? errno : 0;
}

void scen_mmap_flags(void)
{
	size_t size = (size_t)arg_u64("map", 1048576);
	void *m, *m2;
	int fd, err;
	J j;
	args_finish();
	fd = open(g_binder_dev, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		char e[100];
		snprintf(e, sizeof(e), "open %s: %s", g_binder_dev, errno_name(errno));
		finish(0, e);
	}
	/* 1: writable mapping is refused (FORBIDDEN_MMAP_FLAGS). */
	err = try_mmap(fd, size, PROT_READ | PROT_WRITE, &m);
	print_mmap("rw", "rw", m, err, size);
	if (!err)
		munmap(m, size);
	/* 2: read-only mapping works. */
	err = try_mmap(fd, size, PROT_READ, &m);
	print_mmap("ro", "r", m, err, size);
	if (err)
		finish(0, "read-only mmap failed");
	/* 3: VM_MAYWRITE is cleared, so mprotect to writable fails. */
	err = mprotect(m, size, PROT_READ | PROT_WRITE) ? errno : 0;
	jbegin(&j, EV_MPROTECT);
	jstr(&j, "prot", "rw");
	jerrno(&j, err);
	jend(&j);
	/* 4: a second mapping on the same fd. */
	err = try_mmap(fd, size, PROT_READ, &m2);
	print_mmap("second", "r", m2, err, size);
	if (!err)
		munmap(m2, size);
	/* 5: unmap, then map again. */
	err = munmap(m, size) ? errno : 0;
	jbegin(&j, EV_MUNMAP);
	jerrno(&j, err);
	jend(&j);
	err = try_mmap(fd, size, PROT_READ, &m2);
	print_mmap("after_munmap", "r", m2, err, size);
	if (!err)
		munmap(m2, size);
	/* 6: a fresh fd maps fine (the limit is per binder_proc). */
	{
		int fd2 = open(g_binder_dev, O_RDWR | O_CLOEXEC);
		err = fd2 < 0 ? errno : try_mmap(fd2, size, PROT_READ, &m2);
		print_mmap("new_fd", "r", m2, err, size);
		if (fd2 >= 0)
			close(fd2);
	}
	close(fd);
	finish(1, NULL);
}

/* ------------------------------------------------- flood-style clients */

static uint64_t g_count, g_size, g_verbose, g_max_fail;
static int g_oneway;
static int g_spam;

static int flood_client(Pair *p, Bd *b)
{
	uint8_t *buf = malloc(g_size ? (size_t)g_size : 1);
	uint32_t flags = g_oneway ? TF_ONE_WAY : 0;
	uint64_t ok_count = 0, fail_count = 0, spam_count = 0, printed_fail = 0;
	int64_t first_fail = -1, first_spam = -1;
	CallRes first_fail_r;
	(void)p;
	if (!buf) {
		snprintf(p->err, sizeof(p->err), "out of memory");
		return -1;
	}
	memset(&first_fail_r, 0, sizeof(first_fail_r));
	if (g_spam) {
		uint32_t on = 1;
		int err = ioctl(b->fd, BINDER_ENABLE_ONEWAY_SPAM_DETECTION, &on) ? errno : 0;
		J j;
		jbegin(&j, EV_SPAM_DETECTION);
		jerrno(&j, err);
		jend(&j);
	}
	for (uint64_t i = 0; i < g_count; i++) {
		CallRes r;
		int ok;
		pattern_fill(buf, (size_t)g_size, i);
		bd_call(b, 0, (uint32_t)i + 1, flags, (uintptr_t)buf, g_size, 0, 0, &r, 10000);
		ok = !strcmp(r.status, "ok");
		if (ok)
			ok_count++;
		else {
			if (first_fail < 0) {
				first_fail = (int64_t)i;
				first_fail_r = r;
			}
			fail_count++;
		}
		if (r.spam_suspect) {
			spam_count++;
			if (first_spam < 0)
				first_spam = (int64_t)i;
		}
		if (g_verbose || (!ok && printed_fail < 10)) {
			J j;
			if (!ok)
				printed_fail++;
			jbegin(&j, EV_TX);
			ju64(&j, "seq", i);
			ju64(&j, "n", i + 1);
			ju64(&j, "size", g_size);
			jstr(&j, "mode", g_oneway ? "oneway" : "call");
			jcall(&j, &r);
			jbool(&j, "spam_suspect", r.spam_suspect);
			jend(&j);
		}
		if (r.have_reply)
			bd_free(b, r.reply.data.ptr.buffer);
		if (g_max_fail && fail_count >= g_max_fail)
			break;
	}
	{
		J j;
		jbegin(&j, EV_SUMMARY);
		ju64(&j, "count", g_count);
		ju64(&j, "ok_count", ok_count);
		ju64(&j, "fail_count", fail_count);
		ji64(&j, "first_fail_seq", first_fail);
		if (first_fail >= 0) {
			jstr(&j, "first_fail_status", first_fail_r.status);
			jbrs(&j, "first_fail_br", first_fail_r.brs, first_fail_r.nbr);
			jext(&j, "first_fail_ext_err", &first_fail_r.ee, first_fail_r.have_ee);
		} else {
			jnull(&j, "first_fail_status");
			jnull(&j, "first_fail_br");
			jnull(&j, "first_fail_ext_err");
		}
		ju64(&j, "spam_suspect_count", spam_count);
		ji64(&j, "first_spam_seq", first_spam);
		jend(&j);
	}
	free(buf);
	return 0;
}

static void flood_pair(Pair *p, uint64_t map, int free_bufs)
{
	memset(p, 0, sizeof(*p));
	p->server_map = p->client_map = (size_t)map;
	p->server_free = free_bufs;
	p->server_print_rx = 1;
	p->ctl_fd = -1;
	p->client = flood_client;
}

/* The flood scenarios share their arguments; only the defaults differ. */
static void flood_setup(Pair *p, uint64_t count, uint64_t map, uint64_t free_bufs, uint64_t verbose)
{
	g_count = arg_u64("count", count);
	g_size = arg_u64("size", 65536);
	map = arg_u64("map", map);
	free_bufs = arg_u64("free", free_bufs);
	g_verbose = arg_u64("verbose", verbose);
	g_max_fail = arg_u64("max_fail", 0);
	args_finish();
	flood_pair(p, map, (int)free_bufs);
}

void scen_async_flood(void)
{
	Pair p;
	flood_setup(&p, 40, 4194304, 0, 1);
	g_oneway = 1;
	run_pair(&p);
}

void scen_free_reuse(void)
{
	Pair p;
	flood_setup(&p, 1000, 1048576, 1, 0);
	p.server_print_rx = 0;
	run_pair(&p);
}

void scen_spam(void)
{
	Pair p;
	flood_setup(&p, 40, 4194304, 0, 1);
	g_oneway = 1;
	g_spam = 1;
	run_pair(&p);
}

/* ---------------------------------------------------------- munmap_dead */

static void munmap_setup(Pair *p, Bd *b)
{
	int err = munmap(b->map, b->map_size) ? errno : 0;
	J j;
	(void)p;
	jbegin(&j, EV_MUNMAP);
	jstr(&j, "role", "server");
	jerrno(&j, err);
	jend(&j);
	if (!err)
		b->map = MAP_FAILED;
}

static int munmap_client(Pair *p, Bd *b)
{
	static const struct {
		const char *mode;
		uint32_t flags;
	} calls[] = {{"call", 0}, {"oneway", TF_ONE_WAY}, {"call", 0}};
	uint8_t buf[64];
	(void)p;
	for (int i = 0; i < 3; i++) {
		CallRes r;
		J j;
		pattern_fill(buf, sizeof(buf), (uint64_t)i);
		bd_call(b, 0, (uint32_t)i + 1, calls[i].flags, (uintptr_t)buf, sizeof(buf), 0, 0,
			&r, 5000);
		jbegin(&j, EV_TX);
		ji64(&j, "seq", i);
		ji64(&j, "n", i + 1);
		ju64(&j, "size", sizeof(buf));
		jstr(&j, "mode", calls[i].mode);
		jcall(&j, &r);
		jend(&j);
		if (r.have_reply)
			bd_free(b, r.reply.data.ptr.buffer);
	}
	return 0;
}

void scen_munmap_dead(void)
{
	Pair p;
	uint64_t map = arg_u64("map", 1048576);
	args_finish();
	memset(&p, 0, sizeof(p));
	p.server_map = p.client_map = (size_t)map;
	p.server_free = 1;
	p.server_print_rx = 1;
	p.server_print_br = 1;
	p.ctl_fd = -1;
	p.server_setup = munmap_setup;
	p.client = munmap_client;
	run_pair(&p);
}

/* ---------------------------------------------------------- async_exact */

/* The server holds every oneway buffer until told to release them; the client
 * fills async space with oneway calls of one size until one fails, reading the
 * server's "free async space" from debugfs before and after, then has the
 * server free them all and reads it again.
 *   async_exact map=16384 sizes=0,8 max=4096 */
#define ASYNC_CODE_RELEASE 0x52454c53u /* 'RELS': free held buffers, stop holding */
#define ASYNC_CODE_HOLD 0x484f4c44u    /* 'HOLD': hold oneway buffers again */
#define ASYNC_MAX_HELD 16384

static binder_uintptr_t g_held[ASYNC_MAX_HELD];
static size_t g_nheld;
static int g_holding = 1;

static int async_on_tx(Pair *p, Bd *b, const struct binder_transaction_data *tr)
{
	(void)p;
	if (tr->flags & TF_ONE_WAY) {
		if (g_holding && g_nheld < ASYNC_MAX_HELD)
			g_held[g_nheld++] = tr->data.ptr.buffer;
		else
			bd_free(b, tr->data.ptr.buffer);
		return 0;
	}
	if (tr->code == ASYNC_CODE_RELEASE) {
		for (size_t i = 0; i < g_nheld; i++)
			bd_free(b, g_held[i]);
		g_nheld = 0;
		g_holding = 0;
	} else if (tr->code == ASYNC_CODE_HOLD) {
		g_holding = 1;
	}
	bd_free(b, tr->data.ptr.buffer);
	bd_send(b, BC_REPLY, 0, tr->code, 0, 0, 0, 0, 0);
	return 0;
}

/* The per-proc stats line of the oneway budget: binder.c's "free async space", the Rust
 * driver's "free oneway space" (harness/evidence/drivers.py async_space passes it). */
static const char *g_space_key = "free async space";
static uint64_t g_async_sizes[4];
static int g_async_nsizes;
static uint64_t g_async_max;

static long async_space(Pair *p, const char *when, uint64_t size)
{
	long v = -1;
	int rc = bd_debugfs_stats_value(p->server_pid, g_space_key, &v);
	J j;
	jbegin(&j, EV_ASYNC_SPACE);
	jstr(&j, "when", when);
	ju64(&j, "size", size);
	jerrno(&j, rc < 0 ? -rc : 0);
	ji64(&j, "free_async_space", rc < 0 ? -1 : v);
	jend(&j);
	return rc < 0 ? -1 : v;
}

static void async_sync_call(Bd *b, uint32_t code, const char *name, uint64_t size)
{
	CallRes r;
	J j;
	bd_call(b, 0, code, 0, 0, 0, 0, 0, &r, 5000);
	jresult(&j, name, r.write_err);
	ju64(&j, "size", size);
	jcall(&j, &r);
	jend(&j);
	if (r.have_reply)
		bd_free(b, r.reply.data.ptr.buffer);
}

static int async_exact_client(Pair *p, Bd *b)
{
	static uint8_t buf[64];
	for (int s = 0; s < g_async_nsizes; s++) {
		uint64_t size = g_async_sizes[s], ok = 0;
		CallRes r, fail;
		J j;
		int failed = 0;
		long before;
		memset(&fail, 0, sizeof(fail));
		before = async_space(p, "before", size);
		for (uint64_t i = 0; i < g_async_max; i++) {
			bd_call(b, 0, (uint32_t)i + 1, TF_ONE_WAY, (uintptr_t)buf, size, 0, 0, &r, 5000);
			if (strcmp(r.status, "ok")) {
				fail = r;
				failed = 1;
				break;
			}
			ok++;
		}
		jbegin(&j, EV_ASYNC_FILL);
		ju64(&j, "size", size);
		ju64(&j, "ok_count", ok);
		jbool(&j, "failed", failed);
		jcall(&j, &fail);
		jend(&j);
		async_space(p, "full", size);
		/* A 0-byte oneway when the space is used up (it is padded to 8 bytes). */
		bd_call(b, 0, 0xfff0, TF_ONE_WAY, 0, 0, 0, 0, &r, 5000);
		jresult(&j, "async.zero_when_full", r.write_err);
		ju64(&j, "size", size);
		jcall(&j, &r);
		jend(&j);
		/* Sync calls do not draw on async space. */
		async_sync_call(b, 0xfff1, "async.sync_when_full", size);
		async_sync_call(b, ASYNC_CODE_RELEASE, "async.release", size);
		{
			/* The server frees the held buffers, then each queued one as it arrives:
			 * wait until binder's count is back at its value before the fill (5 s cap;
			 * a count that never gets back fails the case's after_free check). */
			uint64_t deadline = now_ms() + 5000;
			long v = -1;
			while (before >= 0 && now_ms() < deadline) {
				if (bd_debugfs_stats_value(p->server_pid, g_space_key, &v) < 0 || v == before)
					break;
				sleep_ms(5);
			}
		}
		async_space(p, "after_free", size);
		async_sync_call(b, ASYNC_CODE_HOLD, "async.hold", size);
	}
	return 0;
}

void scen_async_exact(void)
{
	Pair p;
	uint64_t map = arg_u64("map", 16384);
	g_async_nsizes = arg_list("sizes", "0,8", g_async_sizes, 4);
	g_async_max = arg_u64("max", 4096);
	g_space_key = arg_str("space_key", g_space_key);
	args_finish();
	for (int i = 0; i < g_async_nsizes; i++)
		if (g_async_sizes[i] > 64)
			usage_error("sizes must be at most 64");
	memset(&p, 0, sizeof(p));
	p.server_map = p.client_map = (size_t)map;
	p.ctl_fd = -1;
	p.server_quiet = 1;
	p.on_tx = async_on_tx;
	p.client = async_exact_client;
	run_pair(&p);
}

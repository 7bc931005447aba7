/* binder-probe: one_copy scenarios (sync, stream, lazy, clamp, shrinker). */
#include "probe.h"
#include <dirent.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_SIZES 64

static uint64_t g_sizes[MAX_SIZES];
static int g_nsizes;
static uint64_t g_touch[MAX_SIZES];
static int g_ntouch;
static int g_mode_reply, g_mode_oneway;
static const char *g_mode = "call";

static uint8_t *alloc_payload(uint64_t max)
{
	uint8_t *p = malloc(max ? (size_t)max : 1);
	if (!p)
		finish(0, "out of memory for payload");
	return p;
}

static uint64_t max_size(void)
{
	uint64_t m = 0;
	for (int i = 0; i < g_nsizes; i++)
		if (g_sizes[i] > m)
			m = g_sizes[i];
	return m;
}

/* Client: one transaction per size; prints tx (and rx for replies). */
static int sizes_client(Pair *p, Bd *b)
{
	uint8_t *buf = alloc_payload(max_size());
	uint32_t flags = g_mode_oneway ? TF_ONE_WAY : 0;
	(void)p;
	for (int i = 0; i < g_nsizes; i++) {
		CallRes r;
		J j;
		pattern_fill(buf, (size_t)g_sizes[i], (uint64_t)i);
		bd_call(b, 0, (uint32_t)i + 1, flags, (uintptr_t)buf, g_sizes[i], 0, 0, &r, 10000);
		jbegin(&j, EV_TX);
		ji64(&j, "seq", i);
		ji64(&j, "n", i + 1);
		ju64(&j, "size", g_sizes[i]);
		jstr(&j, "mode", g_mode);
		jcall(&j, &r);
		jend(&j);
		if (r.have_reply) {
			if (g_mode_reply) {
				jbegin(&j, EV_RX);
				jstr(&j, "role", "client");
				jrx(&j, b, &r.reply, (uint64_t)i, g_sizes[i]);
				jend(&j);
			}
			bd_free(b, r.reply.data.ptr.buffer);
		}
	}
	free(buf);
	return 0;
}

/* After traffic: touch the server's mapping at the requested offsets. */
static void touch_post(Pair *p, Bd *b)
{
	(void)p;
	for (int i = 0; i < g_ntouch; i++) {
		J j;
		int sig = -1;
		if (g_touch[i] < b->map_size)
			sig = touch_byte(b->map + g_touch[i]);
		jbegin(&j, EV_TOUCH);
		jstr(&j, "role", "server");
		ju64(&j, "offset", g_touch[i]);
		ju64(&j, "addr", (uintptr_t)b->map + g_touch[i]);
		if (sig < 0) {
			jnull(&j, "signal");
			jbool(&j, "in_vma", 0);
		} else {
			jstr(&j, "signal", signal_name(sig));
			jbool(&j, "in_vma", 1);
		}
		jend(&j);
	}
	{
		char line[512];
		J j;
		maps_line_for((uintptr_t)b->map, line, sizeof(line));
		jbegin(&j, EV_MAPS);
		jstr(&j, "role", "server");
		jstr(&j, "maps_line", line);
		jend(&j);
	}
}

static void pair_defaults(Pair *p, uint64_t map)
{
	memset(p, 0, sizeof(*p));
	p->server_map = p->client_map = (size_t)map;
	p->server_free = 1;
	p->server_print_rx = 1;
	p->sizes = g_sizes;
	p->nsizes = g_nsizes;
	p->ctl_fd = -1;
	p->client = sizes_client;
}

void scen_sync(void)
{
	Pair p;
	uint64_t map;
	g_nsizes = arg_list("sizes", "8,4096,10000,65536,1040384", g_sizes, MAX_SIZES);
	map = arg_u64("map", 4194304);
	g_mode = arg_str("mode", "call");
	args_finish();
	if (!strcmp(g_mode, "reply"))
		g_mode_reply = 1;
	else if (!strcmp(g_mode, "oneway"))
		g_mode_oneway = 1;
	else if (strcmp(g_mode, "call"))
		usage_error("argument mode: '%s' is not call|reply|oneway", g_mode);
	pair_defaults(&p, map);
	p.server_reply_payload = g_mode_reply;
	run_pair(&p);
}

void scen_lazy(void)
{
	Pair p;
	uint64_t map, size;
	map = arg_u64("map", 4194304);
	size = arg_u64("size", 10000);
	g_ntouch = arg_list("touch", "0,12288,2097152", g_touch, MAX_SIZES);
	args_finish();
	g_nsizes = 2;
	g_sizes[0] = g_sizes[1] = size;
	pair_defaults(&p, map);
	p.server_post = touch_post;
	run_pair(&p);
}

void scen_clamp(void)
{
	Pair p;
	uint64_t map, cmap;
	g_nsizes = arg_list("sizes", "4194304,4194300,4194312", g_sizes, MAX_SIZES);
	map = arg_u64("map", 8388608);
	cmap = arg_u64("client_map", 1048576);
	g_ntouch = arg_list("touch", "0,4194303,4198400,8388607", g_touch, MAX_SIZES);
	args_finish();
	pair_defaults(&p, map);
	p.client_map = (size_t)cmap;
	p.server_post = touch_post;
	run_pair(&p);
}

/* ------------------------------------------------------------- shrinker */

static const char *g_release;
static int g_self;

/* Find the "pages: a:b:c" line of proc `pid` in debugfs binder/stats. */
static int stats_pages(pid_t pid, long *act, long *lru, long *fre, char *raw, size_t cap)
{
	char line[512], path[256];
	FILE *f;
	int in = 0, found = 0;
	raw[0] = 0;
	binder_log_path(path, sizeof(path), "stats");
	f = fopen(path, "re");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		int p;
		if (sscanf(line, "proc %d", &p) == 1) {
			in = p == pid;
			continue;
		}
		if (in && sscanf(line, " pages: %ld:%ld:%ld", act, lru, fre) == 3) {
			size_t l = strlen(line);
			while (l && line[l - 1] == '\n')
				line[--l] = 0;
			snprintf(raw, cap, "%s", line);
			found = 1;
			break;
		}
	}
	fclose(f);
	return found ? 0 : -ENOENT;
}

static const char *g_shrinker; /* debugfs shrinker/NAME: the kernel's count of a shrinker's objects */

/* The objects shrinker `g_shrinker` counts (mm/shrinker_debug.c shrinker_debugfs_count_show: in
 * debugfs shrinker/NAME-ID/count, one "MEMCG N0 N1 ..." line per memcg with any, none when it
 * counts none), summed over nodes and memcgs; -errno when there is no such shrinker. */
static long shrinker_count(void)
{
	char dir[256], path[512], line[512];
	const char *base = strrchr(g_shrinker, '/');
	size_t bl;
	long total = 0;
	DIR *d;
	struct dirent *e;
	FILE *f = NULL;
	if (!base)
		return -EINVAL;
	snprintf(dir, sizeof(dir), "%.*s", (int)(base - g_shrinker), g_shrinker);
	base++;
	bl = strlen(base);
	d = opendir(dir);
	if (!d)
		return -errno;
	while ((e = readdir(d)) && !f) {
		if (!strncmp(e->d_name, base, bl) && e->d_name[bl] == '-') {
			snprintf(path, sizeof(path), "%s/%s/count", dir, e->d_name);
			f = fopen(path, "re");
		}
	}
	closedir(d);
	if (!f)
		return -ENOENT;
	while (fgets(line, sizeof(line), f)) {
		char *q = line, *end;
		strtoul(q, &end, 10); /* the memcg id */
		for (q = end;; q = end) {
			long n = strtol(q, &end, 10);
			if (end == q)
				break;
			total += n;
		}
	}
	fclose(f);
	return total;
}

static void print_pages(Pair *p, const char *when)
{
	long a = 0, l = 0, f = 0;
	char raw[256];
	int rc = stats_pages(p->server_pid, &a, &l, &f, raw, sizeof(raw));
	J j;
	jbegin(&j, EV_PAGES);
	jstr(&j, "when", when);
	ji64(&j, "proc", p->server_pid);
	if (rc == 0) {
		ji64(&j, "active", a);
		ji64(&j, "lru", l);
		ji64(&j, "free", f);
		jstr(&j, "line", raw);
	} else {
		jerrno(&j, -rc);
	}
	if (g_shrinker && *g_shrinker)
		ji64(&j, "shrinker_count", shrinker_count());
	jend(&j);
}

static int shrinker_client(Pair *p, Bd *b)
{
	J j;
	if (g_self)
		print_pages(p, "start");
	sizes_client(p, b);
	set_phase("shrinker wait");
	if (g_self) {
		int fd, err = 0;
		print_pages(p, "before");
		fd = open("/proc/sys/vm/drop_caches", O_WRONLY | O_CLOEXEC);
		if (fd < 0 || write(fd, "2\n", 2) != 2)
			err = errno;
		if (fd >= 0)
			close(fd);
		jbegin(&j, EV_DROP_CACHES);
		jerrno(&j, err);
		jend(&j);
		print_pages(p, "after");
		return 0;
	}
	jbegin(&j, EV_READY);
	jstr(&j, "release", g_release);
	ji64(&j, "server_pid", p->server_pid);
	jend(&j);
	for (;;) {
		struct stat st;
		if (stat(g_release, &st) == 0)
			break;
		sleep_ms(50);
	}
	jbegin(&j, EV_RELEASED);
	jend(&j);
	return 0;
}

void scen_shrinker(void)
{
	Pair p;
	uint64_t count, size, map;
	count = arg_u64("count", 16);
	size = arg_u64("size", 65536);
	map = arg_u64("map", 4194304);
	g_release = arg_str("release", "/tmp/bh-release");
	g_self = (int)arg_u64("self", 0);
	g_shrinker = arg_str("shrinker", "");
	args_finish();
	if (count < 1 || count > MAX_SIZES)
		usage_error("argument count must be 1..%d", MAX_SIZES);
	g_nsizes = (int)count;
	for (int i = 0; i < g_nsizes; i++)
		g_sizes[i] = size;
	if (!g_self)
		unlink(g_release);
	pair_defaults(&p, map);
	p.server_print_rx = 0;
	p.client = shrinker_client;
	run_pair(&p);
}

/* --------------------------------------------------------------- stream */

static int xfer(int fd, uint8_t *p, size_t n, int wr)
{
	while (n) {
		ssize_t r = wr ? write(fd, p, n) : read(fd, p, n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

void scen_stream(void)
{
	const char *via;
	int fds[2], wfd, rfd, st = 0;
	uint8_t *buf;
	pid_t pid;
	J j;
	g_nsizes = arg_list("sizes", "8,4096,10000,65536,1040384", g_sizes, MAX_SIZES);
	via = arg_str("via", "pipe");
	args_finish();
	if (!strcmp(via, "pipe")) {
		if (pipe2(fds, O_CLOEXEC))
			finish(0, "pipe failed");
		rfd = fds[0];
		wfd = fds[1];
	} else if (!strcmp(via, "unix")) {
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds))
			finish(0, "socketpair failed");
		rfd = fds[0];
		wfd = fds[1];
	} else {
		usage_error("argument via: '%s' is not pipe|unix", via);
	}
	buf = alloc_payload(max_size());
	pid = fork_child();
	if (pid == 0) {
		close(wfd);
		set_phase("stream reader");
		for (int i = 0; i < g_nsizes; i++) {
			int rc = xfer(rfd, buf, (size_t)g_sizes[i], 0);
			int64_t bad = rc ? -2 : pattern_check(buf, (size_t)g_sizes[i], (uint64_t)i);
			jbegin(&j, EV_STREAM);
			jstr(&j, "via", via);
			ji64(&j, "seq", i);
			ju64(&j, "size", g_sizes[i]);
			jbool(&j, "pattern_ok", rc == 0 && bad < 0);
			ji64(&j, "first_bad", bad);
			jend(&j);
			if (rc)
				_exit(1);
		}
		_exit(0);
	}
	close(rfd);
	jbegin(&j, EV_ROLES);
	ji64(&j, "writer_pid", getpid());
	ji64(&j, "reader_pid", pid);
	jend(&j);
	set_phase("stream writer");
	for (int i = 0; i < g_nsizes; i++) {
		pattern_fill(buf, (size_t)g_sizes[i], (uint64_t)i);
		if (xfer(wfd, buf, (size_t)g_sizes[i], 1)) {
			close(wfd);
			waitpid(pid, &st, 0);
			finish(0, "stream write failed");
		}
	}
	close(wfd);
	set_phase("waiting for reader");
	waitpid(pid, &st, 0);
	g_child = -1;
	if (!WIFEXITED(st) || WEXITSTATUS(st))
		finish(0, "stream reader failed");
	finish(1, NULL);
}

/* binder-probe: valid_traffic (stress.valid_traffic).
 *
 * A seeded xorshift64* stream of VALID work, for a bounded time: sync calls and
 * oneway calls of random sizes carrying random objects (BINDER_TYPE_BINDER and
 * WEAK_BINDER nodes of the client, BINDER_TYPE_FD of a pipe), and frees of the
 * reply buffers the client holds, in random order.  The server (the context
 * manager, accepting fds) echoes each sync call's buffer back as its reply, so
 * the client's own nodes come back to it as binders (binder_translate_handle)
 * and the pipe as a new fd (binder_translate_fd); it closes every fd it
 * received and frees every buffer.  The client checks each reply against what
 * it sent and answers BR_INCREFS/BR_ACQUIRE with their _DONE commands.
 *
 * Before leaving, each side frees everything and reads its own "buffers:" line
 * from debugfs binder/stats (print_binder_proc_stats ->
 * binder_alloc_get_allocated_count): a lost buffer shows as a count above 0.
 */
#include "probe.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>


#define NNODE 4
#define MAX_OBJ 4
#define MAX_HELD 16
#define MAX_SIZE 65536
#define TRAFFIC_CODE 0x54524146u /* 'TRAF' */

static uint64_t g_seed, g_duration, g_max_ops;
static int g_pipe[2] = {-1, -1};
static struct stat g_pipe_st;
static binder_uintptr_t g_held[MAX_HELD];
static int g_nheld;

static struct {
	uint64_t ops, sync_tx, sync_ok, oneway_tx, oneway_ok, frees, mismatches, fds_received;
	uint64_t obj_binder, obj_weak, obj_fd, refcount_brs, other_brs, failed, dead, timeouts, errors;
	char first_mismatch[160];
} S;

static binder_uintptr_t node_ptr(int i)
{
	return 0x5a100000u + (binder_uintptr_t)i * 0x10;
}

static binder_uintptr_t node_cookie(int i)
{
	return 0xc0de0000u + (binder_uintptr_t)i;
}

/* Answer the refcount BRs that reach the node owner (binder_thread_read). */
static void client_other_br(Bd *b, const Br *br)
{
	if (bd_ack_refcount(b, br)) {
		S.refcount_brs++;
	} else if (br->cmd == BR_RELEASE || br->cmd == BR_DECREFS) {
		S.refcount_brs++;
	} else {
		S.other_brs++;
	}
}

static void mismatch(const char *fmt, uint64_t a, uint64_t b)
{
	S.mismatches++;
	if (!S.first_mismatch[0])
		snprintf(S.first_mismatch, sizeof(S.first_mismatch), fmt, (unsigned long long)a,
			 (unsigned long long)b);
}

static void free_held(Bd *b, int i)
{
	bd_free(b, g_held[i]);
	g_held[i] = g_held[--g_nheld];
	S.frees++;
}

/* Check the echoed reply against what was sent; close received fds; keep or free it. */
static void check_reply(Bd *b, const struct binder_transaction_data *tr, const uint8_t *data,
			uint64_t size, const binder_size_t *offs, int nobj)
{
	const uint8_t *got = (const uint8_t *)(uintptr_t)tr->data.ptr.buffer;
	const binder_size_t *goffs = (const binder_size_t *)(uintptr_t)tr->data.ptr.offsets;
	if (tr->data_size != size || tr->offsets_size != (uint64_t)nobj * sizeof(binder_size_t)) {
		mismatch("reply sizes: data %llu, sent %llu", tr->data_size, size);
	} else {
		uint64_t from = (uint64_t)nobj * sizeof(struct flat_binder_object);
		if (from < size && memcmp(got + from, data + from, (size_t)(size - from)))
			mismatch("reply payload differs after the objects (size %llu, objects %llu)", size,
				 (uint64_t)nobj);
		for (int i = 0; i < nobj; i++) {
			const struct flat_binder_object *s = (const void *)(data + offs[i]);
			const struct flat_binder_object *g = (const void *)(got + goffs[i]);
			if (goffs[i] != offs[i]) {
				mismatch("object offset %llu came back at %llu", offs[i], goffs[i]);
				continue;
			}
			if (s->hdr.type == BINDER_TYPE_FD) {
				const struct binder_fd_object *gf = (const void *)g;
				struct stat st;
				if (gf->hdr.type != BINDER_TYPE_FD) {
					mismatch("fd object came back as type %#llx (sent %#llx)", gf->hdr.type,
						 BINDER_TYPE_FD);
					continue;
				}
				S.fds_received++;
				if (fstat((int)gf->fd, &st) || st.st_ino != g_pipe_st.st_ino ||
				    st.st_dev != g_pipe_st.st_dev)
					mismatch("received fd %llu is not the pipe (inode %llu)", gf->fd,
						 (uint64_t)g_pipe_st.st_ino);
				close((int)gf->fd);
			} else if (g->hdr.type != s->hdr.type || g->binder != s->binder ||
				   g->cookie != s->cookie) {
				mismatch("own node came back as type %#llx ptr %#llx", g->hdr.type, g->binder);
			}
		}
	}
	if (g_nheld < MAX_HELD && rn(2)) {
		g_held[g_nheld++] = tr->data.ptr.buffer;
	} else {
		bd_free(b, tr->data.ptr.buffer);
		S.frees++;
	}
}

static void one_call(Bd *b, int oneway)
{
	static uint8_t data[MAX_SIZE] __attribute__((aligned(8)));
	binder_size_t offs[MAX_OBJ];
	int nobj = (int)rn(MAX_OBJ + 1);
	uint64_t size = rn(8) ? rn(4097) : rn(MAX_SIZE + 1);
	uint64_t t_end;
	int rc;
	if (nobj) {
		uint64_t min = (uint64_t)nobj * sizeof(struct flat_binder_object);
		size = (size < min ? min : size + 7) & ~(uint64_t)7;
		if (size > MAX_SIZE)
			size = MAX_SIZE;
	}
	for (uint64_t i = 0; i < size; i += 8) {  /* eight seeded bytes per draw */
		uint64_t v = rnd();
		memcpy(data + i, &v, size - i < 8 ? (size_t)(size - i) : 8);
	}
	for (int i = 0; i < nobj; i++) {
		struct flat_binder_object *o = (void *)(data + i * sizeof(*o));
		uint32_t kind = rn(3);
		offs[i] = i * sizeof(*o);
		memset(o, 0, sizeof(*o));
		if (kind == 2) {
			struct binder_fd_object *f = (void *)o;
			f->hdr.type = BINDER_TYPE_FD;
			f->fd = (uint32_t)g_pipe[0];
			S.obj_fd++;
		} else {
			int n = (int)rn(NNODE);
			o->hdr.type = kind ? BINDER_TYPE_WEAK_BINDER : BINDER_TYPE_BINDER;
			o->flags = FLAT_BINDER_FLAG_ACCEPTS_FDS;
			o->binder = node_ptr(n);
			o->cookie = node_cookie(n);
			if (kind)
				S.obj_weak++;
			else
				S.obj_binder++;
		}
	}
	if (oneway)
		S.oneway_tx++;
	else
		S.sync_tx++;
	rc = bd_send(b, BC_TRANSACTION, 0, TRAFFIC_CODE,
		     oneway ? TF_ONE_WAY : TF_ACCEPT_FDS, (uintptr_t)data, size, (uintptr_t)offs,
		     (uint64_t)nobj * sizeof(binder_size_t));
	if (rc < 0) {
		S.errors++;
		return;
	}
	t_end = now_ms() + 5000;
	for (;;) {
		Br br;
		uint64_t now = now_ms();
		rc = now < t_end ? bd_next(b, &br, (int)(t_end - now)) : 0;
		if (rc == 0) {
			S.timeouts++;
			return;
		}
		if (rc < 0) {
			S.errors++;
			return;
		}
		switch (br.cmd) {
		case BR_TRANSACTION_COMPLETE:
			if (oneway) {
				S.oneway_ok++;
				return;
			}
			continue;
		case BR_REPLY:
			S.sync_ok++;
			check_reply(b, &br.u.tr, data, size, offs, nobj);
			return;
		case BR_FAILED_REPLY:
			S.failed++;
			return;
		case BR_DEAD_REPLY:
			S.dead++;
			return;
		default:
			client_other_br(b, &br);
			continue;
		}
	}
}

static void drain(Bd *b, int timeout_ms)
{
	Br br;
	while (bd_next(b, &br, timeout_ms) > 0)
		client_other_br(b, &br);
}

static void print_buffers_left(const char *role, Bd *b, int rounds)
{
	long n = -1;
	J j;
	int rc = bd_debugfs_stats_value(getpid(), "buffers:", &n);
	jbegin(&j, EV_BUFFERS_LEFT);
	jstr(&j, "role", role);
	ju64(&j, "pid", (uint64_t)getpid());
	ji64(&j, "buffers", rc == 0 ? n : -1);
	ju64(&j, "drain_rounds", (uint64_t)rounds);
	if (rc < 0)
		jerrno(&j, -rc);
	jend(&j);
	(void)b;
}

static int traffic_client(Pair *p, Bd *b)
{
	uint64_t t_end = now_ms() + g_duration;
	J j;
	(void)p;
	if (pipe(g_pipe) < 0 || fstat(g_pipe[0], &g_pipe_st) < 0) {
		snprintf(p->err, sizeof(p->err), "pipe: %s", strerror(errno));
		return -1;
	}
	/* A looper, so the node's BR_RELEASE/BR_DECREFS (queued as process work) reach it. */
	bd_cmd0(b, BC_ENTER_LOOPER);
	set_phase("valid traffic");
	while (now_ms() < t_end && (!g_max_ops || S.ops < g_max_ops)) {
		uint32_t k = rn(100);
		if (k < 60)
			one_call(b, 0);
		else if (k < 90)
			one_call(b, 1);
		else if (g_nheld)
			free_held(b, (int)rn((uint32_t)g_nheld));
		else
			drain(b, 0);
		S.ops++;
	}
	set_phase("valid traffic: leaving");
	while (g_nheld)
		free_held(b, 0);
	drain(b, 50);
	print_buffers_left("client", b, 1);
	jbegin(&j, EV_SUMMARY);
	ju64(&j, "seed", g_seed);
	ju64(&j, "ops", S.ops);
	ju64(&j, "duration_ms", g_duration);
	ju64(&j, "sync_tx", S.sync_tx);
	ju64(&j, "sync_ok", S.sync_ok);
	ju64(&j, "oneway_tx", S.oneway_tx);
	ju64(&j, "oneway_ok", S.oneway_ok);
	ju64(&j, "failed_reply", S.failed);
	ju64(&j, "dead_reply", S.dead);
	ju64(&j, "timeouts", S.timeouts);
	ju64(&j, "errors", S.errors);
	ju64(&j, "frees", S.frees);
	ju64(&j, "obj_binder", S.obj_binder);
	ju64(&j, "obj_weak_binder", S.obj_weak);
	ju64(&j, "obj_fd", S.obj_fd);
	ju64(&j, "fds_received", S.fds_received);
	ju64(&j, "refcount_brs", S.refcount_brs);
	ju64(&j, "other_brs", S.other_brs);
	ju64(&j, "reply_mismatches", S.mismatches);
	jstr(&j, "first_mismatch", S.first_mismatch[0] ? S.first_mismatch : NULL);
	jend(&j);
	close(g_pipe[0]);
	close(g_pipe[1]);
	return 0;
}

/* Server: echo a sync call's buffer back as the reply, then close the fds it got and free. */
static int traffic_on_tx(Pair *p, Bd *b, const struct binder_transaction_data *tr)
{
	const uint8_t *data = (const uint8_t *)(uintptr_t)tr->data.ptr.buffer;
	const binder_size_t *offs = (const binder_size_t *)(uintptr_t)tr->data.ptr.offsets;
	uint64_t nobj = tr->offsets_size / sizeof(binder_size_t);
	(void)p;
	if (!(tr->flags & TF_ONE_WAY))
		bd_send(b, BC_REPLY, 0, tr->code, 0, tr->data.ptr.buffer, tr->data_size,
			tr->data.ptr.offsets, tr->offsets_size);
	for (uint64_t i = 0; i < nobj; i++) {
		const struct binder_fd_object *f = (const void *)(data + offs[i]);
		if (f->hdr.type == BINDER_TYPE_FD)
			close((int)f->fd);
	}
	bd_free(b, tr->data.ptr.buffer);
	return 0;
}

/* Server, after the client left: finish queued work until no buffer is left (at most ~2 s). */
static void traffic_server_post(Pair *p, Bd *b)
{
	int rounds = 0;
	(void)p;
	for (; rounds < 40; rounds++) {
		long n = -1;
		Br br;
		if (bd_debugfs_stats_value(getpid(), "buffers:", &n) == 0 && n == 0)
			break;
		if (bd_next(b, &br, 50) > 0 && (br.cmd == BR_TRANSACTION))
			traffic_on_tx(p, b, &br.u.tr);
	}
	print_buffers_left("server", b, rounds);
}

void scen_valid_traffic(void)
{
	Pair p;
	stress_begin(&g_seed, &g_duration, &g_max_ops, 0x7261666663u, 15000);
	memset(&p, 0, sizeof(p));
	p.server_map = p.client_map = 1048576;
	p.server_quiet = 1;
	p.server_ctx_flags = FLAT_BINDER_FLAG_ACCEPTS_FDS;
	p.on_tx = traffic_on_tx;
	p.server_post = traffic_server_post;
	p.ctl_fd = -1;
	p.client = traffic_client;
	run_pair(&p);
}

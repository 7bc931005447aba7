/* binder-probe: protocol scenarios (parity with the facts AOSP's
 * binderDriverInterfaceTest checks, plus the failure paths it skips). */
#include "probe.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static int xioctl(int fd, unsigned long req, void *arg)
{
	return ioctl(fd, req, arg) < 0 ? errno : 0;
}

/* Collect BRs until `want` shows up (or timeout); returns 1 if seen. */
static int wait_br(Bd *b, uint32_t want, int timeout_ms, uint32_t *list, int *n, Br *got)
{
	uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
	for (;;) {
		Br br;
		uint64_t now = now_ms();
		int rc;
		if (now >= deadline)
			return 0;
		rc = bd_next(b, &br, (int)(deadline - now));
		if (rc <= 0)
			return 0;
		if (*n < CALL_MAX_BR)
			list[(*n)++] = br.cmd;
		if (br.cmd == want) {
			if (got)
				*got = br;
			return 1;
		}
	}
}

static void print_call(const char *name, const char *mode, uint32_t handle, const CallRes *r)
{
	J j;
	jresult(&j, name, r->write_err);
	jstr(&j, "mode", mode);
	ju64(&j, "handle", handle);
	jcall(&j, r);
	if (r->have_reply) {
		ju64(&j, "reply_data_size", r->reply.data_size);
		ju64(&j, "reply_flags", r->reply.flags);
	}
	jend(&j);
}

/* -------------------------------------------------------------- version */

void scen_version(void)
{
	Bd b;
	struct binder_version v;
	int err;
	J j;
	args_finish();
	open_or_die(&b, 0, 0);
	memset(&v, 0, sizeof(v));
	err = xioctl(b.fd, BINDER_VERSION, &v);
	jresult(&j, "version", err);
	ji64(&j, "protocol_version", v.protocol_version);
	ji64(&j, "header_version", BINDER_CURRENT_PROTOCOL_VERSION);
	ji64(&j, "user_bits", (int64_t)sizeof(void *) * 8);
	jend(&j);
	bd_close(&b);
	finish(1, NULL);
}

/* ------------------------------------------------------------ null_args */

void scen_null_args(void)
{
	static const struct {
		const char *name;
		unsigned long req;
	} t[] = {
		{"BINDER_WRITE_READ", BINDER_WRITE_READ},
		{"BINDER_SET_MAX_THREADS", BINDER_SET_MAX_THREADS},
		{"BINDER_VERSION", BINDER_VERSION},
		{"BINDER_SET_IDLE_TIMEOUT", BINDER_SET_IDLE_TIMEOUT},
		{"BINDER_SET_IDLE_PRIORITY", BINDER_SET_IDLE_PRIORITY},
		{"BINDER_GET_EXTENDED_ERROR", BINDER_GET_EXTENDED_ERROR},
		{"BINDER_FREEZE", BINDER_FREEZE},
		{"BINDER_GET_FROZEN_INFO", BINDER_GET_FROZEN_INFO},
		{"BINDER_ENABLE_ONEWAY_SPAM_DETECTION", BINDER_ENABLE_ONEWAY_SPAM_DETECTION},
		{"BINDER_GET_NODE_DEBUG_INFO", BINDER_GET_NODE_DEBUG_INFO},
		{"BINDER_GET_NODE_INFO_FOR_REF", BINDER_GET_NODE_INFO_FOR_REF},
	};
	Bd b;
	size_t map = (size_t)arg_u64("map", 1048576);
	args_finish();
	open_or_die(&b, 0, map);
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		J j;
		int r = ioctl(b.fd, t[i].req, NULL);
		jresult(&j, "null_args", r < 0 ? errno : 0);
		jstr(&j, "ioctl", t[i].name);
		ju64(&j, "request", t[i].req);
		ji64(&j, "ret", r);
		jend(&j);
	}
	bd_close(&b);
	finish(1, NULL);
}

/* ------------------------------------------------------ set_max_threads */

void scen_set_max_threads(void)
{
	static const uint32_t vals[] = {0, 1, 15, 0x7fffffff, 0xffffffffu};
	Bd b;
	args_finish();
	open_or_die(&b, 0, 1048576);
	for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
		uint32_t v = vals[i];
		J j;
		jresult(&j, "set_max_threads", xioctl(b.fd, BINDER_SET_MAX_THREADS, &v));
		ju64(&j, "value", vals[i]);
		jend(&j);
	}
	/* Protocol still works afterwards. */
	{
		struct binder_version v = {0};
		J j;
		jresult(&j, "set_max_threads.version_after", xioctl(b.fd, BINDER_VERSION, &v));
		ji64(&j, "protocol_version", v.protocol_version);
		jend(&j);
	}
	bd_close(&b);
	finish(1, NULL);
}

/* ----------------------------------------------------- context_mgr_busy */

static void busy_server_setup(Pair *p, Bd *b)
{
	int32_t zero = 0;
	J j;
	(void)p;
	jresult(&j, "context_mgr_busy.same_process", xioctl(b->fd, BINDER_SET_CONTEXT_MGR, &zero));
	jstr(&j, "role", "server");
	jend(&j);
}

static int busy_client(Pair *p, Bd *b)
{
	int32_t zero = 0;
	struct flat_binder_object fbo;
	J j;
	(void)p;
	jresult(&j, "context_mgr_busy", xioctl(b->fd, BINDER_SET_CONTEXT_MGR, &zero));
	jstr(&j, "ioctl", "BINDER_SET_CONTEXT_MGR");
	jend(&j);
	memset(&fbo, 0, sizeof(fbo));
	fbo.hdr.type = BINDER_TYPE_BINDER;
	jresult(&j, "context_mgr_busy.ext", xioctl(b->fd, BINDER_SET_CONTEXT_MGR_EXT, &fbo));
	jstr(&j, "ioctl", "BINDER_SET_CONTEXT_MGR_EXT");
	jend(&j);
	return 0;
}

static void proto_pair(Pair *p, client_fn c)
{
	memset(p, 0, sizeof(*p));
	p->server_map = p->client_map = 1048576;
	p->server_free = 1;
	p->server_print_rx = 1;
	p->server_print_br = 1;
	p->ctl_fd = -1;
	p->client = c;
}

void scen_context_mgr_busy(void)
{
	Pair p;
	args_finish();
	proto_pair(&p, busy_client);
	p.server_setup = busy_server_setup;
	run_pair(&p);
}

/* ---------------------------------------------------------- thread_exit */

void scen_thread_exit(void)
{
	Bd b;
	int32_t zero = 0;
	struct binder_version v;
	J j;
	args_finish();
	open_or_die(&b, O_NONBLOCK, 1048576);
	jresult(&j, "thread_exit", xioctl(b.fd, BINDER_THREAD_EXIT, &zero));
	jstr(&j, "step", "first");
	jend(&j);
	jresult(&j, "thread_exit", xioctl(b.fd, BINDER_THREAD_EXIT, &zero));
	jstr(&j, "step", "second");
	jend(&j);
	/* The next ioctl creates a fresh binder_thread. */
	memset(&v, 0, sizeof(v));
	jresult(&j, "thread_exit.version_after", xioctl(b.fd, BINDER_VERSION, &v));
	ji64(&j, "protocol_version", v.protocol_version);
	jend(&j);
	jresult(&j, "thread_exit.enter_looper_after", -bd_cmd0(&b, BC_ENTER_LOOPER));
	jend(&j);
	jresult(&j, "thread_exit", xioctl(b.fd, BINDER_THREAD_EXIT, &zero));
	jstr(&j, "step", "after_looper");
	jend(&j);
	bd_close(&b);
	finish(1, NULL);
}

/* -------------------------------------------------- read_empty_nonblock */

static void nonblock_read(Bd *b, const char *name)
{
	struct binder_write_read bwr;
	uint32_t buf[32];
	int r, err;
	J j;
	memset(&bwr, 0, sizeof(bwr));
	memset(buf, 0xee, sizeof(buf));
	bwr.read_buffer = (binder_uintptr_t)(uintptr_t)buf;
	bwr.read_size = sizeof(buf);
	r = ioctl(b->fd, BINDER_WRITE_READ, &bwr);
	err = r < 0 ? errno : 0;
	jresult(&j, name, err);
	ji64(&j, "ret", r);
	ju64(&j, "read_consumed", bwr.read_consumed);
	ju64(&j, "first_word", buf[0]);
	jstr(&j, "first_word_name", buf[0] == 0xeeeeeeeeu ? NULL : br_name(buf[0]));
	jend(&j);
}

void scen_read_empty_nonblock(void)
{
	Bd b;
	struct binder_write_read bwr;
	J j;
	args_finish();
	open_or_die(&b, O_NONBLOCK, 1048576);
	memset(&bwr, 0, sizeof(bwr));
	jresult(&j, "write_read_empty", xioctl(b.fd, BINDER_WRITE_READ, &bwr));
	ju64(&j, "read_consumed", bwr.read_consumed);
	ju64(&j, "write_consumed", bwr.write_consumed);
	jend(&j);
	nonblock_read(&b, "read_empty_nonblock");
	jresult(&j, "read_empty_nonblock.enter_looper", -bd_cmd0(&b, BC_ENTER_LOOPER));
	jend(&j);
	nonblock_read(&b, "read_empty_nonblock.looper");
	bd_close(&b);
	finish(1, NULL);
}

/* ------------------------------------------------------------ refcounts */

#define REFS_CODE_GET_OBJECT 0x52454653u /* 'REFS' */

static int refs_on_tx(Pair *p, Bd *b, const struct binder_transaction_data *tr)
{
	J j;
	(void)p;
	jbegin(&j, EV_RX);
	jstr(&j, "role", "server");
	ju64(&j, "code", tr->code);
	ju64(&j, "target_ptr", tr->target.ptr);
	ju64(&j, "target_cookie", tr->cookie);
	ju64(&j, "flags", tr->flags);
	jend(&j);
	bd_free(b, tr->data.ptr.buffer);
	if (tr->flags & TF_ONE_WAY)
		return 0;
	if (tr->code == REFS_CODE_GET_OBJECT) {
		static struct flat_binder_object obj;
		static binder_size_t off = 0;
		memset(&obj, 0, sizeof(obj));
		obj.hdr.type = BINDER_TYPE_BINDER;
		obj.flags = 0x7f;               /* FLAT_BINDER_FLAG_PRIORITY_MASK */
		obj.binder = REFS_NODE_PTR;
		obj.cookie = REFS_NODE_COOKIE;
		bd_send(b, BC_REPLY, 0, tr->code, 0, (uintptr_t)&obj, sizeof(obj),
			(uintptr_t)&off, sizeof(off));
		return 0;
	}
	bd_send(b, BC_REPLY, 0, tr->code, 0, 0, 0, 0, 0);
	return 0;
}

static void refs_on_br(Pair *p, Bd *b, const Br *br)
{
	struct binder_node_debug_info info;
	J j;
	(void)p;
	if (br->cmd != BR_INCREFS && br->cmd != BR_ACQUIRE && br->cmd != BR_RELEASE &&
	    br->cmd != BR_DECREFS)
		return;
	memset(&info, 0, sizeof(info));
	info.ptr = br->u.pc.ptr ? br->u.pc.ptr - 1 : 0;
	jbegin(&j, EV_NODE_INFO);
	jstr(&j, "after", br_name(br->cmd));
	jerrno(&j, xioctl(b->fd, BINDER_GET_NODE_DEBUG_INFO, &info));
	ju64(&j, "ptr", info.ptr);
	ju64(&j, "cookie", info.cookie);
	ju64(&j, "has_strong_ref", info.has_strong_ref);
	ju64(&j, "has_weak_ref", info.has_weak_ref);
	jend(&j);
}

static int refs_cmds(Bd *b, const char *name, uint32_t c1, uint32_t c2, uint32_t handle)
{
	uint32_t cmds[4] = {c1, handle, c2, handle};
	size_t consumed = 0;
	int rc = bd_write(b, cmds, sizeof(cmds), &consumed);
	J j;
	jresult(&j, name, rc < 0 ? -rc : 0);
	jstr(&j, "cmds", bc_name(c1));
	jstr(&j, "cmds2", bc_name(c2));
	ju64(&j, "handle", handle);
	ju64(&j, "write_consumed", consumed);
	jend(&j);
	return rc;
}

static int refs_client(Pair *p, Bd *b)
{
	CallRes r;
	uint32_t h = 0;
	/* Phase A: handle 0 (the context manager node). */
	refs_cmds(b, "refcounts.handle0.inc", BC_INCREFS, BC_ACQUIRE, 0);
	print_proc_view("handle0_held", "client", getpid());
	bd_call(b, 0, PING_TRANSACTION, 0, 0, 0, 0, 0, &r, 5000);
	print_call("refcounts.handle0.ping", "call", 0, &r);
	if (r.have_reply)
		bd_free(b, r.reply.data.ptr.buffer);
	refs_cmds(b, "refcounts.handle0.dec", BC_RELEASE, BC_DECREFS, 0);
	bd_call(b, 0, PING_TRANSACTION, 0, 0, 0, 0, 0, &r, 5000);
	print_call("refcounts.handle0.ping2", "call", 0, &r);
	if (r.have_reply)
		bd_free(b, r.reply.data.ptr.buffer);
	print_proc_view("handle0_dropped", "client", getpid());

	/* Phase B: a node published by the server in a reply. */
	bd_call(b, 0, REFS_CODE_GET_OBJECT, 0, 0, 0, 0, 0, &r, 5000);
	{
		J j;
		jresult(&j, "refcounts.get_object", r.write_err);
		jcall(&j, &r);
		if (r.have_reply && r.reply.data_size >= sizeof(struct flat_binder_object) &&
		    r.reply.offsets_size >= sizeof(binder_size_t)) {
			struct flat_binder_object obj;
			memcpy(&obj, (const void *)(uintptr_t)r.reply.data.ptr.buffer, sizeof(obj));
			h = obj.handle;
			ju64(&j, "obj_type", obj.hdr.type);
			jbool(&j, "obj_is_handle", obj.hdr.type == BINDER_TYPE_HANDLE);
			ju64(&j, "handle", obj.handle);
		} else {
			jnull(&j, "handle");
		}
		jend(&j);
	}
	if (!r.have_reply) {
		snprintf(p->err, sizeof(p->err), "no reply carrying an object");
		return -1;
	}
	/* Take our own references, then drop the reply's. */
	refs_cmds(b, "refcounts.object.inc", BC_INCREFS, BC_ACQUIRE, h);
	print_proc_view("object_held", "client", getpid()); /* the reply's buffer still held */
	bd_free(b, r.reply.data.ptr.buffer);
	bd_call(b, h, PING_TRANSACTION, 0, 0, 0, 0, 0, &r, 5000);
	print_call("refcounts.object.ping", "call", h, &r);
	if (r.have_reply)
		bd_free(b, r.reply.data.ptr.buffer);
	/* the owner has answered a call on the node, so it has read (and acknowledged) its
	 * BR_INCREFS/BR_ACQUIRE, queued on its thread before the call */
	print_proc_view("object_pinged", "client", getpid());
	print_proc_view("object_pinged", "server", p->server_pid);
	refs_cmds(b, "refcounts.object.dec", BC_RELEASE, BC_DECREFS, h);
	/* Sync point so the server has seen BR_RELEASE/BR_DECREFS. */
	bd_call(b, 0, PING_TRANSACTION, 0, 0, 0, 0, 0, &r, 5000);
	if (r.have_reply)
		bd_free(b, r.reply.data.ptr.buffer);
	/* A handle whose refs are gone is invalid now. */
	bd_call(b, h, PING_TRANSACTION, 0, 0, 0, 0, 0, &r, 5000);
	print_call("refcounts.object.ping_after_release", "call", h, &r);
	if (r.have_reply)
		bd_free(b, r.reply.data.ptr.buffer);
	print_proc_view("object_released", "client", getpid());
	return 0;
}

void scen_refcounts(void)
{
	Pair p;
	args_finish();
	proto_pair(&p, refs_client);
	p.server_print_rx = 0;
	p.on_tx = refs_on_tx;
	p.on_br = refs_on_br;
	run_pair(&p);
}

/* ----------------------------------------------------------------- ping */

/* euid=N: the client calls with effective uid N, set after it opened binder as root (seteuid
 * back to 0 after the call): the manager's tr.sender_euid is the caller's euid at the call
 * (binder_transaction: task_euid(proc->tsk)), not the one it opened binder with. */
static uint32_t g_ping_euid;

static int ping_client(Pair *p, Bd *b)
{
	CallRes r;
	J j;
	(void)p;
	if (g_ping_euid) {
		jresult(&j, "ping.seteuid", seteuid((uid_t)g_ping_euid) ? errno : 0);
		ju64(&j, "euid", g_ping_euid);
		jend(&j);
	}
	bd_call(b, 0, PING_TRANSACTION, 0, 0, 0, 0, 0, &r, 5000);
	if (g_ping_euid && seteuid(0))
		return 1;
	print_call("ping", "call", 0, &r);
	if (r.have_reply)
		bd_free(b, r.reply.data.ptr.buffer);
	return 0;
}

/* secctx=1: the manager registers with BINDER_SET_CONTEXT_MGR_EXT and
 * FLAT_BINDER_FLAG_TXN_SECURITY_CTX, so binder_transaction asks the LSM for the caller's
 * security context and the manager reads BR_TRANSACTION_SEC_CTX. */
void scen_ping(void)
{
	Pair p;
	int secctx = (int)arg_u64("secctx", 0);
	g_ping_euid = (uint32_t)arg_u64("euid", 0);
	args_finish();
	proto_pair(&p, ping_client);
	if (secctx)
		p.server_ctx_flags = FLAT_BINDER_FLAG_TXN_SECURITY_CTX;
	run_pair(&p);
}

/* --------------------------------------------------- death_notification */


static uint64_t g_death_freeze;

static int death_client(Pair *p, Bd *b)
{
	uint32_t brs[CALL_MAX_BR];
	int n = 0, seen;
	Br got;
	CallRes r;
	uint64_t t0;
	J j;

	jresult(&j, "death.enter_looper", -bd_cmd0(b, BC_ENTER_LOOPER));
	jend(&j);
	refs_cmds(b, "death.acquire_handle0", BC_INCREFS, BC_ACQUIRE, 0);

	/* 1: request, then clear before any death. */
	jresult(&j, "death.request", -bd_cmd_hc(b, BC_REQUEST_DEATH_NOTIFICATION, 0, DEATH_COOKIE_CLEARED));
	ju64(&j, "cookie", DEATH_COOKIE_CLEARED);
	jend(&j);
	jresult(&j, "death.clear", -bd_cmd_hc(b, BC_CLEAR_DEATH_NOTIFICATION, 0, DEATH_COOKIE_CLEARED));
	ju64(&j, "cookie", DEATH_COOKIE_CLEARED);
	jend(&j);
	seen = wait_br(b, BR_CLEAR_DEATH_NOTIFICATION_DONE, 2000, brs, &n, &got);
	jresult(&j, "death.clear_done", 0);
	jbool(&j, "seen", seen);
	jbrs(&j, "br", brs, n);
	if (seen)
		ju64(&j, "cookie", got.u.cookie);
	jend(&j);

	/* 2: request again, kill the server, expect BR_DEAD_BINDER. */
	jresult(&j, "death.request", -bd_cmd_hc(b, BC_REQUEST_DEATH_NOTIFICATION, 0, DEATH_COOKIE));
	ju64(&j, "cookie", DEATH_COOKIE);
	jend(&j);
	print_proc_view("death_requested", "client", getpid());
	t0 = now_ms();
	pair_stop_server(p, 1);
	n = 0;
	seen = wait_br(b, BR_DEAD_BINDER, 5000, brs, &n, &got);
	jresult(&j, "death.dead_binder", 0);
	jbool(&j, "seen", seen);
	jbrs(&j, "br", brs, n);
	if (seen)
		ju64(&j, "cookie", got.u.cookie);
	ju64(&j, "elapsed_ms", now_ms() - t0);
	jend(&j);
	print_proc_view("dead_delivered", "client", getpid());
	if (seen) {
		jresult(&j, "death.dead_binder_done",
			-bd_cmd_ptr(b, BC_DEAD_BINDER_DONE, got.u.cookie));
		jend(&j);
	}
	print_proc_view("dead_done", "client", getpid());

	/* 3: calls to the dead node. */
	bd_call(b, 0, PING_TRANSACTION, 0, 0, 0, 0, 0, &r, 3000);
	print_call("death.call_after_death", "call", 0, &r);
	if (r.have_reply)
		bd_free(b, r.reply.data.ptr.buffer);

	/* 4: clearing after death. */
	jresult(&j, "death.clear_after_death",
		-bd_cmd_hc(b, BC_CLEAR_DEATH_NOTIFICATION, 0, DEATH_COOKIE));
	jend(&j);
	n = 0;
	seen = wait_br(b, BR_CLEAR_DEATH_NOTIFICATION_DONE, 2000, brs, &n, &got);
	jresult(&j, "death.clear_after_death_done", 0);
	jbool(&j, "seen", seen);
	jbrs(&j, "br", brs, n);
	if (seen)
		ju64(&j, "cookie", got.u.cookie);
	jend(&j);
	print_proc_view("death_cleared", "client", getpid());
	if (g_death_freeze) {
		/* 5 (freeze=1, Linux 6.12 on): a freeze notification on the dead node's ref is
		 * accepted, with no notice queued (binder_request_freeze_notification: no
		 * ref->node->proc, upstream ca63c66935b9); the ref's release frees it. */
		jresult(&j, "death.freeze_notify_dead",
			-bd_cmd_hc(b, BC_REQUEST_FREEZE_NOTIFICATION, 0, FREEZE_COOKIE));
		jend(&j);
	}
	refs_cmds(b, "death.release_handle0", BC_RELEASE, BC_DECREFS, 0);
	return 0;
}

void scen_death_notification(void)
{
	Pair p;
	g_death_freeze = arg_u64("freeze", 0);
	args_finish();
	proto_pair(&p, death_client);
	run_pair(&p);
}

/* --------------------------------------------------- self_call_rejected */

void scen_self_call_rejected(void)
{
	Bd b;
	CallRes r;
	int rc;
	uint8_t buf[16];
	J j;
	args_finish();
	open_or_die(&b, O_NONBLOCK, 1048576);
	rc = bd_set_context_mgr(&b, 3000);
	jresult(&j, "self_call.set_context_mgr", -rc);
	jend(&j);
	if (rc < 0)
		finish(0, "BINDER_SET_CONTEXT_MGR failed");
	pattern_fill(buf, sizeof(buf), 0);
	bd_call(&b, 0, 1, 0, (uintptr_t)buf, sizeof(buf), 0, 0, &r, 3000);
	print_call("self_call_rejected", "call", 0, &r);
	if (r.have_reply)
		bd_free(&b, r.reply.data.ptr.buffer);
	{
		/* BC_INCREFS on its own handle 0: binder_thread_write refuses it ("context manager
		 * tried to acquire desc 0", -EINVAL), or the process would hold a ref to its own node */
		uint32_t cmds[2] = {BC_INCREFS, 0};
		size_t consumed = 0;
		rc = bd_write(&b, cmds, sizeof(cmds), &consumed);
		jresult(&j, "self_call.incref_handle0", rc < 0 ? -rc : 0);
		ju64(&j, "write_consumed", consumed);
		jend(&j);
	}
	bd_close(&b);
	finish(1, NULL);
}

/* ------------------------------------------------------- invalid_handle */

void scen_invalid_handle(void)
{
	Bd b;
	CallRes r;
	uint8_t buf[16];
	uint32_t handle = (uint32_t)arg_u64("handle", 12345);
	J j;
	args_finish();
	open_or_die(&b, O_NONBLOCK, 1048576);
	pattern_fill(buf, sizeof(buf), 0);
	bd_call(&b, handle, 1, 0, (uintptr_t)buf, sizeof(buf), 0, 0, &r, 3000);
	print_call("invalid_handle", "call", handle, &r);
	bd_call(&b, handle, 1, TF_ONE_WAY, (uintptr_t)buf, sizeof(buf), 0, 0, &r, 3000);
	print_call("invalid_handle", "oneway", handle, &r);
	{
		int n = 0;
		uint32_t brs[CALL_MAX_BR];
		int rc = bd_cmd_u32(&b, BC_ACQUIRE, handle);
		wait_br(&b, 0xffffffffu, 100, brs, &n, NULL);
		jresult(&j, "invalid_handle.acquire", rc < 0 ? -rc : 0);
		ju64(&j, "handle", handle);
		jbrs(&j, "br", brs, n);
		jend(&j);
	}
	bd_close(&b);
	finish(1, NULL);
}

/* ------------------------------------------------------- bad_buffer_ptr */

static int badptr_client(Pair *p, Bd *b)
{
	uint8_t buf[64];
	binder_size_t off = 0;
	void *hole = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint64_t unmapped;
	(void)p;
	if (hole == MAP_FAILED) {
		snprintf(p->err, sizeof(p->err), "mmap hole failed");
		return -1;
	}
	munmap(hole, 4096);
	unmapped = (uintptr_t)hole;
	pattern_fill(buf, sizeof(buf), 0);
	{
		const struct {
			const char *name;
			uint32_t flags;
			uint64_t data, size, offs, offs_size;
		} t[] = {
			{"bad_buffer_ptr.data_unmapped", 0, unmapped, 64, 0, 0},
			{"bad_buffer_ptr.data_unmapped_oneway", TF_ONE_WAY, unmapped, 64, 0, 0},
			{"bad_buffer_ptr.data_null", 0, 0, 64, 0, 0},
			{"bad_buffer_ptr.data_kernel", 0, 0xffffffff80000000ull, 64, 0, 0},
			{"bad_buffer_ptr.data_binder_map_hole", 0,
			 (uintptr_t)b->map + b->map_size / 2, 64, 0, 0},
			{"bad_buffer_ptr.offsets_unmapped", 0, (uintptr_t)buf, 64, unmapped, 8},
			{"bad_buffer_ptr.offset_out_of_range", 0, (uintptr_t)buf, 64,
			 (uintptr_t)&off, 8},
			{"bad_buffer_ptr.control_valid", 0, (uintptr_t)buf, 64, 0, 0},
		};
		for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
			CallRes r;
			J j;
			off = (i == 6) ? 4096 : 0;
			pattern_fill(buf, sizeof(buf), (uint64_t)i);
			bd_call(b, 0, (uint32_t)i + 1, t[i].flags, t[i].data, t[i].size, t[i].offs,
				t[i].offs_size, &r, 3000);
			jresult(&j, t[i].name, r.write_err);
			jstr(&j, "mode", t[i].flags ? "oneway" : "call");
			ju64(&j, "data_ptr", t[i].data);
			ju64(&j, "offsets_ptr", t[i].offs);
			jcall(&j, &r);
			jend(&j);
			if (r.have_reply)
				bd_free(b, r.reply.data.ptr.buffer);
		}
	}
	return 0;
}

void scen_bad_buffer_ptr(void)
{
	Pair p;
	args_finish();
	proto_pair(&p, badptr_client);
	run_pair(&p);
}

/* --------------------------------------------------------------- freeze */

static void frozen_info(Bd *b, pid_t pid, const char *name)
{
	struct binder_frozen_status_info fi;
	J j;
	memset(&fi, 0, sizeof(fi));
	fi.pid = (uint32_t)pid;
	jresult(&j, name, xioctl(b->fd, BINDER_GET_FROZEN_INFO, &fi));
	ju64(&j, "sync_recv", fi.sync_recv);
	ju64(&j, "async_recv", fi.async_recv);
	jend(&j);
}

static void do_freeze(Bd *b, pid_t pid, int enable, uint32_t timeout_ms, const char *name)
{
	struct binder_freeze_info fi;
	uint64_t t0 = now_ms();
	int err;
	J j;
	memset(&fi, 0, sizeof(fi));
	fi.pid = (uint32_t)pid;
	fi.enable = (uint32_t)enable;
	fi.timeout_ms = timeout_ms;
	err = xioctl(b->fd, BINDER_FREEZE, &fi);
	jresult(&j, name, err);
	ji64(&j, "target_pid", pid);
	ji64(&j, "enable", enable);
	ju64(&j, "timeout_ms", timeout_ms);
	ju64(&j, "elapsed_ms", now_ms() - t0);
	jend(&j);
}

/* notify=1 (Linux 6.12 on): a freeze notification on the manager's handle 0, followed through
 * its whole life. The client takes a strong ref on handle 0 (BC_ACQUIRE: binder_update_ref_for_handle
 * makes ref desc 0), asks for notifications (BC_REQUEST_FREEZE_NOTIFICATION: the current state comes
 * at once), acknowledges each (BC_FREEZE_NOTIFICATION_DONE), freezes and thaws the manager (each
 * change notified: binder_ioctl_freeze -> binder_add_freeze_work), clears it
 * (BC_CLEAR_FREEZE_NOTIFICATION -> BR_CLEAR_FREEZE_NOTIFICATION_DONE) and drops the ref, as a looper
 * (BC_ENTER_LOOPER ... BC_EXIT_LOOPER). */
static uint64_t g_freeze_notify;

static void freeze_notify(Pair *p, Bd *b)
{
	uint32_t brs[8];
	uint64_t cookies[8], frozen[8];
	int n = 0, i, err;
	char raw[256];
	size_t len;
	Br br;
	J j;
	/* the notifications come as process work (proc->todo): read them as a looper, as Android does,
	 * or binder_thread_read logs "Thread waiting for process work before calling BC_REGISTER_LOOPER..." */
	err = bd_cmd0(b, BC_ENTER_LOOPER);
	if (!err)
		err = bd_cmd_u32(b, BC_ACQUIRE, 0);
	if (!err)
		err = bd_cmd_hc(b, BC_REQUEST_FREEZE_NOTIFICATION, 0, FREEZE_COOKIE);
	for (i = 0; !err && i < 4; i++) {
		if (i == 1)
			do_freeze(b, p->server_pid, 1, 1000, "freeze_notify.freeze");
		else if (i == 2)
			do_freeze(b, p->server_pid, 0, 0, "freeze_notify.unfreeze");
		else if (i == 3)
			err = bd_cmd_hc(b, BC_CLEAR_FREEZE_NOTIFICATION, 0, FREEZE_COOKIE);
		if (err || bd_next(b, &br, 2000) != 1)
			break;
		brs[n] = br.cmd;
		cookies[n] = br.cmd == BR_FROZEN_BINDER ? ((struct binder_frozen_state_info *)br.u.raw)->cookie : br.u.cookie;
		frozen[n] = br.cmd == BR_FROZEN_BINDER ? ((struct binder_frozen_state_info *)br.u.raw)->is_frozen : 2;
		n++;
		if (br.cmd == BR_FROZEN_BINDER)
			err = bd_cmd_ptr(b, BC_FREEZE_NOTIFICATION_DONE, FREEZE_COOKIE);
	}
	if (!err) {
		/* Left behind: a notice read and then cleared before its BC_FREEZE_NOTIFICATION_DONE
		 * (it stays on proc->delivered_freeze until binder_deferred_release frees it, upstream
		 * 1db76ec2b4b2), and a new request whose notice is never read (queued on proc->todo;
		 * when BC_RELEASE drops the ref, binder_cleanup_ref_olocked dequeues it, upstream
		 * 7e20434cbca8). binder's stats (freeze: active) are back to their value after exit. */
		uint32_t left = 0;
		int lerr = bd_cmd_hc(b, BC_REQUEST_FREEZE_NOTIFICATION, 0, FREEZE_COOKIE + 1);
		if (!lerr && bd_next(b, &br, 2000) == 1)
			left = br.cmd;
		if (!lerr)
			lerr = bd_cmd_hc(b, BC_CLEAR_FREEZE_NOTIFICATION, 0, FREEZE_COOKIE + 1);
		if (!lerr)
			lerr = bd_cmd_hc(b, BC_REQUEST_FREEZE_NOTIFICATION, 0, FREEZE_COOKIE + 2);
		jresult(&j, "freeze_notify.left_at_exit", lerr < 0 ? -lerr : lerr);
		jbrs(&j, "brs", &left, left ? 1 : 0);
		jend(&j);
	}
	if (!err)
		err = bd_cmd_u32(b, BC_RELEASE, 0);
	if (!err)
		err = bd_cmd0(b, BC_EXIT_LOOPER);
	jresult(&j, "freeze_notify", err < 0 ? -err : err);
	jbrs(&j, "brs", brs, n);
	for (len = 0, i = 0, raw[len++] = '['; i < n; i++)
		len += (size_t)snprintf(raw + len, sizeof(raw) - len, "%s%llu", i ? "," : "", (unsigned long long)cookies[i]);
	snprintf(raw + len, sizeof(raw) - len, "]");
	jraw(&j, "cookies", raw);
	for (len = 0, i = 0, raw[len++] = '['; i < n; i++)
		len += (size_t)snprintf(raw + len, sizeof(raw) - len, "%s%llu", i ? "," : "", (unsigned long long)frozen[i]);
	snprintf(raw + len, sizeof(raw) - len, "]");
	jraw(&j, "is_frozen", raw);
	jend(&j);
}

static int freeze_client(Pair *p, Bd *b)
{
	uint8_t buf[64];
	CallRes r;
	pattern_fill(buf, sizeof(buf), 0);
	frozen_info(b, p->server_pid, "freeze.info_before");
	do_freeze(b, p->server_pid, 1, 1000, "freeze.freeze");
	bd_call(b, 0, 1, 0, (uintptr_t)buf, sizeof(buf), 0, 0, &r, 3000);
	print_call("freeze.call_frozen", "call", 0, &r);
	if (r.have_reply)
		bd_free(b, r.reply.data.ptr.buffer);
	pattern_fill(buf, sizeof(buf), 1);
	bd_call(b, 0, 2, TF_ONE_WAY, (uintptr_t)buf, sizeof(buf), 0, 0, &r, 3000);
	print_call("freeze.oneway_frozen", "oneway", 0, &r);
	frozen_info(b, p->server_pid, "freeze.info_frozen");
	do_freeze(b, p->server_pid, 0, 0, "freeze.unfreeze");
	pattern_fill(buf, sizeof(buf), 2);
	bd_call(b, 0, 3, 0, (uintptr_t)buf, sizeof(buf), 0, 0, &r, 3000);
	print_call("freeze.call_unfrozen", "call", 0, &r);
	if (r.have_reply)
		bd_free(b, r.reply.data.ptr.buffer);
	frozen_info(b, p->server_pid, "freeze.info_after");
	if (g_freeze_notify)
		freeze_notify(p, b);
	return 0;
}

void scen_freeze(void)
{
	Pair p;
	g_freeze_notify = arg_u64("notify", 0);
	args_finish();
	proto_pair(&p, freeze_client);
	run_pair(&p);
}

/* ---------------------------------------------------- refs_after_exit */

/* The owner (client) sends its node in a oneway with read_size 0, so the node's
 * first BR_INCREFS/BR_ACQUIRE wait on its thread's todo (binder_translate_binder ->
 * binder_inc_ref_for_node with &thread->todo). With exit=1 it then calls
 * BINDER_THREAD_EXIT before reading. The manager takes a strong and a weak
 * reference on the handle it got (BC_ACQUIRE, BC_INCREFS), frees the buffer and
 * drops both (BC_RELEASE, BC_DECREFS). The owner, a looper again, records every BR
 * it reads. No step waits on a clock: binder queues each refcount BR during the
 * ioctl that causes it, so each side says over a pipe when its ioctls have returned
 * (the manager: "acquired", then "released"; the owner: "read what was queued"),
 * and the owner reads what is queued until a read finds nothing for QUIET_MS. */
#define RAX_QUIET_MS 50
#define RAX_PEER_MS 5000
static uint64_t g_refs_exit;
static int g_rax_acquired[2], g_rax_read[2], g_rax_released[2];

static int rax_on_tx(Pair *p, Bd *b, const struct binder_transaction_data *tr)
{
	const uint8_t *data = (const uint8_t *)(uintptr_t)tr->data.ptr.buffer;
	const struct flat_binder_object *o = (const void *)data;
	uint32_t h = o->handle;
	int e_acq, e_inc, e_rel, e_dec, heard;
	J j;
	(void)p;
	e_acq = bd_cmd_u32(b, BC_ACQUIRE, h);
	e_inc = bd_cmd_u32(b, BC_INCREFS, h);
	bd_free(b, tr->data.ptr.buffer);
	tell_peer(g_rax_acquired[1]);
	heard = await_peer(g_rax_read[0], RAX_PEER_MS);
	e_rel = bd_cmd_u32(b, BC_RELEASE, h);
	e_dec = bd_cmd_u32(b, BC_DECREFS, h);
	tell_peer(g_rax_released[1]);
	jresult(&j, "refs_after_exit.manager", 0);
	jstr(&j, "type", binder_type_name(o->hdr.type));
	ju64(&j, "handle", h);
	jstr(&j, "acquire", e_acq ? errno_name(-e_acq) : "0");
	jstr(&j, "increfs", e_inc ? errno_name(-e_inc) : "0");
	jstr(&j, "release", e_rel ? errno_name(-e_rel) : "0");
	jstr(&j, "decrefs", e_dec ? errno_name(-e_dec) : "0");
	jbool(&j, "owner_read_first", heard);
	jend(&j);
	return 0;
}

static int rax_client(Pair *p, Bd *b)
{
	struct flat_binder_object o;
	binder_size_t off = 0;
	uint32_t brs[CALL_MAX_BR];
	int n = 0, rc, exit_err = 0, acquired, released = 0;
	J j;
	(void)p;
	memset(&o, 0, sizeof(o));
	o.hdr.type = BINDER_TYPE_BINDER;
	o.binder = OBJ_PTR_STRONG;
	o.cookie = OBJ_COOKIE_STRONG;
	rc = bd_send(b, BC_TRANSACTION, 0, 1, TF_ONE_WAY, (uintptr_t)&o, sizeof(o), (uintptr_t)&off,
		     sizeof(off));
	if (g_refs_exit && ioctl(b->fd, BINDER_THREAD_EXIT, 0) < 0)
		exit_err = errno;
	bd_cmd0(b, BC_ENTER_LOOPER);
	n = bd_read_quiet(b, RAX_QUIET_MS, brs, n);  /* what the send queued */
	acquired = await_peer(g_rax_acquired[0], RAX_PEER_MS);
	n = bd_read_quiet(b, RAX_QUIET_MS, brs, n);  /* what the manager's BC_ACQUIRE/BC_INCREFS queued */
	tell_peer(g_rax_read[1]);
	if (acquired)
		released = await_peer(g_rax_released[0], RAX_PEER_MS);
	n = bd_read_quiet(b, RAX_QUIET_MS, brs, n);  /* what its BC_RELEASE/BC_DECREFS queued */
	jresult(&j, "refs_after_exit.owner", rc < 0 ? -rc : (!acquired || !released) ? ETIMEDOUT : 0);
	ju64(&j, "thread_exit", g_refs_exit);
	jstr(&j, "thread_exit_errno", exit_err ? errno_name(exit_err) : "0");
	jbool(&j, "manager_acquired", acquired);
	jbool(&j, "manager_released", released);
	jbrs(&j, "brs", brs, n);
	jend(&j);
	return 0;
}

void scen_refs_after_exit(void)
{
	Pair p;
	g_refs_exit = arg_u64("exit", 1);
	args_finish();
	if (pipe2(g_rax_acquired, O_CLOEXEC) || pipe2(g_rax_read, O_CLOEXEC) || pipe2(g_rax_released, O_CLOEXEC))
		finish(0, "pipe failed");
	proto_pair(&p, rax_client);
	p.server_print_rx = 0;
	p.server_print_br = 0;
	p.on_tx = rax_on_tx;
	run_pair(&p);
}

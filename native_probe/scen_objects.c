/* binder-probe: objects inside transactions (binder_transaction's object loop).
 *
 *   objects kind=binder            BINDER/WEAK_BINDER -> handles; handles back -> the owner's binders
 *   objects kind=fd accept_fds=0|1 BINDER_TYPE_FD (and an invalid fd)
 *   objects kind=fda               BINDER_TYPE_FDA in a BINDER_TYPE_PTR parent
 *   objects kind=sg                two BINDER_TYPE_PTR buffers, the second fixed up in the first
 *   objects kind=bad_offsets       malformed offsets arrays, one call each
 *   objects kind=update_txn        TF_UPDATE_TXN oneways (with fds) to a frozen process
 *   objects kind=edges             object arrays at their edges (zero fds, zero lengths, exact fits)
 *   objects kind=undelivered mode=fail|update|exit
 *                                  every object type in a transaction that is never delivered
 *
 * The server is the context manager (BINDER_SET_CONTEXT_MGR_EXT with
 * FLAT_BINDER_FLAG_ACCEPTS_FDS when accept_fds=1); it prints an "rx" line with
 * the objects as it sees them, and "fd" lines for every fd it received.
 */
#include "probe.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define OBJ_CODE_ECHO 0x4543484fu   /* reply with the objects received */
#define OBJ_MARKER 0x4d41524b45520a0aull

/* ------------------------------------------------------------- fd helpers */

/* {"ev":"fd", where, fd, open, cloexec, dev, ino, content}: content is what a
 * nonblocking read of a pipe gives right now (up to 63 bytes). */
static void print_fd(const char *where, int idx, int fd, int read_content)
{
	struct stat st;
	int flags = fcntl(fd, F_GETFD);
	J j;
	jbegin(&j, EV_FD);
	jstr(&j, "where", where);
	ji64(&j, "index", idx);
	ji64(&j, "fd", fd);
	jbool(&j, "open", flags >= 0);
	if (flags < 0) {
		jerrno(&j, errno);
		jend(&j);
		return;
	}
	jbool(&j, "cloexec", (flags & FD_CLOEXEC) != 0);
	if (fstat(fd, &st) == 0) {
		ju64(&j, "dev", (uint64_t)st.st_dev);
		ju64(&j, "ino", (uint64_t)st.st_ino);
	}
	if (read_content) {
		char buf[64];
		struct pollfd pf = {fd, POLLIN, 0};
		ssize_t n = 0;
		if (poll(&pf, 1, 0) == 1 && (pf.revents & POLLIN))
			n = read(fd, buf, sizeof(buf) - 1);
		buf[n > 0 ? n : 0] = 0;
		jstr(&j, "content", buf);
	}
	jend(&j);
}

static void make_pipe(int p[2], const char *content)
{
	if (pipe(p) || write(p[1], content, strlen(content)) != (ssize_t)strlen(content))
		finish(0, "pipe setup failed");
}

/* ------------------------------------------------------------------ server */

#define MAX_RX_FDS 8

/* kind=binder: the receiver prints binder's view of itself while it holds the call's buffer */
static int g_view_rx;

/* mode=update: the server says here, over a pipe, each time it has freed a delivered buffer
 * (binder queues the sender's node work during that BC_FREE_BUFFER), so the client waits on
 * that instead of a clock. -1: not asked. */
static int g_freed_pipe[2] = {-1, -1};

static void freed_tell(void)
{
	if (g_freed_pipe[1] >= 0)
		tell_peer(g_freed_pipe[1]);
}

static int obj_on_tx(Pair *p, Bd *b, const struct binder_transaction_data *tr)
{
	const uint8_t *data = (const uint8_t *)(uintptr_t)tr->data.ptr.buffer;
	const binder_size_t *offs = (const binder_size_t *)(uintptr_t)tr->data.ptr.offsets;
	uint64_t n = tr->offsets_size / sizeof(binder_size_t);
	int fds[MAX_RX_FDS], nfds = 0;
	J j;
	(void)p;
	jbegin(&j, EV_RX);
	jstr(&j, "role", "server");
	ju64(&j, "code", tr->code);
	ju64(&j, "data_size", tr->data_size);
	ju64(&j, "offsets_size", tr->offsets_size);
	ju64(&j, "buffer", tr->data.ptr.buffer);
	ju64(&j, "buf_off", tr->data.ptr.buffer - (uintptr_t)b->map);
	ju64(&j, "offsets_off", tr->data.ptr.offsets - tr->data.ptr.buffer);
	jobjects(&j, "objects", data, tr->data_size, offs, tr->offsets_size, tr->data.ptr.buffer);
	if (tr->data_size >= 8) {
		uint64_t head;
		memcpy(&head, data, 8);
		ju64(&j, "head", head);
	}
	jend(&j);
	if (g_view_rx && !(tr->flags & TF_ONE_WAY))
		print_proc_view("holding", "server", getpid());

	for (uint64_t i = 0; i < n; i++) {
		struct binder_object_header h;
		memcpy(&h, data + offs[i], sizeof(h));
		if (h.type == BINDER_TYPE_FD) {
			struct binder_fd_object f;
			memcpy(&f, data + offs[i], sizeof(f));
			if (nfds < MAX_RX_FDS)
				fds[nfds++] = (int)f.fd;
		} else if (h.type == BINDER_TYPE_FDA) {
			struct binder_fd_array_object fa;
			struct binder_buffer_object parent;
			memcpy(&fa, data + offs[i], sizeof(fa));
			memcpy(&parent, data + offs[fa.parent], sizeof(parent));
			for (uint64_t k = 0; k < fa.num_fds && nfds < MAX_RX_FDS; k++) {
				uint32_t fd;
				memcpy(&fd, (const uint8_t *)(uintptr_t)parent.buffer + fa.parent_offset +
					    4 * k, 4);
				fds[nfds++] = (int)fd;
			}
		} else if (h.type == BINDER_TYPE_PTR) {
			/* The PTR buffer as the receiver sees it: first 8-byte words. */
			struct binder_buffer_object bo;
			const uint8_t *q;
			char t[200];
			size_t o = 0;
			memcpy(&bo, data + offs[i], sizeof(bo));
			q = (const uint8_t *)(uintptr_t)bo.buffer;
			jbegin(&j, EV_PTR_RX);
			ju64(&j, "index", i);
			ju64(&j, "length", bo.length);
			ju64(&j, "buf_off", bo.buffer - tr->data.ptr.buffer);
			t[o++] = '[';
			for (uint64_t w = 0; w + 8 <= bo.length && w < 64; w += 8) {
				uint64_t v;
				memcpy(&v, q + w, 8);
				o += (size_t)snprintf(t + o, sizeof(t) - o, "%s%llu", w ? "," : "",
						      (unsigned long long)v);
			}
			t[o++] = ']';
			t[o] = 0;
			jraw(&j, "words", t);
			/* sender filled byte k of buffer i with pattern (seq 100+i), fixups aside */
			{
				int64_t bad = -1;
				for (uint64_t k = 0; k < bo.length; k++) {
					uint8_t want = (uint8_t)(((100 + i) * 131 + k * 7) & 0xff);
					if (q[k] != want && !(i == 0 && k >= 16 && k < 24)) {
						bad = (int64_t)k;
						break;
					}
				}
				ji64(&j, "first_bad", bad);
			}
			jend(&j);
		}
	}
	for (int k = 0; k < nfds; k++)
		print_fd("server", k, fds[k], 1);

	if (tr->code == OBJ_CODE_ECHO && !(tr->flags & TF_ONE_WAY)) {
		/* Send back what arrived (handles), before freeing the buffer that holds the refs. */
		static uint8_t rdata[256];
		static binder_size_t roffs[8];
		uint64_t ds = tr->data_size < sizeof(rdata) ? tr->data_size : sizeof(rdata);
		uint64_t os = tr->offsets_size < sizeof(roffs) ? tr->offsets_size : sizeof(roffs);
		memcpy(rdata, data, ds);
		memcpy(roffs, offs, os);
		bd_send(b, BC_REPLY, 0, tr->code, 0, (uintptr_t)rdata, ds, (uintptr_t)roffs, os);
		bd_free(b, tr->data.ptr.buffer);
		freed_tell();
		if (g_view_rx)
			print_proc_view("freed", "server", getpid());
		return 0;
	}
	bd_free(b, tr->data.ptr.buffer);
	freed_tell();
	/* BC_FREE_BUFFER closes the fds of an FDA (deferred to our return to user
	 * space), not those of BINDER_TYPE_FD objects. */
	for (int k = 0; k < nfds; k++) {
		int open_after = fcntl(fds[k], F_GETFD) >= 0;
		jbegin(&j, EV_FD_AFTER_FREE);
		ji64(&j, "index", k);
		ji64(&j, "fd", fds[k]);
		jbool(&j, "open", open_after);
		jend(&j);
		if (open_after)
			close(fds[k]);
	}
	if (!(tr->flags & TF_ONE_WAY))
		bd_send(b, BC_REPLY, 0, tr->code, 0, 0, 0, 0, 0);
	return 0;
}

/* ------------------------------------------------------------------ client */

static void print_obj_call(const char *name, const CallRes *r)
{
	J j;
	jresult(&j, name, r->write_err);
	jcall(&j, r);
	jcall_extra(&j, "extra", r);
	if (r->have_reply)
		jobjects(&j, "reply_objects", (const uint8_t *)(uintptr_t)r->reply.data.ptr.buffer,
			 r->reply.data_size,
			 (const binder_size_t *)(uintptr_t)r->reply.data.ptr.offsets,
			 r->reply.offsets_size, r->reply.data.ptr.buffer);
	jend(&j);
}

static void ack_extras(Bd *b, const CallRes *r)
{
	for (int i = 0; i < r->nextra; i++)
		bd_ack_refcount(b, &r->extra[i]);
}

static int binder_client(Pair *p, Bd *b)
{
	struct flat_binder_object obj[2];
	binder_size_t offs[2] = {0, sizeof(struct flat_binder_object)};
	CallRes r;
	(void)p;
	memset(obj, 0, sizeof(obj));
	obj[0].hdr.type = BINDER_TYPE_BINDER;
	obj[0].binder = OBJ_PTR_STRONG;
	obj[0].cookie = OBJ_COOKIE_STRONG;
	obj[1].hdr.type = BINDER_TYPE_WEAK_BINDER;
	obj[1].binder = OBJ_PTR_WEAK;
	obj[1].cookie = OBJ_COOKIE_WEAK;
	{
		J j;
		jbegin(&j, EV_SENT);
		jobjects(&j, "objects", (const uint8_t *)obj, sizeof(obj), offs, sizeof(offs),
			 (uintptr_t)obj);
		jend(&j);
	}
	bd_call(b, 0, OBJ_CODE_ECHO, 0, (uintptr_t)obj, sizeof(obj), (uintptr_t)offs,
		sizeof(offs), &r, 5000);
	print_obj_call("objects.binder_echo", &r);
	ack_extras(b, &r);
	{
		/* A sync point: the server answers this ping only after it freed the echo's buffer, so
		 * binder's view of the client then holds the refs' release, not a race with it. */
		CallRes ping;
		bd_call(b, 0, PING_TRANSACTION, 0, 0, 0, 0, 0, &ping, 5000);
		{
			J j;
			jresult(&j, "objects.binder_sync_ping", ping.write_err);
			jcall(&j, &ping);
			jend(&j);
		}
		if (ping.have_reply)
			bd_free(b, ping.reply.data.ptr.buffer);
		print_proc_view("replied", "client", getpid()); /* its nodes acknowledged, the echo's reply held */
	}
	if (r.have_reply)
		bd_free(b, r.reply.data.ptr.buffer);
	return 0;
}

struct fd_msg {
	uint64_t head;
	struct binder_fd_object fdo;
};

static void send_fd(Bd *b, const char *name, int fd)
{
	struct fd_msg m;
	binder_size_t off = offsetof(struct fd_msg, fdo);
	CallRes r;
	memset(&m, 0, sizeof(m));
	m.head = OBJ_MARKER;
	m.fdo.hdr.type = BINDER_TYPE_FD;
	m.fdo.fd = (uint32_t)fd;
	m.fdo.cookie = 0xf00d;
	bd_call(b, 0, 1, 0, (uintptr_t)&m, sizeof(m), (uintptr_t)&off, sizeof(off), &r, 5000);
	print_obj_call(name, &r);
	if (r.have_reply)
		bd_free(b, r.reply.data.ptr.buffer);
}

static int fd_client(Pair *p, Bd *b)
{
	int pp[2];
	(void)p;
	make_pipe(pp, "through binder");
	print_fd("client_before", 0, pp[0], 0);
	send_fd(b, "objects.fd_call", pp[0]);
	/* The sender's fd is untouched: still open, same file, and still reads. */
	if (write(pp[1], "still mine", 10) != 10)
		return -1;
	print_fd("client_after", 0, pp[0], 1);
	send_fd(b, "objects.fd_invalid", 1000);
	close(pp[0]);
	close(pp[1]);
	return 0;
}

struct fda_parent {
	uint32_t fds[2];
	uint64_t marker;
};

/* PTR parent + FDA of num_fds fds; the data starts with `head` bytes before the PTR. */
static void fda_call(Bd *b, const char *name, struct fda_parent *parent, int head, uint32_t num_fds)
{
	struct {
		uint64_t head;
		struct binder_buffer_object bo;
		struct binder_fd_array_object fda;
	} m;
	const uint8_t *start = (const uint8_t *)&m + (head ? 0 : 8);
	binder_size_t offs[2] = {head ? 8 : 0, (head ? 8 : 0) + sizeof(struct binder_buffer_object)};
	CallRes r;
	memset(&m, 0, sizeof(m));
	m.head = OBJ_MARKER;
	m.bo.hdr.type = BINDER_TYPE_PTR;
	m.bo.buffer = (uintptr_t)parent;
	m.bo.length = sizeof(*parent);
	m.fda.hdr.type = BINDER_TYPE_FDA;
	m.fda.num_fds = num_fds;
	m.fda.parent = 0;
	m.fda.parent_offset = offsetof(struct fda_parent, fds);
	bd_call_sg(b, 0, 1, 0, (uintptr_t)start, sizeof(m) - (head ? 0 : 8), (uintptr_t)offs,
		   sizeof(offs), sizeof(*parent), &r, 5000);
	print_obj_call(name, &r);
	if (r.have_reply)
		bd_free(b, r.reply.data.ptr.buffer);
}

/* fda_zero=1: one call whose FDA has 0 fds, in a parent holding two non-fd words and the
 * marker: binder_translate_fd_array returns at once (upstream ef38de9217a0), so the parent
 * arrives as sent, with no fixup at the FDA's parent_offset. */
static uint64_t g_fda_zero;

/* The sender's parent buffer after its call: binder must not have written into it. */
static void print_parent_after(const struct fda_parent *parent)
{
	J j;
	jbegin(&j, EV_SENDER_PARENT_AFTER);
	ju64(&j, "fd0", parent->fds[0]);
	ju64(&j, "fd1", parent->fds[1]);
	ju64(&j, "marker", parent->marker);
	jend(&j);
}

static int fda_client(Pair *p, Bd *b)
{
	int pa[2], pb[2];
	struct fda_parent parent;
	(void)p;
	if (g_fda_zero) {
		parent.fds[0] = 0x5a5a5a5au;
		parent.fds[1] = 0xa5a5a5a5u;
		parent.marker = OBJ_MARKER;
		fda_call(b, "objects.fda_zero_call", &parent, 1, 0);
		print_parent_after(&parent);
		return 0;
	}
	make_pipe(pa, "first");
	make_pipe(pb, "second");
	parent.fds[0] = (uint32_t)pa[0];
	parent.fds[1] = (uint32_t)pb[0];
	parent.marker = OBJ_MARKER;
	print_fd("client_before", 0, pa[0], 0);
	print_fd("client_before", 1, pb[0], 0);
	/* binder_validate_fixup takes a last fixup object offset of 0 for "none":
	 * a parent at data offset 0 cannot be fixed up in. */
	fda_call(b, "objects.fda_parent_at_0", &parent, 0, 2);
	fda_call(b, "objects.fda_call", &parent, 1, 2);
	print_parent_after(&parent);
	print_fd("client_after", 0, pa[0], 1);
	print_fd("client_after", 1, pb[0], 1);
	return 0;
}

/* Data: 16-byte header, PTR A (64 bytes), PTR B (100 bytes, child of A at
 * offset 16), 8-byte tail.  A and B are filled with patterns 100 and 101. */
#define SG_A_LEN 64
#define SG_B_LEN 100
#define SG_FIXUP_OFF 16

static int sg_client(Pair *p, Bd *b)
{
	static uint8_t a[SG_A_LEN], bb[SG_B_LEN];
	struct {
		uint8_t head[16];
		struct binder_buffer_object oa, ob;
		uint8_t tail[8];
	} __attribute__((packed)) m;
	binder_size_t offs[2] = {16, 16 + sizeof(struct binder_buffer_object)};
	uint64_t buffers = ((SG_A_LEN + 7) & ~7u) + ((SG_B_LEN + 7) & ~7u);
	CallRes r;
	J j;
	(void)p;
	for (int k = 0; k < SG_A_LEN; k++)
		a[k] = (uint8_t)((100 * 131 + k * 7) & 0xff);
	for (int k = 0; k < SG_B_LEN; k++)
		bb[k] = (uint8_t)((101 * 131 + k * 7) & 0xff);
	memset(&m, 0, sizeof(m));
	memset(m.head, 0x11, sizeof(m.head));
	memset(m.tail, 0x22, sizeof(m.tail));
	m.oa.hdr.type = BINDER_TYPE_PTR;
	m.oa.buffer = (uintptr_t)a;
	m.oa.length = SG_A_LEN;
	m.ob.hdr.type = BINDER_TYPE_PTR;
	m.ob.flags = BINDER_BUFFER_FLAG_HAS_PARENT;
	m.ob.buffer = (uintptr_t)bb;
	m.ob.length = SG_B_LEN;
	m.ob.parent = 0;
	m.ob.parent_offset = SG_FIXUP_OFF;
	jbegin(&j, EV_SG_SENT);
	ju64(&j, "data_size", sizeof(m));
	ju64(&j, "offsets_size", sizeof(offs));
	ju64(&j, "buffers_size", buffers);
	ju64(&j, "a_len", SG_A_LEN);
	ju64(&j, "b_len", SG_B_LEN);
	ju64(&j, "fixup_off", SG_FIXUP_OFF);
	jend(&j);
	bd_call_sg(b, 0, 1, 0, (uintptr_t)&m, sizeof(m), (uintptr_t)offs, sizeof(offs), buffers,
		   &r, 5000);
	print_obj_call("objects.sg_call", &r);
	if (r.have_reply)
		bd_free(b, r.reply.data.ptr.buffer);
	return 0;
}

/* ------------------------------------------------------------- bad offsets */

static int bad_offsets_client(Pair *p, Bd *b)
{
	/* Objects are PTR objects of length 0 (no refs, fds or copies to undo). */
	static uint8_t data[128];
	struct binder_buffer_object po;
	struct binder_fd_array_object fda;
	static const struct {
		const char *name;
		uint64_t data_size;
		binder_size_t offs[2];
		uint64_t offs_size;
		int put[2];       /* where to place objects: byte offset, -1 none */
		int fda_at;       /* an FDA object at this offset, -1 none */
	} t[] = {
		{"offsets.unaligned", 64, {2, 0}, 8, {2, -1}, -1},
		{"offsets.at_data_end", 40, {40, 0}, 8, {0, -1}, -1},
		{"offsets.past_data_size", 40, {48, 0}, 8, {0, -1}, -1},
		{"offsets.overlapping", 80, {0, 8}, 16, {0, 8}, -1},
		{"offsets.same_twice", 80, {0, 0}, 16, {0, -1}, -1},
		{"offsets.size_not_multiple", 40, {0, 0}, 4, {0, -1}, -1},
		{"offsets.object_past_end", 32, {0, 0}, 8, {0, -1}, -1},
		{"offsets.unknown_type", 40, {0, 0}, 8, {-2, -1}, -1},
		{"offsets.fda_without_parent", 32, {0, 0}, 8, {-1, -1}, 0},
		{"offsets.control_valid", 80, {0, 40}, 16, {0, 40}, -1},
	};
	(void)p;
	memset(&po, 0, sizeof(po));
	po.hdr.type = BINDER_TYPE_PTR;
	memset(&fda, 0, sizeof(fda));
	fda.hdr.type = BINDER_TYPE_FDA;
	fda.num_fds = 1;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		CallRes r;
		J j;
		memset(data, 0, sizeof(data));
		for (int k = 0; k < 2; k++) {
			if (t[i].put[k] >= 0)
				memcpy(data + t[i].put[k], &po, sizeof(po));
			else if (t[i].put[k] == -2) {
				uint32_t bogus = 0x12345678;
				memcpy(data, &bogus, 4);
			}
		}
		if (t[i].fda_at >= 0)
			memcpy(data + t[i].fda_at, &fda, sizeof(fda));
		bd_call(b, 0, (uint32_t)i + 1, 0, (uintptr_t)data, t[i].data_size,
			(uintptr_t)t[i].offs, t[i].offs_size, &r, 3000);
		jresult(&j, t[i].name, r.write_err);
		ju64(&j, "data_size", t[i].data_size);
		ju64(&j, "offsets_size", t[i].offs_size);
		ju64(&j, "offset0", t[i].offs[0]);
		jcall(&j, &r);
		jend(&j);
		if (r.have_reply)
			bd_free(b, r.reply.data.ptr.buffer);
	}
	return 0;
}

/* ------------------------------------------------------------ update_txn */


/* A oneway with an 8-byte head and, when fd >= 0, one BINDER_TYPE_FD. */
static void send_update(Bd *b, const char *name, int fd, uint64_t head)
{
	struct fd_msg m;
	binder_size_t off = offsetof(struct fd_msg, fdo);
	CallRes r;
	memset(&m, 0, sizeof(m));
	m.head = head;
	m.fdo.hdr.type = BINDER_TYPE_FD;
	m.fdo.fd = (uint32_t)fd;
	bd_call(b, 0, OBJ_UPDATE_CODE, TF_ONE_WAY | TF_UPDATE_TXN, (uintptr_t)&m,
		fd >= 0 ? sizeof(m) : sizeof(m.head), fd >= 0 ? (uintptr_t)&off : 0,
		fd >= 0 ? sizeof(off) : 0, &r, 5000);
	print_obj_call(name, &r);
}

static void freeze(Bd *b, pid_t pid, int enable, const char *name)
{
	struct binder_freeze_info fi;
	J j;
	memset(&fi, 0, sizeof(fi));
	fi.pid = (uint32_t)pid;
	fi.enable = (uint32_t)enable;
	fi.timeout_ms = 1000;
	jresult(&j, name, ioctl(b->fd, BINDER_FREEZE, &fi) ? errno : 0);
	jend(&j);
}

/* SIGSTOP `pid` and wait until /proc says it is stopped (as Android's freezer
 * does after BINDER_FREEZE, so the frozen process reads nothing meanwhile). */
static int stop_and_wait(pid_t pid)
{
	uint64_t deadline = now_ms() + 3000;
	if (kill(pid, SIGSTOP))
		return -errno;
	while (now_ms() < deadline) {
		int state = task_state(pid, pid);
		if (state < 0)
			return state;
		if (state == 'T')
			return 0;
		sleep_ms(5);
	}
	return -ETIMEDOUT;
}

/* Three oneways with TF_UPDATE_TXN to a frozen process: the first waits in the
 * process's todo, the second in the node's async queue, where the third (same
 * code, flags and sender) supersedes it.  The second carries the read end of
 * pipe P, the third that of pipe Q. */
static int update_client(Pair *p, Bd *b)
{
	int pp[2], pq[2], rc;
	struct binder_frozen_status_info fi;
	J j;
	make_pipe(pp, "superseded");
	make_pipe(pq, "delivered");
	print_fd("client_p", 0, pp[0], 0);
	print_fd("client_q", 0, pq[0], 0);
	freeze(b, p->server_pid, 1, "update.freeze");
	jresult(&j, "update.sigstop", -stop_and_wait(p->server_pid));
	jend(&j);
	send_update(b, "update.first", -1, 1);
	send_update(b, "update.second", pp[0], 2);
	send_update(b, "update.third", pq[0], 3);
	memset(&fi, 0, sizeof(fi));
	fi.pid = (uint32_t)p->server_pid;
	jresult(&j, "update.frozen_info", ioctl(b->fd, BINDER_GET_FROZEN_INFO, &fi) ? errno : 0);
	ju64(&j, "sync_recv", fi.sync_recv);
	ju64(&j, "async_recv", fi.async_recv);
	jend(&j);
	/* The sender's fd is still its own; once it closes it, nobody holds the read
	 * end of P unless the superseded transaction leaked its file reference. */
	print_fd("client_p_after", 0, pp[0], 0);
	close(pp[0]);
	rc = (int)write(pp[1], "x", 1);
	jresult(&j, "update.write_after_close", rc < 0 ? errno : 0);
	ji64(&j, "ret", rc);
	jend(&j);
	freeze(b, p->server_pid, 0, "update.unfreeze");
	kill(p->server_pid, SIGCONT);
	close(pp[1]);
	close(pq[0]);
	close(pq[1]);
	return 0;
}

/* ------------------------------------------------------------------ edges */

/* Object arrays at their edges, one BC_TRANSACTION_SG each (result "edges.NAME"):
 * FDAs of zero fds, PTRs of zero length, an FDA that exactly fills its parent or overruns
 * it by 4 bytes, a PTR longer than the sg space left, and a transaction whose data, offsets
 * and extra buffers exactly fill the receiver's empty 1 MiB area (and one 8 bytes larger).
 * PTR buffer k is filled with pattern 100 + (its index in the offsets array). */
#define EDGE_AREA 1048576
#define EDGE_TAIL 4096

static void edge_fill(uint8_t *p, size_t n, uint64_t index)
{
	for (size_t k = 0; k < n; k++)
		p[k] = (uint8_t)(((100 + index) * 131 + k * 7) & 0xff);
}

/* One call: `objs` objects of 40 bytes (PTR) or 32 (FDA) after an 8-byte head. */
static void edge_call(Bd *b, const char *name, const void *objs, size_t objs_len, const binder_size_t *offs,
		      size_t noffs, uint64_t buffers)
{
	static uint8_t data[512];
	CallRes r;
	J j;
	uint64_t head = OBJ_MARKER;
	memcpy(data, &head, 8);
	memcpy(data + 8, objs, objs_len);
	bd_call_sg(b, 0, 1, 0, (uintptr_t)data, 8 + objs_len, (uintptr_t)offs, noffs * sizeof(*offs), buffers,
		   &r, 5000);
	jresult(&j, name, r.write_err);
	ju64(&j, "data_size", 8 + objs_len);
	ju64(&j, "offsets_size", noffs * sizeof(*offs));
	ju64(&j, "buffers_size", buffers);
	jcall(&j, &r);
	jend(&j);
	if (r.have_reply)
		bd_free(b, r.reply.data.ptr.buffer);
}

static void ptr_obj(struct binder_buffer_object *o, const void *buf, uint64_t len)
{
	memset(o, 0, sizeof(*o));
	o->hdr.type = BINDER_TYPE_PTR;
	o->buffer = (uintptr_t)buf;
	o->length = len;
}

static void fda_obj(struct binder_fd_array_object *o, uint64_t num, uint64_t parent, uint64_t parent_offset)
{
	memset(o, 0, sizeof(*o));
	o->hdr.type = BINDER_TYPE_FDA;
	o->num_fds = num;
	o->parent = parent;
	o->parent_offset = parent_offset;
}

static int edges_client(Pair *p, Bd *b)
{
	struct {
		struct binder_buffer_object po;
		struct binder_fd_array_object fda;
	} pf;
	struct binder_buffer_object three[3];
	static uint8_t buf16[16];
	uint32_t fds[2];
	binder_size_t offs2[2] = {8, 8 + sizeof(struct binder_buffer_object)};
	binder_size_t offs3[3] = {8, 48, 88};
	int pa[2], pb[2];
	(void)p;

	/* an FDA of zero fds in an 8-byte parent, at offset 0 and at 1000 (past the parent) */
	make_pipe(pa, "first");
	make_pipe(pb, "second");
	fds[0] = (uint32_t)pa[0];
	fds[1] = (uint32_t)pb[0];
	ptr_obj(&pf.po, fds, sizeof(fds));
	fda_obj(&pf.fda, 0, 0, 0);
	edge_call(b, "edges.fda_zero", &pf, sizeof(pf), offs2, 2, 8);
	fda_obj(&pf.fda, 0, 0, 1000);
	edge_call(b, "edges.fda_zero_past_parent", &pf, sizeof(pf), offs2, 2, 8);
	/* two fds exactly filling the 8-byte parent, then starting 4 bytes in (one past its end) */
	fda_obj(&pf.fda, 2, 0, 0);
	print_fd("client_before", 0, pa[0], 0);
	print_fd("client_before", 1, pb[0], 0);
	edge_call(b, "edges.fda_fills_parent", &pf, sizeof(pf), offs2, 2, 8);
	fda_obj(&pf.fda, 2, 0, 4);
	edge_call(b, "edges.fda_past_parent", &pf, sizeof(pf), offs2, 2, 8);
	print_fd("client_after", 0, pa[0], 1);
	print_fd("client_after", 1, pb[0], 1);
	/* a zero-length parent: an FDA of zero fds in it; a PTR child in it */
	ptr_obj(&pf.po, fds, 0);
	fda_obj(&pf.fda, 0, 0, 0);
	edge_call(b, "edges.fda_in_empty_ptr", &pf, sizeof(pf), offs2, 2, 0);
	ptr_obj(&three[0], fds, 0);
	ptr_obj(&three[1], buf16, 16);
	three[1].flags = BINDER_BUFFER_FLAG_HAS_PARENT;
	three[1].parent = 0;
	three[1].parent_offset = 0;
	edge_call(b, "edges.child_of_empty_ptr", three, 2 * sizeof(three[0]), offs2, 2, 16);
	/* PTRs of 0, 16 and 0 bytes in 16 bytes of sg space: the last one starts at the buffer's end */
	edge_fill(buf16, sizeof(buf16), 1);
	ptr_obj(&three[0], fds, 0);
	ptr_obj(&three[1], buf16, 16);
	ptr_obj(&three[2], fds, 0);
	edge_call(b, "edges.empty_ptrs", three, sizeof(three), offs3, 3, 16);
	/* a PTR 8 bytes longer than the sg space left */
	ptr_obj(&three[0], buf16, 16);
	ptr_obj(&three[1], buf16, 16);
	edge_call(b, "edges.ptr_too_large", three, 2 * sizeof(three[0]), offs2, 2, 24);
	close(pa[0]);
	close(pa[1]);
	close(pb[0]);
	close(pb[1]);

	/* data + offsets + extra buffers exactly filling the receiver's empty area, then 8 more */
	{
		static uint8_t big[EDGE_AREA], tail[EDGE_TAIL];
		uint64_t ds = EDGE_AREA - 8 - EDGE_TAIL;
		binder_size_t off = ds - sizeof(struct binder_buffer_object);
		struct binder_buffer_object o;
		edge_fill(tail, sizeof(tail), 0);
		for (int extra = 0; extra <= 8; extra += 8) {
			CallRes r;
			J j;
			uint64_t size = ds + (uint64_t)extra;
			off = size - sizeof(o);
			memset(big, 0x5a, sizeof(big));
			ptr_obj(&o, tail, EDGE_TAIL);
			memcpy(big + off, &o, sizeof(o));
			bd_call_sg(b, 0, 1, 0, (uintptr_t)big, size, (uintptr_t)&off, sizeof(off), EDGE_TAIL, &r,
				   5000);
			jresult(&j, extra ? "edges.area_plus_8" : "edges.area_exact", r.write_err);
			ju64(&j, "data_size", size);
			ju64(&j, "offsets_size", sizeof(off));
			ju64(&j, "buffers_size", EDGE_TAIL);
			jcall(&j, &r);
			jend(&j);
			if (r.have_reply)
				bd_free(b, r.reply.data.ptr.buffer);
		}
	}
	return 0;
}

/* ------------------------------------------------------------ undelivered */

/* Every object type in one transaction: BINDER (node A), WEAK_BINDER (node B), HANDLE 0 and
 * WEAK_HANDLE 0 (the client's ref to the manager's node), an FD (pipe P), and a PTR parent
 * holding an FDA of one fd (pipe Q); with `bad`, an object of unknown type after them. */
struct all_msg {
	uint64_t head;
	struct flat_binder_object ba, bb, hs, hw;
	struct binder_fd_object fd;
	struct binder_buffer_object parent;
	struct binder_fd_array_object fda;
	uint8_t bad[24];
};
_Static_assert(offsetof(struct all_msg, bad) == 200, "all_msg layout");

static uint32_t g_fda_buf[2];

static void send_all(Bd *b, const char *name, uint32_t flags, uint64_t head, int fd_p, int fd_q, int bad)
{
	static struct all_msg m;
	static const binder_size_t offs[8] = {8, 32, 56, 80, 104, 128, 168, 200};
	CallRes r;
	memset(&m, 0, sizeof(m));
	m.head = head;
	m.ba.hdr.type = BINDER_TYPE_BINDER;
	m.ba.binder = OBJ_PTR_STRONG;
	m.ba.cookie = OBJ_COOKIE_STRONG;
	m.bb.hdr.type = BINDER_TYPE_WEAK_BINDER;
	m.bb.binder = OBJ_PTR_WEAK;
	m.bb.cookie = OBJ_COOKIE_WEAK;
	m.hs.hdr.type = BINDER_TYPE_HANDLE;
	m.hw.hdr.type = BINDER_TYPE_WEAK_HANDLE;
	m.fd.hdr.type = BINDER_TYPE_FD;
	m.fd.fd = (uint32_t)fd_p;
	g_fda_buf[0] = (uint32_t)fd_q;
	ptr_obj(&m.parent, g_fda_buf, sizeof(g_fda_buf));
	fda_obj(&m.fda, 1, 5, 0);
	if (bad) {
		uint32_t bogus = 0x12345678;
		memcpy(m.bad, &bogus, 4);
	}
	bd_call_sg(b, 0, OBJ_UPDATE_CODE, flags, (uintptr_t)&m, bad ? sizeof(m) : offsetof(struct all_msg, bad),
		   (uintptr_t)offs, (bad ? 8 : 7) * sizeof(binder_size_t), sizeof(g_fda_buf), &r, 5000);
	print_obj_call(name, &r);
	ack_extras(b, &r);
	if (r.have_reply)
		bd_free(b, r.reply.data.ptr.buffer);
}

/* What a read finds within `ms` (BR_INCREFS/ACQUIRE acknowledged): {"ev":"result","name":NAME,"brs":[..]} */
static void drain_brs(Bd *b, const char *name, int ms)
{
	uint32_t brs[CALL_MAX_BR];
	int n = bd_read_quiet(b, ms, brs, 0);
	J j;
	jresult(&j, name, 0);
	jbrs(&j, "brs", brs, n);
	jend(&j);
}

/* Close the sender's read end of pipe p, then write into it: EPIPE unless binder still holds
 * a reference to the file. */
static void pipe_held(const char *name, int p[2])
{
	J j;
	int rc;
	close(p[0]);
	rc = (int)write(p[1], "x", 1);
	jresult(&j, name, rc < 0 ? errno : 0);
	ji64(&j, "ret", rc);
	jend(&j);
	close(p[1]);
}

static int undelivered_client(Pair *p, Bd *b)
{
	const char *mode = (const char *)p->user;
	int pp[2], pq[2];
	pid_t srv = p->server_pid, me = getpid();
	make_pipe(pp, "fd object");
	make_pipe(pq, "fda object");
	/* a looper, as Android's threads are: node work for its nodes comes as process work */
	if (bd_cmd0(b, BC_ENTER_LOOPER) || bd_cmd_u32(b, BC_INCREFS, 0) || bd_cmd_u32(b, BC_ACQUIRE, 0))
		return -1;
	if (!strcmp(mode, "fail")) {
		send_all(b, "undelivered.call", 0, 1, pp[0], pq[0], 1);
		drain_brs(b, "undelivered.brs_after", 50);
		print_proc_view("after", "client", me);
		print_proc_view("after", "server", srv);
	} else if (!strcmp(mode, "update")) {
		int rp[2], rq[2];
		make_pipe(rp, "delivered fd");
		make_pipe(rq, "delivered fda");
		freeze(b, srv, 1, "undelivered.freeze");
		{
			J j;
			jresult(&j, "undelivered.sigstop", -stop_and_wait(srv));
			jend(&j);
		}
		send_update(b, "undelivered.first", -1, 1);
		send_all(b, "undelivered.second", TF_ONE_WAY | TF_UPDATE_TXN, 2, pp[0], pq[0], 0);
		send_all(b, "undelivered.third", TF_ONE_WAY | TF_UPDATE_TXN, 3, rp[0], rq[0], 0);
		drain_brs(b, "undelivered.brs_queued", 50);
		print_proc_view("queued", "client", me);
		print_proc_view("queued", "server", srv);
		pipe_held("undelivered.pipe_fd", pp);
		pipe_held("undelivered.pipe_fda", pq);
		pp[0] = pq[0] = -1;
		freeze(b, srv, 0, "undelivered.unfreeze");
		kill(srv, SIGCONT);
		{  /* the first and the third delivered, each freed by the server: then its node work is queued */
			int freed = await_peer(g_freed_pipe[0], 5000);
			J j;
			freed += freed && await_peer(g_freed_pipe[0], 5000);
			jresult(&j, "undelivered.server_freed", freed == 2 ? 0 : ETIMEDOUT);
			ji64(&j, "buffers", freed);
			jend(&j);
		}
		drain_brs(b, "undelivered.brs_after", 50);
		print_proc_view("after", "client", me);
		print_proc_view("after", "server", srv);
		close(rp[0]);
		close(rp[1]);
		close(rq[0]);
		close(rq[1]);
	} else { /* exit */
		char path[256];
		uint64_t deadline;
		J j;
		jresult(&j, "undelivered.sigstop", -stop_and_wait(srv));
		jend(&j);
		send_all(b, "undelivered.oneway", TF_ONE_WAY, 2, pp[0], pq[0], 0);
		print_proc_view("queued", "client", me);
		print_proc_view("queued", "server", srv);
		pair_stop_server(p, 1);
		binder_log_path(path, sizeof(path), "proc/%d", (int)srv);
		deadline = now_ms() + 5000;
		while (access(path, F_OK) == 0 && now_ms() < deadline)
			sleep_ms(10);
		jresult(&j, "undelivered.server_released", access(path, F_OK) == 0 ? ETIMEDOUT : 0);
		jend(&j);
		drain_brs(b, "undelivered.brs_after", 50);
		print_proc_view("after", "client", me);
	}
	if (pp[0] >= 0) {
		pipe_held("undelivered.pipe_fd", pp);
		pipe_held("undelivered.pipe_fda", pq);
	}
	bd_cmd_u32(b, BC_RELEASE, 0);
	bd_cmd_u32(b, BC_DECREFS, 0);
	return 0;
}

/* ---------------------------------------------------------------- entry */

void scen_objects(void)
{
	Pair p;
	const char *kind = arg_str("kind", "binder");
	uint64_t accept = arg_u64("accept_fds", 1);
	const char *mode = arg_str("mode", "fail");
	g_fda_zero = arg_u64("fda_zero", 0);
	args_finish();
	memset(&p, 0, sizeof(p));
	p.server_map = p.client_map = 1048576;
	p.server_print_br = 1;
	p.ctl_fd = -1;
	p.on_tx = obj_on_tx;
	if (accept)
		p.server_ctx_flags = FLAT_BINDER_FLAG_ACCEPTS_FDS;
	else
		p.server_ctx_flags = 0;
	if (!strcmp(kind, "binder")) {
		p.client = binder_client;
		g_view_rx = 1;
	}
	else if (!strcmp(kind, "fd"))
		p.client = fd_client;
	else if (!strcmp(kind, "fda"))
		p.client = fda_client;
	else if (!strcmp(kind, "sg"))
		p.client = sg_client;
	else if (!strcmp(kind, "bad_offsets"))
		p.client = bad_offsets_client;
	else if (!strcmp(kind, "update_txn"))
		p.client = update_client;
	else if (!strcmp(kind, "edges"))
		p.client = edges_client;
	else if (!strcmp(kind, "undelivered"))
		p.client = undelivered_client;
	else
		usage_error("kind must be binder, fd, fda, sg, bad_offsets, update_txn, edges or undelivered");
	if (!strcmp(mode, "fail") || !strcmp(mode, "update") || !strcmp(mode, "exit"))
		p.user = (void *)mode;
	else
		usage_error("mode must be fail, update or exit");
	if (!strcmp(kind, "undelivered") && !strcmp(mode, "update") && pipe2(g_freed_pipe, O_CLOEXEC))
		finish(0, "pipe failed");
	run_pair(&p);
}

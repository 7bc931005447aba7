/* binder-probe: random (stress.random_commands).
 *
 * A seeded xorshift64* stream drives random BC command streams, random
 * binder ioctls and fd churn against a live context manager for a bounded
 * time.  The probe must survive; the kernel must not warn.  Then the driver
 * must still work: once the stream's work has settled (no transaction left
 * in binder's debugfs proc files of either process), a valid call on the
 * pair's own fd (slot 0, kept open and mapped through the stream) and one on
 * a fresh fd each end with exactly BR_TRANSACTION_COMPLETE then the BR_REPLY
 * of that call (result lines random.same_fd and random.fresh_fd).
 *
 * Safety rules that keep the probe itself alive and bounded:
 *  - every binder fd is O_NONBLOCK and reads happen after poll(), so no
 *    read can block;
 *  - any pointer the kernel may WRITE through (read buffers, ioctl args)
 *    is either our scratch area or an address that is certainly not
 *    writable (a hole, NULL, kernel space, our read-only binder mapping);
 *  - BINDER_WRITE_READ is never issued with a random struct (it holds
 *    pointers); BINDER_FREEZE always gets a timeout of at most 20 ms;
 *  - random ioctl numbers only use the types 'b', 'r' and 'c', so no
 *    generic VFS ioctl (FIONBIO ...) can change the fd.
 */
#include "probe.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>


/* ------------------------------------------------------------ counters */

#define MAX_CNT 160
typedef struct {
	char name[48];
	uint64_t n;
} Cnt;
static Cnt g_ops[MAX_CNT], g_errs[MAX_CNT], g_brs[MAX_CNT];

static void count(Cnt *t, const char *name)
{
	int i;
	for (i = 0; i < MAX_CNT && t[i].name[0]; i++)
		if (!strcmp(t[i].name, name)) {
			t[i].n++;
			return;
		}
	if (i < MAX_CNT) {
		snprintf(t[i].name, sizeof(t[i].name), "%s", name);
		t[i].n = 1;
	}
}

static void count_err(const char *what, int err)
{
	char k[64];
	snprintf(k, sizeof(k), "%s:%s", what, err ? errno_name(err) : "0");
	count(g_errs, k);
}

static void jcnt(J *j, const char *key, const Cnt *t)
{
	static char buf[8192];
	size_t o = 0;
	buf[o++] = '{';
	for (int i = 0; i < MAX_CNT && t[i].name[0] && o + 80 < sizeof(buf); i++)
		o += (size_t)snprintf(buf + o, sizeof(buf) - o, "%s\"%s\":%llu", i ? "," : "",
				      t[i].name, (unsigned long long)t[i].n);
	buf[o++] = '}';
	buf[o] = 0;
	jraw(j, key, buf);
}

/* --------------------------------------------------------------- state */

#define NFD 3
#define NBUF 64
static struct {
	int fd;
	uint8_t *map;
	size_t map_size;
} g_fd[NFD];
static binder_uintptr_t g_bufs[NBUF];   /* buffers received (maybe freed) */
static int g_nbufs;
static binder_uintptr_t g_cookies[16];  /* node ptr/cookies from BR_INCREFS etc. */
static int g_ncookies;
static uint8_t *g_payload;              /* 256 KiB random payload area */
#define PAYLOAD 262144
static uint8_t g_scratch[4096] __attribute__((aligned(16)));
static uint8_t g_rbuf[4096] __attribute__((aligned(16)));
static uintptr_t g_hole;                /* a page that is certainly unmapped */
static pid_t g_server;

static int pick_fd(void)
{
	int live[NFD], n = 0;
	for (int i = 0; i < NFD; i++)
		if (g_fd[i].fd >= 0)
			live[n++] = i;
	return n ? live[rn((uint32_t)n)] : -1;
}

static uint64_t rnd_handle(void)
{
	static const uint32_t h[] = {0, 0, 0, 1, 2, 3, 12345, 0xffffffffu};
	return rn(5) ? h[rn(8)] : (uint32_t)rnd();
}

/* A pointer the kernel will only READ from. */
static uint64_t rnd_src(int slot, uint64_t len)
{
	switch (rn(9)) {
	case 0: return 0;
	case 1: return g_hole;
	case 2: return 0xffffffff80000000ull;
	case 3: return rnd();
	case 4:
		if (g_fd[slot].map)
			return (uintptr_t)g_fd[slot].map + rn((uint32_t)g_fd[slot].map_size);
		return g_hole;
	default:
		if (len > PAYLOAD)
			len = PAYLOAD;
		return (uintptr_t)g_payload + rn((uint32_t)(PAYLOAD - len + 1));
	}
}

/* A pointer the kernel may WRITE to: scratch or certainly non-writable. */
static uint64_t rnd_dst(int slot, uint8_t *scratch)
{
	switch (rn(8)) {
	case 0: return 0;
	case 1: return g_hole;
	case 2: return 0xffffffff80000000ull;
	case 3:
		if (g_fd[slot].map)
			return (uintptr_t)g_fd[slot].map;
		return g_hole;
	default:
		return (uintptr_t)scratch;
	}
}

static uint64_t rnd_size(void)
{
	static const uint64_t s[] = {0, 1, 7, 8, 24, 64, 4096, 65536, 1048576, 4194304};
	return rn(3) ? s[rn(10)] : rn(PAYLOAD);
}

/* Sprinkle random binder objects into the payload; returns offsets count. */
static int rnd_objects(binder_size_t *offs, int max, uint64_t data_size)
{
	static const uint32_t types[] = {BINDER_TYPE_BINDER, BINDER_TYPE_WEAK_BINDER,
		BINDER_TYPE_HANDLE, BINDER_TYPE_WEAK_HANDLE, BINDER_TYPE_FD,
		BINDER_TYPE_FDA, BINDER_TYPE_PTR};
	int n = (int)rn((uint32_t)max + 1);
	for (int i = 0; i < n; i++) {
		uint64_t off = data_size >= 40 ? (rn((uint32_t)(data_size - 40) / 8 + 1)) * 8 : rnd() % 64;
		if (rn(8) == 0)
			off = rnd() % 4096;
		offs[i] = off;
		if (off + 40 <= PAYLOAD) {
			uint8_t *o = g_payload + off;
			uint32_t t = types[rn(7)];
			uint64_t v;
			memcpy(o, &t, 4);
			v = rn(2) ? rnd_handle() : rnd();
			memcpy(o + 8, &v, 8);
			v = rn(2) ? rnd_src(0, 64) : rnd() % 256;
			memcpy(o + 16, &v, 8);
			v = rnd() % 128;
			memcpy(o + 24, &v, 8);
			v = rnd() % 256;
			memcpy(o + 32, &v, 8);
		}
	}
	return n;
}

/* ----------------------------------------------------------- BC stream */

static size_t put(uint8_t *w, size_t o, const void *p, size_t n)
{
	memcpy(w + o, p, n);
	return o + n;
}

static void op_bc_stream(void)
{
	static const uint32_t cmds[] = {
		BC_TRANSACTION, BC_TRANSACTION, BC_TRANSACTION, BC_REPLY, BC_TRANSACTION_SG,
		BC_REPLY_SG, BC_FREE_BUFFER, BC_FREE_BUFFER, BC_INCREFS, BC_ACQUIRE,
		BC_RELEASE, BC_DECREFS, BC_INCREFS_DONE, BC_ACQUIRE_DONE, BC_REGISTER_LOOPER,
		BC_ENTER_LOOPER, BC_EXIT_LOOPER, BC_REQUEST_DEATH_NOTIFICATION,
		BC_CLEAR_DEATH_NOTIFICATION, BC_DEAD_BINDER_DONE, BC_ATTEMPT_ACQUIRE,
		BC_ACQUIRE_RESULT, 0 /* junk */,
	};
	static binder_size_t offs[8];
	uint8_t w[1024];
	size_t o = 0;
	int slot = pick_fd(), ncmd = 1 + (int)rn(6);
	struct binder_write_read bwr;
	int r;
	if (slot < 0)
		return;
	for (int c = 0; c < ncmd && o + 200 < sizeof(w); c++) {
		uint32_t cmd = cmds[rn(sizeof(cmds) / sizeof(cmds[0]))];
		if (!cmd) {
			cmd = rn(2) ? (uint32_t)rnd() : (uint32_t)_IOC(rn(4), 'c', rn(32), rn(80));
			count(g_ops, "BC_junk");
			o = put(w, o, &cmd, 4);
			for (uint32_t k = rn(24); k; k--)
				w[o++] = (uint8_t)rnd();
			continue;
		}
		count(g_ops, bc_name(cmd));
		o = put(w, o, &cmd, 4);
		switch (cmd) {
		case BC_TRANSACTION:
		case BC_REPLY:
		case BC_TRANSACTION_SG:
		case BC_REPLY_SG: {
			struct binder_transaction_data tr;
			uint64_t size = rnd_size();
			int nobj = rn(3) ? 0 : rnd_objects(offs, 8, size);
			memset(&tr, 0, sizeof(tr));
			tr.target.handle = (uint32_t)rnd_handle();
			tr.code = rn(2) ? rn(8) : (uint32_t)rnd();
			tr.flags = (uint32_t)(rnd() & (rn(4) ? TF_ONE_WAY : 0xff));
			tr.data_size = size;
			tr.data.ptr.buffer = rnd_src(slot, size);
			if (nobj) {
				tr.offsets_size = (uint64_t)nobj * 8;
				tr.data.ptr.offsets = (uintptr_t)offs;
			} else if (rn(6) == 0) {
				tr.offsets_size = rn(5) * 4;
				tr.data.ptr.offsets = rnd_src(slot, 64);
			}
			o = put(w, o, &tr, sizeof(tr));
			if (cmd == BC_TRANSACTION_SG || cmd == BC_REPLY_SG) {
				uint64_t bs = rn(2) ? rn(4096) * 8 : rnd();
				o = put(w, o, &bs, 8);
			}
			break;
		}
		case BC_FREE_BUFFER:
		case BC_DEAD_BINDER_DONE: {
			binder_uintptr_t p;
			if (cmd == BC_FREE_BUFFER && g_nbufs && rn(4))
				p = g_bufs[rn((uint32_t)g_nbufs)];
			else if (cmd == BC_DEAD_BINDER_DONE && g_ncookies && rn(2))
				p = g_cookies[rn((uint32_t)g_ncookies)];
			else
				p = rnd_src(slot, 8);
			o = put(w, o, &p, 8);
			break;
		}
		case BC_INCREFS:
		case BC_ACQUIRE:
		case BC_RELEASE:
		case BC_DECREFS:
		case BC_ACQUIRE_RESULT: {
			uint32_t h = (uint32_t)rnd_handle();
			o = put(w, o, &h, 4);
			break;
		}
		case BC_INCREFS_DONE:
		case BC_ACQUIRE_DONE: {
			binder_uintptr_t pc[2] = {rnd(), rnd()};
			if (g_ncookies && rn(2)) {
				pc[0] = g_cookies[rn((uint32_t)g_ncookies)];
				pc[1] = g_cookies[rn((uint32_t)g_ncookies)];
			}
			o = put(w, o, pc, 16);
			break;
		}
		case BC_REQUEST_DEATH_NOTIFICATION:
		case BC_CLEAR_DEATH_NOTIFICATION: {
			uint32_t h = (uint32_t)rnd_handle();
			binder_uintptr_t ck = rn(4);
			o = put(w, o, &h, 4);
			o = put(w, o, &ck, 8);
			break;
		}
		case BC_ATTEMPT_ACQUIRE: {
			uint32_t pd[2] = {(uint32_t)rnd(), (uint32_t)rnd_handle()};
			o = put(w, o, pd, 8);
			break;
		}
		default:
			break;
		}
	}
	if (rn(8) == 0 && o > 4)
		o -= 1 + rn(4); /* truncated last command */
	memset(&bwr, 0, sizeof(bwr));
	bwr.write_buffer = rn(20) ? (uintptr_t)w : rnd_src(slot, o);
	bwr.write_size = o;
	if (rn(3) == 0) {
		bwr.read_buffer = rnd_dst(slot, g_rbuf);
		bwr.read_size = rn(2) ? sizeof(g_rbuf) : rn(16);
		if (bwr.read_buffer != (uintptr_t)g_rbuf && bwr.read_size > sizeof(g_rbuf))
			bwr.read_size = sizeof(g_rbuf);
	}
	if (bwr.read_size && bwr.read_buffer == (uintptr_t)g_rbuf) {
		/* Only read when there is work: avoids EAGAIN spam in dmesg. */
		struct pollfd pf = {g_fd[slot].fd, POLLIN, 0};
		if (poll(&pf, 1, 0) <= 0)
			bwr.read_size = 0;
	}
	r = ioctl(g_fd[slot].fd, BINDER_WRITE_READ, &bwr);
	count_err("write_read", r < 0 ? errno : 0);
}

/* ------------------------------------------------------------ draining */

static void note_br(uint32_t cmd, const uint8_t *p, size_t avail)
{
	count(g_brs, br_name(cmd));
	if ((cmd == BR_TRANSACTION || cmd == BR_REPLY) && avail >= sizeof(struct binder_transaction_data)) {
		struct binder_transaction_data tr;
		memcpy(&tr, p, sizeof(tr));
		if (g_nbufs < NBUF)
			g_bufs[g_nbufs++] = tr.data.ptr.buffer;
		else
			g_bufs[rn(NBUF)] = tr.data.ptr.buffer;
	}
	if ((cmd == BR_INCREFS || cmd == BR_ACQUIRE || cmd == BR_RELEASE || cmd == BR_DECREFS ||
	     cmd == BR_DEAD_BINDER || cmd == BR_CLEAR_DEATH_NOTIFICATION_DONE) && avail >= 8) {
		binder_uintptr_t v;
		memcpy(&v, p, 8);
		if (g_ncookies < 16)
			g_cookies[g_ncookies++] = v;
		else
			g_cookies[rn(16)] = v;
	}
}

static void op_drain(void)
{
	int slot = pick_fd();
	struct pollfd pf;
	struct binder_write_read bwr;
	if (slot < 0)
		return;
	pf.fd = g_fd[slot].fd;
	pf.events = POLLIN;
	pf.revents = 0;
	count(g_ops, "drain");
	if (poll(&pf, 1, 0) <= 0 || !(pf.revents & POLLIN))
		return;
	memset(&bwr, 0, sizeof(bwr));
	bwr.read_buffer = (uintptr_t)g_rbuf;
	bwr.read_size = sizeof(g_rbuf);
	if (ioctl(g_fd[slot].fd, BINDER_WRITE_READ, &bwr) < 0) {
		count_err("drain_read", errno);
		return;
	}
	count_err("drain_read", 0);
	for (size_t o = 0; o + 4 <= bwr.read_consumed;) {
		uint32_t cmd;
		size_t sz;
		memcpy(&cmd, g_rbuf + o, 4);
		sz = _IOC_SIZE(cmd);
		note_br(cmd, g_rbuf + o + 4, bwr.read_consumed - o - 4);
		o += 4 + sz;
	}
	/* Sometimes free everything we were handed, like a good citizen. */
	if (rn(2)) {
		for (int i = 0; i < g_nbufs; i++)
			bd_free(&(Bd){.fd = g_fd[slot].fd}, g_bufs[i]);
		count(g_ops, "free_all");
		g_nbufs = 0;
	}
}

/* --------------------------------------------------------------- ioctls */

static void op_ioctl(void)
{
#define K(x) {x, #x}
	static const struct {
		unsigned long req;
		const char *name;
	} known[] = {
		K(BINDER_SET_IDLE_TIMEOUT), K(BINDER_SET_MAX_THREADS), K(BINDER_SET_IDLE_PRIORITY),
		K(BINDER_SET_CONTEXT_MGR), K(BINDER_THREAD_EXIT), K(BINDER_VERSION),
		K(BINDER_GET_NODE_DEBUG_INFO), K(BINDER_GET_NODE_INFO_FOR_REF),
		K(BINDER_SET_CONTEXT_MGR_EXT), K(BINDER_FREEZE), K(BINDER_GET_FROZEN_INFO),
		K(BINDER_ENABLE_ONEWAY_SPAM_DETECTION), K(BINDER_GET_EXTENDED_ERROR),
	};
#undef K
	const char *name = "ioctl_other";
	int slot = pick_fd(), r;
	unsigned long req;
	uint64_t arg;
	if (slot < 0)
		return;
	if (rn(4)) {
		uint32_t k = rn(sizeof(known) / sizeof(known[0]));
		req = known[k].req;
		name = known[k].name;
	} else {
		static const char types[] = {'b', 'b', 'r', 'c'};
		req = _IOC(rn(4), types[rn(4)], rn(32), rn(128));
	}
	if (req == BINDER_WRITE_READ) {
		op_bc_stream();
		return;
	}
	for (size_t i = 0; i < sizeof(g_scratch); i++)
		g_scratch[i] = rn(3) ? 0 : (uint8_t)rnd();
	arg = rnd_dst(slot, g_scratch);
	if (req == BINDER_FREEZE) {
		struct binder_freeze_info fi;
		pid_t pids[4] = {g_server, getpid(), 0, (pid_t)rn(100000)};
		fi.pid = (uint32_t)pids[rn(4)];
		fi.enable = rn(3) ? 0 : 1;
		fi.timeout_ms = rn(21);
		memcpy(g_scratch, &fi, sizeof(fi));
		if (arg != (uintptr_t)g_scratch && rn(2))
			arg = (uintptr_t)g_scratch;
	}
	if (req == BINDER_GET_FROZEN_INFO && rn(2)) {
		uint32_t pid = (uint32_t)g_server;
		memcpy(g_scratch, &pid, 4);
	}
	r = ioctl(g_fd[slot].fd, req, (void *)(uintptr_t)arg);
	count(g_ops, name);
	count_err(name, r < 0 ? errno : 0);
}

/* ------------------------------------------------------------- fd churn */

static void op_fd(void)
{
	int which = (int)rn(NFD), err;
	count(g_ops, "fd_churn");
	if (g_fd[which].fd >= 0) {
		int live = 0;
		for (int i = 0; i < NFD; i++)
			live += g_fd[i].fd >= 0;
		if (which != 0 && live > 1 && rn(2)) { /* slot 0 stays: the same-fd call after the stream */
			if (g_fd[which].map)
				munmap(g_fd[which].map, g_fd[which].map_size);
			close(g_fd[which].fd);
			g_fd[which].fd = -1;
			g_fd[which].map = NULL;
			if (which == 0 || rn(2))
				g_nbufs = 0;
			count(g_ops, "close");
			return;
		}
		if (which != 0 && g_fd[which].map && rn(3) == 0) {
			err = munmap(g_fd[which].map, g_fd[which].map_size) ? errno : 0;
			g_fd[which].map = NULL;
			count_err("munmap", err);
			return;
		}
		if (!g_fd[which].map) {
			static const size_t sz[] = {4096, 65536, 1048576, 4194304, 8388608};
			size_t s = sz[rn(5)];
			int prot = rn(6) ? PROT_READ : PROT_READ | PROT_WRITE;
			void *m = mmap(NULL, s, prot, MAP_PRIVATE, g_fd[which].fd, 0);
			count_err("mmap", m == MAP_FAILED ? errno : 0);
			if (m != MAP_FAILED) {
				g_fd[which].map = m;
				g_fd[which].map_size = s;
			}
			return;
		}
		err = mprotect(g_fd[which].map, g_fd[which].map_size, PROT_READ | PROT_WRITE) ? errno : 0;
		count_err("mprotect", err);
		return;
	}
	g_fd[which].fd = open(g_binder_dev, O_RDWR | O_CLOEXEC | O_NONBLOCK);
	count_err("open", g_fd[which].fd < 0 ? errno : 0);
	g_fd[which].map = NULL;
}

/* ------------------------------------------------------ after the stream */

/* Whether binder's debugfs proc file of pid lists any transaction (in flight, pending or
 * undelivered): print_binder_proc -> print_binder_thread_ilocked/print_binder_node_nilocked.
 * -1 when the file cannot be read. */
static int proc_has_transaction(pid_t pid)
{
	char path[256], state[256], line[512];
	int found = 0;
	FILE *f;
	binder_log_path(path, sizeof(path), "proc/%d", (int)pid);
	binder_log_path(state, sizeof(state), "state");
	f = fopen(path, "re");
	if (!f) /* no binder_proc left for pid: nothing in flight (when debugfs is there at all) */
		return errno == ENOENT && access(state, R_OK) == 0 ? 0 : -1;
	while (fgets(line, sizeof(line), f))
		if (strstr(line, "transaction") && !strstr(line, "transaction complete"))
			found = 1;
	fclose(f);
	return found;
}

/* Read every live slot empty (freeing what it was handed), until neither process has a
 * transaction in binder's books, or 10 s.  Returns 1 settled, 0 not, -1 unknown. */
static int settle(uint64_t *ms)
{
	uint64_t t0 = now_ms();
	int state = 0;
	for (;;) {
		int busy = 0;
		for (int i = 0; i < NFD; i++) {
			struct pollfd pf = {g_fd[i].fd, POLLIN, 0};
			struct binder_write_read bwr;
			if (g_fd[i].fd < 0 || poll(&pf, 1, 0) <= 0 || !(pf.revents & POLLIN))
				continue;
			busy = 1;
			memset(&bwr, 0, sizeof(bwr));
			bwr.read_buffer = (uintptr_t)g_rbuf;
			bwr.read_size = sizeof(g_rbuf);
			if (ioctl(g_fd[i].fd, BINDER_WRITE_READ, &bwr) < 0)
				continue;
			for (size_t o = 0; o + 4 <= bwr.read_consumed;) {
				uint32_t cmd;
				memcpy(&cmd, g_rbuf + o, 4);
				if ((cmd == BR_TRANSACTION || cmd == BR_REPLY) &&
				    o + 4 + sizeof(struct binder_transaction_data) <= bwr.read_consumed) {
					struct binder_transaction_data tr;
					memcpy(&tr, g_rbuf + o + 4, sizeof(tr));
					bd_free(&(Bd){.fd = g_fd[i].fd}, tr.data.ptr.buffer);
				}
				o += 4 + _IOC_SIZE(cmd);
			}
		}
		if (!busy) {
			int c = proc_has_transaction(getpid()), s = proc_has_transaction(g_server);
			state = (c < 0 || s < 0) ? -1 : (!c && !s);
			if (state)
				break;
		}
		if (now_ms() - t0 > 10000)
			break;
		usleep(10000);
	}
	*ms = now_ms() - t0;
	return state;
}

#define CHECK_SIZE 131072 /* a quarter of the server's 1 MiB area: needs the area given back */

/* One valid call to the context manager; prints {"ev":"result","name":NAME,...}. */
static void checked_call(const char *name, Bd *b, uint32_t code)
{
	CallRes r;
	J j;
	bd_call(b, 0, code, 0, (uintptr_t)g_payload, CHECK_SIZE, 0, 0, &r, 5000);
	jresult(&j, name, r.write_err);
	jcall(&j, &r);
	ju64(&j, "code", code);
	ju64(&j, "size", CHECK_SIZE);
	if (r.have_reply) {
		ju64(&j, "reply_code", r.reply.code);
		ju64(&j, "reply_size", r.reply.data_size);
		bd_free(b, r.reply.data.ptr.buffer);
	}
	jend(&j);
}

static void after_stream(void)
{
	uint64_t ms = 0;
	int settled;
	Bd same, fresh;
	J j;
	/* the stream may have frozen the server or this process: thaw both */
	struct binder_freeze_info fi = {(uint32_t)g_server, 0, 0};
	ioctl(g_fd[0].fd, BINDER_FREEZE, &fi);
	fi.pid = (uint32_t)getpid();
	ioctl(g_fd[0].fd, BINDER_FREEZE, &fi);
	settled = settle(&ms);
	jresult(&j, "random.settle", 0);
	jstr(&j, "settled", settled > 0 ? "yes" : settled == 0 ? "no" : "unknown");
	ju64(&j, "ms", ms);
	jend(&j);
	/* a plain thread again: the stream's looper state, max_threads and stack go with the old one */
	ioctl(g_fd[0].fd, BINDER_THREAD_EXIT, 0);
	{
		uint32_t zero = 0;
		ioctl(g_fd[0].fd, BINDER_SET_MAX_THREADS, &zero);
	}
	memset(&same, 0, sizeof(same));
	same.fd = g_fd[0].fd;
	same.map = g_fd[0].map;
	same.map_size = g_fd[0].map_size;
	checked_call("random.same_fd", &same, 0x5eed0001u);
	{
		int rc = bd_open(&fresh, 0);
		if (rc == 0)
			rc = bd_mmap(&fresh, 1048576);
		if (rc == 0) {
			checked_call("random.fresh_fd", &fresh, 0x5eed0002u);
		} else {
			jresult(&j, "random.fresh_fd", -rc);
			jend(&j);
		}
		bd_close(&fresh);
	}
}

/* ---------------------------------------------------------------- main */

static uint64_t g_seed, g_duration, g_max_ops;

static int random_client(Pair *p, Bd *b)
{
	uint64_t t_end = now_ms() + g_duration, ops = 0;
	J j;
	g_server = p->server_pid;
	g_payload = malloc(PAYLOAD);
	if (!g_payload) {
		snprintf(p->err, sizeof(p->err), "out of memory");
		return -1;
	}
	{
		void *h = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (h != MAP_FAILED)
			munmap(h, 4096);
		g_hole = (uintptr_t)h;
	}
	for (int i = 0; i < NFD; i++)
		g_fd[i].fd = -1;
	/* Slot 0 starts as the pair's mapped fd. */
	g_fd[0].fd = b->fd;
	g_fd[0].map = b->map;
	g_fd[0].map_size = b->map_size;
	b->fd = -1;
	b->map = MAP_FAILED;
	for (uint32_t i = 0; i < PAYLOAD; i++)
		g_payload[i] = (uint8_t)rnd();
	set_phase("random ops");
	while (now_ms() < t_end && (!g_max_ops || ops < g_max_ops)) {
		uint32_t k = rn(100);
		if (k < 50)
			op_bc_stream();
		else if (k < 75)
			op_drain();
		else if (k < 95)
			op_ioctl();
		else
			op_fd();
		ops++;
	}
	after_stream();
	for (int i = 0; i < NFD; i++) {
		if (g_fd[i].fd < 0)
			continue;
		if (g_fd[i].map)
			munmap(g_fd[i].map, g_fd[i].map_size);
		close(g_fd[i].fd);
		g_fd[i].fd = -1;
	}
	jbegin(&j, EV_SUMMARY);
	ju64(&j, "seed", g_seed);
	ju64(&j, "ops", ops);
	ju64(&j, "duration_ms", g_duration);
	jcnt(&j, "by_cmd", g_ops);
	jcnt(&j, "by_errno", g_errs);
	jcnt(&j, "br_seen", g_brs);
	jend(&j);
	free(g_payload);
	return 0;
}

void scen_random(void)
{
	Pair p;
	stress_begin(&g_seed, &g_duration, &g_max_ops, 0x1234567, 10000);
	memset(&p, 0, sizeof(p));
	p.server_map = p.client_map = 1048576;
	p.server_free = 1;
	p.server_quiet = 1;
	p.ctl_fd = -1;
	p.client = random_client;
	run_pair(&p);
}

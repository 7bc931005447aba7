/* binder-probe: binder protocol helpers and the server/client pair runner. */
#include "probe.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------ names */

#define N(x) {x, #x}
static const struct {
	uint32_t v;
	const char *n;
} br_names[] = {
	N(BR_ERROR), N(BR_OK), N(BR_TRANSACTION_SEC_CTX), N(BR_TRANSACTION), N(BR_REPLY),
	N(BR_ACQUIRE_RESULT), N(BR_DEAD_REPLY), N(BR_TRANSACTION_COMPLETE), N(BR_INCREFS),
	N(BR_ACQUIRE), N(BR_RELEASE), N(BR_DECREFS), N(BR_ATTEMPT_ACQUIRE), N(BR_NOOP),
	N(BR_SPAWN_LOOPER), N(BR_FINISHED), N(BR_DEAD_BINDER),
	N(BR_CLEAR_DEATH_NOTIFICATION_DONE), N(BR_FAILED_REPLY), N(BR_FROZEN_REPLY),
	N(BR_ONEWAY_SPAM_SUSPECT), {PROBE_BR_TRANSACTION_PENDING_FROZEN, "BR_TRANSACTION_PENDING_FROZEN"},
	N(BR_FROZEN_BINDER), N(BR_CLEAR_FREEZE_NOTIFICATION_DONE),
}, bc_names[] = {
	N(BC_TRANSACTION), N(BC_REPLY), N(BC_ACQUIRE_RESULT), N(BC_FREE_BUFFER),
	N(BC_INCREFS), N(BC_ACQUIRE), N(BC_RELEASE), N(BC_DECREFS), N(BC_INCREFS_DONE),
	N(BC_ACQUIRE_DONE), N(BC_ATTEMPT_ACQUIRE), N(BC_REGISTER_LOOPER), N(BC_ENTER_LOOPER),
	N(BC_EXIT_LOOPER), N(BC_REQUEST_DEATH_NOTIFICATION), N(BC_CLEAR_DEATH_NOTIFICATION),
	N(BC_DEAD_BINDER_DONE), N(BC_TRANSACTION_SG), N(BC_REPLY_SG), N(BC_REQUEST_FREEZE_NOTIFICATION),
	N(BC_CLEAR_FREEZE_NOTIFICATION), N(BC_FREEZE_NOTIFICATION_DONE),
};
#undef N

const char *br_name(uint32_t cmd)
{
	static char buf[24];
	for (size_t i = 0; i < sizeof(br_names) / sizeof(br_names[0]); i++)
		if (br_names[i].v == cmd)
			return br_names[i].n;
	snprintf(buf, sizeof(buf), "BR_0x%08x", cmd);
	return buf;
}

const char *bc_name(uint32_t cmd)
{
	static char buf[24];
	for (size_t i = 0; i < sizeof(bc_names) / sizeof(bc_names[0]); i++)
		if (bc_names[i].v == cmd)
			return bc_names[i].n;
	snprintf(buf, sizeof(buf), "BC_0x%08x", cmd);
	return buf;
}

/* ---------------------------------------------------------------- basics */

int bd_open(Bd *b, int extra_flags)
{
	memset(b, 0, sizeof(*b));
	b->map = MAP_FAILED;
	b->fd = open(g_binder_dev, O_RDWR | O_CLOEXEC | extra_flags);
	return b->fd < 0 ? -errno : 0;
}

int bd_mmap(Bd *b, size_t size)
{
	void *m = mmap(NULL, size, PROT_READ, MAP_PRIVATE, b->fd, 0);
	if (m == MAP_FAILED)
		return -errno;
	b->map = m;
	b->map_size = size;
	return 0;
}

void bd_close(Bd *b)
{
	if (b->map != MAP_FAILED && b->map)
		munmap(b->map, b->map_size);
	b->map = MAP_FAILED;
	if (b->fd >= 0)
		close(b->fd);
	b->fd = -1;
}

void bd_print_map(Bd *b, const char *role, size_t requested)
{
	J j;
	char line[512];
	unsigned long long s = 0, e = 0;
	maps_line_for((uintptr_t)b->map, line, sizeof(line));
	sscanf(line, "%llx-%llx", &s, &e);
	jbegin(&j, EV_MAP);
	jstr(&j, "role", role);
	ju64(&j, "start", (uintptr_t)b->map);
	ju64(&j, "size", requested);
	ju64(&j, "vma_size", e - s);
	jstr(&j, "maps_line", line);
	jend(&j);
}

int bd_write(Bd *b, const void *cmds, size_t len, size_t *consumed)
{
	struct binder_write_read bwr;
	int r;
	memset(&bwr, 0, sizeof(bwr));
	bwr.write_buffer = (binder_uintptr_t)(uintptr_t)cmds;
	bwr.write_size = len;
	do
		r = ioctl(b->fd, BINDER_WRITE_READ, &bwr);
	while (r < 0 && errno == EINTR);
	if (consumed)
		*consumed = (size_t)bwr.write_consumed;
	if (r < 0)
		return -errno;
	if (bwr.write_consumed != len)
		return -EPROTO;
	return 0;
}

int bd_pending(Bd *b)
{
	return b->rpos < b->rlen;
}

int bd_fill(Bd *b)
{
	struct binder_write_read bwr;
	int r;
	memset(&bwr, 0, sizeof(bwr));
	bwr.read_buffer = (binder_uintptr_t)(uintptr_t)b->rbuf;
	bwr.read_size = sizeof(b->rbuf);
	do
		r = ioctl(b->fd, BINDER_WRITE_READ, &bwr);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return errno == EAGAIN ? 0 : -errno;
	b->rlen = (size_t)bwr.read_consumed;
	b->rpos = 0;
	if (b->rlen) {
		uint32_t first;
		memcpy(&first, b->rbuf, 4);
		b->reads++;
		if (first != BR_NOOP)
			b->reads_without_noop++;
	}
	return b->rlen ? 1 : 0;
}

/* Parse one BR from the queue; 1 parsed (may be BR_NOOP), 0 empty. */
static int bd_pop(Bd *b, Br *out)
{
	uint32_t cmd;
	size_t sz;
	if (b->rpos + 4 > b->rlen) {
		b->rpos = b->rlen = 0;
		return 0;
	}
	memcpy(&cmd, b->rbuf + b->rpos, 4);
	sz = _IOC_SIZE(cmd);
	if (b->rpos + 4 + sz > b->rlen || sz > sizeof(out->u.raw)) {
		/* Truncated or unknown: report the command, drop the rest. */
		out->cmd = cmd;
		memset(&out->u, 0, sizeof(out->u));
		b->rpos = b->rlen = 0;
		return 1;
	}
	out->cmd = cmd;
	memset(&out->u, 0, sizeof(out->u));
	memcpy(out->u.raw, b->rbuf + b->rpos + 4, sz);
	b->rpos += 4 + sz;
	return 1;
}

int bd_next(Bd *b, Br *out, int timeout_ms)
{
	uint64_t deadline = now_ms() + (uint64_t)(timeout_ms < 0 ? 0 : timeout_ms);
	for (;;) {
		struct pollfd pf = {b->fd, POLLIN, 0};
		uint64_t now;
		int pr;
		while (bd_pop(b, out))
			if (out->cmd != BR_NOOP)
				return 1;
		/* Poll first: a nonblocking read with no work returns EAGAIN,
		 * which the driver logs to dmesg ("ioctl ... returned -11"). */
		now = now_ms();
		pr = poll(&pf, 1, now >= deadline ? 0 : (int)(deadline - now));
		if (pr < 0 && errno != EINTR)
			return -errno;
		if (pr > 0 && (pf.revents & POLLIN)) {
			int r = bd_fill(b);
			if (r < 0)
				return r;
			if (r > 0)
				continue;
		}
		if (now_ms() >= deadline)
			return 0;
	}
}

int bd_cmd0(Bd *b, uint32_t cmd)
{
	return bd_write(b, &cmd, 4, NULL);
}

int bd_cmd_u32(Bd *b, uint32_t cmd, uint32_t v)
{
	uint8_t buf[8];
	memcpy(buf, &cmd, 4);
	memcpy(buf + 4, &v, 4);
	return bd_write(b, buf, sizeof(buf), NULL);
}

int bd_cmd_ptr(Bd *b, uint32_t cmd, binder_uintptr_t v)
{
	uint8_t buf[12];
	memcpy(buf, &cmd, 4);
	memcpy(buf + 4, &v, 8);
	return bd_write(b, buf, sizeof(buf), NULL);
}

int bd_cmd_pc(Bd *b, uint32_t cmd, binder_uintptr_t ptr, binder_uintptr_t cookie)
{
	uint8_t buf[20];
	memcpy(buf, &cmd, 4);
	memcpy(buf + 4, &ptr, 8);
	memcpy(buf + 12, &cookie, 8);
	return bd_write(b, buf, sizeof(buf), NULL);
}

int bd_cmd_hc(Bd *b, uint32_t cmd, uint32_t handle, binder_uintptr_t cookie)
{
	uint8_t buf[16];
	memcpy(buf, &cmd, 4);
	memcpy(buf + 4, &handle, 4);
	memcpy(buf + 8, &cookie, 8);
	return bd_write(b, buf, sizeof(buf), NULL);
}

int bd_free(Bd *b, binder_uintptr_t buf)
{
	return bd_cmd_ptr(b, BC_FREE_BUFFER, buf);
}

static size_t bd_tx_encode(uint8_t *out, uint32_t bc, uint32_t handle, uint32_t code,
			   uint32_t flags, binder_uintptr_t data, uint64_t size,
			   binder_uintptr_t offs, uint64_t offs_size)
{
	struct binder_transaction_data tr;
	memset(&tr, 0, sizeof(tr));
	tr.target.handle = handle;
	tr.code = code;
	tr.flags = flags;
	tr.data_size = size;
	tr.offsets_size = offs_size;
	tr.data.ptr.buffer = data;
	tr.data.ptr.offsets = offs;
	memcpy(out, &bc, 4);
	memcpy(out + 4, &tr, sizeof(tr));
	return 4 + sizeof(tr);
}

static size_t g_last_consumed;

int bd_ack_refcount(Bd *b, const Br *br)
{
	if (br->cmd != BR_INCREFS && br->cmd != BR_ACQUIRE)
		return 0;
	bd_cmd_pc(b, br->cmd == BR_INCREFS ? BC_INCREFS_DONE : BC_ACQUIRE_DONE, br->u.pc.ptr,
		  br->u.pc.cookie);
	return 1;
}

int bd_read_quiet(Bd *b, int quiet_ms, uint32_t *brs, int n)
{
	Br br;
	while (bd_next(b, &br, quiet_ms) == 1) {
		if (n < CALL_MAX_BR)
			brs[n++] = br.cmd;
		bd_ack_refcount(b, &br);
	}
	return n;
}

int bd_send(Bd *b, uint32_t bc, uint32_t handle, uint32_t code, uint32_t flags,
	    binder_uintptr_t data, uint64_t size, binder_uintptr_t offs, uint64_t offs_size)
{
	uint8_t buf[4 + sizeof(struct binder_transaction_data)];
	size_t n = bd_tx_encode(buf, bc, handle, code, flags, data, size, offs, offs_size);
	return bd_write(b, buf, n, &g_last_consumed);
}

static int bd_send_sg(Bd *b, uint32_t handle, uint32_t code, uint32_t flags,
		      binder_uintptr_t data, uint64_t size, binder_uintptr_t offs,
		      uint64_t offs_size, uint64_t buffers_size)
{
	uint8_t buf[4 + sizeof(struct binder_transaction_data_sg)];
	binder_size_t bs = buffers_size;
	size_t n = bd_tx_encode(buf, BC_TRANSACTION_SG, handle, code, flags, data, size, offs,
				offs_size);
	memcpy(buf + n, &bs, sizeof(bs));
	return bd_write(b, buf, n + sizeof(bs), &g_last_consumed);
}

int bd_get_ext_err(Bd *b, struct binder_extended_error *ee)
{
	memset(ee, 0, sizeof(*ee));
	return ioctl(b->fd, BINDER_GET_EXTENDED_ERROR, ee) < 0 ? -errno : 0;
}

static int set_ctx_mgr(Bd *b, int retry_ms, int ext, uint32_t flags)
{
	uint64_t deadline = now_ms() + (uint64_t)retry_ms;
	int32_t zero = 0;
	struct flat_binder_object fbo;
	memset(&fbo, 0, sizeof(fbo));
	fbo.hdr.type = BINDER_TYPE_BINDER;
	fbo.flags = flags;
	for (;;) {
		if ((ext ? ioctl(b->fd, BINDER_SET_CONTEXT_MGR_EXT, &fbo)
			 : ioctl(b->fd, BINDER_SET_CONTEXT_MGR, &zero)) == 0)
			return 0;
		/* A previous manager's release is deferred: retry EBUSY briefly. */
		if (errno != EBUSY || now_ms() >= deadline)
			return -errno;
		sleep_ms(10);
	}
}

int bd_set_context_mgr(Bd *b, int retry_ms)
{
	return set_ctx_mgr(b, retry_ms, 0, 0);
}

int bd_set_context_mgr_ext(Bd *b, int retry_ms, uint32_t flags)
{
	return set_ctx_mgr(b, retry_ms, 1, flags);
}

void jext(J *j, const char *k, const struct binder_extended_error *ee, int have)
{
	char t[200];
	if (!have) {
		jnull(j, k);
		return;
	}
	snprintf(t, sizeof(t), "{\"id\":%u,\"command\":%u,\"command_name\":\"%s\",\"param\":%d}",
		 ee->id, ee->command, br_name(ee->command), ee->param);
	jraw(j, k, t);
}

void jbrs(J *j, const char *k, const uint32_t *brs, int n)
{
	char t[CALL_MAX_BR * 40 + 8];
	size_t o = 0;
	t[o++] = '[';
	for (int i = 0; i < n; i++)
		o += (size_t)snprintf(t + o, sizeof(t) - o, "%s\"%s\"", i ? "," : "", br_name(brs[i]));
	t[o++] = ']';
	t[o] = 0;
	jraw(j, k, t);
}

/* ------------------------------------------------------------------ calls */

static void call_add(CallRes *r, uint32_t cmd)
{
	if (r->nbr < CALL_MAX_BR)
		r->brs[r->nbr++] = cmd;
}

static int call_common(Bd *b, uint32_t handle, uint32_t code, uint32_t flags,
		       binder_uintptr_t data, uint64_t size, binder_uintptr_t offs,
		       uint64_t offs_size, int sg, uint64_t buffers_size, CallRes *r,
		       int timeout_ms);

int bd_call(Bd *b, uint32_t handle, uint32_t code, uint32_t flags,
	    binder_uintptr_t data, uint64_t size, binder_uintptr_t offs, uint64_t offs_size,
	    CallRes *r, int timeout_ms)
{
	return call_common(b, handle, code, flags, data, size, offs, offs_size, 0, 0, r,
			   timeout_ms);
}

int bd_call_sg(Bd *b, uint32_t handle, uint32_t code, uint32_t flags,
	       binder_uintptr_t data, uint64_t size, binder_uintptr_t offs, uint64_t offs_size,
	       uint64_t buffers_size, CallRes *r, int timeout_ms)
{
	return call_common(b, handle, code, flags, data, size, offs, offs_size, 1, buffers_size,
			   r, timeout_ms);
}

static int call_common(Bd *b, uint32_t handle, uint32_t code, uint32_t flags,
		       binder_uintptr_t data, uint64_t size, binder_uintptr_t offs,
		       uint64_t offs_size, int sg, uint64_t buffers_size, CallRes *r,
		       int timeout_ms)
{
	uint64_t t0 = now_ms(), deadline = t0 + (uint64_t)timeout_ms;
	int oneway = (flags & TF_ONE_WAY) != 0;
	int rc;
	struct timespec a, z;
	memset(r, 0, sizeof(*r));
	r->status = "error";
	clock_gettime(CLOCK_MONOTONIC, &a);
	rc = sg ? bd_send_sg(b, handle, code, flags, data, size, offs, offs_size, buffers_size)
		: bd_send(b, BC_TRANSACTION, handle, code, flags, data, size, offs, offs_size);
	r->write_consumed = g_last_consumed;
	if (rc < 0) {
		r->write_err = -rc;
		goto out;
	}
	for (;;) {
		Br br;
		uint64_t now = now_ms();
		if (now >= deadline) {
			r->status = "timeout";
			break;
		}
		rc = bd_next(b, &br, (int)(deadline - now));
		if (rc == 0) {
			r->status = "timeout";
			break;
		}
		if (rc < 0) {
			r->write_err = -rc;
			r->status = "error";
			break;
		}
		call_add(r, br.cmd);
		switch (br.cmd) {
		case BR_TRANSACTION_COMPLETE:
			if (oneway) {
				r->status = "ok";
				goto out;
			}
			continue;
		case BR_ONEWAY_SPAM_SUSPECT:
			r->spam_suspect = 1;
			if (oneway) {
				r->status = "ok";
				goto out;
			}
			continue;
		case PROBE_BR_TRANSACTION_PENDING_FROZEN:
			/* accepted and queued until the target thaws: a oneway is done */
			if (oneway) {
				r->status = "ok";
				goto out;
			}
			continue;
		case BR_REPLY:
			r->have_reply = 1;
			r->reply = br.u.tr;
			r->status = "ok";
			goto out;
		case BR_FAILED_REPLY:
			r->status = "failed_reply";
			goto out;
		case BR_DEAD_REPLY:
			r->status = "dead_reply";
			goto out;
		case BR_FROZEN_REPLY:
			r->status = "frozen_reply";
			goto out;
		case BR_ERROR:
			r->status = "error";
			goto out;
		default:
			if (r->nextra < 4)
				r->extra[r->nextra++] = br;
			continue;
		}
	}
out:
	clock_gettime(CLOCK_MONOTONIC, &z);
	r->elapsed_us = (uint64_t)((z.tv_sec - a.tv_sec) * 1000000LL + (z.tv_nsec - a.tv_nsec) / 1000);
	r->have_ee = bd_get_ext_err(b, &r->ee) == 0;
	return strcmp(r->status, "ok") == 0 ? 0 : -1;
}

void jcall(J *j, const CallRes *r)
{
	jstr(j, "status", r->status);
	jbrs(j, "br", r->brs, r->nbr);
	jext(j, "ext_err", &r->ee, r->have_ee);
	if (r->write_err) {
		jerrno(j, r->write_err);
		ju64(j, "write_consumed", r->write_consumed);
	}
	ju64(j, "elapsed_us", r->elapsed_us);
}

int bd_debugfs_stats_value(pid_t pid, const char *key, long *out)
{
	char line[256];
	size_t kl = strlen(key);
	int in = 0;
	char path[256];
	FILE *f;
	binder_log_path(path, sizeof(path), "stats");
	f = fopen(path, "re");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		const char *q = line;
		int p;
		if (sscanf(line, "proc %d", &p) == 1) {
			in = p == pid;
			continue;
		}
		while (*q == ' ')
			q++;
		/* binder.c: "free async space 8192"; the Rust driver: "free oneway space: 8192" */
		if (in && !strncmp(q, key, kl) && (sscanf(q + kl, " %ld", out) == 1 ||
						   sscanf(q + kl, ": %ld", out) == 1)) {
			fclose(f);
			return 0;
		}
	}
	fclose(f);
	return -ENOENT;
}

void jcall_extra(J *j, const char *k, const CallRes *r)
{
	char t[4 * 120 + 8];
	size_t o = 0;
	t[o++] = '[';
	for (int i = 0; i < r->nextra; i++)
		o += (size_t)snprintf(t + o, sizeof(t) - o,
				      "%s{\"br\":\"%s\",\"ptr\":%llu,\"cookie\":%llu}", i ? "," : "",
				      br_name(r->extra[i].cmd),
				      (unsigned long long)r->extra[i].u.pc.ptr,
				      (unsigned long long)r->extra[i].u.pc.cookie);
	t[o++] = ']';
	t[o] = 0;
	jraw(j, k, t);
}

const char *binder_type_name(uint32_t type)
{
	static char buf[24];
	switch (type) {
	case BINDER_TYPE_BINDER: return "BINDER_TYPE_BINDER";
	case BINDER_TYPE_WEAK_BINDER: return "BINDER_TYPE_WEAK_BINDER";
	case BINDER_TYPE_HANDLE: return "BINDER_TYPE_HANDLE";
	case BINDER_TYPE_WEAK_HANDLE: return "BINDER_TYPE_WEAK_HANDLE";
	case BINDER_TYPE_FD: return "BINDER_TYPE_FD";
	case BINDER_TYPE_FDA: return "BINDER_TYPE_FDA";
	case BINDER_TYPE_PTR: return "BINDER_TYPE_PTR";
	}
	snprintf(buf, sizeof(buf), "0x%08x", type);
	return buf;
}

void jobjects(J *j, const char *k, const uint8_t *data, uint64_t data_size,
	      const binder_size_t *offs, uint64_t offs_size, uint64_t base)
{
	char t[4096];
	size_t o = 0;
	uint64_t n = offs_size / sizeof(binder_size_t);
	t[o++] = '[';
	for (uint64_t i = 0; i < n && o < sizeof(t) - 400; i++) {
		uint64_t off = offs[i];
		struct binder_object_header h;
		const char *sep = i ? "," : "";
		if (off + sizeof(h) > data_size) {
			o += (size_t)snprintf(t + o, sizeof(t) - o, "%s{\"off\":%llu,\"type\":null}",
					      sep, (unsigned long long)off);
			continue;
		}
		memcpy(&h, data + off, sizeof(h));
		o += (size_t)snprintf(t + o, sizeof(t) - o, "%s{\"off\":%llu,\"type\":\"%s\"", sep,
				      (unsigned long long)off, binder_type_name(h.type));
		if ((h.type == BINDER_TYPE_BINDER || h.type == BINDER_TYPE_WEAK_BINDER ||
		     h.type == BINDER_TYPE_HANDLE || h.type == BINDER_TYPE_WEAK_HANDLE) &&
		    off + sizeof(struct flat_binder_object) <= data_size) {
			struct flat_binder_object f;
			memcpy(&f, data + off, sizeof(f));
			o += (size_t)snprintf(t + o, sizeof(t) - o,
					      ",\"flags\":%u,\"binder\":%llu,\"handle\":%u,\"cookie\":%llu",
					      f.flags, (unsigned long long)f.binder, f.handle,
					      (unsigned long long)f.cookie);
		} else if (h.type == BINDER_TYPE_FD &&
			   off + sizeof(struct binder_fd_object) <= data_size) {
			struct binder_fd_object f;
			memcpy(&f, data + off, sizeof(f));
			o += (size_t)snprintf(t + o, sizeof(t) - o,
					      ",\"fd\":%d,\"pad_binder_high\":%u,\"cookie\":%llu",
					      (int)f.fd, (unsigned)(f.pad_binder >> 32),
					      (unsigned long long)f.cookie);
		} else if (h.type == BINDER_TYPE_PTR &&
			   off + sizeof(struct binder_buffer_object) <= data_size) {
			struct binder_buffer_object f;
			memcpy(&f, data + off, sizeof(f));
			o += (size_t)snprintf(t + o, sizeof(t) - o,
					      ",\"flags\":%u,\"buffer\":%llu,\"buf_off\":%lld,"
					      "\"length\":%llu,\"parent\":%llu,\"parent_offset\":%llu",
					      f.flags, (unsigned long long)f.buffer,
					      (long long)(f.buffer - base), (unsigned long long)f.length,
					      (unsigned long long)f.parent,
					      (unsigned long long)f.parent_offset);
		} else if (h.type == BINDER_TYPE_FDA &&
			   off + sizeof(struct binder_fd_array_object) <= data_size) {
			struct binder_fd_array_object f;
			memcpy(&f, data + off, sizeof(f));
			o += (size_t)snprintf(t + o, sizeof(t) - o,
					      ",\"num_fds\":%llu,\"parent\":%llu,\"parent_offset\":%llu",
					      (unsigned long long)f.num_fds, (unsigned long long)f.parent,
					      (unsigned long long)f.parent_offset);
		}
		t[o++] = '}';
	}
	t[o++] = ']';
	t[o] = 0;
	jraw(j, k, t);
}

void jrx(J *j, Bd *b, const struct binder_transaction_data *tr, uint64_t seq,
	 uint64_t expect_size)
{
	uintptr_t start = (uintptr_t)b->map, end = start + b->map_size;
	uint64_t buf = tr->data.ptr.buffer, off = tr->data.ptr.offsets;
	int in_map = b->map != MAP_FAILED && buf >= start && buf + tr->data_size <= end &&
		     buf + tr->data_size >= buf;
	ju64(j, "seq", seq);
	ju64(j, "size", expect_size);
	ju64(j, "data_size", tr->data_size);
	ju64(j, "offsets_size", tr->offsets_size);
	ju64(j, "buffer", buf);
	ju64(j, "offsets", off);
	ju64(j, "map_start", start);
	ju64(j, "map_end", end);
	jbool(j, "in_map", in_map);
	if (in_map) {
		int64_t bad = pattern_check((const uint8_t *)(uintptr_t)buf, (size_t)tr->data_size, seq);
		ju64(j, "buf_off", buf - start);
		jbool(j, "pattern_ok", bad < 0 && tr->data_size == expect_size);
		ji64(j, "first_bad", bad);
	} else {
		jnull(j, "buf_off");
		jbool(j, "pattern_ok", 0);
		jnull(j, "first_bad");
	}
	ju64(j, "flags", tr->flags);
	ju64(j, "code", tr->code);
	ji64(j, "sender_pid", tr->sender_pid);
	ju64(j, "sender_euid", tr->sender_euid);
}

/* ------------------------------------------------------------ pair runner */

static uint8_t *g_reply_buf;
static size_t g_reply_cap;

int default_on_tx(Pair *p, Bd *b, const struct binder_transaction_data *tr)
{
	uint64_t seq = (tr->code >= 1 && tr->code < 0x100000) ? tr->code - 1 : p->rx_count - 1;
	uint64_t expect = (seq < (uint64_t)p->nsizes) ? p->sizes[seq] : tr->data_size;
	int oneway = (tr->flags & TF_ONE_WAY) != 0;
	if (p->server_print_rx) {
		J j;
		jbegin(&j, EV_RX);
		jstr(&j, "role", "server");
		jrx(&j, b, tr, seq, expect);
		jend(&j);
	}
	if (p->server_free)
		bd_free(b, tr->data.ptr.buffer);
	if (!oneway) {
		int rc;
		if (p->server_reply_payload && tr->data_size) {
			if (g_reply_cap < tr->data_size) {
				free(g_reply_buf);
				g_reply_buf = malloc((size_t)tr->data_size);
				g_reply_cap = g_reply_buf ? (size_t)tr->data_size : 0;
			}
			if (!g_reply_buf)
				child_fail("out of memory for reply");
			pattern_fill(g_reply_buf, (size_t)tr->data_size, seq);
			rc = bd_send(b, BC_REPLY, 0, tr->code, 0, (uintptr_t)g_reply_buf,
				     tr->data_size, 0, 0);
		} else {
			rc = bd_send(b, BC_REPLY, 0, tr->code, 0, 0, 0, 0, 0);
		}
		if (rc < 0 && !p->server_quiet) {
			J j;
			jbegin(&j, EV_SRV_ERROR);
			jstr(&j, "what", "BC_REPLY write");
			jerrno(&j, -rc);
			jend(&j);
		}
	}
	return 0;
}

static void srv_print_br(const Br *br)
{
	J j;
	jbegin(&j, EV_SRV_BR);
	jstr(&j, "br", br_name(br->cmd));
	if (br->cmd == BR_INCREFS || br->cmd == BR_ACQUIRE || br->cmd == BR_RELEASE ||
	    br->cmd == BR_DECREFS) {
		ju64(&j, "ptr", br->u.pc.ptr);
		ju64(&j, "cookie", br->u.pc.cookie);
	}
	jend(&j);
}

static void srv_handle_one(Pair *p, Bd *b, const Br *br);
static void srv_handle(Pair *p, Bd *b, const Br *br)
{
	srv_handle_one(p, b, br);
	if (p->on_br && br->cmd != BR_TRANSACTION && br->cmd != BR_TRANSACTION_SEC_CTX)
		p->on_br(p, b, br);
}

void jresult(J *j, const char *name, int err)
{
	jbegin(j, EV_RESULT);
	jstr(j, "name", name);
	jerrno(j, err);
}

static void srv_handle_one(Pair *p, Bd *b, const Br *br)
{
	switch (br->cmd) {
	case BR_TRANSACTION:
	case BR_TRANSACTION_SEC_CTX:
		p->rx_count++;
		(p->on_tx ? p->on_tx : default_on_tx)(p, b, &br->u.tr);
		return;
	case BR_INCREFS:
	case BR_ACQUIRE:
		if (p->server_print_br)
			srv_print_br(br);
		bd_ack_refcount(b, br);
		return;
	case BR_RELEASE:
	case BR_DECREFS:
	case BR_TRANSACTION_COMPLETE:
	case BR_SPAWN_LOOPER:
		if (p->server_print_br)
			srv_print_br(br);
		return;
	default:
		if (!p->server_quiet)
			srv_print_br(br);
		return;
	}
}

static void serve(Pair *p, Bd *b, int ctl)
{
	int ctl_closed = 0;
	Br br;
	set_phase("server loop");
	for (;;) {
		int rc;
		if (!bd_pending(b)) {
			struct pollfd pf[2] = {{b->fd, POLLIN, 0}, {ctl, POLLIN, 0}};
			if (ctl_closed) {
				/* Drain whatever is already queued, then leave. */
				set_phase("server drain");
				rc = bd_next(b, &br, 30);
				if (rc <= 0)
					return;
				srv_handle(p, b, &br);
				continue;
			}
			if (poll(pf, 2, 1000) < 0 && errno != EINTR)
				child_fail("poll: %s", strerror(errno));
			if (pf[1].revents) {
				char c;
				if (read(ctl, &c, 1) <= 0)
					ctl_closed = 1;
			}
			if (!(pf[0].revents & POLLIN))
				continue;
			rc = bd_fill(b);
			if (rc < 0)
				child_fail("server read: %s", strerror(-rc));
		}
		while (bd_pending(b)) {
			rc = bd_next(b, &br, 0);
			if (rc <= 0)
				break;
			srv_handle(p, b, &br);
		}
	}
}

static void server_main(Pair *p, int ready, int ctl)
{
	Bd b;
	int rc;
	char msg[200];
	set_phase("server setup");
	if ((rc = bd_open(&b, O_NONBLOCK)) < 0) {
		snprintf(msg, sizeof(msg), "Eserver open %s: %s", g_binder_dev, errno_name(-rc));
		goto fail;
	}
	if ((rc = bd_mmap(&b, p->server_map)) < 0) {
		snprintf(msg, sizeof(msg), "Eserver mmap %zu: %s", p->server_map, errno_name(-rc));
		goto fail;
	}
	bd_print_map(&b, "server", p->server_map);
	rc = p->server_ctx_flags ? bd_set_context_mgr_ext(&b, 3000, p->server_ctx_flags)
				 : bd_set_context_mgr(&b, 3000);
	if (rc < 0) {
		snprintf(msg, sizeof(msg), "Eserver BINDER_SET_CONTEXT_MGR: %s", errno_name(-rc));
		goto fail;
	}
	if ((rc = bd_cmd0(&b, BC_ENTER_LOOPER)) < 0) {
		snprintf(msg, sizeof(msg), "Eserver BC_ENTER_LOOPER: %s", errno_name(-rc));
		goto fail;
	}
	if (p->server_setup)
		p->server_setup(p, &b);
	if (write(ready, "R", 1) != 1)
		_exit(1);
	close(ready);
	serve(p, &b, ctl);
	if (p->server_post) {
		set_phase("server post");
		p->server_post(p, &b);
	}
	_exit(0);
fail:
	if (write(ready, msg, strlen(msg)) < 0)
		_exit(1);
	_exit(1);
}

void pair_stop_server(Pair *p, int kill_it)
{
	if (kill_it && p->server_pid > 0) {
		kill(p->server_pid, SIGKILL);
		p->server_killed = 1;
	}
	if (p->ctl_fd >= 0) {
		close(p->ctl_fd);
		p->ctl_fd = -1;
	}
}

void run_pair(Pair *p)
{
	int ready[2], ctl[2];
	char msg[256];
	ssize_t got = 0;
	Bd b;
	int rc, ok, st = 0;
	pid_t pid;
	J j;

	if (pipe2(ready, O_CLOEXEC) || pipe2(ctl, O_CLOEXEC))
		finish(0, "pipe failed");
	pid = fork_child();
	if (pid == 0) {
		close(ready[0]);
		close(ctl[1]);
		p->server_pid = getpid();
		server_main(p, ready[1], ctl[0]);
	}
	p->server_pid = pid;
	p->client_pid = getpid();
	p->ctl_fd = ctl[1];
	close(ready[1]);
	close(ctl[0]);
	jbegin(&j, EV_ROLES);
	ji64(&j, "server_pid", pid);
	ji64(&j, "client_pid", getpid());
	jend(&j);

	set_phase("waiting for server ready");
	for (;;) {
		ssize_t r = read(ready[0], msg + got, sizeof(msg) - 1 - (size_t)got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += r;
		if (msg[0] == 'R' || (size_t)got >= sizeof(msg) - 1)
			break;
	}
	msg[got] = 0;
	close(ready[0]);
	if (got < 1 || msg[0] != 'R') {
		char e[300];
		waitpid(pid, &st, 0);
		snprintf(e, sizeof(e), "server setup failed: %s", got > 1 ? msg + 1 : "no message");
		finish(0, e);
	}

	set_phase("client setup");
	if ((rc = bd_open(&b, O_NONBLOCK)) < 0) {
		snprintf(msg, sizeof(msg), "client open %s: %s", g_binder_dev, errno_name(-rc));
		pair_stop_server(p, 1);
		waitpid(pid, &st, 0);
		finish(0, msg);
	}
	if ((rc = bd_mmap(&b, p->client_map)) < 0) {
		snprintf(msg, sizeof(msg), "client mmap: %s", errno_name(-rc));
		pair_stop_server(p, 1);
		waitpid(pid, &st, 0);
		finish(0, msg);
	}
	bd_print_map(&b, "client", p->client_map);

	set_phase("client");
	rc = p->client(p, &b);
	pair_stop_server(p, 0);

	set_phase("waiting for server exit");
	{
		uint64_t deadline = now_ms() + 5000;
		pid_t w;
		while ((w = waitpid(pid, &st, WNOHANG)) == 0 && now_ms() < deadline)
			sleep_ms(5);
		if (w == 0) {
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			if (!rc)
				snprintf(p->err, sizeof(p->err), "server did not exit");
			rc = -1;
		}
	}
	g_child = -1;
	ok = rc == 0;
	if (ok && !p->server_killed && !(WIFEXITED(st) && WEXITSTATUS(st) == 0)) {
		ok = 0;
		snprintf(p->err, sizeof(p->err), "server exited with status %d",
			 WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
	}
	bd_close(&b);
	finish(ok, p->err[0] ? p->err : "client failed");
}

/* Open (+ optionally mmap) a single-process binder fd, or finish(0) naming the device. */
void open_or_die(Bd *b, int flags, size_t map)
{
	char e[200];
	int rc = bd_open(b, flags);
	if (rc < 0) {
		snprintf(e, sizeof(e), "open %s: %s", g_binder_dev, errno_name(-rc));
		finish(0, e);
	}
	if (map && (rc = bd_mmap(b, map)) < 0) {
		snprintf(e, sizeof(e), "mmap %s: %s", g_binder_dev, errno_name(-rc));
		finish(0, e);
	}
}

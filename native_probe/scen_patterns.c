/* binder-probe: usage patterns at binder's edges.
 *
 *   cm_self freeze=0|1             the context manager acting on its own handle 0 (with freeze=1
 *                                  also BC_REQUEST/CLEAR_FREEZE_NOTIFICATION, Linux 6.12 on)
 *
 * proc_view lines: what binder's proc/PID file lists for a process at a checkpoint
 * (print_binder_proc): every line as printed, parsed by harness/evidence/debugfs.py.
 */
#include "probe.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ------------------------------------------------------------ proc_view */

/* Append every line of `path` to a JSON array, as printed (indentation kept: it says whose list
 * an entry is in), and "truncated":true when the file did not fit in one output line. */
static void jlines(J *j, const char *k, const char *path)
{
	char t[12288];
	char line[512], q[600];
	size_t o = 0;
	int cut = 0;
	FILE *f = fopen(path, "re");
	t[o++] = '[';
	if (f) {
		while (fgets(line, sizeof(line), f)) {
			size_t n = strlen(line);
			if (n && line[n - 1] == '\n')
				line[n - 1] = 0;
			json_quote(q, sizeof(q), line);
			if (o + strlen(q) + 4 >= sizeof(t)) {
				cut = 1;
				break;
			}
			o += (size_t)snprintf(t + o, sizeof(t) - o, "%s%s", o > 1 ? "," : "", q);
		}
		fclose(f);
	}
	t[o++] = ']';
	t[o] = 0;
	jraw(j, k, t);
	jbool(j, "truncated", cut);
}

/* {"ev":"proc_view","at":AT,"who":WHO,"proc":PID,"exists":bool,"lines":[..],"truncated":bool}
 * from binder_log_path("proc/PID"). */
void print_proc_view(const char *at, const char *who, pid_t pid)
{
	char path[256];
	J j;
	binder_log_path(path, sizeof(path), "proc/%d", (int)pid);
	jbegin(&j, EV_PROC_VIEW);
	jstr(&j, "at", at);
	jstr(&j, "who", who);
	ji64(&j, "proc", pid);
	jbool(&j, "exists", access(path, R_OK) == 0);
	jlines(&j, "lines", path); /* the whole file: harness/evidence/debugfs.py parse_proc_view */
	jend(&j);
}

/* ------------------------------------------------------------- cm_self */

/* Read what comes within `ms` (BR_NOOP skipped) into brs. */
static int drain(Bd *b, uint32_t *brs, int ms)
{
	int n = 0;
	Br br;
	while (bd_next(b, &br, ms) == 1)
		if (n < CALL_MAX_BR)
			brs[n++] = br.cmd;
	return n;
}

/* One command on handle 0, alone in the write buffer: the ioctl's errno, write_consumed, and
 * the BRs a read finds afterwards. */
static void cm_cmd(Bd *b, const char *name, uint32_t cmd, int with_cookie)
{
	uint8_t buf[16];
	uint32_t zero = 0, brs[CALL_MAX_BR];
	binder_uintptr_t cookie = DEATH_COOKIE;
	size_t len = 8, consumed = 0;
	int rc, n;
	J j;
	memcpy(buf, &cmd, 4);
	memcpy(buf + 4, &zero, 4);
	if (with_cookie) {
		memcpy(buf + 8, &cookie, 8);
		len = 16;
	}
	rc = bd_write(b, buf, len, &consumed);
	n = drain(b, brs, 50);
	jresult(&j, name, rc < 0 && rc != -EPROTO ? -rc : 0);
	ju64(&j, "write_size", len);
	ju64(&j, "write_consumed", consumed);
	jbrs(&j, "br", brs, n);
	jend(&j);
}

static void cm_call(Bd *b, const char *name, uint32_t flags)
{
	uint8_t data[16];
	CallRes r;
	J j;
	pattern_fill(data, sizeof(data), 0);
	bd_call(b, 0, 1, flags, (uintptr_t)data, sizeof(data), 0, 0, &r, 3000);
	jresult(&j, name, r.write_err);
	jcall(&j, &r);
	jend(&j);
	if (r.have_reply)
		bd_free(b, r.reply.data.ptr.buffer);
}

void scen_cm_self(void)
{
	Bd b;
	int rc;
	J j;
	struct binder_node_info_for_ref info;
	uint64_t freeze = arg_u64("freeze", 0);
	args_finish();
	open_or_die(&b, O_NONBLOCK, 1048576);
	rc = bd_set_context_mgr(&b, 3000);
	jresult(&j, "cm_self.set_context_mgr", -rc);
	jend(&j);
	if (rc < 0)
		finish(0, "BINDER_SET_CONTEXT_MGR failed");
	rc = bd_cmd0(&b, BC_ENTER_LOOPER);
	if (rc < 0)
		finish(0, "BC_ENTER_LOOPER failed");
	print_proc_view("start", "manager", getpid());
	cm_cmd(&b, "cm_self.increfs", BC_INCREFS, 0);
	cm_cmd(&b, "cm_self.acquire", BC_ACQUIRE, 0);
	cm_cmd(&b, "cm_self.release", BC_RELEASE, 0);
	cm_cmd(&b, "cm_self.decrefs", BC_DECREFS, 0);
	cm_cmd(&b, "cm_self.request_death", BC_REQUEST_DEATH_NOTIFICATION, 1);
	cm_cmd(&b, "cm_self.clear_death", BC_CLEAR_DEATH_NOTIFICATION, 1);
	if (freeze) { /* Linux 6.12 on: freeze notifications */
		cm_cmd(&b, "cm_self.request_freeze", BC_REQUEST_FREEZE_NOTIFICATION, 1);
		cm_cmd(&b, "cm_self.clear_freeze", BC_CLEAR_FREEZE_NOTIFICATION, 1);
	}
	cm_call(&b, "cm_self.call", 0);
	cm_call(&b, "cm_self.oneway", TF_ONE_WAY);
	memset(&info, 0, sizeof(info));
	info.handle = 0;
	rc = ioctl(b.fd, BINDER_GET_NODE_INFO_FOR_REF, &info);
	jresult(&j, "cm_self.node_info_for_ref", rc < 0 ? errno : 0);
	jend(&j);
	print_proc_view("end", "manager", getpid());
	bd_close(&b);
	finish(1, NULL);
}

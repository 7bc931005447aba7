/*
 * A resident context manager, standing in for Android's servicemanager, and a
 * client that pings it.
 *
 * resident device=PATH: open and mmap the device, become its context manager
 * (BINDER_SET_CONTEXT_MGR, binder_ioctl_set_ctx_mgr), enter the looper and answer
 * every synchronous transaction with an empty BC_REPLY, freeing each buffer, until
 * killed. It prints one "result" line (resident.ready) once it owns the context,
 * then nothing: it runs without the probe's time limit.
 *
 * ping_cm device=PATH: a PING_TRANSACTION to handle 0 of that device; ok when a
 * BR_REPLY comes back (binder_transaction -> the context manager's node).
 */
#include "probe.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define RESIDENT_MAP (128 * 1024)

void scen_resident(void)
{
	Bd b;
	Br br;
	J j;
	char e[200];
	int rc;
	args_finish();
	open_or_die(&b, 0, RESIDENT_MAP);
	rc = bd_set_context_mgr(&b, 0);
	jresult(&j, "resident.ready", rc < 0 ? -rc : 0);
	jstr(&j, "device", g_binder_dev);
	ju64(&j, "pid", (uint64_t)getpid());
	jend(&j);
	if (rc < 0) {
		snprintf(e, sizeof(e), "BINDER_SET_CONTEXT_MGR on %s: %s", g_binder_dev, errno_name(-rc));
		finish(0, e);
	}
	if ((rc = bd_cmd0(&b, BC_ENTER_LOOPER)) < 0) {
		snprintf(e, sizeof(e), "BC_ENTER_LOOPER: %s", errno_name(-rc));
		finish(0, e);
	}
	fflush(stdout);
	alarm(0); /* resident: no time limit */
	for (;;) {
		rc = bd_next(&b, &br, 60000);
		if (rc < 0) {
			snprintf(e, sizeof(e), "read: %s", errno_name(-rc));
			finish(0, e);
		}
		if (rc == 0)
			continue;
		switch (br.cmd) {
		case BR_TRANSACTION:
		case BR_TRANSACTION_SEC_CTX:
			bd_free(&b, br.u.tr.data.ptr.buffer);
			if (!(br.u.tr.flags & TF_ONE_WAY))
				bd_send(&b, BC_REPLY, 0, br.u.tr.code, 0, 0, 0, 0, 0);
			break;
		case BR_INCREFS:
		case BR_ACQUIRE:
			bd_ack_refcount(&b, &br);
			break;
		default:
			break;
		}
	}
}

void scen_ping_cm(void)
{
	Bd b;
	CallRes r;
	J j;
	args_finish();
	open_or_die(&b, 0, RESIDENT_MAP);
	bd_call(&b, 0, PING_TRANSACTION, 0, 0, 0, 0, 0, &r, 5000);
	jresult(&j, "ping_cm", r.write_err < 0 ? -r.write_err : 0);
	jstr(&j, "device", g_binder_dev);
	jstr(&j, "status", r.status);
	jbool(&j, "reply", r.have_reply);
	jend(&j);
	if (r.have_reply)
		bd_free(&b, r.reply.data.ptr.buffer);
	finish(r.have_reply, r.have_reply ? NULL : "no BR_REPLY from the context manager");
}

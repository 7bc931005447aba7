/* binder-probe: looper threads and wakeups.
 *
 *   loopers max_threads=N calls=4   BR_SPAWN_LOOPER against BINDER_SET_MAX_THREADS(N); looper states
 *   poll_work                       poll/epoll on process work and on the thread's own work
 *
 * Threads are pthreads sharing the process's binder fd: each is its own
 * binder_thread (binder_get_thread keys them by task pid).
 */
#include "probe.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static pid_t my_tid(void)
{
	return (pid_t)syscall(SYS_gettid);
}

/* The looper bits debugfs shows for thread `tid` of process `pid`: the
 * "thread TID: l XX" line of binder/proc/PID; -1 when not found. */
static long looper_state(pid_t pid, pid_t tid)
{
	char path[256], line[256];
	long v = -1;
	FILE *f;
	binder_log_path(path, sizeof(path), "proc/%d", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		int t;
		unsigned l;
		if (sscanf(line, " thread %d: l %x", &t, &l) == 2 && t == tid) {
			v = (long)l;
			break;
		}
	}
	fclose(f);
	return v;
}

/* ------------------------------------------------------------- loopers */

struct looper_job {
	Bd *b;
	const char *name;
	uint32_t cmds[2];
	int ncmds;
	int thread_exit;       /* BINDER_THREAD_EXIT before returning */
	long state;            /* looper bits after the commands */
	int err;
};

static void *looper_thread(void *arg)
{
	struct looper_job *jb = arg;
	jb->err = 0;
	for (int i = 0; i < jb->ncmds && !jb->err; i++)
		jb->err = -bd_cmd0(jb->b, jb->cmds[i]);
	jb->state = looper_state(getpid(), my_tid());
	if (jb->thread_exit) {
		int32_t zero = 0;
		ioctl(jb->b->fd, BINDER_THREAD_EXIT, &zero);
	}
	return NULL;
}

static void run_looper_job(struct looper_job *jb)
{
	pthread_t t;
	if (pthread_create(&t, NULL, looper_thread, jb) || pthread_join(t, NULL))
		child_fail("pthread failed");
}

static void print_job(const struct looper_job *jb)
{
	J j;
	jresult(&j, jb->name, jb->err);
	ji64(&j, "looper", jb->state);
	jend(&j);
}

static uint64_t g_spawns, g_spawn_registered;

/* Each BR_SPAWN_LOOPER: start a thread that does BC_REGISTER_LOOPER and leaves
 * (BINDER_THREAD_EXIT), and wait for it, so the next read sees requested_threads 0. */
static void loopers_on_br(Pair *p, Bd *b, const Br *br)
{
	struct looper_job jb = {b, "loopers.spawned", {BC_REGISTER_LOOPER, 0}, 1, 1, -1, 0};
	(void)p;
	if (br->cmd != BR_SPAWN_LOOPER)
		return;
	g_spawns++;
	run_looper_job(&jb);
	if (!jb.err && jb.state == 0x01)
		g_spawn_registered++;
	else if (g_spawns <= 3)
		print_job(&jb);
}

static uint32_t g_max_threads;

static void loopers_setup(Pair *p, Bd *b)
{
	uint32_t v = g_max_threads;
	J j;
	(void)p;
	jresult(&j, "loopers.set_max_threads", ioctl(b->fd, BINDER_SET_MAX_THREADS, &v) ? errno : 0);
	ju64(&j, "value", g_max_threads);
	jend(&j);
	/* The server's main thread has done BC_ENTER_LOOPER (run_pair). */
	jresult(&j, "loopers.main", 0);
	ji64(&j, "looper", looper_state(getpid(), my_tid()));
	jend(&j);
	{
		struct looper_job jobs[] = {
			{b, "loopers.register_without_request", {BC_REGISTER_LOOPER, 0}, 1, 1, -1, 0},
			{b, "loopers.enter_then_register", {BC_ENTER_LOOPER, BC_REGISTER_LOOPER}, 2, 1, -1, 0},
			{b, "loopers.enter", {BC_ENTER_LOOPER, 0}, 1, 1, -1, 0},
			{b, "loopers.enter_exit", {BC_ENTER_LOOPER, BC_EXIT_LOOPER}, 2, 1, -1, 0},
		};
		for (size_t i = 0; i < sizeof(jobs) / sizeof(jobs[0]); i++) {
			run_looper_job(&jobs[i]);
			print_job(&jobs[i]);
		}
	}
}

static void loopers_post(Pair *p, Bd *b)
{
	J j;
	(void)p;
	jbegin(&j, EV_SPAWN_SUMMARY);
	ju64(&j, "max_threads", g_max_threads);
	ju64(&j, "spawn_loopers", g_spawns);
	ju64(&j, "spawned_registered", g_spawn_registered);
	ju64(&j, "reads_with_data", b->reads);
	ju64(&j, "reads_not_starting_with_noop", b->reads_without_noop);
	jend(&j);
}

static uint64_t g_calls;

static int loopers_client(Pair *p, Bd *b)
{
	(void)p;
	for (uint64_t i = 0; i < g_calls; i++) {
		CallRes r;
		bd_call(b, 0, (uint32_t)i + 1, 0, 0, 0, 0, 0, &r, 5000);
		if (strcmp(r.status, "ok")) {
			snprintf(p->err, sizeof(p->err), "call %llu: %s", (unsigned long long)i, r.status);
			return -1;
		}
		if (r.have_reply)
			bd_free(b, r.reply.data.ptr.buffer);
	}
	return 0;
}

void scen_loopers(void)
{
	Pair p;
	g_max_threads = (uint32_t)arg_u64("max_threads", 0);
	g_calls = arg_u64("calls", 4);
	args_finish();
	memset(&p, 0, sizeof(p));
	p.server_map = p.client_map = 1048576;
	p.server_free = 1;
	p.ctl_fd = -1;
	p.server_quiet = 1;
	p.server_setup = loopers_setup;
	p.server_post = loopers_post;
	p.on_br = loopers_on_br;
	p.client = loopers_client;
	run_pair(&p);
}

/* ----------------------------------------------------------- poll_work */

static int poll_now(int fd, int timeout_ms, uint64_t *elapsed_ms)
{
	struct pollfd pf = {fd, POLLIN, 0};
	uint64_t t0 = now_ms();
	int r = poll(&pf, 1, timeout_ms);
	if (elapsed_ms)
		*elapsed_ms = now_ms() - t0;
	return r > 0 ? (int)pf.revents : r;
}

static void print_poll(const char *name, int revents, uint64_t elapsed, long looper)
{
	J j;
	jresult(&j, name, revents < 0 ? errno : 0);
	jbool(&j, "pollin", revents > 0 && (revents & POLLIN));
	ji64(&j, "revents", revents < 0 ? -1 : revents);
	ju64(&j, "elapsed_ms", elapsed);
	ji64(&j, "looper", looper);
	jend(&j);
}

/* Read everything queued right now (nonblocking) and list the BRs. */
static void print_drain(Bd *b, const char *name, binder_uintptr_t *last_buf)
{
	uint32_t brs[CALL_MAX_BR];
	int n = 0;
	Br br;
	J j;
	while (bd_next(b, &br, 50) > 0) {
		if (n < CALL_MAX_BR)
			brs[n++] = br.cmd;
		if ((br.cmd == BR_TRANSACTION || br.cmd == BR_REPLY) && last_buf)
			*last_buf = br.u.tr.data.ptr.buffer;
	}
	jresult(&j, name, 0);
	jbrs(&j, "br", brs, n);
	jend(&j);
}

struct fresh_poll {
	int fd;
	int revents;
	long state;
};

static void *fresh_thread(void *arg)
{
	struct fresh_poll *fp = arg;
	fp->revents = poll_now(fp->fd, 0, NULL);
	fp->state = looper_state(getpid(), my_tid());
	return NULL;
}

static void say(int fd, char c)
{
	if (write(fd, &c, 1) != 1)
		_exit(3);
}

static char hear(int fd)
{
	char c = 0;
	if (read(fd, &c, 1) != 1)
		return 0;
	return c;
}

static int wait_asleep(pid_t pid, pid_t tid);

/* The sender: waits for a letter, does that step, answers '.'. */
static void poll_sender(int in, int out)
{
	Bd b;
	char c;
	if (bd_open(&b, O_NONBLOCK) < 0 || bd_mmap(&b, 1048576) < 0)
		child_fail("sender open/mmap failed");
	while ((c = hear(in)) != 0) {
		uint8_t payload[8] = {1, 2, 3, 4, 5, 6, 7, 8};
		if (c == 'o' || c == 's') {
			/* write only (read_size 0), then poll our own fd, then read */
			int rc = bd_send(&b, BC_TRANSACTION, 0, 7, c == 'o' ? TF_ONE_WAY : 0,
					 (uintptr_t)payload, sizeof(payload), 0, 0);
			int rev = poll_now(b.fd, 0, NULL);
			J j;
			jresult(&j, c == 'o' ? "poll.sender_after_oneway_write" : "poll.sender_after_sync_write",
				rc < 0 ? -rc : 0);
			jbool(&j, "pollin", rev > 0 && (rev & POLLIN));
			jend(&j);
			if (c == 'o') {
				print_drain(&b, "poll.sender_read_after_oneway", NULL);
				rev = poll_now(b.fd, 0, NULL);
				jresult(&j, "poll.sender_after_read", 0);
				jbool(&j, "pollin", rev > 0 && (rev & POLLIN));
				jend(&j);
			}
		} else if (c == 'l') {
			/* sent once the receiver sleeps in poll (its /proc stat S), not after a clock */
			int seen = wait_asleep(getppid(), getppid());
			int rc = bd_send(&b, BC_TRANSACTION, 0, 8, TF_ONE_WAY, (uintptr_t)payload,
					 sizeof(payload), 0, 0);
			J j;
			jresult(&j, "poll.late_oneway", rc < 0 ? -rc : 0);
			jbool(&j, "saw_receiver_asleep", seen);
			jend(&j);
			print_drain(&b, "poll.sender_read_after_late_oneway", NULL);
		} else if (c == 'r') {
			/* the sync call's reply: poll shows it, then read it */
			binder_uintptr_t buf = 0;
			uint64_t el;
			int rev = poll_now(b.fd, 3000, &el);
			print_poll("poll.sender_reply", rev, el, -1);
			print_drain(&b, "poll.sender_read_reply", &buf);
			if (buf)
				bd_free(&b, buf);
		}
		say(out, '.');
	}
	bd_close(&b);
	_exit(0);
}

void scen_poll_work(void)
{
	int to_s[2], from_s[2], ep;
	Bd b;
	pid_t pid;
	uint64_t el;
	binder_uintptr_t buf = 0;
	struct binder_version v;
	struct epoll_event ev, got[2];
	int st;
	args_finish();
	if (pipe2(to_s, O_CLOEXEC) || pipe2(from_s, O_CLOEXEC))
		finish(0, "pipe failed");
	pid = fork_child();
	if (pid == 0) {
		close(to_s[1]);
		close(from_s[0]);
		poll_sender(to_s[0], from_s[1]);
	}
	close(to_s[0]);
	close(from_s[1]);
	if (bd_open(&b, O_NONBLOCK) < 0 || bd_mmap(&b, 1048576) < 0 || bd_set_context_mgr(&b, 3000) < 0) {
		kill(pid, SIGKILL);
		finish(0, "receiver setup failed");
	}
	ioctl(b.fd, BINDER_VERSION, &v);  /* any ioctl clears looper_need_return */

	print_poll("poll.idle", poll_now(b.fd, 0, NULL), 0, looper_state(getpid(), my_tid()));
	/* the sender's own work */
	say(to_s[1], 'o');
	hear(from_s[0]);
	print_proc_view("oneway_queued", "receiver", getpid());
	print_proc_view("oneway_queued", "sender", pid);
	/* process work while this thread is not a looper */
	print_poll("poll.proc_work_not_looper", poll_now(b.fd, 0, NULL), 0,
		   looper_state(getpid(), my_tid()));
	bd_cmd0(&b, BC_ENTER_LOOPER);
	print_poll("poll.proc_work_looper", poll_now(b.fd, 0, NULL), 0,
		   looper_state(getpid(), my_tid()));
	ep = epoll_create1(EPOLL_CLOEXEC);
	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN;
	ev.data.u32 = 7;
	{
		J j;
		int r = epoll_ctl(ep, EPOLL_CTL_ADD, b.fd, &ev);
		jresult(&j, "poll.epoll_ctl_add", r ? errno : 0);
		jend(&j);
		r = epoll_wait(ep, got, 2, 0);
		jresult(&j, "poll.epoll_proc_work", r < 0 ? errno : 0);
		ji64(&j, "events", r);
		jbool(&j, "epollin", r == 1 && (got[0].events & EPOLLIN));
		jend(&j);
	}
	print_drain(&b, "poll.read_proc_work", &buf);
	if (buf)
		bd_free(&b, buf);
	print_poll("poll.after_read", poll_now(b.fd, 0, NULL), 0, -1);
	{
		J j;
		int r = epoll_wait(ep, got, 2, 0);
		jresult(&j, "poll.epoll_after_read", r < 0 ? errno : 0);
		ji64(&j, "events", r);
		jend(&j);
	}
	/* a thread whose first binder call is poll(): looper_need_return is still set */
	{
		struct fresh_poll fp = {b.fd, 0, -1};
		pthread_t t;
		if (pthread_create(&t, NULL, fresh_thread, &fp) == 0 && pthread_join(t, NULL) == 0)
			print_poll("poll.fresh_thread", fp.revents, 0, fp.state);
	}
	/* a blocking poll is woken by a oneway sent while it sleeps */
	say(to_s[1], 'l');
	{
		int rev = poll_now(b.fd, 3000, &el);
		print_poll("poll.wakeup", rev, el, -1);
	}
	{
		J j;
		int r = epoll_wait(ep, got, 2, 0);
		jresult(&j, "poll.epoll_wakeup", r < 0 ? errno : 0);
		ji64(&j, "events", r);
		jend(&j);
	}
	hear(from_s[0]);
	buf = 0;
	print_drain(&b, "poll.read_wakeup", &buf);
	if (buf)
		bd_free(&b, buf);
	/* a sync write: its BR_TRANSACTION_COMPLETE is deferred, so no POLLIN for the sender */
	say(to_s[1], 's');
	hear(from_s[0]);
	print_proc_view("sync_queued", "receiver", getpid());
	print_proc_view("sync_queued", "sender", pid);
	buf = 0;
	print_drain(&b, "poll.read_sync", &buf);
	print_proc_view("sync_held", "receiver", getpid());
	print_proc_view("sync_held", "sender", pid);
	if (buf)
		bd_free(&b, buf);
	bd_send(&b, BC_REPLY, 0, 7, 0, 0, 0, 0, 0);
	print_drain(&b, "poll.read_after_reply", NULL);
	say(to_s[1], 'r');
	hear(from_s[0]);
	close(to_s[1]);
	waitpid(pid, &st, 0);
	g_child = -1;
	close(ep);
	bd_close(&b);
	finish(WIFEXITED(st) && WEXITSTATUS(st) == 0, "sender failed");
}

/* ------------------------------------------------------- epoll_looper */

/* Wait (bounded, 3 s) until task `tid` of `pid` sleeps ('S' in its stat):
 * the looper is then blocked in epoll_wait, the only place it can sleep. */
static int wait_asleep(pid_t pid, pid_t tid)
{
	uint64_t deadline = now_ms() + 3000;
	char wpath[64];
	snprintf(wpath, sizeof(wpath), "/proc/%d/task/%d/wchan", (int)pid, (int)tid);
	while (now_ms() < deadline) {
		if (task_state(pid, tid) == 'S') {
			/* asleep in poll or epoll (wchan do_sys_poll, poll_schedule_timeout,
			 * ep_poll), not in some other wait; a kernel that names no wchan
			 * (no kallsyms: "0") is taken at its state alone */
			char wchan[128] = "";
			FILE *f = fopen(wpath, "re");
			if (f) {
				if (!fgets(wchan, sizeof(wchan), f))
					wchan[0] = 0;
				fclose(f);
			}
			if (strstr(wchan, "poll") || !wchan[0] || !strcmp(wchan, "0"))
				return 1;
		}
		sleep_ms(1);
	}
	return 0;
}

static void print_ewait(const char *name, int ep, int timeout_ms)
{
	struct epoll_event got[2];
	uint64_t t0 = now_ms();
	int r = epoll_wait(ep, got, 2, timeout_ms);
	J j;
	jresult(&j, name, r < 0 ? errno : 0);
	ji64(&j, "events", r);
	jbool(&j, "epollin", r == 1 && (got[0].events & EPOLLIN));
	ji64(&j, "data", r == 1 ? (int64_t)got[0].data.u32 : -1);
	ju64(&j, "elapsed_ms", now_ms() - t0);
	jend(&j);
}

static void print_asleep(const char *name, int seen, int rc)
{
	J j;
	jresult(&j, name, rc < 0 ? -rc : 0);
	jbool(&j, "saw_looper_asleep", seen);
	jend(&j);
}

/* The other process: 'o' sends the looper (context manager) a oneway that
 * carries its own node; 'r' answers the looper's sync call. */
static void elooper_peer(int in, int out, pid_t looper)
{
	Bd b;
	Br br;
	char c;
	if (bd_open(&b, O_NONBLOCK) < 0 || bd_mmap(&b, 1048576) < 0)
		child_fail("peer open/mmap failed");
	/* a looper too, so its reads for process work are no user error */
	bd_cmd0(&b, BC_ENTER_LOOPER);
	while ((c = hear(in)) != 0) {
		if (c == 'o') {
			struct flat_binder_object fbo;
			binder_size_t off = 0;
			int seen, rc;
			memset(&fbo, 0, sizeof(fbo));
			fbo.hdr.type = BINDER_TYPE_BINDER;
			fbo.binder = 0x1234;
			fbo.cookie = 0x5678;
			seen = wait_asleep(looper, looper);
			rc = bd_send(&b, BC_TRANSACTION, 0, 1, TF_ONE_WAY, (uintptr_t)&fbo, sizeof(fbo),
				     (uintptr_t)&off, sizeof(off));
			print_asleep("epoll_looper.peer_oneway", seen, rc);
			while (bd_next(&b, &br, 50) > 0)
				;
		} else if (c == 'r') {
			binder_uintptr_t sync_buf = 0;
			int seen, rc;
			while (!sync_buf && bd_next(&b, &br, 3000) > 0) {
				if (br.cmd != BR_TRANSACTION)
					continue;
				if (br.u.tr.flags & TF_ONE_WAY)
					bd_free(&b, br.u.tr.data.ptr.buffer);
				else
					sync_buf = br.u.tr.data.ptr.buffer;
			}
			seen = wait_asleep(looper, looper);
			rc = sync_buf ? bd_send(&b, BC_REPLY, 0, 2, 0, 0, 0, 0, 0) : -ENOMSG;
			print_asleep("epoll_looper.peer_reply", seen, rc);
			if (sync_buf)
				bd_free(&b, sync_buf);
			while (bd_next(&b, &br, 50) > 0)
				;
		}
		say(out, '.');
	}
	bd_close(&b);
	_exit(0);
}

struct elooper_thread {
	Bd b;          /* a copy sharing the looper's fd: this thread only writes */
	uint32_t handle;
	pid_t looper;
	int seen, rc;
};

/* Another thread of the looper's process (not a looper): request and clear a
 * death notification, write only; the CLEAR_DEATH_NOTIFICATION_DONE goes to
 * the process's todo. */
static void *elooper_other_thread(void *arg)
{
	struct elooper_thread *t = arg;
	t->seen = wait_asleep(t->looper, t->looper);
	t->rc = bd_cmd_hc(&t->b, BC_REQUEST_DEATH_NOTIFICATION, t->handle, 0x77);
	if (t->rc >= 0)
		t->rc = bd_cmd_hc(&t->b, BC_CLEAR_DEATH_NOTIFICATION, t->handle, 0x77);
	return NULL;
}

/* Read everything queued now; the first BR_TRANSACTION's first object's handle. */
static void drain_handle(Bd *b, const char *name, uint32_t *handle)
{
	uint32_t brs[CALL_MAX_BR];
	int n = 0;
	Br br;
	J j;
	binder_uintptr_t buf = 0;
	while (bd_next(b, &br, 50) > 0) {
		if (n < CALL_MAX_BR)
			brs[n++] = br.cmd;
		if (br.cmd == BR_TRANSACTION || br.cmd == BR_REPLY) {
			if (handle && br.u.tr.offsets_size >= sizeof(binder_size_t)) {
				binder_size_t off = *(binder_size_t *)(uintptr_t)br.u.tr.data.ptr.offsets;
				const struct flat_binder_object *f =
					(const void *)(uintptr_t)(br.u.tr.data.ptr.buffer + off);
				if (f->hdr.type == BINDER_TYPE_HANDLE) {
					*handle = f->handle;
					/* keep the ref past the buffer's release, as a Parcel does */
					bd_cmd_u32(b, BC_ACQUIRE, f->handle);
				}
			}
			buf = br.u.tr.data.ptr.buffer;
		}
	}
	if (buf)
		bd_free(b, buf);
	jresult(&j, name, 0);
	jbrs(&j, "br", brs, n);
	jend(&j);
}

void scen_epoll_looper(void)
{
	int to_p[2], from_p[2], ep, st;
	Bd b;
	pid_t pid, me = getpid();
	uint32_t handle = 0xffffffff;
	uint8_t payload[8] = {1, 2, 3, 4, 5, 6, 7, 8};
	struct epoll_event ev;
	args_finish();
	if (pipe2(to_p, O_CLOEXEC) || pipe2(from_p, O_CLOEXEC))
		finish(0, "pipe failed");
	pid = fork_child();
	if (pid == 0) {
		close(to_p[1]);
		close(from_p[0]);
		elooper_peer(to_p[0], from_p[1], me);
	}
	close(to_p[0]);
	close(from_p[1]);
	if (bd_open(&b, O_NONBLOCK) < 0 || bd_mmap(&b, 1048576) < 0 || bd_set_context_mgr(&b, 3000) < 0) {
		kill(pid, SIGKILL);
		finish(0, "looper setup failed");
	}
	/* the looper: BC_ENTER_LOOPER, the fd registered with epoll once */
	{
		J j;
		int rc = bd_cmd0(&b, BC_ENTER_LOOPER), r;
		ep = epoll_create1(EPOLL_CLOEXEC);
		memset(&ev, 0, sizeof(ev));
		ev.events = EPOLLIN;
		ev.data.u32 = 7;
		r = epoll_ctl(ep, EPOLL_CTL_ADD, b.fd, &ev);
		jresult(&j, "epoll_looper.register", rc < 0 ? -rc : (r ? errno : 0));
		ji64(&j, "looper", looper_state(me, my_tid()));
		jend(&j);
	}
	print_ewait("epoll_looper.idle", ep, 0);
	/* (1) from another process: a oneway to the context manager, carrying a node */
	say(to_p[1], 'o');
	print_ewait("epoll_looper.from_process", ep, 3000);
	hear(from_p[0]);
	drain_handle(&b, "epoll_looper.read_from_process", &handle);
	print_ewait("epoll_looper.after_read_process", ep, 0);
	/* (2) from another thread of this process */
	{
		struct elooper_thread t;
		pthread_t th;
		memset(&t, 0, sizeof(t));
		t.b = b;
		t.handle = handle;
		t.looper = me;
		t.rc = -EINVAL;
		if (pthread_create(&th, NULL, elooper_other_thread, &t) == 0) {
			print_ewait("epoll_looper.from_thread", ep, 3000);
			pthread_join(th, NULL);
		}
		print_asleep("epoll_looper.thread_clear_death", t.seen, t.rc);
	}
	drain_handle(&b, "epoll_looper.read_from_thread", NULL);
	print_ewait("epoll_looper.after_read_thread", ep, 0);
	/* (3) the looper's own write-only calls (read_size 0) */
	{
		J j;
		int rc = bd_send(&b, BC_TRANSACTION, handle, 3, TF_ONE_WAY, (uintptr_t)payload,
				 sizeof(payload), 0, 0);
		jresult(&j, "epoll_looper.own_oneway_write", rc < 0 ? -rc : 0);
		jend(&j);
	}
	print_ewait("epoll_looper.own_oneway", ep, 3000);
	drain_handle(&b, "epoll_looper.read_own_oneway", NULL);
	print_ewait("epoll_looper.after_read_own", ep, 0);
	{
		J j;
		int rc = bd_send(&b, BC_TRANSACTION, handle, 4, 0, (uintptr_t)payload, sizeof(payload), 0, 0);
		jresult(&j, "epoll_looper.own_sync_write", rc < 0 ? -rc : 0);
		jend(&j);
	}
	print_ewait("epoll_looper.own_sync", ep, 0);
	say(to_p[1], 'r');
	print_ewait("epoll_looper.reply", ep, 3000);
	hear(from_p[0]);
	drain_handle(&b, "epoll_looper.read_reply", NULL);
	print_ewait("epoll_looper.after_read_reply", ep, 0);
	bd_cmd_u32(&b, BC_RELEASE, handle);
	close(to_p[1]);
	waitpid(pid, &st, 0);
	g_child = -1;
	close(ep);
	bd_close(&b);
	finish(WIFEXITED(st) && WEXITSTATUS(st) == 0, "peer failed");
}

/* binder-probe: the other IPC mechanisms of the seed articles' table.
 *
 *   ipc via=posix_mq|sysv_mq|shm sizes=1024,4096,8192
 *
 * The parent writes each payload (pattern seq i), the child reads it and
 * checks it: through a POSIX message queue (mq_send/mq_receive), a System V
 * message queue (msgsnd/msgrcv), or a MAP_SHARED anonymous mapping made before
 * fork, handed over with flags in the mapping itself (no syscall moves data).
 * The reader keeps its verdicts in memory and prints them after the exchange,
 * so that nothing else is written while it runs.  Message sizes are at most
 * 8192 (the default msgsize_max and msgmax).
 */
#include "probe.h"

#include <errno.h>
#include <fcntl.h>
#include <mqueue.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/msg.h>
#include <sys/wait.h>
#include <unistd.h>

#define IPC_MAX_SIZES 8
#define IPC_MAX_MSG 8192

struct shm_area {
	volatile uint32_t ready;   /* writer: payload i+1 is in data */
	volatile uint32_t done;    /* reader: payload i+1 checked */
	uint8_t pad[56];
	uint8_t data[IPC_MAX_MSG];
};

struct sysv_msg {
	long mtype;
	uint8_t mtext[IPC_MAX_MSG];
};

static void wait_for(volatile uint32_t *flag, uint32_t value)
{
	uint64_t deadline = now_ms() + 10000;
	while (__atomic_load_n(flag, __ATOMIC_ACQUIRE) != value) {
		if (now_ms() > deadline)
			_exit(4);
		sched_yield();
	}
}

void scen_ipc(void)
{
	uint64_t sizes[IPC_MAX_SIZES];
	int n, st = 0, kind;
	const char *via;
	char mq_name[64];
	mqd_t mq = (mqd_t)-1;
	int msqid = -1;
	struct shm_area *shm = NULL;
	static struct sysv_msg m;
	static uint8_t buf[IPC_MAX_MSG];
	pid_t pid;
	J j;

	n = arg_list("sizes", "1024,4096,8192", sizes, IPC_MAX_SIZES);
	via = arg_str("via", "posix_mq");
	args_finish();
	for (int i = 0; i < n; i++)
		if (sizes[i] == 0 || sizes[i] > IPC_MAX_MSG)
			usage_error("sizes must be in 1..%d", IPC_MAX_MSG);
	if (!strcmp(via, "posix_mq")) {
		struct mq_attr a;
		memset(&a, 0, sizeof(a));
		a.mq_maxmsg = 2;
		a.mq_msgsize = IPC_MAX_MSG;
		kind = 0;
		snprintf(mq_name, sizeof(mq_name), "/binder-probe-%d", (int)getpid());
		mq = mq_open(mq_name, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600, &a);
		if (mq == (mqd_t)-1) {
			char e[120];
			snprintf(e, sizeof(e), "mq_open: %s", errno_name(errno));
			finish(0, e);
		}
		mq_unlink(mq_name);
	} else if (!strcmp(via, "sysv_mq")) {
		kind = 1;
		msqid = msgget(IPC_PRIVATE, IPC_CREAT | 0600);
		if (msqid < 0) {
			char e[120];
			snprintf(e, sizeof(e), "msgget: %s", errno_name(errno));
			finish(0, e);
		}
	} else if (!strcmp(via, "shm")) {
		kind = 2;
		shm = mmap(NULL, sizeof(*shm), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
		if (shm == MAP_FAILED)
			finish(0, "mmap MAP_SHARED failed");
		memset(shm, 0, sizeof(*shm));  /* fault the pages in before the exchange */
	} else {
		usage_error("argument via: '%s' is not posix_mq|sysv_mq|shm", via);
	}

	pid = fork_child();
	if (pid == 0) {
		int64_t bad[IPC_MAX_SIZES];
		int64_t got[IPC_MAX_SIZES];
		set_phase("ipc reader");
		for (int i = 0; i < n; i++) {
			const uint8_t *p = buf;
			ssize_t r;
			if (kind == 0) {
				r = mq_receive(mq, (char *)buf, IPC_MAX_MSG, NULL);
			} else if (kind == 1) {
				r = msgrcv(msqid, &m, IPC_MAX_MSG, 0, 0);
				p = m.mtext;
			} else {
				wait_for(&shm->ready, (uint32_t)i + 1);
				r = (ssize_t)sizes[i];
				p = shm->data;
			}
			got[i] = r;
			bad[i] = r == (ssize_t)sizes[i] ? pattern_check(p, (size_t)r, (uint64_t)i) : -2;
			if (kind == 2)
				__atomic_store_n(&shm->done, (uint32_t)i + 1, __ATOMIC_RELEASE);
		}
		for (int i = 0; i < n; i++) {
			jbegin(&j, EV_STREAM);
			jstr(&j, "via", via);
			ji64(&j, "seq", i);
			ju64(&j, "size", sizes[i]);
			ji64(&j, "received", got[i]);
			jbool(&j, "pattern_ok", bad[i] == -1);
			ji64(&j, "first_bad", bad[i]);
			jend(&j);
		}
		_exit(0);
	}
	jbegin(&j, EV_ROLES);
	ji64(&j, "writer_pid", getpid());
	ji64(&j, "reader_pid", pid);
	jend(&j);
	set_phase("ipc writer");
	for (int i = 0; i < n; i++) {
		int rc = 0;
		if (kind == 0) {
			pattern_fill(buf, (size_t)sizes[i], (uint64_t)i);
			rc = mq_send(mq, (const char *)buf, (size_t)sizes[i], 0);
		} else if (kind == 1) {
			m.mtype = 1;
			pattern_fill(m.mtext, (size_t)sizes[i], (uint64_t)i);
			rc = msgsnd(msqid, &m, (size_t)sizes[i], 0);
		} else {
			pattern_fill(shm->data, (size_t)sizes[i], (uint64_t)i);
			__atomic_store_n(&shm->ready, (uint32_t)i + 1, __ATOMIC_RELEASE);
			wait_for(&shm->done, (uint32_t)i + 1);
		}
		if (rc) {
			char e[120];
			snprintf(e, sizeof(e), "%s send %d: %s", via, i, errno_name(errno));
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			finish(0, e);
		}
	}
	set_phase("waiting for reader");
	waitpid(pid, &st, 0);
	g_child = -1;
	if (kind == 0)
		mq_close(mq);
	else if (kind == 1)
		msgctl(msqid, IPC_RMID, NULL);
	if (!WIFEXITED(st) || WEXITSTATUS(st))
		finish(0, "ipc reader failed");
	finish(1, NULL);
}

/* binder-probe: JSON lines, arguments, timeouts and small helpers. */
#include "probe.h"

#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

const char *g_scenario = "?";
const char *g_binder_dev = "/dev/binder"; /* device=PATH: a private binder device */
const char *g_binder_logs = BINDER_LOGS_DEFAULT; /* logs=PATH: binder's log files (probe.h) */

void binder_log_path(char *buf, size_t n, const char *fmt, ...)
{
	va_list ap;
	int o = snprintf(buf, n, "%s/", g_binder_logs);
	if (o < 0 || (size_t)o >= n)
		return;
	va_start(ap, fmt);
	vsnprintf(buf + o, n - (size_t)o, fmt, ap);
	va_end(ap);
}
volatile const char *g_phase = "start";
unsigned g_timeout_s = 20;
pid_t g_child = -1;
int g_is_child;

/* ------------------------------------------------------------------ JSON */

static void jputs(J *j, const char *s)
{
	size_t l = strlen(s);
	if (j->n + l + 4 >= sizeof(j->b))
		l = sizeof(j->b) - j->n - 4;
	memcpy(j->b + j->n, s, l);
	j->n += l;
	j->b[j->n] = 0;
}

size_t json_quote(char *dst, size_t cap, const char *s)
{
	size_t n = 0;
	if (cap < 3)
		return 0;
	dst[n++] = '"';
	for (; *s && n + 8 < cap; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\') {
			dst[n++] = '\\';
			dst[n++] = (char)c;
		} else if (c < 0x20 || c >= 0x7f) {
			n += (size_t)snprintf(dst + n, cap - n, "\\u%04x", c);
		} else {
			dst[n++] = (char)c;
		}
	}
	dst[n++] = '"';
	dst[n] = 0;
	return n;
}

static void jkey(J *j, const char *k)
{
	char q[256];
	if (!j->first)
		jputs(j, ",");
	j->first = 0;
	json_quote(q, sizeof(q), k);
	jputs(j, q);
	jputs(j, ":");
}

void jbegin(J *j, const char *ev)
{
	j->n = 0;
	j->b[0] = 0;
	j->first = 1;
	jputs(j, "{");
	jstr(j, "ev", ev);
	ji64(j, "pid", (int64_t)getpid());
}

void jstr(J *j, const char *k, const char *v)
{
	char q[4096];
	jkey(j, k);
	if (!v) {
		jputs(j, "null");
		return;
	}
	json_quote(q, sizeof(q), v);
	jputs(j, q);
}

void ju64(J *j, const char *k, uint64_t v)
{
	char t[32];
	jkey(j, k);
	snprintf(t, sizeof(t), "%llu", (unsigned long long)v);
	jputs(j, t);
}

void ji64(J *j, const char *k, int64_t v)
{
	char t[32];
	jkey(j, k);
	snprintf(t, sizeof(t), "%lld", (long long)v);
	jputs(j, t);
}

void jbool(J *j, const char *k, int v)
{
	jkey(j, k);
	jputs(j, v ? "true" : "false");
}

void jnull(J *j, const char *k)
{
	jkey(j, k);
	jputs(j, "null");
}

void jraw(J *j, const char *k, const char *raw)
{
	jkey(j, k);
	jputs(j, raw);
}

void jerrno(J *j, int err)
{
	ji64(j, "errno", err);
	jstr(j, "errno_name", err ? errno_name(err) : NULL);
}

static void write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return;
		}
		p += w;
		n -= (size_t)w;
	}
}

void jend(J *j)
{
	jputs(j, "}");
	j->b[j->n++] = '\n';
	write_all(1, j->b, j->n);
}

const char *errno_name(int e)
{
	static const struct {
		int e;
		const char *n;
	} t[] = {
		{EPERM, "EPERM"}, {ENOENT, "ENOENT"}, {ESRCH, "ESRCH"}, {EINTR, "EINTR"},
		{EIO, "EIO"}, {ENXIO, "ENXIO"}, {E2BIG, "E2BIG"}, {EBADF, "EBADF"},
		{ECHILD, "ECHILD"}, {EAGAIN, "EAGAIN"}, {ENOMEM, "ENOMEM"}, {EACCES, "EACCES"},
		{EFAULT, "EFAULT"}, {EBUSY, "EBUSY"}, {EEXIST, "EEXIST"}, {ENODEV, "ENODEV"},
		{ENOTDIR, "ENOTDIR"}, {EISDIR, "EISDIR"}, {EINVAL, "EINVAL"}, {ENFILE, "ENFILE"},
		{EMFILE, "EMFILE"}, {ENOTTY, "ENOTTY"}, {EFBIG, "EFBIG"}, {ENOSPC, "ENOSPC"},
		{ESPIPE, "ESPIPE"}, {EROFS, "EROFS"}, {EPIPE, "EPIPE"}, {ERANGE, "ERANGE"},
		{EDEADLK, "EDEADLK"}, {ENOSYS, "ENOSYS"}, {ENODATA, "ENODATA"}, {ETIME, "ETIME"},
		{EOVERFLOW, "EOVERFLOW"}, {EOPNOTSUPP, "EOPNOTSUPP"}, {ETIMEDOUT, "ETIMEDOUT"},
		{ECONNREFUSED, "ECONNREFUSED"}, {ENOTCONN, "ENOTCONN"}, {EMSGSIZE, "EMSGSIZE"},
	};
	static char buf[16];
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		if (t[i].e == e)
			return t[i].n;
	snprintf(buf, sizeof(buf), "E%d", e);
	return buf;
}

/* ------------------------------------------------------------------ args */

#define MAX_ARGS 32
static struct {
	const char *k, *v;
	int used;
} g_args[MAX_ARGS];
static int g_nargs;

void usage_error(const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "binder-probe: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	exit(2);
}

void args_init(int argc, char **argv)
{
	for (int i = 0; i < argc; i++) {
		char *eq = strchr(argv[i], '=');
		if (!eq || eq == argv[i])
			usage_error("bad argument '%s' (expected key=value)", argv[i]);
		if (g_nargs == MAX_ARGS)
			usage_error("too many arguments");
		*eq = 0;
		for (int k = 0; k < g_nargs; k++)
			if (!strcmp(g_args[k].k, argv[i]))
				usage_error("argument '%s' given twice", argv[i]);
		g_args[g_nargs].k = argv[i];
		g_args[g_nargs].v = eq + 1;
		g_nargs++;
	}
}

const char *arg_str(const char *key, const char *def)
{
	for (int i = 0; i < g_nargs; i++)
		if (!strcmp(g_args[i].k, key)) {
			g_args[i].used = 1;
			return g_args[i].v;
		}
	return def;
}

static uint64_t parse_u64(const char *key, const char *s)
{
	char *end;
	unsigned long long v;
	if (!*s || *s == '-')
		usage_error("argument %s: '%s' is not an unsigned number", key, s);
	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || *end)
		usage_error("argument %s: '%s' is not an unsigned number", key, s);
	return v;
}

uint64_t arg_u64(const char *key, uint64_t def)
{
	const char *s = arg_str(key, NULL);
	return s ? parse_u64(key, s) : def;
}

int arg_list(const char *key, const char *def, uint64_t *out, int max)
{
	const char *s = arg_str(key, def);
	char tmp[1024], *save = NULL, *tok;
	int n = 0;
	if (strlen(s) >= sizeof(tmp))
		usage_error("argument %s too long", key);
	strcpy(tmp, s);
	for (tok = strtok_r(tmp, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (n == max)
			usage_error("argument %s: more than %d values", key, max);
		out[n++] = parse_u64(key, tok);
	}
	if (!n)
		usage_error("argument %s: empty list", key);
	return n;
}

void args_finish(void)
{
	for (int i = 0; i < g_nargs; i++)
		if (!g_args[i].used)
			usage_error("unknown argument '%s' for scenario %s", g_args[i].k, g_scenario);
}

/* ------------------------------------------------------------- run state */

void set_phase(const char *p)
{
	g_phase = p;
}

static void on_alarm(int sig)
{
	char line[512], q[300];
	(void)sig;
	if (g_is_child) {
		snprintf(line, sizeof(line), "timeout in %s", (const char *)g_phase);
		json_quote(q, sizeof(q), line);
		snprintf(line, sizeof(line), "{\"ev\":\"" EV_ERROR "\",\"pid\":%d,\"error\":%s}\n",
			 (int)getpid(), q);
		write_all(1, line, strlen(line));
		_exit(3);
	}
	if (g_child > 0)
		kill(g_child, SIGKILL);
	snprintf(line, sizeof(line), "timeout in %s", (const char *)g_phase);
	json_quote(q, sizeof(q), line);
	{
		char sc[128];
		json_quote(sc, sizeof(sc), g_scenario);
		snprintf(line, sizeof(line),
			 "{\"ev\":\"" EV_DONE "\",\"pid\":%d,\"scenario\":%s,\"ok\":false,\"error\":%s}\n",
			 (int)getpid(), sc, q);
	}
	write_all(1, line, strlen(line));
	_exit(1);
}

static uint64_t g_rng = 1;

void rng_seed(uint64_t seed, uint64_t salt)
{
	g_rng = seed * 0x9E3779B97F4A7C15ULL + salt;
	if (!g_rng)
		g_rng = 1;
}

uint64_t rnd(void)
{
	g_rng ^= g_rng >> 12;
	g_rng ^= g_rng << 25;
	g_rng ^= g_rng >> 27;
	return g_rng * 0x2545F4914F6CDD1DULL;
}

uint32_t rn(uint32_t n)
{
	return n ? (uint32_t)(rnd() % n) : 0;
}

void stress_begin(uint64_t *seed, uint64_t *duration_ms, uint64_t *max_ops, uint64_t salt, unsigned slack_ms)
{
	J j;
	*seed = arg_u64("seed", 1);
	*duration_ms = arg_u64("duration_ms", 3000);
	*max_ops = arg_u64("max_ops", 0);
	args_finish();
	rng_seed(*seed, salt);
	if (*duration_ms + 5000 > (uint64_t)g_timeout_s * 1000)
		g_timeout_s = (unsigned)((*duration_ms + slack_ms) / 1000);
	arm_timeout();
	jbegin(&j, EV_SEED);
	ju64(&j, "seed", *seed);
	jend(&j);
}

pid_t fork_child(void)
{
	pid_t pid;
	fflush(NULL);
	pid = fork();
	if (pid < 0)
		finish(0, "fork failed");
	if (pid == 0) {
		g_is_child = 1;
		g_child = -1;
		arm_timeout();
	} else {
		g_child = pid;
	}
	return pid;
}

void arm_timeout(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_alarm;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGALRM, &sa, NULL);
	alarm(g_timeout_s);
}

void finish(int ok, const char *error)
{
	J j;
	print_commands_seen();
	jbegin(&j, EV_DONE);
	jstr(&j, "scenario", g_scenario);
	jbool(&j, "ok", ok);
	jstr(&j, "error", ok ? NULL : (error ? error : "unknown"));
	jend(&j);
	exit(ok ? 0 : 1);
}

void child_fail(const char *fmt, ...)
{
	J j;
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	jbegin(&j, EV_ERROR);
	jstr(&j, "error", msg);
	jend(&j);
	_exit(1);
}

uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void sleep_ms(unsigned ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

/* ------------------------------------------------------- between processes */

void tell_peer(int fd)
{
	char c = '.';
	while (write(fd, &c, 1) < 0 && errno == EINTR)
		;
}

int task_state(pid_t pid, pid_t tid)
{
	char path[64], line[512];
	char *p;
	FILE *f;
	snprintf(path, sizeof(path), "/proc/%d/task/%d/stat", (int)pid, (int)tid);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	p = fgets(line, sizeof(line), f);
	fclose(f);
	p = p ? strrchr(line, ')') : NULL;  /* the state follows the comm, which may hold ") " */
	return p && p[1] == ' ' && p[2] ? p[2] : 0;
}

int await_peer(int fd, int timeout_ms)
{
	uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
	for (;;) {
		struct pollfd pf = {fd, POLLIN, 0};
		uint64_t now = now_ms();
		char c;
		int r = poll(&pf, 1, now >= deadline ? 0 : (int)(deadline - now));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return 0;
		return read(fd, &c, 1) == 1;
	}
}

/* --------------------------------------------------------------- payload */

void pattern_fill(uint8_t *p, size_t n, uint64_t seq)
{
	uint8_t b = (uint8_t)((seq * 131u) & 0xff);
	for (size_t i = 0; i < n; i++, b = (uint8_t)(b + 7))
		p[i] = b;
}

int64_t pattern_check(const uint8_t *p, size_t n, uint64_t seq)
{
	uint8_t b = (uint8_t)((seq * 131u) & 0xff);
	for (size_t i = 0; i < n; i++, b = (uint8_t)(b + 7))
		if (p[i] != b)
			return (int64_t)i;
	return -1;
}

/* ------------------------------------------------------------ maps/touch */

void maps_line_for(uintptr_t addr, char *out, size_t cap)
{
	FILE *f = fopen("/proc/self/maps", "re");
	char line[512];
	out[0] = 0;
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		unsigned long long s = strtoull(line, NULL, 16);
		if ((uintptr_t)s == addr) {
			size_t l = strlen(line);
			while (l && (line[l - 1] == '\n' || line[l - 1] == ' '))
				line[--l] = 0;
			snprintf(out, cap, "%s", line);
			break;
		}
	}
	fclose(f);
}

static sigjmp_buf g_touch_jmp;
static volatile sig_atomic_t g_touch_sig;

static void on_touch_sig(int sig)
{
	g_touch_sig = sig;
	siglongjmp(g_touch_jmp, 1);
}

int touch_byte(const volatile uint8_t *p)
{
	struct sigaction sa, obus, osegv;
	volatile uint8_t sink;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_touch_sig;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_NODEFER;
	sigaction(SIGBUS, &sa, &obus);
	sigaction(SIGSEGV, &sa, &osegv);
	g_touch_sig = 0;
	if (!sigsetjmp(g_touch_jmp, 1)) {
		sink = *p;
		(void)sink;
	}
	sigaction(SIGBUS, &obus, NULL);
	sigaction(SIGSEGV, &osegv, NULL);
	return g_touch_sig;
}

const char *signal_name(int sig)
{
	switch (sig) {
	case 0: return NULL;
	case SIGBUS: return "SIGBUS";
	case SIGSEGV: return "SIGSEGV";
	case SIGKILL: return "SIGKILL";
	case SIGTERM: return "SIGTERM";
	case SIGALRM: return "SIGALRM";
	default: return "other";
	}
}

/* What the probe put into binder's hands and got back, recorded in one place.
 *
 * Every ioctl(2) of the probe goes through probe_ioctl (probe.h redefines ioctl), in every
 * process of a run: the table lives in a MAP_SHARED mapping made before main(), so forked
 * servers and clients count into it too. It holds, by their 32-bit codes: each ioctl request,
 * and, for BINDER_WRITE_READ, each BC the kernel consumed (write_consumed moved over it) and
 * each BR it returned (read_consumed moved over it). The buffers are read with
 * process_vm_readv, so a bad pointer a scenario hands the kernel on purpose is never touched.
 * It also keeps each failure BINDER_GET_EXTENDED_ERROR returned ({id, command, param} with
 * command not BR_OK): binder_transaction sets the thread's extended error to the failed
 * transaction's debug id, return and errno, the same three its failed_transaction_log entry
 * holds, so the harness can match each one (harness/judging/accounting.py).
 * finish() prints the table as one {"ev":"commands"} line before {"ev":"done"}.
 */
#include "probe.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#define SEEN_SLOTS 256

struct seen_slot {
	uint64_t key; /* family << 32 | code; 0: empty. family: 'i' ioctl, 'c' BC written, 'r' BR read */
	uint64_t count;
};

#define SEEN_EXT_MAX 64

struct seen_tables {
	struct seen_slot slot[SEEN_SLOTS];
	uint32_t n_ext; /* extended errors recorded (may exceed SEEN_EXT_MAX: the first ones are kept) */
	struct binder_extended_error ext[SEEN_EXT_MAX];
};

static struct seen_tables *g_tables;
static struct seen_slot *g_seen;
static pid_t g_seen_owner;

__attribute__((constructor)) static void seen_init(void)
{
	void *m = mmap(NULL, sizeof(struct seen_tables), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	g_tables = m == MAP_FAILED ? NULL : m;
	g_seen = g_tables ? g_tables->slot : NULL;
	g_seen_owner = getpid();
}

static void seen_add(uint32_t family, uint32_t code)
{
	uint64_t key = ((uint64_t)family << 32) | code;
	unsigned i, n;
	if (!g_seen)
		return;
	for (n = 0, i = (unsigned)((key * 0x9e3779b97f4a7c15ull) >> 56); n < SEEN_SLOTS; n++, i = (i + 1) % SEEN_SLOTS) {
		uint64_t found = 0;
		/* an empty slot becomes this key; a taken one says whose it is */
		if (__atomic_compare_exchange_n(&g_seen[i].key, &found, key, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE) ||
		    found == key) {
			__atomic_fetch_add(&g_seen[i].count, 1, __ATOMIC_RELAXED);
			return;
		}
	}
}

static int peek(void *dst, uint64_t src, size_t n)
{
	struct iovec local = {dst, n}, remote = {(void *)(uintptr_t)src, n};
	return process_vm_readv(getpid(), &local, 1, &remote, 1, 0) == (ssize_t)n ? 0 : -1;
}

/* The protocol words in [from, to) of a buffer: a code, then _IOC_SIZE(code) bytes. */
static void seen_stream(uint32_t family, uint64_t buf, uint64_t from, uint64_t to)
{
	while (from + 4 <= to) {
		uint32_t code;
		if (peek(&code, buf + from, 4))
			return;
		seen_add(family, code);
		from += 4 + _IOC_SIZE(code);
	}
}

int probe_ioctl(int fd, unsigned long req, void *arg)
{
	struct binder_write_read before, after;
	int wr = req == BINDER_WRITE_READ && arg && peek(&before, (uintptr_t)arg, sizeof(before)) == 0;
	int r = (ioctl)(fd, req, arg);
	int saved = errno;
	seen_add('i', (uint32_t)req);
	if (req == BINDER_GET_EXTENDED_ERROR && r == 0 && g_tables) {
		struct binder_extended_error ee;
		if (peek(&ee, (uintptr_t)arg, sizeof(ee)) == 0 && ee.command != BR_OK) {
			uint32_t i = __atomic_fetch_add(&g_tables->n_ext, 1, __ATOMIC_ACQ_REL);
			if (i < SEEN_EXT_MAX)
				g_tables->ext[i] = ee;
		}
	}
	if (wr && peek(&after, (uintptr_t)arg, sizeof(after)) == 0) {
		if (after.write_consumed > before.write_consumed && after.write_consumed <= before.write_size)
			seen_stream('c', before.write_buffer, before.write_consumed, after.write_consumed);
		if (after.read_consumed > before.read_consumed && after.read_consumed <= before.read_size)
			seen_stream('r', before.read_buffer, before.read_consumed, after.read_consumed);
	}
	errno = saved;
	return r;
}

void print_commands_seen(void)
{
	static const struct {
		uint32_t family;
		const char *key;
	} fams[] = {{'i', "ioctls"}, {'c', "bc"}, {'r', "br"}};
	J j;
	size_t f;
	if (!g_seen || getpid() != g_seen_owner)
		return;
	jbegin(&j, EV_COMMANDS);
	for (f = 0; f < sizeof(fams) / sizeof(fams[0]); f++) {
		char raw[8192];
		size_t n = 0;
		unsigned i;
		raw[n++] = '{';
		for (i = 0; i < SEEN_SLOTS && n < sizeof(raw) - 40; i++) {
			uint64_t key = __atomic_load_n(&g_seen[i].key, __ATOMIC_ACQUIRE);
			if (key >> 32 != fams[f].family)
				continue;
			n += (size_t)snprintf(raw + n, sizeof(raw) - n, "%s\"%u\":%llu", raw[n - 1] == '{' ? "" : ",",
					      (uint32_t)key, (unsigned long long)__atomic_load_n(&g_seen[i].count, __ATOMIC_RELAXED));
		}
		raw[n++] = '}';
		raw[n] = 0;
		jraw(&j, fams[f].key, raw);
	}
	{
		char raw[SEEN_EXT_MAX * 40 + 4];
		size_t n = 0;
		uint32_t i, count = __atomic_load_n(&g_tables->n_ext, __ATOMIC_ACQUIRE);
		raw[n++] = '[';
		for (i = 0; i < count && i < SEEN_EXT_MAX; i++)
			n += (size_t)snprintf(raw + n, sizeof(raw) - n, "%s[%u,%u,%d]", i ? "," : "", g_tables->ext[i].id,
					      g_tables->ext[i].command, g_tables->ext[i].param);
		raw[n++] = ']';
		raw[n] = 0;
		jraw(&j, "ext", raw); /* [[debug id, BR code, errno], ...] each failure BINDER_GET_EXTENDED_ERROR gave */
		ji64(&j, "ext_total", count);
	}
	jend(&j);
}

// SPDX-License-Identifier: GPL-2.0
/*
 * The shared-memory message ring (replication/shmring.h): messages in
 * order across wrap-arounds, a full ring and a consumer that never
 * consumes, the doorbell handshake, a hostile peer on either side
 * (every counter and length field corrupted, pads where none can be,
 * random garbage), and two processes over a memfd with eventfd
 * doorbells.
 */
#include <errno.h>
#include <stdio.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CUnit/CUnit.h>

#include "cunit_main.h"
#include "memfd.h"
#include "shmring.h"

#define SIZE	4096
#define MAX	1024

static uint8_t mem[PV_RING_HDR + SIZE] __attribute__((aligned(64)));
static struct pv_ring prod, cons;

static void pair(void)
{
	pv_ring_format(mem);
	CU_ASSERT_EQUAL_FATAL(pv_ring_attach(&prod, mem, SIZE, MAX, true), 0);
	CU_ASSERT_EQUAL_FATAL(pv_ring_attach(&cons, mem, SIZE, MAX, false), 0);
}

static void fill(uint8_t *p, size_t len, unsigned int seed)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)(seed * 31 + i);
}

static void test_geometry(void)
{
	struct pv_ring r;

	CU_ASSERT_EQUAL(pv_ring_attach(&r, mem, 1000, 100, true), -EINVAL);
	CU_ASSERT_EQUAL(pv_ring_attach(&r, mem, 2048, 100, true), -EINVAL);
	CU_ASSERT_EQUAL(pv_ring_attach(&r, mem, SIZE, SIZE / 2, true), -EINVAL);
	CU_ASSERT_EQUAL(pv_ring_attach(&r, mem, SIZE, 0, true), -EINVAL);
	pair();
	CU_ASSERT_EQUAL(pv_ring_send(&prod, mem, MAX + 1), -EMSGSIZE);
	CU_ASSERT_EQUAL(pv_ring_recv(&cons, mem, MAX - 1), -EINVAL);
}

/* Messages of every size in order, the ring wrapping many times. */
static void test_order(void)
{
	uint8_t out[MAX], in[MAX];
	unsigned int sent = 0, got = 0, pads = 0;
	ssize_t n;

	pair();
	while (got < 20000) {
		size_t len = (sent * 37) % (MAX + 1);

		fill(out, len, sent);
		if (pv_ring_send(&prod, out, len) == 0)
			sent++;
		pv_ring_publish(&prod);
		while ((n = pv_ring_recv(&cons, in, sizeof(in))) >= 0) {
			size_t want = (got * 37) % (MAX + 1);

			fill(out, want, got);
			CU_ASSERT_EQUAL_FATAL((size_t)n, want);
			CU_ASSERT_EQUAL_FATAL(memcmp(in, out, want), 0);
			got++;
		}
		CU_ASSERT_EQUAL_FATAL(n, -EAGAIN);
		pv_ring_release(&cons);
	}
	pads = (unsigned int)(prod.st.bytes / SIZE);
	CU_ASSERT(pads > 100);		/* it wrapped, again and again */
	CU_ASSERT_EQUAL(prod.st.corrupt + cons.st.corrupt, 0);
	CU_ASSERT_EQUAL(cons.st.msgs, got);
}

/* A consumer that never consumes: the producer is refused, bounded. */
static void test_full(void)
{
	uint8_t m[100] = { 1 }, in[MAX];
	int sent = 0;

	pair();
	while (pv_ring_send(&prod, m, sizeof(m)) == 0)
		sent++;
	CU_ASSERT(sent > 0 && sent <= SIZE / 104);
	pv_ring_publish(&prod);
	for (int i = 0; i < 1000; i++)
		CU_ASSERT_EQUAL(pv_ring_send(&prod, m, sizeof(m)), -EAGAIN);
	CU_ASSERT_EQUAL(prod.st.full, 1001);
	/* it waits for room: the consumer's release rings it */
	CU_ASSERT_TRUE(pv_ring_wait_room(&prod));
	CU_ASSERT_EQUAL(pv_ring_recv(&cons, in, sizeof(in)), sizeof(m));
	CU_ASSERT_TRUE(pv_ring_release(&cons));
	CU_ASSERT_EQUAL(pv_ring_send(&prod, m, sizeof(m)), 0);
	/* awake again: the next release rings nobody */
	CU_ASSERT_EQUAL(pv_ring_recv(&cons, in, sizeof(in)), sizeof(m));
	CU_ASSERT_FALSE(pv_ring_release(&cons));
}

/* Doorbells only for a sleeper; no wake-up lost around the sleep. */
static void test_doorbell(void)
{
	uint8_t m[8] = { 0 }, in[MAX];

	pair();
	CU_ASSERT_FALSE(pv_ring_publish(&prod));	/* nothing to say */
	CU_ASSERT_EQUAL(pv_ring_send(&prod, m, 8), 0);
	CU_ASSERT_FALSE(pv_ring_publish(&prod));	/* nobody sleeps */
	/* a message came: no sleeping */
	CU_ASSERT_FALSE(pv_ring_sleep(&cons));
	CU_ASSERT_EQUAL(pv_ring_recv(&cons, in, sizeof(in)), 8);
	CU_ASSERT_EQUAL(pv_ring_recv(&cons, in, sizeof(in)), -EAGAIN);
	pv_ring_release(&cons);
	CU_ASSERT_TRUE(pv_ring_sleep(&cons));
	CU_ASSERT_EQUAL(pv_ring_send(&prod, m, 8), 0);
	CU_ASSERT_TRUE(pv_ring_publish(&prod));		/* ring it */
	CU_ASSERT_EQUAL(prod.st.kicks, 1);
	CU_ASSERT_EQUAL(pv_ring_recv(&cons, in, sizeof(in)), 8);
	CU_ASSERT_EQUAL(pv_ring_send(&prod, m, 8), 0);
	CU_ASSERT_FALSE(pv_ring_publish(&prod));	/* awake again */
}

/* One corruption by the producer: the consumer fails the ring, once. */
static void hostile_producer(void (*corrupt)(void), const char *what)
{
	uint8_t m[64] = { 0 }, in[MAX];
	ssize_t n;
	int got = 0;

	pair();
	for (int i = 0; i < 3; i++)
		CU_ASSERT_EQUAL(pv_ring_send(&prod, m, sizeof(m)), 0);
	pv_ring_publish(&prod);
	corrupt();
	while ((n = pv_ring_recv(&cons, in, sizeof(in))) > 0)
		got++;
	if (n != -EPROTO)
		printf("\n  %s: %zd after %d messages", what, n, got);
	CU_ASSERT_EQUAL(n, -EPROTO);
	CU_ASSERT_EQUAL(cons.st.corrupt, 1);
	CU_ASSERT_EQUAL(pv_ring_recv(&cons, in, sizeof(in)), -EPROTO);
	CU_ASSERT_FALSE(pv_ring_sleep(&cons));
}

static struct pv_ring_shared *sh(void)
{
	return (struct pv_ring_shared *)mem;
}

static void set_len(uint64_t at, uint32_t len)
{
	memcpy(mem + PV_RING_HDR + at, &len, sizeof(len));
}

static void c_head_unaligned(void) { sh()->head += 3; }
static void c_head_far(void) { sh()->head = SIZE * 2; }
static void c_len_huge(void) { set_len(0, MAX + 1); }
static void c_len_past_head(void) { set_len(72 * 2, 200); }
static void c_pad_unwritten(void) { set_len(72, PV_RING_PAD); }
static void c_len_crosses_end(void)
{
	/* as if traffic had brought both sides near the end of the area:
	 * then a record said to run past it (with its bytes "written") */
	cons.head = cons.tail = cons.pub = SIZE - 72;
	sh()->tail = SIZE - 72;
	sh()->head = SIZE - 72 + 200;
	set_len(SIZE - 72, 100);
}

static void c_head_back(void)
{
	uint8_t in[MAX];

	CU_ASSERT(pv_ring_recv(&cons, in, sizeof(in)) > 0);
	CU_ASSERT(pv_ring_recv(&cons, in, sizeof(in)) > 0);
	CU_ASSERT(pv_ring_recv(&cons, in, sizeof(in)) > 0);
	sh()->head = 72;	/* behind what was read */
}

static void test_hostile_producer(void)
{
	hostile_producer(c_head_unaligned, "head unaligned");
	hostile_producer(c_head_far, "head past the area");
	hostile_producer(c_head_back, "head moved back");
	hostile_producer(c_len_huge, "length past the bound");
	hostile_producer(c_len_past_head, "length past the head");
	hostile_producer(c_pad_unwritten, "a pad over unwritten room");
	hostile_producer(c_len_crosses_end, "a record across the end");
}

/* One corruption by the consumer, seen when the producer needs room. */
static void hostile_consumer(uint64_t tail, const char *what)
{
	uint8_t m[100] = { 0 };
	int err;

	pair();
	while (pv_ring_send(&prod, m, sizeof(m)) == 0)
		;
	pv_ring_publish(&prod);
	sh()->tail = tail;
	err = pv_ring_send(&prod, m, sizeof(m));
	if (err != -EPROTO)
		printf("\n  %s: %d", what, err);
	CU_ASSERT_EQUAL(err, -EPROTO);
	CU_ASSERT_EQUAL(prod.st.corrupt, 1);
	CU_ASSERT_EQUAL(pv_ring_send(&prod, m, 1), -EPROTO);
	CU_ASSERT_FALSE(pv_ring_publish(&prod));
}

static void test_hostile_consumer(void)
{
	hostile_consumer(5, "tail unaligned");
	hostile_consumer(SIZE * 4, "tail past the head");
	hostile_consumer(UINT64_MAX & ~7ULL, "tail far ahead");
}

/* Garbage everywhere: only messages within bounds, or a failed ring. */
static void test_garbage(void)
{
	uint8_t in[MAX];

	srand(7);
	for (int round = 0; round < 2000; round++) {
		ssize_t n;

		pair();
		for (size_t i = 0; i < sizeof(mem); i++)
			mem[i] = (uint8_t)rand();
		if (rand() % 2) {	/* a plausible head, garbage below */
			sh()->head = (uint64_t)(rand() % (SIZE / 8)) * 8;
			sh()->tail = 0;
		}
		cons.head = cons.tail = cons.pub = 0;
		for (int i = 0; i < 64; i++) {
			n = pv_ring_recv(&cons, in, sizeof(in));
			CU_ASSERT_FATAL(n == -EAGAIN || n == -EPROTO ||
					(n >= 0 && n <= MAX));
			if (n < 0)
				break;
		}
	}
}

/* Two processes, a memfd, eventfd doorbells both ways. */
#define XMSGS	200000

static int xp_wait(int efd)
{
	struct pollfd p = { .fd = efd, .events = POLLIN };
	eventfd_t v;

	if (poll(&p, 1, 5000) != 1)
		return -ETIMEDOUT;
	return eventfd_read(efd, &v);
}

static int xp_producer(void *m, int data_efd, int room_efd)
{
	struct pv_ring r;
	uint64_t msg[8];

	if (pv_ring_attach(&r, m, 65536, 4096, true))
		return 10;
	for (uint64_t i = 0; i < XMSGS; i++) {
		int err;

		for (int k = 0; k < 8; k++)
			msg[k] = i * 8 + k;
		while ((err = pv_ring_send(&r, msg, 8 * (1 + i % 8))) == -EAGAIN) {
			if (pv_ring_publish(&r))
				eventfd_write(data_efd, 1);
			if (pv_ring_wait_room(&r) && xp_wait(room_efd))
				return 11;
		}
		if (err)
			return 12;
		if (i % 16 == 15 && pv_ring_publish(&r))
			eventfd_write(data_efd, 1);
	}
	if (pv_ring_publish(&r))
		eventfd_write(data_efd, 1);
	return 0;
}

static void test_processes(void)
{
	size_t bytes = pv_ring_bytes(65536);
	int fd = pv_memfd_create("shmring-test", bytes);
	int data_efd = eventfd(0, EFD_CLOEXEC), room_efd = eventfd(0, EFD_CLOEXEC);
	uint8_t *m, in[4096];
	struct pv_ring r;
	uint64_t got = 0, sleeps = 0;
	pid_t pid;
	int st;

	CU_ASSERT_FATAL(fd >= 0 && data_efd >= 0 && room_efd >= 0);
	m = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	CU_ASSERT_FATAL(m != MAP_FAILED);
	pv_ring_format(m);
	CU_ASSERT_EQUAL_FATAL(pv_ring_attach(&r, m, 65536, 4096, false), 0);
	pid = fork();
	if (!pid)
		_exit(xp_producer(m, data_efd, room_efd));
	while (got < XMSGS) {
		ssize_t n = pv_ring_recv(&r, in, sizeof(in));
		uint64_t v;

		if (n == -EAGAIN) {
			if (pv_ring_release(&r))
				eventfd_write(room_efd, 1);
			if (pv_ring_sleep(&r)) {
				sleeps++;
				if (xp_wait(data_efd))
					break;
			}
			continue;
		}
		CU_ASSERT_FATAL(n == (ssize_t)(8 * (1 + got % 8)));
		memcpy(&v, in + n - 8, 8);
		CU_ASSERT_FATAL(v == got * 8 + n / 8 - 1);
		got++;
		if (got % 64 == 0 && pv_ring_release(&r))
			eventfd_write(room_efd, 1);
	}
	CU_ASSERT_EQUAL(got, XMSGS);
	CU_ASSERT_EQUAL(waitpid(pid, &st, 0), pid);
	CU_ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	printf("(%llu messages, the consumer slept %llu times) ",
	       (unsigned long long)got, (unsigned long long)sleeps);
	munmap(m, bytes);
	close(fd);
	close(data_efd);
	close(room_efd);
}

static CU_TestInfo tests[] = {
	{ "geometry and bounds", test_geometry },
	{ "messages in order across wrap-arounds", test_order },
	{ "a full ring, a consumer that never consumes", test_full },
	{ "doorbells only for a sleeper", test_doorbell },
	{ "a hostile producer: every field corrupted", test_hostile_producer },
	{ "a hostile consumer: its tail corrupted", test_hostile_consumer },
	{ "garbage: messages within bounds, or failed", test_garbage },
	{ "two processes, a memfd, eventfd doorbells", test_processes },
	CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
	{ "shmring", NULL, NULL, NULL, NULL, tests },
	CU_SUITE_INFO_NULL,
};

PV_CUNIT_MAIN(suites)

// SPDX-License-Identifier: GPL-2.0
/*
 * The 16550A UART at COM1 as Linux's 8250 driver probes and uses it:
 * scratch, divisor latch, FCR/IIR FIFO bits, loopback, interrupt
 * identification and priorities, output to the console file.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cunit_main.h"
#include "layout.h"
#include "vm.h"

#define RBR 0
#define THR 0
#define DLL 0
#define IER 1
#define DLM 1
#define IIR 2
#define FCR 2
#define LCR 3
#define MCR 4
#define LSR 5
#define MSR 6
#define SCR 7

static struct vm vm;
static char console[] = "/tmp/pv-test-serial-XXXXXX";
static struct vm_config cfg = {
	.mem_size = 16 << 20,
	.no_vcpus = true,
};

static uint8_t in(int reg)
{
	uint8_t v = 0;

	vm_pio(&vm, PV_PORT_COM1 + reg, &v, 1, false);
	return v;
}

static void out(int reg, uint8_t v)
{
	vm_pio(&vm, PV_PORT_COM1 + reg, &v, 1, true);
}

static int setup(void)
{
	int fd = open("/dev/null", O_RDONLY);

	if (fd < 0 || dup2(fd, STDIN_FILENO) < 0)
		return -1;
	close(fd);
	fd = mkstemp(console);
	if (fd < 0)
		return -1;
	close(fd);
	cfg.console = console;
	if (vm_create(&vm, &cfg) || vm_devices_init(&vm))
		return -1;
	return 0;
}

static int teardown(void)
{
	vm_devices_exit(&vm);
	vm_destroy(&vm);
	unlink(console);
	return 0;
}

/* Back to a quiet state: no loopback, no interrupts, FIFOs on. */
static void quiet(void)
{
	out(LCR, 0x03);
	out(IER, 0);
	out(MCR, 0x08);
	out(FCR, 0x07);
	in(LSR);
	in(MSR);
	while (in(LSR) & 0x01)
		in(RBR);
}

static void test_scratch(void)
{
	out(SCR, 0x5a);
	CU_ASSERT_EQUAL(in(SCR), 0x5a);
	out(SCR, 0xa5);
	CU_ASSERT_EQUAL(in(SCR), 0xa5);
}

static void test_divisor_latch(void)
{
	quiet();
	out(IER, 0x05);
	out(LCR, 0x80 | 0x03);
	out(DLL, 0x0c);
	out(DLM, 0x01);
	CU_ASSERT_EQUAL(in(DLL), 0x0c);
	CU_ASSERT_EQUAL(in(DLM), 0x01);
	CU_ASSERT_EQUAL(in(LCR), 0x83);
	out(LCR, 0x03);
	/* with DLAB clear, offsets 0/1 are RBR/IER again */
	CU_ASSERT_EQUAL(in(IER), 0x05);
	out(LCR, 0x80);
	CU_ASSERT_EQUAL(in(DLL), 0x0c);	/* kept */
	quiet();
}

static void test_ier_bits(void)
{
	quiet();
	/* 8250 autoconfig: only the low nibble sticks (no UUE bit etc.) */
	out(IER, 0xff);
	CU_ASSERT_EQUAL(in(IER), 0x0f);
	out(IER, 0);
	CU_ASSERT_EQUAL(in(IER), 0);
}

static void test_fcr_iir(void)
{
	quiet();
	out(FCR, 0);
	CU_ASSERT_EQUAL(in(IIR), 0x01);		/* no FIFO, no interrupt */
	out(FCR, 0x01);
	CU_ASSERT_EQUAL(in(IIR), 0xc1);		/* FIFOs enabled */
	/* 16750 test: the 64-byte bit never shows up */
	out(FCR, 0x21);
	CU_ASSERT_EQUAL(in(IIR) & 0x20, 0);
	out(LCR, 0xbf);				/* EFR probe sees IIR */
	CU_ASSERT_NOT_EQUAL(in(IIR), 0);
	quiet();
}

static void test_loopback(void)
{
	quiet();
	out(MCR, 0x10 | 0x0a);		/* LOOP | OUT2 | RTS */
	CU_ASSERT_EQUAL(in(MSR) & 0xf0, 0x90);	/* DCD | CTS */
	out(MCR, 0x10 | 0x05);		/* LOOP | OUT1 | DTR */
	CU_ASSERT_EQUAL(in(MSR) & 0xf0, 0x60);	/* RI | DSR */
	out(THR, 'x');
	CU_ASSERT_EQUAL(in(LSR) & 0x61, 0x61);	/* DR | THRE | TEMT */
	CU_ASSERT_EQUAL(in(RBR), 'x');
	CU_ASSERT_EQUAL(in(LSR) & 0x01, 0);
	quiet();
	CU_ASSERT_EQUAL(in(MSR) & 0xf0, 0xb0);	/* DCD | DSR | CTS */
}

static void test_thre_interrupt(void)
{
	quiet();
	CU_ASSERT_EQUAL(in(IIR), 0xc1);
	out(IER, 0x02);			/* THRI with THR empty: fires */
	CU_ASSERT_EQUAL(in(IIR), 0xc2);
	CU_ASSERT_EQUAL(in(IIR), 0xc1);	/* reading IIR acknowledged it */
	out(IER, 0);
	out(IER, 0x02);			/* Linux's UART_BUG_THRE test */
	CU_ASSERT_EQUAL(in(IIR), 0xc2);
	out(MCR, 0x18);
	out(THR, 'a');			/* sent at once: THRE again */
	CU_ASSERT_EQUAL(in(IIR), 0xc2);
	quiet();
}

static void test_priority(void)
{
	quiet();
	out(MCR, 0x18);			/* loopback */
	out(IER, 0x03);			/* RDI | THRI */
	out(THR, 'q');
	CU_ASSERT_EQUAL(in(IIR), 0xc4);	/* received data first */
	CU_ASSERT_EQUAL(in(RBR), 'q');
	CU_ASSERT_EQUAL(in(IIR), 0xc2);	/* then THR empty */
	CU_ASSERT_EQUAL(in(IIR), 0xc1);
	/* RX FIFO overflow: 16 kept, overrun reported once */
	out(IER, 0x05);			/* RDI | RLSI */
	for (int i = 0; i < 17; i++)
		out(THR, 'A' + i);
	CU_ASSERT_EQUAL(in(IIR), 0xc6);	/* line status beats data */
	CU_ASSERT_EQUAL(in(LSR) & 0x03, 0x03);
	CU_ASSERT_EQUAL(in(LSR) & 0x02, 0);	/* OE clears on read */
	CU_ASSERT_EQUAL(in(IIR), 0xc4);
	for (int i = 0; i < 16; i++)
		CU_ASSERT_EQUAL(in(RBR), 'A' + i);
	CU_ASSERT_EQUAL(in(LSR) & 0x01, 0);
	CU_ASSERT_EQUAL(in(IIR), 0xc1);
	quiet();
}

static void test_modem_status_interrupt(void)
{
	quiet();
	out(IER, 0x08);
	out(MCR, 0x10 | 0x02);		/* loop: RTS -> CTS rises */
	CU_ASSERT_EQUAL(in(IIR), 0xc0);	/* modem status */
	CU_ASSERT(in(MSR) & 0x0f);	/* deltas, cleared by the read */
	CU_ASSERT_EQUAL(in(IIR), 0xc1);
	quiet();
}

static void test_output(void)
{
	const char *msg = "hello, 8250\r\n";
	char buf[64] = { 0 };
	int fd;
	ssize_t n;

	quiet();
	for (const char *p = msg; *p; p++) {
		CU_ASSERT(in(LSR) & 0x20);
		out(THR, *p);
	}
	fd = open(console, O_RDONLY);
	CU_ASSERT_FATAL(fd >= 0);
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	/* loopback bytes never reached the file */
	CU_ASSERT_EQUAL(n, (ssize_t)strlen(msg));
	CU_ASSERT_STRING_EQUAL(buf, msg);
}

static CU_TestInfo tests[] = {
	{ "scratch register", test_scratch },
	{ "DLAB and divisor latch", test_divisor_latch },
	{ "IER writable bits", test_ier_bits },
	{ "FCR enables FIFO bits in IIR", test_fcr_iir },
	{ "loopback: MSR mirrors MCR, TX to RX", test_loopback },
	{ "THRE interrupt and IIR", test_thre_interrupt },
	{ "interrupt priority, RX overflow", test_priority },
	{ "modem status interrupt", test_modem_status_interrupt },
	{ "output reaches the console file", test_output },
	CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
	{ "serial", setup, teardown, NULL, NULL, tests },
	CU_SUITE_INFO_NULL,
};

PV_CUNIT_MAIN(suites)

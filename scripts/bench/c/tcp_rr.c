// SPDX-License-Identifier: Apache-2.0
/*
 * tcp_rr: a bounded TCP request/response benchmark (the netperf TCP_RR idea), so that the three
 * end-to-end topologies of `npm run bench` are measured by one tool in one way.
 *
 *   tcp_rr server PORT TIMEOUT_S           accept one connection, echo SIZE-byte messages back
 *                                          until the client closes; exits after TIMEOUT_S anyway
 *   tcp_rr client ADDR PORT SECONDS SIZE   one connection, TCP_NODELAY; send SIZE bytes, wait for
 *                                          SIZE bytes back, repeat for SECONDS (at most 10,000,000
 *                                          transactions); prints one JSON line:
 *                                          {"transactions":N,"seconds":S,"tps":T,"p50_us":..,
 *                                           "p90_us":..,"p99_us":..,"max_us":..}
 *
 * Every loop is bounded in count and time (alarm() ends a stuck process).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_TX 10000000
#define MAX_SIZE 65536

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int full_io(int fd, char *buf, int n, int rd)
{
	int done = 0;

	while (done < n) {
		ssize_t r = rd ? read(fd, buf + done, n - done) : write(fd, buf + done, n - done);

		if (r <= 0)
			return -1;
		done += r;
	}
	return 0;
}

static int cmp_float(const void *a, const void *b)
{
	float x = *(const float *)a, y = *(const float *)b;

	return (x > y) - (x < y);
}

static int server(int port, int timeout)
{
	struct sockaddr_in6 sa = { .sin6_family = AF_INET6, .sin6_port = htons(port) };
	static char buf[MAX_SIZE];
	int one = 1, ls, fd;
	ssize_t r;

	alarm(timeout);
	ls = socket(AF_INET6, SOCK_STREAM, 0);
	setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (ls < 0 || bind(ls, (struct sockaddr *)&sa, sizeof(sa)) || listen(ls, 1)) {
		perror("tcp_rr server");
		return 1;
	}
	fd = accept(ls, NULL, NULL);
	if (fd < 0) {
		perror("accept");
		return 1;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	while ((r = read(fd, buf, sizeof(buf))) > 0)
		if (full_io(fd, buf, r, 0))
			break;
	return 0;
}

static int client(const char *addr, int port, double seconds, int size)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port) };
	static char buf[MAX_SIZE];
	double t0, t, end;
	float *lat;
	long n = 0;
	int one = 1, fd;

	if (size < 1 || size > MAX_SIZE || seconds <= 0 || seconds > 120) {
		fprintf(stderr, "tcp_rr: size 1..%d, seconds (0, 120]\n", MAX_SIZE);
		return 2;
	}
	alarm((unsigned int)seconds + 10);
	lat = malloc(sizeof(float) * MAX_TX);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (!lat || fd < 0 || inet_pton(AF_INET, addr, &sa.sin_addr) != 1) {
		fprintf(stderr, "tcp_rr: bad address or out of memory\n");
		return 2;
	}
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		perror("connect");
		return 1;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	memset(buf, 'r', size);
	t0 = now_s();
	end = t0 + seconds;
	for (t = t0; t < end && n < MAX_TX;) {
		double s = t;

		if (full_io(fd, buf, size, 0) || full_io(fd, buf, size, 1)) {
			perror("tcp_rr transaction");
			return 1;
		}
		t = now_s();
		lat[n++] = (float)((t - s) * 1e6);
	}
	close(fd);
	qsort(lat, n, sizeof(float), cmp_float);
	printf("{\"transactions\":%ld,\"seconds\":%.3f,\"tps\":%.1f,\"p50_us\":%.1f,\"p90_us\":%.1f,"
	       "\"p99_us\":%.1f,\"max_us\":%.1f}\n",
	       n, t - t0, n / (t - t0), lat[n / 2], lat[(long)(n * 0.9)], lat[(long)(n * 0.99)],
	       lat[n - 1]);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 4 && !strcmp(argv[1], "server"))
		return server(atoi(argv[2]), atoi(argv[3]));
	if (argc == 6 && !strcmp(argv[1], "client"))
		return client(argv[2], atoi(argv[3]), atof(argv[4]), atoi(argv[5]));
	fprintf(stderr, "usage: tcp_rr server PORT TIMEOUT_S | client ADDR PORT SECONDS SIZE\n");
	return 2;
}

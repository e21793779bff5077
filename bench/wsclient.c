/* N idle WebSocket lobby subscribers on one epoll loop: the load generator of bench/ws_fanout.py.
 *
 * The clients share the machine's cores with the server under test, so they must cost as little as
 * possible: raw sockets, no frame parsing, one scan of each read for event stamps. Each event's
 * problem text is "bench-<i>-<unix time of the POST>"; every stamp seen (once per socket and i) is
 * turned into a latency.
 *
 *   wsclient PORT TOKEN N EXPECTED OUTFILE NAP_US [SOURCE_IP]
 *
 * SOURCE_IP (e.g. 127.0.0.3) is the local address the sockets are bound to: the kernel has about
 * 28,000 ephemeral ports per (source address, destination address and port), so a run past that
 * spreads its client processes over several loopback source addresses.
 *
 * After each wake-up with events ready, the client sleeps NAP_US before reading them, so that one
 * wake-up serves many sockets. Real subscribers sit on other machines; here every wake-up of a
 * client process is paid for by the server's sends (the kernel wakes the reader inside `send`) on
 * the same two cores. The nap is counted in the measured latency: it only makes the figures worse.
 *
 * Prints "subscribed" once every socket got its snapshot; at the end writes the latencies (seconds,
 * native doubles) to OUTFILE and prints "done <sockets that got all EXPECTED events> <CPU seconds>".
 * Built by bench/ws_fanout.py with the system's C compiler; without one the bench uses its Python client.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define TAIL 96
#define BATCH 100

struct client {
    int fd;
    int subscribed;
    int seen;
    long last;
    int tail_len;
    char tail[TAIL];
};

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what) {
    perror(what);
    exit(1);
}

static void send_all(int fd, const char *buf, size_t len) {
    while (len > 0) {
        ssize_t n = send(fd, buf, len, 0);
        if (n < 0) die("send");
        buf += n;
        len -= (size_t)n;
    }
}

int main(int argc, char **argv) {
    if (argc != 7 && argc != 8) {
        fprintf(stderr, "usage: wsclient PORT TOKEN N EXPECTED OUTFILE NAP_US [SOURCE_IP]\n");
        return 2;
    }
    int port = atoi(argv[1]);
    const char *token = argv[2];
    int n = atoi(argv[3]);
    int expected = atoi(argv[4]);
    const char *outfile = argv[5];
    int nap_us = atoi(argv[6]);

    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);

    char request[8192];
    int request_len = snprintf(request, sizeof request,
                               "GET /api/ws HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
                               "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                               "Sec-WebSocket-Version: 13\r\nAuthorization: Bearer %s\r\n\r\n",
                               port, token);
    /* {"type":"subscribe","topic":"lobby"}, masked with an all-zero key (valid, and needs no XOR). */
    static const char payload[] = "{\"type\":\"subscribe\",\"topic\":\"lobby\"}";
    char subscribe[64];
    size_t plen = sizeof payload - 1;
    subscribe[0] = (char)0x81;
    subscribe[1] = (char)(0x80 | plen);
    memset(subscribe + 2, 0, 4);
    memcpy(subscribe + 6, payload, plen);

    struct client *clients = calloc((size_t)n, sizeof *clients);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct sockaddr_in source = {.sin_family = AF_INET, .sin_port = 0};
    if (argc == 8 && inet_pton(AF_INET, argv[7], &source.sin_addr) != 1) die("SOURCE_IP");
    int ep = epoll_create1(0);
    for (int start = 0; start < n; start += BATCH) {
        int stop = start + BATCH < n ? start + BATCH : n;
        for (int i = start; i < stop; i++) {
            int fd = socket(AF_INET, SOCK_STREAM, 0);
            if (fd < 0) die("socket");
            if (argc == 8) {
                /* Bind with port 0 but let connect() pick the port for the whole 4-tuple. */
                int one = 1;
                setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
                if (bind(fd, (struct sockaddr *)&source, sizeof source) < 0) die("bind");
            }
            if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) die("connect");
            send_all(fd, request, (size_t)request_len);
            clients[i].fd = fd;
        }
        for (int i = start; i < stop; i++) {
            char head[4096];
            size_t got = 0;
            while (got < sizeof head - 1) {
                ssize_t k = recv(clients[i].fd, head + got, sizeof head - 1 - got, 0);
                if (k <= 0) die("handshake");
                got += (size_t)k;
                head[got] = 0;
                if (strstr(head, "\r\n\r\n")) break;
            }
            if (strncmp(head, "HTTP/1.1 101", 12) != 0) {
                fprintf(stderr, "handshake refused: %.200s\n", head);
                return 1;
            }
            send_all(clients[i].fd, subscribe, 6 + plen);
            struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
            if (epoll_ctl(ep, EPOLL_CTL_ADD, clients[i].fd, &ev) < 0) die("epoll_ctl");
        }
    }

    size_t lat_cap = (size_t)n * (size_t)expected;
    double *latencies = malloc(lat_cap * sizeof *latencies);
    size_t lat_len = 0;
    int subscribed = 0, complete = 0, closed = 0;
    double cpu_start = 0;
    double deadline = now_s() + 600;
    static char buf[TAIL + 262144];
    struct epoll_event events[512];

    while (complete + closed < n && now_s() < deadline) {
        int ready = epoll_wait(ep, events, 512, 1000);
        if (ready > 0 && ready < 512 && nap_us > 0) {
            usleep((useconds_t)nap_us);
            ready = epoll_wait(ep, events, 512, 0);
        }
        for (int e = 0; e < ready; e++) {
            struct client *c = &clients[events[e].data.u32];
            memcpy(buf, c->tail, (size_t)c->tail_len);
            ssize_t k = recv(c->fd, buf + c->tail_len, sizeof buf - TAIL, MSG_DONTWAIT);
            double now = now_s();
            if (k == 0 || (k < 0 && errno != EAGAIN)) {
                epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                closed++;
                continue;
            }
            if (k < 0) continue;
            size_t len = (size_t)c->tail_len + (size_t)k;
            if (!c->subscribed && memmem(buf, len, "\"type\":\"snapshot\"", 17)) {
                c->subscribed = 1;
                if (++subscribed == n) {
                    struct rusage ru;
                    getrusage(RUSAGE_SELF, &ru);
                    cpu_start = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec +
                                ru.ru_stime.tv_usec / 1e6;
                    printf("subscribed\n");
                    fflush(stdout);
                }
            }
            size_t keep_from = len > TAIL ? len - TAIL : 0;
            char *p = buf, *end = buf + len;
            while ((p = memmem(p, (size_t)(end - p), "bench-", 6)) != NULL) {
                char *q = memchr(p, '"', (size_t)(end - p));
                if (q == NULL) {  /* cut by the read: keep it for the next one */
                    keep_from = (size_t)(p - buf);
                    break;
                }
                char *dash;
                long index = strtol(p + 6, &dash, 10);
                if (*dash == '-' && index >= c->last) {
                    double sent = strtod(dash + 1, NULL);
                    c->last = index + 1;
                    if (lat_len < lat_cap) latencies[lat_len++] = now - sent;
                    if (++c->seen == expected) complete++;
                }
                p = q;
                keep_from = (size_t)(q - buf);
            }
            if (len - keep_from > TAIL) keep_from = len - TAIL;
            c->tail_len = (int)(len - keep_from);
            memmove(c->tail, buf + keep_from, (size_t)c->tail_len);
        }
    }

    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
    FILE *out = fopen(outfile, "wb");
    if (out == NULL) die("fopen");
    fwrite(latencies, sizeof *latencies, lat_len, out);
    fclose(out);
    printf("done %d %.3f\n", complete, cpu - cpu_start);
    fflush(stdout);
    for (int i = 0; i < n; i++) close(clients[i].fd);
    return 0;
}

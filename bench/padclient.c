/* Pad editors on one epoll loop: the load generator of bench/pad.py.
 *
 * The editors share the machine's two cores with the servers under test, so they must cost as little
 * as possible while the clock runs. Everything that needs Yjs happens in Python, outside the clock:
 * bench/pad.py types each editor's keystrokes into a pycrdt document beforehand and hands this program
 * the y-websocket frames a browser would send; afterwards it decodes what each editor received. This
 * program only connects, sends each frame on time, answers pings, and records what arrives.
 *
 *   padclient SPECFILE OUTFILE
 *
 * SPECFILE: a text line "EDITORS RATE SECONDS SETTLE SEED", then per editor a line "PORT PATH" (PATH:
 * the pad's URL path with its `?token=` query), a line with its number of frames, and each frame as a
 * line with its length followed by that many raw bytes.
 *
 * Prints "connected" once every editor's handshake is done, waits for a line on stdin ("go"), then
 * each editor sends one frame RATE times a second from a random phase for SECONDS, and the program
 * keeps reading until nothing arrived for QUIET_S or SETTLE seconds passed. Writes (native byte order)
 * every binary frame received to OUTFILE as (editor, length, arrival time, payload), and to
 * OUTFILE.sent, per editor, the number of frames sent and their send times (doubles, Unix seconds).
 * Prints "done <CPU seconds from go to the end>".
 * Built by bench/pad.py with the system's C compiler; without one the bench uses its Python editors.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define QUIET_S 5.0
#define INBUF (1 << 20)

struct frame {
    uint32_t len;
    unsigned char *data; /* the whole WebSocket frame, masked with an all-zero key */
};

struct editor {
    int fd;
    int port;
    char path[4096];
    int nframes;
    struct frame *frames;
    int sent;
    double *sent_at;
    double phase;
    unsigned char *in;
    size_t in_len;
    int closed;
};

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double cpu_s(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

static void die(const char *what) {
    perror(what);
    exit(1);
}

/* Blocking until all is written (frames are small; a full socket buffer only waits a little). */
static void send_all(int fd, const unsigned char *buf, size_t len) {
    while (len > 0) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR) {
                usleep(100);
                continue;
            }
            return; /* the server closed it: counted when the read says so */
        }
        buf += n;
        len -= (size_t)n;
    }
}

/* A client frame: FIN + opcode, masked with the all-zero key (valid, and needs no XOR). */
static size_t wrap(unsigned char *out, int opcode, const unsigned char *payload, size_t len) {
    size_t h = 0;
    out[h++] = (unsigned char)(0x80 | opcode);
    if (len < 126) {
        out[h++] = (unsigned char)(0x80 | len);
    } else if (len < 65536) {
        out[h++] = 0x80 | 126;
        out[h++] = (unsigned char)(len >> 8);
        out[h++] = (unsigned char)len;
    } else {
        out[h++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--) out[h++] = (unsigned char)((uint64_t)len >> (8 * i));
    }
    memset(out + h, 0, 4);
    h += 4;
    memcpy(out + h, payload, len);
    return h + len;
}

static FILE *received;

/* Parse the complete server frames buffered for editor `i`: record binary ones, answer pings. */
static void parse(struct editor *e, uint32_t i, double now) {
    size_t at = 0;
    while (e->in_len - at >= 2) {
        unsigned char *p = e->in + at;
        int opcode = p[0] & 0x0f;
        uint64_t len = p[1] & 0x7f;
        size_t h = 2;
        if (len == 126) {
            if (e->in_len - at < 4) break;
            len = ((uint64_t)p[2] << 8) | p[3];
            h = 4;
        } else if (len == 127) {
            if (e->in_len - at < 10) break;
            len = 0;
            for (int k = 0; k < 8; k++) len = (len << 8) | p[2 + k];
            h = 10;
        }
        if (e->in_len - at < h + len) break;
        unsigned char *payload = p + h;
        if (opcode == 2) {
            uint32_t n = (uint32_t)len;
            fwrite(&i, sizeof i, 1, received);
            fwrite(&n, sizeof n, 1, received);
            fwrite(&now, sizeof now, 1, received);
            fwrite(payload, 1, n, received);
        } else if (opcode == 9 && len < 126) {
            unsigned char pong[140];
            send_all(e->fd, pong, wrap(pong, 10, payload, (size_t)len));
        } else if (opcode == 8) {
            e->closed = 1;
        }
        at += h + (size_t)len;
    }
    memmove(e->in, e->in + at, e->in_len - at);
    e->in_len -= at;
}

static int read_line(FILE *f, char *buf, size_t size) {
    if (fgets(buf, (int)size, f) == NULL) return 0;
    buf[strcspn(buf, "\n")] = 0;
    return 1;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: padclient SPECFILE OUTFILE\n");
        return 2;
    }
    FILE *spec = fopen(argv[1], "rb");
    if (spec == NULL) die("spec");
    char line[8192];
    int n;
    double rate, seconds, settle;
    unsigned seed;
    if (!read_line(spec, line, sizeof line) || sscanf(line, "%d %lf %lf %lf %u", &n, &rate, &seconds, &settle, &seed) != 5)
        die("spec header");
    srand48(seed);
    struct editor *editors = calloc((size_t)n, sizeof *editors);
    for (int i = 0; i < n; i++) {
        struct editor *e = &editors[i];
        if (!read_line(spec, line, sizeof line) || sscanf(line, "%d %4095s", &e->port, e->path) != 2) die("spec editor");
        if (!read_line(spec, line, sizeof line)) die("spec frames");
        e->nframes = atoi(line);
        e->frames = calloc((size_t)e->nframes, sizeof *e->frames);
        e->sent_at = calloc((size_t)e->nframes, sizeof *e->sent_at);
        for (int k = 0; k < e->nframes; k++) {
            if (!read_line(spec, line, sizeof line)) die("spec frame");
            size_t len = (size_t)atol(line);
            unsigned char *payload = malloc(len);
            if (fread(payload, 1, len, spec) != len) die("spec payload");
            e->frames[k].data = malloc(len + 14);
            e->frames[k].len = (uint32_t)wrap(e->frames[k].data, 2, payload, len);
            free(payload);
        }
        e->phase = drand48() / rate;
        e->in = malloc(INBUF);
    }
    fclose(spec);

    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    received = fopen(argv[2], "wb");
    if (received == NULL) die("outfile");
    static char outbuf[1 << 22];
    setvbuf(received, outbuf, _IOFBF, sizeof outbuf);

    /* Handshakes one at a time, as a browser tab opens its pad. */
    int ep = epoll_create1(0);
    for (int i = 0; i < n; i++) {
        struct editor *e = &editors[i];
        struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)e->port)};
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        e->fd = socket(AF_INET, SOCK_STREAM, 0);
        if (e->fd < 0) die("socket");
        if (connect(e->fd, (struct sockaddr *)&addr, sizeof addr) < 0) die("connect");
        int one = 1;
        setsockopt(e->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        char request[8192];
        int request_len = snprintf(request, sizeof request,
                                   "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
                                   "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                                   "Sec-WebSocket-Version: 13\r\nOrigin: http://localhost:5173\r\n\r\n",
                                   e->path, e->port);
        send_all(e->fd, (unsigned char *)request, (size_t)request_len);
        size_t got = 0;
        char *end = NULL;
        while (end == NULL) {
            ssize_t k = recv(e->fd, e->in + got, INBUF - got, 0);
            if (k <= 0) die("handshake");
            got += (size_t)k;
            end = memmem(e->in, got, "\r\n\r\n", 4);
        }
        if (strncmp((char *)e->in, "HTTP/1.1 101", 12) != 0) {
            fprintf(stderr, "handshake refused: %.200s\n", (char *)e->in);
            return 1;
        }
        size_t head = (size_t)(end + 4 - (char *)e->in);
        memmove(e->in, e->in + head, got - head); /* the first frames may follow the response */
        e->in_len = got - head;
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, e->fd, &ev) < 0) die("epoll_ctl");
    }
    printf("connected\n");
    fflush(stdout);
    if (fgets(line, sizeof line, stdin) == NULL) return 1;

    /* Editors in order of their phase: keystroke r of editor order[j] is due at start + phase + r/rate. */
    int *order = malloc((size_t)n * sizeof *order);
    for (int i = 0; i < n; i++) order[i] = i;
    for (int i = 1; i < n; i++) { /* insertion sort by phase: n is a few hundred */
        int v = order[i], j = i - 1;
        while (j >= 0 && editors[order[j]].phase > editors[v].phase) {
            order[j + 1] = order[j];
            j--;
        }
        order[j + 1] = v;
    }
    double cpu_start = cpu_s();
    double start = now_s(), stop_typing = start + seconds, give_up = stop_typing + settle;
    double last_arrival = start;
    int next = 0, round = 0;
    struct epoll_event events[512];
    for (;;) {
        double now = now_s();
        while (now < stop_typing) {
            struct editor *e = &editors[order[next]];
            double due = start + e->phase + round / rate;
            if (due > now || due >= stop_typing) break;
            if (e->sent < e->nframes && !e->closed) {
                e->sent_at[e->sent] = now_s();
                send_all(e->fd, e->frames[e->sent].data, e->frames[e->sent].len);
                e->sent++;
            }
            if (++next == n) {
                next = 0;
                round++;
            }
        }
        if (now >= stop_typing && (now - last_arrival >= QUIET_S || now >= give_up)) break;
        int timeout_ms = 100;
        if (now < stop_typing) {
            double due = start + editors[order[next]].phase + round / rate;
            timeout_ms = due <= now ? 0 : (int)((due - now) * 1000) + 1;
            if (timeout_ms > 100) timeout_ms = 100;
        }
        int ready = epoll_wait(ep, events, 512, timeout_ms);
        double arrived = now_s();
        for (int r = 0; r < ready; r++) {
            uint32_t i = events[r].data.u32;
            struct editor *e = &editors[i];
            ssize_t k = recv(e->fd, e->in + e->in_len, INBUF - e->in_len, MSG_DONTWAIT);
            if (k == 0 || (k < 0 && errno != EAGAIN && errno != EINTR)) {
                epoll_ctl(ep, EPOLL_CTL_DEL, e->fd, NULL);
                e->closed = 1;
                continue;
            }
            if (k < 0) continue;
            e->in_len += (size_t)k;
            last_arrival = arrived;
            parse(e, i, arrived);
        }
    }
    double cpu = cpu_s() - cpu_start;

    fclose(received);
    char sent_path[4096];
    snprintf(sent_path, sizeof sent_path, "%s.sent", argv[2]);
    FILE *out = fopen(sent_path, "wb");
    if (out == NULL) die("sent file");
    for (int i = 0; i < n; i++) {
        uint32_t sent = (uint32_t)editors[i].sent;
        fwrite(&sent, sizeof sent, 1, out);
        fwrite(editors[i].sent_at, sizeof(double), (size_t)sent, out);
    }
    fclose(out);
    printf("done %.3f\n", cpu);
    fflush(stdout);
    for (int i = 0; i < n; i++) close(editors[i].fd);
    return 0;
}

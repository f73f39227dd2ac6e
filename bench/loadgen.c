/*
 * loadgen: the benchmark's mTLS HTTP/1.1 load generator (epoll + non-blocking OpenSSL).
 *
 * Why our own: wrk and h2load cannot present a client certificate, `openssl s_time` runs one
 * connection at a time, and none of them both controls session resumption exactly and holds
 * 10,000 idle connections cheaply. This one does all four jobs with one event loop on one core.
 *
 * Modes:
 *   new        one request per new connection, no resumption (full mTLS handshakes)
 *   resume     one request per new connection, each resuming the session of the previous one
 *   keepalive  requests back to back on persistent connections
 *   idle       open --conns connections (one request each), print "ready", hold them until
 *              stdin is closed or a line arrives
 *
 * Output (stdout, one line each, flushed): "start" when the warm-up ends, then
 * "stop requests=N errors=N handshakes=N resumed=N seconds=F" when the window closes.
 * The caller reads the server's CPU time at each line.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum mode { M_NEW, M_RESUME, M_KEEPALIVE, M_IDLE };
enum state { S_CONNECTING, S_HANDSHAKE, S_WRITE, S_READ, S_IDLE, S_CLOSED };

#define BUF 4096

struct conn {
    int fd;
    SSL *ssl;
    enum state state;
    size_t wrote;
    size_t have;
    SSL_SESSION *session; /* the session to resume next time (resume mode) */
    char buf[BUF];
};

static const char REQUEST[] = "GET / HTTP/1.1\r\nHost: localhost\r\nUser-Agent: mutls-bench\r\n\r\n";

static struct {
    enum mode mode;
    int port, conns, epfd, measuring;
    double warmup, duration;
    SSL_CTX *ctx;
    long requests, errors, handshakes, resumed, bad_status, reconnects;
    int open, in_flight;
} g;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what) {
    fprintf(stderr, "loadgen: %s\n", what);
    ERR_print_errors_fp(stderr);
    exit(2);
}

static void watch(struct conn *c, unsigned events) {
    struct epoll_event ev = {.events = events, .data.ptr = c};
    if (epoll_ctl(g.epfd, EPOLL_CTL_MOD, c->fd, &ev) < 0) die("epoll_ctl MOD");
}

static void conn_open(struct conn *c) {
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)g.port)};
    inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) die("socket (raise the file-descriptor limit)");
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    int r = connect(c->fd, (struct sockaddr *)&addr, sizeof addr);
    c->state = (r == 0) ? S_HANDSHAKE : S_CONNECTING;
    if (r < 0 && errno != EINPROGRESS) c->state = S_CONNECTING; /* reported via SO_ERROR */
    c->ssl = SSL_new(g.ctx);
    if (!c->ssl) die("SSL_new");
    SSL_set_fd(c->ssl, c->fd);
    SSL_set_connect_state(c->ssl);
    SSL_set_tlsext_host_name(c->ssl, "localhost");
    if (g.mode == M_RESUME && c->session) SSL_set_session(c->ssl, c->session);
    c->wrote = c->have = 0;
    struct epoll_event ev = {.events = EPOLLOUT | EPOLLIN, .data.ptr = c};
    if (epoll_ctl(g.epfd, EPOLL_CTL_ADD, c->fd, &ev) < 0) die("epoll_ctl ADD");
    g.open++;
    g.in_flight++;
}

static void conn_close(struct conn *c, int clean) {
    if (c->ssl) {
        if (clean) {
            /* A sent close_notify keeps the session resumable (OpenSSL drops sessions of
             * connections freed without one). */
            if (g.mode == M_RESUME) {
                SSL_SESSION *s = SSL_get1_session(c->ssl);
                if (s && SSL_SESSION_is_resumable(s)) {
                    if (c->session) SSL_SESSION_free(c->session);
                    c->session = s;
                } else if (s) {
                    SSL_SESSION_free(s);
                }
            }
            SSL_shutdown(c->ssl);
        }
        SSL_free(c->ssl);
        c->ssl = NULL;
    }
    if (c->fd >= 0) {
        epoll_ctl(g.epfd, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        c->fd = -1;
    }
    if (c->state != S_IDLE) g.in_flight--;
    c->state = S_CLOSED;
    g.open--;
}

static void fail(struct conn *c) {
    if (g.measuring) g.errors++;
    conn_close(c, 0);
}

/* 1 when buf holds a whole response, 0 when more is needed, -1 when it cannot be parsed. */
static int response_complete(const char *buf, size_t len, size_t *used, int *close_after) {
    const char *end = memmem(buf, len, "\r\n\r\n", 4);
    if (!end) return len >= BUF ? -1 : 0;
    size_t head = (size_t)(end - buf) + 4;
    long body = -1;
    int chunked = 0;
    for (const char *p = buf; p < end;) {
        const char *eol = memmem(p, (size_t)(end - p) + 2, "\r\n", 2);
        if (!eol) break;
        if ((size_t)(eol - p) > 15 && strncasecmp(p, "content-length:", 15) == 0)
            body = strtol(p + 15, NULL, 10);
        if ((size_t)(eol - p) > 18 && strncasecmp(p, "transfer-encoding:", 18) == 0 &&
            memmem(p, (size_t)(eol - p), "chunked", 7))
            chunked = 1;
        if ((size_t)(eol - p) >= 17 && strncasecmp(p, "connection: close", 17) == 0)
            *close_after = 1;
        p = eol + 2;
    }
    if (chunked) {
        const char *last = memmem(buf + head, len - head, "0\r\n\r\n", 5);
        if (!last) return len >= BUF ? -1 : 0;
        *used = (size_t)(last - buf) + 5;
        return 1;
    }
    if (body < 0) return -1; /* the bench apps always send Content-Length */
    if (len < head + (size_t)body) return len >= BUF ? -1 : 0;
    *used = head + (size_t)body;
    return 1;
}

static void on_response(struct conn *c, int close_after) {
    int ok = c->have > 12 && memcmp(c->buf + 9, "200", 3) == 0;
    if (g.measuring) {
        if (ok) g.requests++;
        else g.bad_status++;
    }
    c->have = 0;
    if (g.mode == M_KEEPALIVE && close_after) {
        /* servers that cap requests per connection (hypercorn) say so: reconnect, no error */
        if (g.measuring) g.reconnects++;
        conn_close(c, 1);
    } else if (g.mode == M_KEEPALIVE) {
        c->state = S_WRITE;
        c->wrote = 0;
    } else if (g.mode == M_IDLE) {
        c->state = S_IDLE;
        g.in_flight--;
        watch(c, EPOLLIN);
    } else {
        conn_close(c, 1);
    }
}

static void step(struct conn *c) {
    for (;;) {
        int r = 0, err;
        switch (c->state) {
        case S_CONNECTING: {
            int soerr = 0;
            socklen_t l = sizeof soerr;
            getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &l);
            if (soerr) return fail(c);
            c->state = S_HANDSHAKE;
            continue;
        }
        case S_HANDSHAKE:
            r = SSL_do_handshake(c->ssl);
            if (r == 1) {
                if (g.measuring) {
                    g.handshakes++;
                    if (SSL_session_reused(c->ssl)) g.resumed++;
                }
                c->state = S_WRITE;
                c->wrote = 0;
                continue;
            }
            break;
        case S_WRITE:
            r = SSL_write(c->ssl, REQUEST + c->wrote, (int)(sizeof REQUEST - 1 - c->wrote));
            if (r > 0) {
                c->wrote += (size_t)r;
                if (c->wrote == sizeof REQUEST - 1) {
                    c->state = S_READ;
                    c->have = 0;
                }
                continue;
            }
            break;
        case S_READ:
        case S_IDLE:
            r = SSL_read(c->ssl, c->buf + c->have, (int)(BUF - c->have));
            if (r > 0) {
                if (c->state == S_IDLE) continue; /* late tickets: ignore */
                c->have += (size_t)r;
                size_t used = 0;
                int close_after = 0;
                int done = response_complete(c->buf, c->have, &used, &close_after);
                if (done < 0) return fail(c);
                if (done) {
                    on_response(c, close_after);
                    if (c->state == S_CLOSED) return;
                }
                continue;
            }
            break;
        case S_CLOSED:
            return;
        }
        err = SSL_get_error(c->ssl, r);
        if (err == SSL_ERROR_WANT_READ) return watch(c, EPOLLIN);
        if (err == SSL_ERROR_WANT_WRITE) return watch(c, EPOLLOUT);
        if (c->state == S_IDLE) { /* the server closed an idle connection */
            conn_close(c, 0);
            return;
        }
        ERR_clear_error();
        return fail(c);
    }
}

static void usage(void) {
    fprintf(stderr, "usage: loadgen PORT CERT KEY CA MODE CONNS WARMUP_S DURATION_S\n"
                    "  MODE: new | resume | keepalive | idle\n");
    exit(2);
}

int main(int argc, char **argv) {
    if (argc != 9) usage();
    signal(SIGPIPE, SIG_IGN);
    g.port = atoi(argv[1]);
    const char *mode = argv[5];
    g.conns = atoi(argv[6]);
    g.warmup = atof(argv[7]);
    g.duration = atof(argv[8]);
    if (!strcmp(mode, "new")) g.mode = M_NEW;
    else if (!strcmp(mode, "resume")) g.mode = M_RESUME;
    else if (!strcmp(mode, "keepalive")) g.mode = M_KEEPALIVE;
    else if (!strcmp(mode, "idle")) g.mode = M_IDLE;
    else usage();
    if (g.port <= 0 || g.conns <= 0) usage();

    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    if ((rlim_t)g.conns + 16 > rl.rlim_cur) die("more connections than RLIMIT_NOFILE allows");

    g.ctx = SSL_CTX_new(TLS_client_method());
    if (!g.ctx) die("SSL_CTX_new");
    if (SSL_CTX_use_certificate_chain_file(g.ctx, argv[2]) != 1) die("client certificate");
    if (SSL_CTX_use_PrivateKey_file(g.ctx, argv[3], SSL_FILETYPE_PEM) != 1) die("client key");
    if (SSL_CTX_load_verify_locations(g.ctx, argv[4], NULL) != 1) die("CA file");
    SSL_CTX_set_verify(g.ctx, SSL_VERIFY_PEER, NULL);
    /* Every figure is TLS 1.3: a server that speaks only 1.2 fails here rather than being
       measured on a cheaper protocol (nginx 1.22's defaults leave 1.3 out). */
    if (SSL_CTX_set_min_proto_version(g.ctx, TLS1_3_VERSION) != 1) die("TLS 1.3");
    SSL_CTX_set_mode(g.ctx, SSL_MODE_RELEASE_BUFFERS);
    /* Sessions are kept by hand per connection slot; OpenSSL's own client cache stays off. */
    SSL_CTX_set_session_cache_mode(g.ctx, SSL_SESS_CACHE_OFF);

    g.epfd = epoll_create1(EPOLL_CLOEXEC);
    struct conn *conns = calloc((size_t)g.conns, sizeof *conns);
    if (!conns) die("out of memory");
    for (int i = 0; i < g.conns; i++) {
        conns[i].fd = -1;
        conns[i].state = S_CLOSED;
    }
    /* At most this many handshakes in flight while idle connections are being opened. */
    const int opening_limit = 64;
    int next_idle = 0;

    struct epoll_event events[256];
    double t0 = now();
    double start = t0 + g.warmup, stop = start + g.duration;
    int started = 0;
    if (g.mode == M_IDLE) g.measuring = 1;

    for (;;) {
        double t = now();
        if (g.mode != M_IDLE) {
            if (!started && t >= start) {
                g.measuring = 1;
                started = 1;
                start = t;
                printf("start\n");
                fflush(stdout);
            }
            if (started && t >= stop) {
                printf("stop requests=%ld errors=%ld handshakes=%ld resumed=%ld bad_status=%ld "
                       "reconnects=%ld seconds=%.6f\n",
                       g.requests, g.errors, g.handshakes, g.resumed, g.bad_status, g.reconnects,
                       t - start);
                fflush(stdout);
                return 0; /* the kernel closes every socket */
            }
            for (int i = 0; i < g.conns; i++)
                if (conns[i].state == S_CLOSED) {
                    conn_open(&conns[i]);
                    step(&conns[i]);
                }
        } else {
            while (next_idle < g.conns && g.in_flight < opening_limit) {
                conn_open(&conns[next_idle]);
                step(&conns[next_idle++]);
            }
            if (next_idle == g.conns && g.in_flight == 0) {
                printf("ready open=%d errors=%ld bad_status=%ld seconds=%.6f\n", g.open, g.errors,
                       g.bad_status, t - t0);
                fflush(stdout);
                break;
            }
            if (t - t0 > g.duration) {
                printf("ready open=%d errors=%ld bad_status=%ld seconds=%.6f timeout\n", g.open,
                       g.errors, g.bad_status, t - t0);
                fflush(stdout);
                break;
            }
        }
        int n = epoll_wait(g.epfd, events, 256, 20);
        for (int i = 0; i < n; i++) step((struct conn *)events[i].data.ptr);
    }

    /* idle: hold the connections until stdin says so, noticing connections the server drops */
    struct epoll_event sin = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(g.epfd, EPOLL_CTL_ADD, STDIN_FILENO, &sin);
    for (;;) {
        int n = epoll_wait(g.epfd, events, 256, 1000);
        for (int i = 0; i < n; i++) {
            if (events[i].data.ptr == NULL) {
                printf("done open=%d\n", g.open);
                fflush(stdout);
                return 0;
            }
            step((struct conn *)events[i].data.ptr);
        }
    }
}

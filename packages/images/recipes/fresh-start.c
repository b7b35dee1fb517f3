/*
 * fresh-start HEX EPOCH PROGRAM [ARG...]: makes a guest that may be a clone of a saved state its
 * own, then becomes PROGRAM (the SSH server). It sets the clock to EPOCH (a restored guest has the
 * template's time; 0 leaves the clock alone), credits HEX to the kernel's input pool and forces
 * the CRNG to reseed from it at once, then execs PROGRAM. Every restored clone starts with the
 * same CRNG state, and a plain write to /dev/urandom only mixes into the pool, so the clones
 * would hand out the same "random" bytes until the kernel's next scheduled reseed: PROGRAM must
 * not start before the reseed, and starting it from here costs one process instead of three
 * (each costs 40-60 ms right after a restore under TCG, whose translation cache starts cold).
 * The ioctls and the clock need CAP_SYS_ADMIN and CAP_SYS_TIME; the key agent runs as root.
 * Exit codes before PROGRAM runs: 2 usage, 3 entropy or reseed, 127 PROGRAM could not start.
 *
 * fresh-start HEX EPOCH --relay FD PROGRAM [ARG...]: the same, but PROGRAM (`dropbear -i`, the
 * job's SSH session on the key agent's virtio-serial port FD, decision 0010) gets one end of a
 * socketpair as its standard input and output, and fresh-start stays to copy bytes between FD and
 * the other end until either side closes: dropbear's inetd mode asks the kernel for its peer's
 * address and gives up on a character device, which has none. Exits 0 when the session ended,
 * 127 when PROGRAM could not start, 4 when the relay failed.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/random.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_BYTES 64

static int hex_value(char c) {
	if (c >= '0' && c <= '9') return c - '0';
	if (c >= 'a' && c <= 'f') return c - 'a' + 10;
	if (c >= 'A' && c <= 'F') return c - 'A' + 10;
	return -1;
}

static int usage(void) {
	fprintf(stderr, "usage: fresh-start HEX EPOCH [--relay FD] PROGRAM [ARG...] (HEX: 32 to %d hex digits)\n",
		2 * MAX_BYTES);
	return 2;
}

/* How long the port may read as hung up (no host) before the host counts as gone. */
#define HANGUP_MS 5000
#define HANGUP_RETRY_MS 10
#define BUF_BYTES 65536

/* Bytes read from one descriptor and not yet written to the other. */
struct pending {
	char bytes[BUF_BYTES];
	size_t start, end;
};

/* Writes what `p` holds to `fd` as far as it takes it now; -1 when the write failed. */
static int flush(int fd, struct pending *p) {
	while (p->start < p->end) {
		ssize_t n = write(fd, p->bytes + p->start, p->end - p->start);
		if (n < 0 && errno == EINTR) continue;
		if (n < 0 && errno == EAGAIN) return 0;
		if (n <= 0) return -1;
		p->start += (size_t)n;
	}
	p->start = p->end = 0;
	return 0;
}

static int set_nonblocking(int fd) {
	int flags = fcntl(fd, F_GETFL);
	return flags < 0 ? -1 : fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

/*
 * Copies between the port and the socket until the socket (the server) closes, or the port has
 * read as hung up for HANGUP_MS. Both directions are non-blocking with a buffer each: a side
 * that stops reading holds up only what is sent to it, never the other direction. dropbear reads
 * its input only while its queue of output has room, so a relay blocked writing into dropbear
 * while dropbear's output waits on the relay stops both for good (a job's upload going in while
 * a step's output comes out did). A virtio-serial port reads end-of-file whenever the
 * guest believes no host holds it, and right after a restore that belief can lag behind the
 * host's first bytes (the "host connected" notice comes on another queue than the data), so one
 * end-of-file is no hang-up.
 */
static int relay(int port, int sock) {
	static struct pending to_sock, to_port;
	int hung_up_ms = 0;
	if (set_nonblocking(port) < 0 || set_nonblocking(sock) < 0) return -1;
	for (;;) {
		/*
		 * A side is read only while the buffer it fills is empty (its bytes always have room) and
		 * watched only while there is something to do with it: a hung-up descriptor polls ready at
		 * once, and watching one that waits on the other side would spin.
		 */
		short sock_events = (short)((to_port.end ? 0 : POLLIN) | (to_sock.end ? POLLOUT : 0));
		short port_events = (short)((to_sock.end ? 0 : POLLIN) | (to_port.end ? POLLOUT : 0));
		struct pollfd fds[2] = {{.fd = sock_events ? sock : -1, .events = sock_events},
					{.fd = port_events ? port : -1, .events = port_events}};
		if (poll(fds, 2, -1) < 0) {
			if (errno == EINTR) continue;
			return -1;
		}
		if (fds[0].revents & POLLOUT && flush(sock, &to_sock) < 0) return -1;
		if (fds[1].revents & POLLOUT && flush(port, &to_port) < 0) return -1;
		if (sock_events & POLLIN && fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
			ssize_t n = read(sock, to_port.bytes, BUF_BYTES);
			/* The server closed; everything it wrote before has gone to the port (its buffer was empty). */
			if (n == 0) return 0;
			if (n < 0 && errno != EINTR && errno != EAGAIN) return -1;
			if (n > 0) {
				to_port.end = (size_t)n;
				if (flush(port, &to_port) < 0) return -1;
			}
		}
		if (!(port_events & POLLIN && fds[1].revents & (POLLIN | POLLHUP | POLLERR))) continue;
		ssize_t n = read(port, to_sock.bytes, BUF_BYTES);
		if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
		if (n < 0) return -1;
		if (n > 0) {
			hung_up_ms = 0;
			to_sock.end = (size_t)n;
			if (flush(sock, &to_sock) < 0) return -1;
			continue;
		}
		/* End-of-file: no host, for now. Poll would say so at once, so the socket alone a while. */
		hung_up_ms += HANGUP_RETRY_MS;
		if (hung_up_ms > HANGUP_MS) return 0;
		poll(fds, 1, HANGUP_RETRY_MS);
	}
}

/* Runs argv with a socketpair as its stdin/stdout and relays it to the port `port`. */
static int serve_on(int port, char **argv) {
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		perror("fresh-start: socketpair");
		return 4;
	}
	pid_t child = fork();
	if (child < 0) {
		perror("fresh-start: fork");
		return 4;
	}
	if (child == 0) {
		if (dup2(sv[1], 0) < 0 || dup2(sv[1], 1) < 0) _exit(127);
		close(port);
		execvp(argv[0], argv);
		perror("fresh-start: exec");
		_exit(127);
	}
	close(sv[1]);
	int relayed = relay(port, sv[0]);
	/* The server sees end-of-file and ends its session. */
	close(sv[0]);
	int status = 0;
	while (waitpid(child, &status, 0) < 0 && errno == EINTR) {
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 127) return 127;
	return relayed < 0 ? 4 : 0;
}

int main(int argc, char **argv) {
	struct {
		struct rand_pool_info info;
		unsigned char bytes[MAX_BYTES];
	} seed;
	if (argc < 4) return usage();
	size_t len = strlen(argv[1]);
	/* 16 bytes at least: fewer cannot make the clones' streams differ by much. */
	if (len < 32 || len > 2 * MAX_BYTES || len % 2 != 0) return usage();
	for (size_t i = 0; i < len / 2; i++) {
		int hi = hex_value(argv[1][2 * i]), lo = hex_value(argv[1][2 * i + 1]);
		if (hi < 0 || lo < 0) return usage();
		seed.bytes[i] = (unsigned char)(hi << 4 | lo);
	}
	char *end;
	errno = 0;
	long long epoch = strtoll(argv[2], &end, 10);
	if (errno != 0 || *end != '\0' || epoch < 0) return usage();

	/* A wrong clock breaks a job's TLS, not the guest's isolation: say so and go on. */
	if (epoch > 0) {
		struct timespec now = {.tv_sec = (time_t)epoch, .tv_nsec = 0};
		if (clock_settime(CLOCK_REALTIME, &now) < 0) perror("fresh-start: the clock was not set");
	}

	seed.info.buf_size = (int)(len / 2);
	seed.info.entropy_count = (int)(len / 2) * 8;
	int fd = open("/dev/urandom", O_RDWR);
	if (fd < 0) {
		perror("fresh-start: /dev/urandom");
		return 3;
	}
	if (ioctl(fd, RNDADDENTROPY, &seed.info) < 0) {
		perror("fresh-start: RNDADDENTROPY");
		return 3;
	}
	if (ioctl(fd, RNDRESEEDCRNG) < 0) {
		perror("fresh-start: RNDRESEEDCRNG");
		return 3;
	}
	close(fd);

	if (strcmp(argv[3], "--relay") == 0) {
		if (argc < 6) return usage();
		long port = strtol(argv[4], &end, 10);
		if (*end != '\0' || port < 3) return usage();
		return serve_on((int)port, argv + 5);
	}
	execvp(argv[3], argv + 3);
	perror("fresh-start: exec");
	return 127;
}

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

/* Writes all of buf; on a non-blocking descriptor, waits for room when it is full. */
static int write_all(int fd, const char *buf, ssize_t len) {
	while (len > 0) {
		ssize_t n = write(fd, buf, (size_t)len);
		if (n < 0 && errno == EAGAIN) {
			struct pollfd room = {.fd = fd, .events = POLLOUT};
			if (poll(&room, 1, -1) < 0 && errno != EINTR) return -1;
			continue;
		}
		if (n < 0 && errno == EINTR) continue;
		if (n <= 0) return -1;
		buf += n;
		len -= n;
	}
	return 0;
}

/* How long the port may read as hung up (no host) before the host counts as gone. */
#define HANGUP_MS 5000
#define HANGUP_RETRY_MS 10

/*
 * Copies between the port and the socket until the socket (the server) closes, or the port has
 * read as hung up for HANGUP_MS. A virtio-serial port reads end-of-file whenever the guest
 * believes no host holds it, and right after a restore that belief can lag behind the host's
 * first bytes (the "host connected" notice comes on another queue than the data), so one
 * end-of-file is no hang-up. The port is read without blocking (it may turn from hung up to
 * connected-and-empty between poll and read); blocking on the other writes cannot deadlock:
 * SSH's flow control bounds what either side sends unread (the window).
 */
static int relay(int port, int sock) {
	static char buf[65536];
	int hung_up_ms = 0;
	int flags = fcntl(port, F_GETFL);
	if (flags < 0 || fcntl(port, F_SETFL, flags | O_NONBLOCK) < 0) return -1;
	for (;;) {
		struct pollfd fds[2] = {{.fd = sock, .events = POLLIN}, {.fd = port, .events = POLLIN}};
		if (poll(fds, 2, -1) < 0) {
			if (errno == EINTR) continue;
			return -1;
		}
		if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
			ssize_t n = read(sock, buf, sizeof buf);
			if (n == 0) return 0;
			if (n < 0 && errno != EINTR && errno != EAGAIN) return -1;
			if (n > 0 && write_all(port, buf, n) < 0) return -1;
		}
		if (!(fds[1].revents & (POLLIN | POLLHUP | POLLERR))) continue;
		ssize_t n = read(port, buf, sizeof buf);
		if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
		if (n < 0) return -1;
		if (n > 0) {
			hung_up_ms = 0;
			if (write_all(sock, buf, n) < 0) return -1;
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

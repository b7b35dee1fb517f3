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
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/random.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
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
	fprintf(stderr, "usage: fresh-start HEX EPOCH PROGRAM [ARG...] (HEX: 32 to %d hex digits)\n", 2 * MAX_BYTES);
	return 2;
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

	execvp(argv[3], argv + 3);
	perror("fresh-start: exec");
	return 127;
}

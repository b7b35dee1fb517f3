/*
 * rngseed HEX: credits the given bytes to the kernel's input pool and forces the CRNG to reseed
 * from it at once. Run by the key agent after a snapshot restore: every restored clone starts
 * with the same CRNG state, and a plain write to /dev/urandom only mixes into the pool, so the
 * clones would hand out the same "random" bytes until the kernel's next scheduled reseed.
 * Both ioctls need CAP_SYS_ADMIN; the agent runs as root.
 */
#include <fcntl.h>
#include <linux/random.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define MAX_BYTES 64

static int hex_value(char c) {
	if (c >= '0' && c <= '9') return c - '0';
	if (c >= 'a' && c <= 'f') return c - 'a' + 10;
	if (c >= 'A' && c <= 'F') return c - 'A' + 10;
	return -1;
}

int main(int argc, char **argv) {
	struct {
		struct rand_pool_info info;
		unsigned char bytes[MAX_BYTES];
	} seed;
	size_t len = argc == 2 ? strlen(argv[1]) : 0;
	/* 16 bytes at least: fewer cannot make the clones' streams differ by much. */
	if (len < 32 || len > 2 * MAX_BYTES || len % 2 != 0) {
		fprintf(stderr, "usage: rngseed HEX (32 to %d hex digits)\n", 2 * MAX_BYTES);
		return 2;
	}
	for (size_t i = 0; i < len / 2; i++) {
		int hi = hex_value(argv[1][2 * i]), lo = hex_value(argv[1][2 * i + 1]);
		if (hi < 0 || lo < 0) {
			fprintf(stderr, "rngseed: not hex\n");
			return 2;
		}
		seed.bytes[i] = (unsigned char)(hi << 4 | lo);
	}
	seed.info.buf_size = (int)(len / 2);
	seed.info.entropy_count = (int)(len / 2) * 8;
	int fd = open("/dev/urandom", O_RDWR);
	if (fd < 0) {
		perror("rngseed: /dev/urandom");
		return 1;
	}
	if (ioctl(fd, RNDADDENTROPY, &seed.info) < 0) {
		perror("rngseed: RNDADDENTROPY");
		return 1;
	}
	if (ioctl(fd, RNDRESEEDCRNG) < 0) {
		perror("rngseed: RNDRESEEDCRNG");
		return 1;
	}
	close(fd);
	return 0;
}

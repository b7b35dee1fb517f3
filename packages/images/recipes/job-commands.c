/*
 * job-commands [--keep-env]: the job's commands on the key agent's private channel (decision 0010,
 * option 2), in place of an SSH session there. The agent runs it under fresh-start's relay, so its
 * standard input and output are the channel to the host. It runs each command the host opens
 * through the user's shell with `-c`, as the user it runs as (root, the fast images' SSH user),
 * in the user's home, with the environment dropbear gives a command: USER, LOGNAME, HOME, SHELL and
 * Debian's PATH for that user, on an empty environment or, with --keep-env, on its own (as
 * dropbear's -e). Several commands run at once, each with its own standard input, output and error.
 *
 * It first writes the line "SOLSTICE-COMMANDS 1", then speaks frames both ways: a type byte, the
 * command's id (4 bytes, big-endian), the payload's length (4 bytes, big-endian, at most
 * MAX_PAYLOAD) and the payload.
 *   host → guest: 'O' open (payload: the command line), 'I' standard input, 'i' end of standard
 *                 input, 'C' close (the host no longer wants the command: its pipes are closed and
 *                 nothing more is sent for it).
 *   guest → host: 'o' standard output, 'e' standard error, 'w' window (4 bytes: how many bytes of
 *                 standard input went into the command, so the host may send that many more),
 *                 'x' exit (4 bytes, signed: the exit status, or minus the signal that ended it).
 * The host sends at most STDIN_WINDOW bytes of a command's input that the guest has not yet
 * passed on: a command that reads nothing holds up only its own input. The guest reads a
 * command's output only while its frames to the host have room: a host that reads nothing holds
 * up only output. 'x' comes after all of the command's output: once the command has exited, what
 * its pipes hold is sent and they are closed, so a background process that keeps them open does
 * not keep the command from ending (as with dropbear).
 * Exits 0 when the host closes the channel, 5 on a frame it cannot accept, 4 on a failed write.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define HEAD 9
#define MAX_PAYLOAD 65536
#define STDIN_WINDOW (256 * 1024)
#define MAX_COMMANDS 64
/* Output read from a command per frame; a pipe is read only while a whole frame of it fits. */
#define CHUNK 32768
#define TO_HOST_BYTES (8 * (HEAD + CHUNK))

struct command {
	int used;
	uint32_t id;
	pid_t pid;
	int in_fd, out_fd, err_fd; /* -1 once closed */
	char *in; /* STDIN_WINDOW bytes: input not yet written to the command */
	size_t in_start, in_end;
	int in_eof; /* the host ended the input: close the pipe once `in` is written */
	int exited, status;
	int dropped; /* the host closed it: send nothing more */
};

static struct command commands[MAX_COMMANDS];
static char to_host[TO_HOST_BYTES];
static size_t to_host_start, to_host_end;
static char from_host[HEAD + MAX_PAYLOAD];
static size_t from_host_end;
static int child_pipe[2];
static const char *shell;
static const char *home;

static void on_child(int sig) {
	(void)sig;
	int saved = errno;
	/* Non-blocking: when the pipe is full, a wake-up is already waiting. */
	if (write(child_pipe[1], "c", 1) < 0) {
	}
	errno = saved;
}

static void put32(char *at, uint32_t v) {
	at[0] = (char)(v >> 24);
	at[1] = (char)(v >> 16);
	at[2] = (char)(v >> 8);
	at[3] = (char)v;
}

static uint32_t get32(const char *at) {
	const unsigned char *u = (const unsigned char *)at;
	return (uint32_t)u[0] << 24 | (uint32_t)u[1] << 16 | (uint32_t)u[2] << 8 | u[3];
}

static size_t to_host_room(void) {
	return TO_HOST_BYTES - (to_host_end - to_host_start);
}

/* Room every frame from the host may need for its answers (a refused open: a message and an exit). */
#define ANSWER_ROOM 512

/* Queues a frame for the host; every caller checks to_host_room first, so this never overflows. */
static void frame(char type, uint32_t id, const char *payload, size_t len) {
	if (to_host_room() < HEAD + len) {
		fprintf(stderr, "job-commands: frames for the host overflow\n");
		exit(4);
	}
	if (TO_HOST_BYTES - to_host_end < HEAD + len) {
		memmove(to_host, to_host + to_host_start, to_host_end - to_host_start);
		to_host_end -= to_host_start;
		to_host_start = 0;
	}
	char *at = to_host + to_host_end;
	at[0] = type;
	put32(at + 1, id);
	put32(at + 5, (uint32_t)len);
	if (len > 0) memcpy(at + HEAD, payload, len);
	to_host_end += HEAD + len;
}

static void frame32(char type, uint32_t id, uint32_t value) {
	char payload[4];
	put32(payload, value);
	frame(type, id, payload, 4);
}

static int set_nonblocking(int fd) {
	int flags = fcntl(fd, F_GETFL);
	return flags < 0 ? -1 : fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

static struct command *find(uint32_t id) {
	for (int i = 0; i < MAX_COMMANDS; i++)
		if (commands[i].used && commands[i].id == id) return &commands[i];
	return NULL;
}

static void close_fd(int *fd) {
	if (*fd >= 0) close(*fd);
	*fd = -1;
}

static void forget(struct command *c) {
	close_fd(&c->in_fd);
	close_fd(&c->out_fd);
	close_fd(&c->err_fd);
	free(c->in);
	memset(c, 0, sizeof *c);
}

/* In the child: the command through the user's shell, on the pipes, in the user's home. */
static void exec_command(const char *line, int in, int out, int err) {
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGPIPE, SIG_DFL);
	signal(SIGCHLD, SIG_DFL);
	if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0) _exit(127);
	if (chdir(home) < 0 && chdir("/") < 0) _exit(127);
	const char *base = strrchr(shell, '/');
	execl(shell, base ? base + 1 : shell, "-c", line, (char *)NULL);
	dprintf(2, "job-commands: cannot run %s: %s\n", shell, strerror(errno));
	_exit(127);
}

/* Starts the command `line` as `id`; a command that cannot start ends at once with status 127. */
static void open_command(uint32_t id, const char *line) {
	struct command *c = NULL;
	for (int i = 0; i < MAX_COMMANDS && !c; i++)
		if (!commands[i].used) c = &commands[i];
	int in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1};
	const char *why = NULL;
	if (find(id)) why = "a command with this id runs";
	else if (!c) why = "too many commands at once";
	else if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0) why = "no pipes";
	pid_t pid = -1;
	char *buffer = NULL;
	if (!why && !(buffer = malloc(STDIN_WINDOW))) why = "no memory";
	if (!why && (pid = fork()) < 0) why = "fork failed";
	if (pid == 0) exec_command(line, in[0], out[1], err[1]);
	close_fd(&in[0]);
	close_fd(&out[1]);
	close_fd(&err[1]);
	if (why) {
		close_fd(&in[1]);
		close_fd(&out[0]);
		close_fd(&err[0]);
		free(buffer);
		char message[128];
		int n = snprintf(message, sizeof message, "job-commands: cannot start the command: %s\n", why);
		frame('e', id, message, (size_t)n);
		frame32('x', id, 127);
		return;
	}
	set_nonblocking(in[1]);
	set_nonblocking(out[0]);
	set_nonblocking(err[0]);
	*c = (struct command){.used = 1, .id = id, .pid = pid, .in_fd = in[1], .out_fd = out[0], .err_fd = err[0], .in = buffer};
}

/* Acts on one frame from the host; -1 when it breaks the protocol. */
static int take_frame(char type, uint32_t id, const char *payload, size_t len) {
	struct command *c = find(id);
	switch (type) {
	case 'O': {
		char *line = strndup(payload, len);
		if (!line || memchr(payload, 0, len)) {
			free(line);
			return -1;
		}
		open_command(id, line);
		free(line);
		return 0;
	}
	case 'I':
		if (!c || c->dropped) return 0;
		if (c->in_end + len > STDIN_WINDOW) {
			if (c->in_start > 0) {
				memmove(c->in, c->in + c->in_start, c->in_end - c->in_start);
				c->in_end -= c->in_start;
				c->in_start = 0;
			}
			if (c->in_end + len > STDIN_WINDOW) return -1; /* more than the window allows */
		}
		if (c->in_fd < 0) {
			/* The command closed its input: the bytes go nowhere, the host may send more. */
			frame32('w', id, (uint32_t)len);
			return 0;
		}
		memcpy(c->in + c->in_end, payload, len);
		c->in_end += len;
		return 0;
	case 'i':
		if (c) c->in_eof = 1;
		return 0;
	case 'C':
		if (c) {
			c->dropped = 1;
			close_fd(&c->in_fd);
			close_fd(&c->out_fd);
			close_fd(&c->err_fd);
			if (c->exited) forget(c);
		}
		return 0;
	default:
		return -1;
	}
}

/* Acts on the whole frames the host sent, while their answers fit; -1 on a bad frame. */
static int take_frames(void) {
	size_t at = 0;
	while (from_host_end - at >= HEAD && to_host_room() >= ANSWER_ROOM) {
		uint32_t len = get32(from_host + at + 5);
		if (len > MAX_PAYLOAD) return -1;
		if (from_host_end - at < HEAD + len) break;
		if (take_frame(from_host[at], get32(from_host + at + 1), from_host + at + HEAD, len) < 0) return -1;
		at += HEAD + len;
	}
	memmove(from_host, from_host + at, from_host_end - at);
	from_host_end -= at;
	return 0;
}

/* Reads what the host sent; 1 when the host closed the channel. */
static int read_host(void) {
	ssize_t n = read(0, from_host + from_host_end, sizeof from_host - from_host_end);
	if (n == 0) return 1;
	if (n < 0) return errno == EINTR || errno == EAGAIN ? 0 : 1;
	from_host_end += (size_t)n;
	return 0;
}

/* Passes what the command printed on `fd` to the host; closes it at its end (or, after the command exited, when it is drained). */
static void read_output(struct command *c, int *fd, char type) {
	if (*fd < 0 || to_host_room() < HEAD + CHUNK) return;
	char chunk[CHUNK];
	ssize_t n = read(*fd, chunk, sizeof chunk);
	if (n > 0) {
		frame(type, c->id, chunk, (size_t)n);
		return;
	}
	if (n == 0 || errno != EINTR) {
		if (n == 0 || errno != EAGAIN || c->exited) close_fd(fd);
	}
}

static void write_input(struct command *c) {
	/* A write may answer with a window (two, if the command closed its input). */
	if (c->in_fd < 0 || to_host_room() < 2 * (HEAD + 4)) return;
	if (c->in_start < c->in_end) {
		ssize_t n = write(c->in_fd, c->in + c->in_start, c->in_end - c->in_start);
		if (n > 0) {
			c->in_start += (size_t)n;
			frame32('w', c->id, (uint32_t)n);
		} else if (n < 0 && errno != EAGAIN && errno != EINTR) {
			/* The command closed its input (EPIPE): what waited for it is given back as window. */
			frame32('w', c->id, (uint32_t)(c->in_end - c->in_start));
			close_fd(&c->in_fd);
		}
		if (c->in_start == c->in_end) c->in_start = c->in_end = 0;
	}
	if (c->in_eof && c->in_start == c->in_end) close_fd(&c->in_fd);
}

static void reap(void) {
	char drain[64];
	while (read(child_pipe[0], drain, sizeof drain) > 0) {
	}
	int status;
	pid_t pid;
	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		for (int i = 0; i < MAX_COMMANDS; i++) {
			struct command *c = &commands[i];
			if (!c->used || c->pid != pid) continue;
			c->exited = 1;
			c->status = WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
			if (c->dropped) forget(c);
		}
	}
}

/*
 * The fields of the user's line in /etc/passwd: read here, not with getpwuid, which a static
 * binary can only use with the shared NSS libraries of the glibc it was built with.
 */
static int user_entry(char *line, size_t size, char **name, char **dir, char **login_shell) {
	FILE *f = fopen("/etc/passwd", "r");
	if (!f) return -1;
	char uid[32];
	snprintf(uid, sizeof uid, "%u", (unsigned)getuid());
	int found = -1;
	while (found < 0 && fgets(line, (int)size, f)) {
		line[strcspn(line, "\n")] = '\0';
		char *field[7];
		char *rest = line;
		int n = 0;
		for (; n < 7 && rest; n++) field[n] = strsep(&rest, ":");
		if (n == 7 && strcmp(field[2], uid) == 0) {
			*name = field[0];
			*dir = field[5];
			*login_shell = field[6];
			found = 0;
		}
	}
	fclose(f);
	return found;
}

/* Sets up the environment a command gets from dropbear (see the top). */
static int login_environment(int keep) {
	static char line[4096];
	char *name, *dir, *login_shell;
	if (user_entry(line, sizeof line, &name, &dir, &login_shell) < 0) return -1;
	if (!keep) clearenv();
	shell = *login_shell ? login_shell : "/bin/sh";
	home = *dir ? dir : "/";
	/* Debian's dropbear: its DEFAULT_ROOT_PATH and DEFAULT_PATH. */
	const char *path = getuid() == 0 ? "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
					 : "/usr/local/bin:/usr/bin:/bin:/usr/local/games:/usr/games";
	return setenv("USER", name, 1) | setenv("LOGNAME", name, 1) | setenv("HOME", home, 1) |
	       setenv("SHELL", shell, 1) | setenv("PATH", path, 1);
}

int main(int argc, char **argv) {
	int keep = argc == 2 && strcmp(argv[1], "--keep-env") == 0;
	if (argc > 2 || (argc == 2 && !keep)) {
		fprintf(stderr, "usage: job-commands [--keep-env]\n");
		return 2;
	}
	if (login_environment(keep) < 0) {
		fprintf(stderr, "job-commands: uid %u has no line in /etc/passwd\n", (unsigned)getuid());
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	if (pipe2(child_pipe, O_CLOEXEC | O_NONBLOCK) < 0) return 4;
	struct sigaction child_exit = {.sa_handler = on_child, .sa_flags = SA_RESTART | SA_NOCLDSTOP};
	sigaction(SIGCHLD, &child_exit, NULL);
	fcntl(0, F_SETFD, FD_CLOEXEC);
	fcntl(1, F_SETFD, FD_CLOEXEC);
	if (set_nonblocking(0) < 0 || set_nonblocking(1) < 0) return 4;
	static const char hello[] = "SOLSTICE-COMMANDS 1\n";
	memcpy(to_host, hello, sizeof hello - 1);
	to_host_end = sizeof hello - 1;

	struct pollfd fds[3 + 3 * MAX_COMMANDS];
	for (;;) {
		if (take_frames() < 0) {
			fprintf(stderr, "job-commands: the host sent a frame it may not\n");
			return 5;
		}
		/* After an exit, what the command's pipes hold now is all it gets: read them to the end. */
		for (int i = 0; i < MAX_COMMANDS; i++) {
			struct command *c = &commands[i];
			if (!c->used || !c->exited || c->dropped) continue;
			while ((c->out_fd >= 0 || c->err_fd >= 0) && to_host_room() >= HEAD + CHUNK) {
				read_output(c, &c->out_fd, 'o');
				read_output(c, &c->err_fd, 'e');
			}
			if (c->out_fd < 0 && c->err_fd < 0 && to_host_room() >= HEAD + 4) {
				frame32('x', c->id, (uint32_t)c->status);
				forget(c);
			}
		}
		int n = 0;
		/* The host's bytes are read while they fit; its frames are taken while their answers fit. */
		fds[n++] = (struct pollfd){.fd = from_host_end < sizeof from_host ? 0 : -1, .events = POLLIN};
		fds[n++] = (struct pollfd){.fd = to_host_end > to_host_start ? 1 : -1, .events = POLLOUT};
		fds[n++] = (struct pollfd){.fd = child_pipe[0], .events = POLLIN};
		int room = to_host_room() >= HEAD + CHUNK;
		for (int i = 0; i < MAX_COMMANDS; i++) {
			struct command *c = &commands[i];
			int writing = c->used && (c->in_start < c->in_end || c->in_eof);
			fds[n++] = (struct pollfd){.fd = writing ? c->in_fd : -1, .events = POLLOUT};
			fds[n++] = (struct pollfd){.fd = c->used && room ? c->out_fd : -1, .events = POLLIN};
			fds[n++] = (struct pollfd){.fd = c->used && room ? c->err_fd : -1, .events = POLLIN};
		}
		if (poll(fds, (nfds_t)n, -1) < 0) {
			if (errno == EINTR) continue;
			return 4;
		}
		if (fds[1].revents & (POLLOUT | POLLERR | POLLHUP)) {
			ssize_t w = write(1, to_host + to_host_start, to_host_end - to_host_start);
			if (w < 0 && errno != EAGAIN && errno != EINTR) return 4;
			if (w > 0) to_host_start += (size_t)w;
			if (to_host_start == to_host_end) to_host_start = to_host_end = 0;
		}
		if (fds[2].revents & POLLIN) reap();
		for (int i = 0; i < MAX_COMMANDS; i++) {
			struct command *c = &commands[i];
			if (!c->used) continue;
			struct pollfd *f = &fds[3 + 3 * i];
			if (f[0].revents) write_input(c);
			if (f[1].revents) read_output(c, &c->out_fd, 'o');
			if (f[2].revents) read_output(c, &c->err_fd, 'e');
		}
		if (fds[0].revents && read_host() > 0) return 0;
	}
}

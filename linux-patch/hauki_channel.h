/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * hauki_channel.h - C programs' side of Hauki's channels to real-time tasks.
 *
 * Each channel is a character device, /dev/hauki/<name>: a message channel
 * passes one record per read()/write() (a read buffer shorter than the
 * record fails with EMSGSIZE and the record stays; a record longer than the
 * channel's record_size cannot be written), a byte channel passes a stream.
 * poll() reports POLLIN when something waits, POLLOUT when there is room.
 * Errors:
 *   EPIPE     the real-time side is not there (no real-time task serves the
 *             channel); the driver also raises SIGPIPE on such a write, so
 *             ignore SIGPIPE to see the error instead of dying;
 *   EMSGSIZE  the record is larger than the buffer / the channel's records;
 *   EINVAL    (open) the channel has no ring in that direction: open a
 *             channel to Linux O_RDONLY, one from Linux O_WRONLY;
 *   ENOENT    (open) no such channel (haukictl channels lists them);
 *   EAGAIN    nothing to read / no room (O_NONBLOCK, or a timeout below).
 * Counters: /sys/kernel/hauki/channels/<name>/. Needs POSIX.1-2008
 * (_POSIX_C_SOURCE 200809L, the default of gcc's and clang's gnu modes).
 *
 * Use:
 *
 *	#include <signal.h>
 *	#include "hauki_channel.h"
 *
 *	signal(SIGPIPE, SIG_IGN);
 *	int fd = hauki_channel_open("echo", O_RDWR);
 *	if (fd < 0) {
 *		perror("echo");
 *		return 1;
 *	}
 *	if (hauki_channel_send(fd, "ping", 4) < 0)
 *		perror("send");
 *	char buf[256];
 *	ssize_t n = hauki_channel_recv(fd, buf, sizeof(buf), 1000);
 *	if (n < 0)
 *		perror("recv");	// errno EAGAIN: nothing within 1000 ms
 *	close(fd);
 */
#ifndef HAUKI_CHANNEL_H
#define HAUKI_CHANNEL_H

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <sys/types.h>
#include <unistd.h>

/* Where the channels' devices are (a test may point elsewhere). */
#ifndef HAUKI_CHANNEL_DIR
#define HAUKI_CHANNEL_DIR "/dev/hauki/"
#endif

/* A channel's name: 1 to 31 characters of a-z, 0-9, _ and -. */
#define HAUKI_CHANNEL_NAME_MAX 31

/*
 * Opens channel `name` with open(2) `flags` (O_RDONLY, O_WRONLY or O_RDWR,
 * and O_NONBLOCK if wanted; O_CLOEXEC is added). Returns the file
 * descriptor, or -1 with errno set (EINVAL also for a name that cannot be
 * a channel's).
 */
static inline int hauki_channel_open(const char *name, int flags)
{
	char path[sizeof(HAUKI_CHANNEL_DIR) + HAUKI_CHANNEL_NAME_MAX];
	size_t len = 0;
	const char *c;

	for (c = name; *c; c++, len++) {
		if (len >= HAUKI_CHANNEL_NAME_MAX ||
		    !((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') ||
		      *c == '_' || *c == '-')) {
			errno = EINVAL;
			return -1;
		}
	}
	if (len == 0) {
		errno = EINVAL;
		return -1;
	}
	snprintf(path, sizeof(path), "%s%s", HAUKI_CHANNEL_DIR, name);
	return open(path, flags | O_CLOEXEC);
}

/*
 * Sends `len` bytes: one record on a message channel, the bytes on a byte
 * channel (all of them on a blocking descriptor; on an O_NONBLOCK one as
 * many as fit). Returns the bytes sent, or -1 with errno set.
 */
static inline ssize_t hauki_channel_send(int fd, const void *data, size_t len)
{
	ssize_t n;

	do
		n = write(fd, data, len);
	while (n < 0 && errno == EINTR);
	return n;
}

/*
 * Receives one record (message channel) or what bytes there are (byte
 * channel) into `buf`, waiting up to `timeout_ms` milliseconds: -1 waits as
 * long as it takes, 0 not at all. Returns its length, or -1 with errno set:
 * EAGAIN when nothing came in time, EMSGSIZE when the record is larger than
 * `size` (it stays in the channel), EPIPE when the real-time side is gone.
 */
static inline ssize_t hauki_channel_recv(int fd, void *buf, size_t size,
					 int timeout_ms)
{
	struct pollfd p;
	ssize_t n;
	int r;

	p.fd = fd;
	p.events = POLLIN;
	p.revents = 0;
	do
		r = poll(&p, 1, timeout_ms);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return -1;
	if (r == 0) {
		errno = EAGAIN;
		return -1;
	}
	do
		n = read(fd, buf, size);
	while (n < 0 && errno == EINTR);
	return n;
}

#endif /* HAUKI_CHANNEL_H */

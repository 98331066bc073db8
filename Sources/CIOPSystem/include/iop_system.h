// What the iop-node agent needs from the operating system beyond libzmq, in
// one place and in plain C, so the same code serves the host build and the
// Embedded Swift board build (which has no CommandLine, Glibc module or
// Foundation): arguments, stop signals, a monotonic clock, and the datagram
// that carries systemd's notify protocol.
#ifndef IOP_SYSTEM_H
#define IOP_SYSTEM_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/// The process's arguments, captured before main runs (glibc passes them to ELF constructors).
int iop_argc(void);
char *const *iop_argv(void);

/// From now on SIGTERM and SIGINT only record themselves (no SA_RESTART), so
/// a serving node finishes the message in hand and then stops cleanly.
int iop_catch_stop_signals(void);
/// The stop signal received, or 0.
int iop_stop_signal(void);

uint64_t iop_monotonic_ns(void);
/// CPU time of the whole process, every thread (libzmq's I/O thread included): what moving bytes costs a board.
uint64_t iop_process_cpu_ns(void);

/// Sends one datagram to the AF_UNIX socket at `path` (a leading '@' names the
/// abstract namespace, as in NOTIFY_SOCKET). Returns 0, or the errno.
int iop_datagram_send(const char *path, const void *bytes, size_t length);
/// Maps a whole file read-only (the leader's bundle: its weight shards are
/// sent and packed from the page cache, never copied into the heap). Returns
/// NULL with errno set on failure; *length receives the file's size.
const void *iop_map_file(const char *path, size_t *length);
void iop_unmap_file(const void *bytes, size_t length);
/// Drops the whole pages inside [start, start + length) of a read-only file
/// mapping from memory (they would be read from the file again if touched).
void iop_release_mapped(const void *start, size_t length);
/// Reads up to `length` bytes from `fd` (standard input is 0). Returns the count, 0 at end of
/// input, or -errno (-EINTR when a stop signal arrived first).
long iop_read(int fd, void *bytes, size_t length);
/// Whether `fd` has input waiting (or has reached its end) within `timeout_ms` (0: now).
int iop_readable(int fd, int timeout_ms);
/// Sleeps `ns` nanoseconds, or less when a stop signal arrives.
void iop_sleep_ns(uint64_t ns);
/// Whether `path` names a directory.
int iop_is_directory(const char *path);
/// strerror(errno), for messages that name why a system call failed.
const char *iop_last_error(void);

#endif

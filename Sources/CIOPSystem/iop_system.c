#define _GNU_SOURCE
#include "iop_system.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>

static int saved_argc;
static char *const *saved_argv;

__attribute__((constructor)) static void iop_capture_arguments(int argc, char **argv, char **envp) {
    (void)envp;
    saved_argc = argc;
    saved_argv = argv;
}

int iop_argc(void) { return saved_argc; }
char *const *iop_argv(void) { return saved_argv; }

static volatile sig_atomic_t stop_signal;

static void record_stop(int signal) { stop_signal = signal; }

int iop_catch_stop_signals(void) {
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = record_stop;
    sigemptyset(&action.sa_mask);
    if (sigaction(SIGTERM, &action, NULL) != 0 || sigaction(SIGINT, &action, NULL) != 0) return errno;
    // A parent may have started us with these blocked (the mask is inherited
    // across exec); blocked, they would stay pending and never stop the node.
    sigset_t stops;
    sigemptyset(&stops);
    sigaddset(&stops, SIGTERM);
    sigaddset(&stops, SIGINT);
    return pthread_sigmask(SIG_UNBLOCK, &stops, NULL);
}

int iop_stop_signal(void) { return stop_signal; }

uint64_t iop_monotonic_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

uint64_t iop_process_cpu_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

int iop_datagram_send(const char *path, const void *bytes, size_t length) {
    struct sockaddr_un address;
    memset(&address, 0, sizeof address);
    address.sun_family = AF_UNIX;
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof address.sun_path) return EINVAL;
    memcpy(address.sun_path, path, n);
    if (path[0] == '@') address.sun_path[0] = 0;
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return errno;
    ssize_t sent = sendto(fd, bytes, length, MSG_NOSIGNAL, (const struct sockaddr *)&address,
                          (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n));
    int error = sent < 0 ? errno : 0;
    close(fd);
    return error;
}

const void *iop_map_file(const char *path, size_t *length) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return NULL;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return NULL;
    }
    if (st.st_size <= 0) {
        close(fd);
        errno = EINVAL;
        return NULL;
    }
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    int saved = errno;
    close(fd);
    if (p == MAP_FAILED) { errno = saved; return NULL; }
    *length = (size_t)st.st_size;
    return p;
}

void iop_unmap_file(const void *bytes, size_t length) { munmap((void *)bytes, length); }

void iop_release_mapped(const void *start, size_t length) {
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t lo = ((uintptr_t)start + page - 1) / page * page, hi = ((uintptr_t)start + length) / page * page;
    if (hi > lo) madvise((void *)lo, hi - lo, MADV_DONTNEED);
}

const char *iop_last_error(void) { return strerror(errno); }

int iop_is_directory(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

long iop_read(int fd, void *bytes, size_t length) {
    ssize_t n = read(fd, bytes, length);
    return n < 0 ? -(long)errno : (long)n;
}

int iop_readable(int fd, int timeout_ms) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, timeout_ms) > 0;
}

void iop_sleep_ns(uint64_t ns) {
    struct timespec t = {.tv_sec = (time_t)(ns / 1000000000u), .tv_nsec = (long)(ns % 1000000000u)};
    nanosleep(&t, NULL);
}

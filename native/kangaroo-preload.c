/*
 * libkangaroo-preload.so: literal /kangaroo/HOST/PATH names for unmodified,
 * dynamically linked programs, without a mount at the root.
 *
 * Loaded with LD_PRELOAD (by `kangaroo run`), it rewrites path arguments of the
 * libc calls programs use for names (open, stat, opendir, mkdir, rename, ...):
 *
 *   /kangaroo, /kangaroo/...       -> $KANGAROO_MOUNT/kangaroo/...
 *   a name listed in KANGAROO_NAMES -> $KANGAROO_MOUNT/NAME   (name service names)
 *
 * It only rewrites names: every byte goes through the mount. Any other path,
 * every relative path, and every call when KANGAROO_MOUNT is unset reach libc
 * exactly as the program passed them, so a program that never uses such names
 * behaves as without the shim. execve's path is not touched.
 *
 * KANGAROO_NAMES is a colon-separated list of absolute names; a name ending in
 * "/" also covers everything below it (the name service's directory entries).
 * Names are matched literally, as the program spells them.
 *
 * Errors of its own, with errno set and nothing called:
 *   ENAMETOOLONG  the rewritten name would not fit in PATH_MAX;
 *   ENOENT        /kangaroo//x: no host named (the kernel would take x for one).
 * "/kangaroo/.." is the root, as if /kangaroo were a directory there; other ".."
 * and "." components are left to the kernel, inside the mount.
 *
 * Thread-safe: every call rewrites into its own stack buffer; the settings are
 * read once (a constructor, or the first call if another library's constructor
 * comes first) and never change. errno is preserved across the shim's own work.
 */
#define _GNU_SOURCE
#undef _FILE_OFFSET_BITS /* the wrappers define both the plain and the 64-bit names */
#undef _TIME_BITS
#undef _FORTIFY_SOURCE /* fortified inline definitions would clash with ours */

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/xattr.h>
#include <unistd.h>
#include <utime.h>

#define KG_EXPORT __attribute__((visibility("default")))

/* Entry points glibc exports for older or fortified binaries, which its headers no longer declare. */
int __xstat(int ver, const char *path, struct stat *buf);
int __lxstat(int ver, const char *path, struct stat *buf);
int __xstat64(int ver, const char *path, struct stat64 *buf);
int __lxstat64(int ver, const char *path, struct stat64 *buf);
int __fxstatat(int ver, int dirfd, const char *path, struct stat *buf, int flags);
int __fxstatat64(int ver, int dirfd, const char *path, struct stat64 *buf, int flags);
int __xmknod(int ver, const char *path, mode_t mode, dev_t *dev);
int __xmknodat(int ver, int dirfd, const char *path, mode_t mode, dev_t *dev);
int __open_2(const char *path, int flags);
int __open64_2(const char *path, int flags);
int __openat_2(int dirfd, const char *path, int flags);
int __openat64_2(int dirfd, const char *path, int flags);
ssize_t __readlink_chk(const char *path, char *buf, size_t len, size_t buflen);
ssize_t __readlinkat_chk(int dirfd, const char *path, char *buf, size_t len, size_t buflen);
char *__realpath_chk(const char *path, char *resolved, size_t resolvedlen);

/* ---- settings, read once ---- */

struct kg_name {
    const char *name; /* without a trailing slash */
    size_t len;
    int below; /* listed with a trailing slash: covers NAME/... too */
};

static struct {
    int enabled;
    int debug;
    char mount[PATH_MAX]; /* absolute, no trailing slash */
    size_t mount_len;
    struct kg_name *names;
    size_t n_names;
} kg;

static pthread_once_t kg_once = PTHREAD_ONCE_INIT;

static void kg_read_names(const char *list) {
    char *copy = strdup(list);
    if (!copy) return;
    size_t cap = 1;
    for (const char *c = copy; *c; c++) cap += *c == ':';
    kg.names = calloc(cap, sizeof *kg.names);
    if (!kg.names) return;
    for (char *save = NULL, *n = strtok_r(copy, ":", &save); n; n = strtok_r(NULL, ":", &save)) {
        size_t len = strlen(n);
        int below = 0;
        while (len > 1 && n[len - 1] == '/') n[--len] = '\0', below = 1;
        /* only absolute names; never the root; /kangaroo is always rewritten anyway */
        if (n[0] != '/' || len < 2 || (strncmp(n, "/kangaroo", 9) == 0 && (n[9] == '\0' || n[9] == '/'))) continue;
        kg.names[kg.n_names++] = (struct kg_name){ n, len, below };
    }
}

static void kg_setup(void) {
    int saved = errno;
    const char *m = getenv("KANGAROO_MOUNT");
    const char *d = getenv("KANGAROO_PRELOAD_DEBUG");
    kg.debug = d && *d && strcmp(d, "0") != 0;
    if (m && m[0] == '/') {
        size_t len = strlen(m);
        while (len > 1 && m[len - 1] == '/') len--;
        /* "/" would map /kangaroo onto itself; a mount name near PATH_MAX leaves no room for any name */
        if (len > 1 && len < PATH_MAX - 64) {
            memcpy(kg.mount, m, len);
            kg.mount[len] = '\0';
            kg.mount_len = len;
            kg.enabled = 1;
            const char *names = getenv("KANGAROO_NAMES");
            if (names && *names) kg_read_names(names);
        }
    }
    errno = saved;
}

static inline void kg_init(void) {
    pthread_once(&kg_once, kg_setup);
}

__attribute__((constructor)) static void kg_constructor(void) {
    kg_init();
}

/* ---- the rewrite ---- */

/* Is this absolute path one the shim serves? 1 yes, 0 no. */
static int kg_ours(const char *p) {
    if (strncmp(p, "/kangaroo", 9) == 0 && (p[9] == '\0' || p[9] == '/')) return 1;
    for (size_t i = 0; i < kg.n_names; i++) {
        const struct kg_name *n = &kg.names[i];
        if (strncmp(p, n->name, n->len) != 0) continue;
        if (p[n->len] == '\0' || (n->below && p[n->len] == '/')) return 1;
    }
    return 0;
}

/* "/kangaroo//x" names no host: without this check the kernel would take x for one. */
static int kg_no_host(const char *p) {
    if (p[9] == '\0' || p[10] != '/') return 0;
    const char *h = p + 10;
    while (*h == '/') h++;
    return *h != '\0'; /* "/kangaroo//" alone is the list of hosts, like "/kangaroo" */
}

/* "/kangaroo/.." and "/kangaroo/../x": the parent of /kangaroo is the root, as if it were a directory there. */
static int kg_dotdot(const char *p) {
    return strncmp(p, "/kangaroo/..", 12) == 0 && (p[12] == '\0' || p[12] == '/');
}

static void kg_trace(const char *what, const char *from, const char *to) {
    char line[2 * PATH_MAX + 64];
    int n = snprintf(line, sizeof line, "kangaroo-preload: %s %s -> %s\n", what, from, to ? to : "(error)");
    if (n > 0) {
        ssize_t w = write(2, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
        (void)w;
    }
}

/*
 * Points *pp at `buf` holding the rewritten name when the name is ours.
 * Returns 0, or -1 with errno set (the call must then fail without reaching libc).
 * NULL and relative names are left alone: libc reports them as it always does.
 */
static int kg_map(const char *what, const char **pp, char buf[PATH_MAX]) {
    const char *p = *pp;
    if (!p || p[0] != '/') return 0;
    kg_init();
    if (!kg.enabled) return 0;
    if (kg_dotdot(p)) {
        while (kg_dotdot(p)) p += 12;
        if (*p == '\0') p = "/";
        if (kg.debug) kg_trace(what, *pp, p);
        *pp = p;
    }
    if (!kg_ours(p)) return 0;
    if (p[1] == 'k' && kg_no_host(p)) {
        if (kg.debug) kg_trace(what, p, NULL);
        errno = ENOENT;
        return -1;
    }
    size_t len = strlen(p);
    if (kg.mount_len + len + 1 > PATH_MAX) {
        if (kg.debug) kg_trace(what, p, NULL);
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(buf, kg.mount, kg.mount_len);
    memcpy(buf + kg.mount_len, p, len + 1);
    if (kg.debug) kg_trace(what, p, buf);
    *pp = buf;
    return 0;
}

/* realpath of a rewritten name: give back the name the program used ("/kangaroo/..."), not the mount's. */
static char *kg_unmap(char *r) {
    if (r && kg.enabled && strncmp(r, kg.mount, kg.mount_len) == 0 && r[kg.mount_len] == '/' && kg_ours(r + kg.mount_len)) {
        memmove(r, r + kg.mount_len, strlen(r + kg.mount_len) + 1);
    }
    return r;
}

/* The next definition of a symbol (libc's, or another preloaded library's), looked up once. */
static void *kg_real(void **slot, const char *name) {
    void *f = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
    if (!f) {
        int saved = errno;
        f = dlsym(RTLD_NEXT, name);
        errno = saved;
        if (f) __atomic_store_n(slot, f, __ATOMIC_RELEASE);
    }
    return f;
}

#define REAL(name, fail)                                                        \
    static void *slot_;                                                         \
    __typeof__(&name) real_ = (__typeof__(&name))kg_real(&slot_, #name);       \
    if (!real_) {                                                               \
        errno = ENOSYS;                                                         \
        return fail;                                                            \
    }

/* A call with one name argument, `path`. */
#define WRAP(ret, fail, name, params, args)                                     \
    KG_EXPORT ret name params {                                                 \
        char buf_[PATH_MAX];                                                    \
        REAL(name, fail);                                                       \
        if (kg_map(#name, &path, buf_) < 0) return fail;                        \
        return real_ args;                                                      \
    }

/* A call with two name arguments, `from` and `to`. */
#define WRAP2(ret, fail, name, params, args)                                    \
    KG_EXPORT ret name params {                                                 \
        char from_buf_[PATH_MAX], to_buf_[PATH_MAX];                            \
        REAL(name, fail);                                                       \
        if (kg_map(#name, &from, from_buf_) < 0) return fail;                   \
        if (kg_map(#name, &to, to_buf_) < 0) return fail;                       \
        return real_ args;                                                      \
    }

/* open's mode argument exists only when a file may be created. */
#define OPEN_MODE(flags, mode)                                                  \
    mode_t mode = 0;                                                            \
    if (((flags) & O_CREAT) || ((flags) & O_TMPFILE) == O_TMPFILE) {           \
        va_list ap_;                                                            \
        va_start(ap_, flags);                                                   \
        mode = (mode_t)va_arg(ap_, unsigned int);                               \
        va_end(ap_);                                                            \
    }

#define WRAP_OPEN(name)                                                         \
    KG_EXPORT int name(const char *path, int flags, ...) {                      \
        char buf_[PATH_MAX];                                                    \
        OPEN_MODE(flags, mode);                                                 \
        REAL(name, -1);                                                         \
        if (kg_map(#name, &path, buf_) < 0) return -1;                          \
        return real_(path, flags, mode);                                        \
    }

#define WRAP_OPENAT(name)                                                       \
    KG_EXPORT int name(int dirfd, const char *path, int flags, ...) {           \
        char buf_[PATH_MAX];                                                    \
        OPEN_MODE(flags, mode);                                                 \
        REAL(name, -1);                                                         \
        if (kg_map(#name, &path, buf_) < 0) return -1;                          \
        return real_(dirfd, path, flags, mode);                                 \
    }

/* ---- opening ---- */

WRAP_OPEN(open)
WRAP_OPEN(open64)
WRAP_OPENAT(openat)
WRAP_OPENAT(openat64)
WRAP(int, -1, __open_2, (const char *path, int flags), (path, flags))
WRAP(int, -1, __open64_2, (const char *path, int flags), (path, flags))
WRAP(int, -1, __openat_2, (int dirfd, const char *path, int flags), (dirfd, path, flags))
WRAP(int, -1, __openat64_2, (int dirfd, const char *path, int flags), (dirfd, path, flags))
WRAP(int, -1, creat, (const char *path, mode_t mode), (path, mode))
WRAP(int, -1, creat64, (const char *path, mode_t mode), (path, mode))
WRAP(FILE *, NULL, fopen, (const char *path, const char *mode), (path, mode))
WRAP(FILE *, NULL, fopen64, (const char *path, const char *mode), (path, mode))
WRAP(FILE *, NULL, freopen, (const char *path, const char *mode, FILE *f), (path, mode, f))
WRAP(FILE *, NULL, freopen64, (const char *path, const char *mode, FILE *f), (path, mode, f))
WRAP(DIR *, NULL, opendir, (const char *path), (path))
WRAP(int, -1, scandir,
     (const char *path, struct dirent ***list, int (*filter)(const struct dirent *),
      int (*compar)(const struct dirent **, const struct dirent **)),
     (path, list, filter, compar))
WRAP(int, -1, scandir64,
     (const char *path, struct dirent64 ***list, int (*filter)(const struct dirent64 *),
      int (*compar)(const struct dirent64 **, const struct dirent64 **)),
     (path, list, filter, compar))
WRAP(int, -1, inotify_add_watch, (int fd, const char *path, uint32_t mask), (fd, path, mask))

/* ---- status ---- */

WRAP(int, -1, stat, (const char *path, struct stat *st), (path, st))
WRAP(int, -1, stat64, (const char *path, struct stat64 *st), (path, st))
WRAP(int, -1, lstat, (const char *path, struct stat *st), (path, st))
WRAP(int, -1, lstat64, (const char *path, struct stat64 *st), (path, st))
WRAP(int, -1, fstatat, (int dirfd, const char *path, struct stat *st, int flags), (dirfd, path, st, flags))
WRAP(int, -1, fstatat64, (int dirfd, const char *path, struct stat64 *st, int flags), (dirfd, path, st, flags))
WRAP(int, -1, __xstat, (int ver, const char *path, struct stat *st), (ver, path, st))
WRAP(int, -1, __xstat64, (int ver, const char *path, struct stat64 *st), (ver, path, st))
WRAP(int, -1, __lxstat, (int ver, const char *path, struct stat *st), (ver, path, st))
WRAP(int, -1, __lxstat64, (int ver, const char *path, struct stat64 *st), (ver, path, st))
WRAP(int, -1, __fxstatat, (int ver, int dirfd, const char *path, struct stat *st, int flags), (ver, dirfd, path, st, flags))
WRAP(int, -1, __fxstatat64, (int ver, int dirfd, const char *path, struct stat64 *st, int flags), (ver, dirfd, path, st, flags))
WRAP(int, -1, statx, (int dirfd, const char *path, int flags, unsigned int mask, struct statx *st), (dirfd, path, flags, mask, st))
WRAP(int, -1, statfs, (const char *path, struct statfs *st), (path, st))
WRAP(int, -1, statfs64, (const char *path, struct statfs64 *st), (path, st))
WRAP(int, -1, statvfs, (const char *path, struct statvfs *st), (path, st))
WRAP(int, -1, statvfs64, (const char *path, struct statvfs64 *st), (path, st))
WRAP(long, -1, pathconf, (const char *path, int name), (path, name))
WRAP(int, -1, access, (const char *path, int mode), (path, mode))
WRAP(int, -1, faccessat, (int dirfd, const char *path, int mode, int flags), (dirfd, path, mode, flags))
WRAP(int, -1, euidaccess, (const char *path, int mode), (path, mode))
WRAP(int, -1, eaccess, (const char *path, int mode), (path, mode))
WRAP(ssize_t, -1, readlink, (const char *path, char *buf, size_t len), (path, buf, len))
WRAP(ssize_t, -1, readlinkat, (int dirfd, const char *path, char *buf, size_t len), (dirfd, path, buf, len))
WRAP(ssize_t, -1, __readlink_chk, (const char *path, char *buf, size_t len, size_t buflen), (path, buf, len, buflen))
WRAP(ssize_t, -1, __readlinkat_chk, (int dirfd, const char *path, char *buf, size_t len, size_t buflen), (dirfd, path, buf, len, buflen))

KG_EXPORT char *realpath(const char *path, char *resolved) {
    char buf[PATH_MAX];
    REAL(realpath, NULL);
    if (kg_map("realpath", &path, buf) < 0) return NULL;
    return kg_unmap(real_(path, resolved));
}

KG_EXPORT char *__realpath_chk(const char *path, char *resolved, size_t resolvedlen) {
    char buf[PATH_MAX];
    REAL(__realpath_chk, NULL);
    if (kg_map("realpath", &path, buf) < 0) return NULL;
    return kg_unmap(real_(path, resolved, resolvedlen));
}

KG_EXPORT char *canonicalize_file_name(const char *path) {
    char buf[PATH_MAX];
    REAL(canonicalize_file_name, NULL);
    if (kg_map("canonicalize_file_name", &path, buf) < 0) return NULL;
    return kg_unmap(real_(path));
}

/* ---- changing names and attributes ---- */

WRAP(int, -1, mkdir, (const char *path, mode_t mode), (path, mode))
WRAP(int, -1, mkdirat, (int dirfd, const char *path, mode_t mode), (dirfd, path, mode))
WRAP(int, -1, rmdir, (const char *path), (path))
WRAP(int, -1, unlink, (const char *path), (path))
WRAP(int, -1, unlinkat, (int dirfd, const char *path, int flags), (dirfd, path, flags))
WRAP(int, -1, remove, (const char *path), (path))
WRAP2(int, -1, rename, (const char *from, const char *to), (from, to))
WRAP2(int, -1, renameat, (int fromfd, const char *from, int tofd, const char *to), (fromfd, from, tofd, to))
WRAP2(int, -1, renameat2, (int fromfd, const char *from, int tofd, const char *to, unsigned int flags), (fromfd, from, tofd, to, flags))
WRAP2(int, -1, link, (const char *from, const char *to), (from, to))
WRAP2(int, -1, linkat, (int fromfd, const char *from, int tofd, const char *to, int flags), (fromfd, from, tofd, to, flags))
/* a symbolic link's target is its content, resolved later by the kernel: only the link's own name moves */
#define WRAP_SYMLINK(name, params, args)                                        \
    KG_EXPORT int name params {                                                 \
        char buf_[PATH_MAX];                                                    \
        REAL(name, -1);                                                         \
        if (kg_map(#name, &path, buf_) < 0) return -1;                          \
        return real_ args;                                                      \
    }
WRAP_SYMLINK(symlink, (const char *target, const char *path), (target, path))
WRAP_SYMLINK(symlinkat, (const char *target, int dirfd, const char *path), (target, dirfd, path))
WRAP(int, -1, truncate, (const char *path, off_t size), (path, size))
WRAP(int, -1, truncate64, (const char *path, off64_t size), (path, size))
WRAP(int, -1, chdir, (const char *path), (path))
WRAP(int, -1, chmod, (const char *path, mode_t mode), (path, mode))
WRAP(int, -1, fchmodat, (int dirfd, const char *path, mode_t mode, int flags), (dirfd, path, mode, flags))
WRAP(int, -1, chown, (const char *path, uid_t uid, gid_t gid), (path, uid, gid))
WRAP(int, -1, lchown, (const char *path, uid_t uid, gid_t gid), (path, uid, gid))
WRAP(int, -1, fchownat, (int dirfd, const char *path, uid_t uid, gid_t gid, int flags), (dirfd, path, uid, gid, flags))
WRAP(int, -1, utime, (const char *path, const struct utimbuf *times), (path, times))
WRAP(int, -1, utimes, (const char *path, const struct timeval times[2]), (path, times))
WRAP(int, -1, lutimes, (const char *path, const struct timeval times[2]), (path, times))
WRAP(int, -1, utimensat, (int dirfd, const char *path, const struct timespec times[2], int flags), (dirfd, path, times, flags))
WRAP(int, -1, mkfifo, (const char *path, mode_t mode), (path, mode))
WRAP(int, -1, mkfifoat, (int dirfd, const char *path, mode_t mode), (dirfd, path, mode))
WRAP(int, -1, mknod, (const char *path, mode_t mode, dev_t dev), (path, mode, dev))
WRAP(int, -1, mknodat, (int dirfd, const char *path, mode_t mode, dev_t dev), (dirfd, path, mode, dev))
WRAP(int, -1, __xmknod, (int ver, const char *path, mode_t mode, dev_t *dev), (ver, path, mode, dev))
WRAP(int, -1, __xmknodat, (int ver, int dirfd, const char *path, mode_t mode, dev_t *dev), (ver, dirfd, path, mode, dev))

/* ---- extended attributes (ls -l, cp -a and tar ask for them) ---- */

WRAP(ssize_t, -1, getxattr, (const char *path, const char *name, void *value, size_t size), (path, name, value, size))
WRAP(ssize_t, -1, lgetxattr, (const char *path, const char *name, void *value, size_t size), (path, name, value, size))
WRAP(int, -1, setxattr, (const char *path, const char *name, const void *value, size_t size, int flags), (path, name, value, size, flags))
WRAP(int, -1, lsetxattr, (const char *path, const char *name, const void *value, size_t size, int flags), (path, name, value, size, flags))
WRAP(ssize_t, -1, listxattr, (const char *path, char *list, size_t size), (path, list, size))
WRAP(ssize_t, -1, llistxattr, (const char *path, char *list, size_t size), (path, list, size))
WRAP(int, -1, removexattr, (const char *path, const char *name), (path, name))
WRAP(int, -1, lremovexattr, (const char *path, const char *name), (path, name))

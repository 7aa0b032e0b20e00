/*
 * A small unmodified C program for the preload shim tests: it knows nothing of
 * kangaroo. Usage: fopen-stat SRC DST — copies SRC to DST with fopen/fwrite,
 * stats both (stat, lstat, the legacy __xstat entry old binaries call, and open
 * with flags only known at run time, which fortified builds send to __open_2),
 * reads DST back and compares, lists DST's directory; prints one line each.
 * With "errno PATH...": prints the errno name of fopen(PATH,"r") and stat(PATH).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

extern int __xstat(int ver, const char *path, struct stat *buf);

static const char *errname(int e) {
    switch (e) {
    case 0: return "OK";
    case ENOENT: return "ENOENT";
    case ENAMETOOLONG: return "ENAMETOOLONG";
    case EISDIR: return "EISDIR";
    case EACCES: return "EACCES";
    case ENOTDIR: return "ENOTDIR";
    case EINVAL: return "EINVAL";
    default: return strerror(e);
    }
}

static int check_errors(int argc, char **argv) {
    for (int i = 2; i < argc; i++) {
        struct stat st;
        errno = 0;
        FILE *f = fopen(argv[i], "r");
        int fe = f ? 0 : errno;
        if (f) fclose(f);
        errno = 0;
        int se = stat(argv[i], &st) == 0 ? 0 : errno;
        printf("fopen=%s stat=%s\n", errname(fe), errname(se));
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 2 && strcmp(argv[1], "errno") == 0) return check_errors(argc, argv);
    if (argc != 3) {
        fprintf(stderr, "usage: %s SRC DST | errno PATH...\n", argv[0]);
        return 2;
    }
    FILE *in = fopen(argv[1], "rb");
    FILE *out = fopen(argv[2], "wb");
    if (!in || !out) {
        perror("fopen");
        return 1;
    }
    static char buf[65536], back[65536];
    size_t n, total = 0;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0) {
        if (fwrite(buf, 1, n, out) != n) { perror("fwrite"); return 1; }
        total += n;
    }
    if (fclose(out) != 0) { perror("fclose"); return 1; }
    struct stat s1, s2, s3;
    if (stat(argv[2], &s1) != 0 || lstat(argv[2], &s2) != 0 || __xstat(1, argv[2], &s3) != 0) { perror("stat"); return 1; }
    printf("copied %zu stat %lld lstat %lld xstat %lld regular %d\n", total, (long long)s1.st_size, (long long)s2.st_size,
           (long long)s3.st_size, S_ISREG(s1.st_mode));
    volatile int flags = O_RDONLY;
    int fd = open(argv[2], flags);
    if (fd < 0) { perror("open"); return 1; }
    close(fd);
    rewind(in);
    FILE *again = fopen(argv[2], "rb");
    if (!again) { perror("fopen again"); return 1; }
    size_t a, b, same = 1;
    while ((a = fread(buf, 1, sizeof buf, in)) > 0) {
        b = fread(back, 1, a, again);
        if (a != b || memcmp(buf, back, a) != 0) same = 0;
    }
    if (fread(back, 1, 1, again) != 0) same = 0;
    printf("read back %s\n", same ? "identical" : "DIFFERENT");
    fclose(again);
    fclose(in);
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", argv[2]);
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir) *slash = '\0';
    DIR *d = opendir(dir);
    if (!d) { perror("opendir"); return 1; }
    int found = 0;
    for (struct dirent *e; (e = readdir(d));) found |= strcmp(e->d_name, slash ? slash + 1 : argv[2]) == 0;
    closedir(d);
    printf("listed %s\n", found ? "yes" : "no");
    return same && found ? 0 : 1;
}

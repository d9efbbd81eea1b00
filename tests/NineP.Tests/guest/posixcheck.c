/*
 * posixcheck: focused POSIX checks of a mounted file system, run in the QEMU guest as root against each
 * mount (ours, diod, a local tmpfs). Prints "@@R <case> ok" or "@@R <case> FAIL <why>" per case, then
 * "@@O <path> <uid> <gid> <mode-octal> <rdev>" for every object the ownership steps made, so the test can
 * compare the mounts with the local file system. Non-root steps run in a child as uid/gid 65534 (nobody:
 * nogroup), which exists on the host too, so diod can switch to it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <grp.h>

#define USER 65534
#define GROUP 50

static char base[2048];

static const char *at(const char *rel)
{
    static char buf[4][4096];
    static int n;
    char *b = buf[n++ & 3];
    snprintf(b, 4096, "%s/%s", base, rel);
    return b;
}

static void result(const char *name, int ok, const char *fmt, ...)
{
    char why[512] = "";
    if (!ok && fmt) { va_list ap; va_start(ap, fmt); vsnprintf(why, sizeof why, fmt, ap); va_end(ap); }
    printf("@@R %s %s%s%s\n", name, ok ? "ok" : "FAIL", ok ? "" : " ", why);
    fflush(stdout);
}

static void pause_clock(void)
{
    struct timespec t = { 0, 30 * 1000 * 1000 };
    nanosleep(&t, NULL);
}

static int later(struct timespec a, struct timespec b) /* a after b */
{
    return a.tv_sec > b.tv_sec || (a.tv_sec == b.tv_sec && a.tv_nsec > b.tv_nsec);
}

static int make_file(const char *rel, mode_t mode)
{
    int fd = open(at(rel), O_CREAT | O_WRONLY | O_TRUNC, mode);
    if (fd < 0) return -1;
    if (write(fd, "0123456789", 10) != 10) { close(fd); return -1; }
    return close(fd);
}

/* ctime moves on chown, lchown, chown(-1,-1) and chmod */
static void check_ctime(void)
{
    struct stat a, b;
    make_file("c_file", 0644);
    symlink("c_file", at("c_link"));
    struct { const char *name, *rel; int op; } cases[] = {
        { "chown_changes_ctime", "c_file", 0 }, { "lchown_changes_ctime", "c_link", 1 },
        { "chown_minus1_changes_ctime", "c_file", 2 }, { "chmod_changes_ctime", "c_file", 3 },
    };
    for (unsigned i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (lstat(at(cases[i].rel), &a) != 0) { result(cases[i].name, 0, "lstat: %s", strerror(errno)); continue; }
        pause_clock();
        int rc = cases[i].op == 0 ? chown(at(cases[i].rel), 1, 2)
               : cases[i].op == 1 ? lchown(at(cases[i].rel), 3, 4)
               : cases[i].op == 2 ? chown(at(cases[i].rel), -1, -1)
               : chmod(at(cases[i].rel), 0640);
        if (rc != 0) { result(cases[i].name, 0, "call: %s", strerror(errno)); continue; }
        lstat(at(cases[i].rel), &b);
        result(cases[i].name, later(b.st_ctim, a.st_ctim), "ctime %ld.%09ld -> %ld.%09ld",
               a.st_ctim.tv_sec, a.st_ctim.tv_nsec, b.st_ctim.tv_sec, b.st_ctim.tv_nsec);
    }
}

/* an open file outlives its name */
static void check_open_objects(void)
{
    struct stat st;
    int fd = open(at("o_tmp"), O_CREAT | O_RDWR, 0600);
    if (fd < 0) { result("fstat_open_unlinked", 0, "open: %s", strerror(errno)); return; }
    write(fd, "secret", 6);
    unlink(at("o_tmp"));
    int rc = fstat(fd, &st);
    if (rc != 0) result("fstat_open_unlinked", 0, "fstat: %s", strerror(errno));
    else result("fstat_open_unlinked", st.st_nlink == 0 && st.st_size == 6 && (st.st_mode & 07777) == 0600,
                "nlink %lu size %ld mode %o", (unsigned long)st.st_nlink, (long)st.st_size, st.st_mode & 07777);
    char buf[8] = "";
    rc = (int)pread(fd, buf, 6, 0);
    result("read_open_unlinked", rc == 6 && memcmp(buf, "secret", 6) == 0, "pread %d", rc);
    rc = fchmod(fd, 0640);
    if (rc == 0) rc = fstat(fd, &st);
    result("fchmod_open_unlinked", rc == 0 && (st.st_mode & 07777) == 0640, "mode %o rc %d", st.st_mode & 07777, rc);
    close(fd);

    struct stat before;
    make_file("o_old", 0644);
    make_file("o_new", 0600);
    fd = open(at("o_old"), O_RDONLY);
    fstat(fd, &before);
    truncate(at("o_new"), 3);
    rc = rename(at("o_new"), at("o_old"));
    int rc2 = fstat(fd, &st);
    result("fstat_after_rename_over", rc == 0 && rc2 == 0 && st.st_ino == before.st_ino && st.st_size == 10 && st.st_nlink == 0,
           "rename %d fstat %d ino %lu/%lu size %ld nlink %lu", rc, rc2, (unsigned long)st.st_ino,
           (unsigned long)before.st_ino, (long)st.st_size, (unsigned long)st.st_nlink);
    close(fd);
}

static void check_times(void)
{
    struct timespec ts[2] = { { 1600000000, 123456789 }, { 1600000001, 987654321 } };
    struct stat st;
    make_file("t_file", 0644);
    int rc = utimensat(AT_FDCWD, at("t_file"), ts, 0);
    stat(at("t_file"), &st);
    result("utimensat_nanoseconds", rc == 0 && st.st_atim.tv_nsec == 123456789 && st.st_mtim.tv_nsec == 987654321
           && st.st_mtim.tv_sec == 1600000001, "rc %d atime %ld.%09ld mtime %ld.%09ld", rc, st.st_atim.tv_sec,
           st.st_atim.tv_nsec, st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
    result("utimensat_seconds", rc == 0 && st.st_mtim.tv_sec == 1600000001, "mtime %ld", st.st_mtim.tv_sec);
}

static void check_basics(void)
{
    struct stat st;
    int rc;
    make_file("b_file", 0644);
    rc = link(at("b_file"), at("b_hard"));
    stat(at("b_file"), &st);
    result("link_counts", rc == 0 && st.st_nlink == 2, "rc %d nlink %lu", rc, (unsigned long)st.st_nlink);
    unlink(at("b_hard"));
    stat(at("b_file"), &st);
    result("unlink_counts", st.st_nlink == 1, "nlink %lu", (unsigned long)st.st_nlink);
    rc = open(at("b_file"), O_CREAT | O_EXCL | O_WRONLY, 0644);
    result("open_excl_eexist", rc < 0 && errno == EEXIST, "rc %d errno %d", rc, errno);
    mkdir(at("b_dir"), 0755);
    make_file("b_dir/x", 0644);
    rc = rmdir(at("b_dir"));
    result("rmdir_nonempty", rc < 0 && (errno == ENOTEMPTY || errno == EEXIST), "rc %d errno %d", rc, errno);
    rc = mkdir(at("b_dir"), 0755);
    result("mkdir_eexist", rc < 0 && errno == EEXIST, "rc %d errno %d", rc, errno);
    rc = truncate(at("b_file"), 4);
    stat(at("b_file"), &st);
    result("truncate_size", rc == 0 && st.st_size == 4, "rc %d size %ld", rc, (long)st.st_size);
    char target[64] = "";
    symlink("some/where", at("b_link"));
    rc = (int)readlink(at("b_link"), target, sizeof target - 1);
    result("readlink_target", rc == 10 && strcmp(target, "some/where") == 0, "rc %d '%s'", rc, target);
    rc = rename(at("b_dir/x"), at("b_moved"));
    result("rename_across_dirs", rc == 0 && access(at("b_moved"), F_OK) == 0 && access(at("b_dir/x"), F_OK) != 0, "rc %d", rc);
    rc = chmod(at("b_file"), 04755);
    stat(at("b_file"), &st);
    result("chmod_setuid_kept", rc == 0 && (st.st_mode & 07777) == 04755, "mode %o", st.st_mode & 07777);
}

/* what a non-root process may and may not do, and what it owns */
static void as_user(void)
{
    struct stat st;
    int rc;
    umask(022);
    rc = make_file("pub/u_file", 0644);
    result("user_creates_file", rc == 0, "%s", strerror(errno));
    rc = mkdir(at("pub/u_dir"), 0755);
    result("user_creates_dir", rc == 0, "%s", strerror(errno));
    rc = symlink("u_file", at("pub/u_link"));
    result("user_creates_symlink", rc == 0, "%s", strerror(errno));
    rc = mkfifo(at("pub/u_fifo"), 0644);
    result("user_creates_fifo", rc == 0, "%s", strerror(errno));
    rc = mknod(at("pub/u_chr"), S_IFCHR | 0644, makedev(1, 3));
    result("user_mknod_device_eperm", rc < 0 && errno == EPERM, "rc %d errno %d", rc, errno);
    rc = open(at("r_secret"), O_RDONLY);
    result("user_read_0600_eacces", rc < 0 && errno == EACCES, "rc %d errno %d", rc, errno);
    rc = make_file("u_in_root_dir", 0644);
    result("user_create_in_0755_root_dir_eacces", rc < 0 && errno == EACCES, "rc %d errno %d", rc, errno);
    rc = unlink(at("pub/r_file"));
    result("user_unlink_sticky_eperm", rc < 0 && errno == EPERM, "rc %d errno %d", rc, errno);
    rc = chown(at("pub/u_file"), 0, 0);
    result("user_chown_away_eperm", rc < 0 && errno == EPERM, "rc %d errno %d", rc, errno);
    rc = chmod(at("pub/r_file"), 0666);
    result("user_chmod_others_eperm", rc < 0 && errno == EPERM, "rc %d errno %d", rc, errno);
    rc = open(at("pub/r_file"), O_WRONLY);
    result("user_write_others_0644_eacces", rc < 0 && errno == EACCES, "rc %d errno %d", rc, errno);
    rc = make_file("sg/u_file", 0664);
    stat(at("sg/u_file"), &st);
    result("user_setgid_dir_gives_group", rc == 0 && st.st_gid == GROUP && st.st_uid == USER, "rc %d %u:%u", rc, st.st_uid, st.st_gid);
    rc = mkdir(at("sg/u_dir"), 0775);
    stat(at("sg/u_dir"), &st);
    result("user_setgid_dir_subdir_setgid", rc == 0 && st.st_gid == GROUP && (st.st_mode & S_ISGID), "rc %d gid %u mode %o", rc, st.st_gid, st.st_mode & 07777);
}

static void as_root_setgid_umask(void)
{
    struct stat st;
    umask(027);
    int rc = make_file("sg/r_file", 0666);
    stat(at("sg/r_file"), &st);
    result("setgid_dir_file_group_and_umask", rc == 0 && st.st_gid == GROUP && (st.st_mode & 07777) == 0640, "gid %u mode %o", st.st_gid, st.st_mode & 07777);
    rc = mkdir(at("sg/r_dir"), 0777);
    stat(at("sg/r_dir"), &st);
    result("setgid_dir_subdir_setgid_and_umask", rc == 0 && st.st_gid == GROUP && (st.st_mode & 07777) == 02750, "gid %u mode %o", st.st_gid, st.st_mode & 07777);
    rc = mkdir(at("sg/r_dir/r_sub"), 0777);
    rc |= mkfifo(at("sg/r_fifo"), 0666);
    rc |= mknod(at("sg/r_chr"), S_IFCHR | 0666, makedev(4, 64));
    rc |= symlink("r_file", at("sg/r_link"));
    result("root_creates_in_setgid_dir", rc == 0, "%s", strerror(errno));
    umask(022);
}

static void list_owner(const char *rel)
{
    struct stat st;
    if (lstat(at(rel), &st) != 0) { printf("@@O %s missing\n", rel); return; }
    printf("@@O %s %u %u %o %u,%u\n", rel, st.st_uid, st.st_gid, st.st_mode,
           S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode) ? major(st.st_rdev) : 0,
           S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode) ? minor(st.st_rdev) : 0);
}

int main(int argc, char **argv)
{
    if (argc != 2) { fprintf(stderr, "usage: posixcheck DIR\n"); return 2; }
    snprintf(base, sizeof base, "%s", argv[1]);
    umask(022);
    if (mkdir(base, 0755) != 0 && errno != EEXIST) { perror(base); return 1; }
    chmod(base, 0755);
    check_ctime();
    check_open_objects();
    check_times();
    check_basics();

    /* the stage for the user: a sticky world-writable dir, a root file in it, a 0600 root file, a setgid dir */
    mkdir(at("pub"), 0777); chmod(at("pub"), 01777);
    make_file("pub/r_file", 0644);
    make_file("r_secret", 0600);
    mkdir(at("sg"), 0777); chown(at("sg"), 0, GROUP); chmod(at("sg"), 02777);
    as_root_setgid_umask();
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        if (setgroups(0, NULL) != 0 || setgid(USER) != 0 || setuid(USER) != 0) { perror("drop root"); _exit(1); }
        as_user();
        _exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    const char *made[] = { "pub/u_file", "pub/u_dir", "pub/u_link", "pub/u_fifo", "sg", "sg/r_file", "sg/r_dir",
                           "sg/r_dir/r_sub", "sg/r_fifo", "sg/r_chr", "sg/r_link", "sg/u_file", "sg/u_dir" };
    for (unsigned i = 0; i < sizeof made / sizeof made[0]; i++) list_owner(made[i]);
    printf("@@END\n");
    return 0;
}

/* The package's /usr/bin/hello in the dev-loop guest tests (HelloProgram.cs): built twice with different MSG, as a rebuilt package at the
 * same version. No libc, so it is a few kilobytes and the guest's polling loop (one exec per round over 9P) stays
 * cheap. `hello` prints MSG once; `hello sleep` prints it every second for at most 10 minutes: a process that
 * keeps running from the binary it was started from, and stops by itself. */
#ifndef MSG
#define MSG "hello"
#endif
static long sys3(long n, long a, long b, long c)
{
    long r;
    __asm__ volatile("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
    return r;
}
struct timespec_ { long s, ns; };
__attribute__((used)) void start_c(long *sp)
{
    static const char msg[] = MSG "\n";
    long rounds = sp[0] > 1 ? 600 : 1;
    for (long i = 0; i < rounds; i++) {
        if (i) { struct timespec_ t = { 1, 0 }; sys3(35, (long)&t, 0, 0); }
        sys3(1, 1, (long)msg, sizeof msg - 1);
    }
    sys3(60, 0, 0, 0);
}
__asm__(".globl _start\n_start:\n mov %rsp, %rdi\n and $-16, %rsp\n call start_c\n hlt\n");

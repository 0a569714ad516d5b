// The kernel's floor for an allocating vm_read + vm_deallocate of one page with guest
// protection on: an mprotect making a resident 64 KiB page of a 4 GiB memfd mapping
// read-write and one making it PROT_NONE again (what wasmach's table changes cost), with and
// without the 64 KiB copy between them, against the copy alone; then the same on anonymous
// memory (wasmach's CopyMode::Physical). BENCHMARKS.md, "Fixed costs at the limit".
//
//   cc -O2 benches/c/mprotect_floor.c -o /tmp/mprotect_floor && /tmp/mprotect_floor
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

static void measure(const char *kind, int fd) {
    const size_t reservation = 1ul << 32, page = 65536;
    const int n = 200000;
    char *base = fd >= 0
        ? mmap(0, reservation, PROT_NONE, MAP_SHARED | MAP_NORESERVE, fd, 0)
        : mmap(0, reservation, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (base == MAP_FAILED) { perror("mmap"); exit(1); }
    // two allocated pages, then the page that comes and goes, resident
    mprotect(base, 2 * page, PROT_READ | PROT_WRITE);
    memset(base, 1, 2 * page);
    char *p = base + 2 * page;
    mprotect(p, page, PROT_READ | PROT_WRITE);
    memset(p, 2, page);
    mprotect(p, page, PROT_NONE);
    char *src = aligned_alloc(page, page);
    memset(src, 3, page);
    double t0 = now();
    for (int i = 0; i < n; i++) {
        mprotect(p, page, PROT_READ | PROT_WRITE);
        memcpy(p, src, page);
        mprotect(p, page, PROT_NONE);
    }
    double pair_copy = (now() - t0) / n;
    t0 = now();
    for (int i = 0; i < n; i++) {
        mprotect(p, page, PROT_READ | PROT_WRITE);
        mprotect(p, page, PROT_NONE);
    }
    double pair = (now() - t0) / n;
    mprotect(p, page, PROT_READ | PROT_WRITE);
    t0 = now();
    for (int i = 0; i < n; i++) {
        memcpy(p, src, page);
        __asm__ volatile("" ::: "memory");
    }
    double copy = (now() - t0) / n;
    printf("%s: mprotect pair %.0f ns, pair + 64 KiB copy %.0f ns, copy alone %.0f ns\n",
           kind, pair, pair_copy, copy);
    munmap(base, reservation);
    free(src);
}

int main(void) {
    int fd = memfd_create("floor", 0);
    if (fd < 0 || ftruncate(fd, 1ul << 32) != 0) { perror("memfd"); return 1; }
    measure("memfd", fd);
    measure("anonymous", -1);
    return 0;
}

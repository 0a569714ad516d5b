// What finding the data of a spawn-pool reservation's warm prefix costs (the guest programs'
// spawn): SEEK_DATA, SEEK_HOLE and the SEEK_DATA that finds no more data, on a 4 GiB memfd
// holding one 4 KiB page at 1 MiB (where a Rust guest's stack and data meet); and, for
// comparison, mincore(2) over the 17 pages of a mapping of that file.
// BENCHMARKS.md, "Fixed costs at the limit".
//
//   cc -O2 benches/c/seek_data.c -o /tmp/seek_data && /tmp/seek_data
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

int main(void) {
    int fd = memfd_create("seek", 0);
    if (fd < 0 || ftruncate(fd, 1ul << 32) != 0) { perror("memfd"); return 1; }
    char page[4096];
    memset(page, 1, sizeof page);
    if (pwrite(fd, page, sizeof page, 1 << 20) != sizeof page) { perror("pwrite"); return 1; }
    const int n = 200000;
    double t0 = now();
    for (int i = 0; i < n; i++) {
        off_t data = lseek(fd, 0, SEEK_DATA);
        off_t hole = lseek(fd, data, SEEK_HOLE);
        if (lseek(fd, hole, SEEK_DATA) != -1 || errno != ENXIO) return 1;
    }
    double three = (now() - t0) / n;
    t0 = now();
    for (int i = 0; i < n; i++) lseek(fd, (1 << 20) + 4096, SEEK_DATA);
    printf("three lseeks %.0f ns, the last one alone %.0f ns\n", three, (now() - t0) / n);

    // The same question asked of the page cache through a mapping: one call, but it looks
    // up each unmapped 4 KiB entry (and misses pages swapped out).
    char *base = mmap(0, 1ul << 32, PROT_NONE, MAP_SHARED | MAP_NORESERVE, fd, 0);
    if (base == MAP_FAILED || mprotect(base, 17 << 16, PROT_READ | PROT_WRITE) != 0) {
        perror("mmap");
        return 1;
    }
    unsigned char vec[17 * 16];
    t0 = now();
    for (int i = 0; i < n / 10; i++)
        if (mincore(base, 17 << 16, vec) != 0) { perror("mincore"); return 1; }
    printf("mincore of 17 pages %.0f ns\n", (now() - t0) / (n / 10));
    return 0;
}

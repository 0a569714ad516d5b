/* The mailbox protocol of the demo guests (guests/protocol/src/lib.rs), for C:
 * the same fixed addresses, record layout, FNV-1a-64 checksum and results. */
#ifndef MAILBOX_H
#define MAILBOX_H

#include <mach.h>

#define MAILBOX_NAME      "mailbox"
#define HEADER_ADDRESS    ((vm_address_t)0x100000)             /* page 16 of the mailbox */
#define RECORDS_ADDRESS   (HEADER_ADDRESS + vm_page_size)      /* pages 17..21 */
#define MAGIC             0x57414d43u                          /* "WAMC", stored LE */
#define RECORD_PAGES      4u
#define RECORD_SIZE       64u
#define RECORDS_PER_PAGE  (vm_page_size / RECORD_SIZE)
#define RECORD_COUNT      (RECORD_PAGES * RECORDS_PER_PAGE)
#define RECORDS_SIZE      (RECORD_PAGES * vm_page_size)
#define HEADER_SIZE       24u

/* consumer's check failures */
#define BAD_HEADER        (-1000LL)
#define BAD_RECORD_INDEX  (-1001LL)
#define BAD_CHECKSUM      (-1002LL)

/* A failed call's result: -(code). */
#define FAIL(kr)          (-(long long)(unsigned int)(kr))

/* The header page's fields, little-endian (wasm32 is): magic, count, size,
 * pages, checksum of the records; the rest of the page is zero. */
struct header {
    unsigned int magic;
    unsigned int record_count;
    unsigned int record_size;
    unsigned int pages;
    unsigned long long checksum;
};
_Static_assert(sizeof(struct header) == HEADER_SIZE, "header layout");

static inline unsigned long long fnv1a64(const unsigned char *p, unsigned int n)
{
    unsigned long long h = 0xcbf29ce484222325ull;
    while (n--)
        h = (h ^ *p++) * 0x00000100000001b3ull;
    return h;
}

/* The checksum as a non-negative result: its low 63 bits. */
static inline long long checksum_value(unsigned long long c)
{
    return (long long)(c & 0x7fffffffffffffffull);
}

/* Record i into r (RECORD_SIZE bytes, zero on entry): index, payload length
 * 8 + i % 49, then that many bytes of xorshift32 seeded (i + 1) * 0x9e3779b9. */
static inline void make_record(unsigned int i, unsigned char *r)
{
    unsigned int len = 8 + i % 49;
    unsigned int x = (i + 1) * 0x9e3779b9u;
    ((unsigned int *)r)[0] = i;
    ((unsigned int *)r)[1] = len;
    for (unsigned int k = 0; k < len; k++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        r[8 + k] = (unsigned char)x;
    }
}

#endif

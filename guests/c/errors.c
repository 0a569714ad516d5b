/* Every call, and every code the GNU Mach manual lists for vm_read, vm_write and
 * vm_copy (misaligned address and size, unallocated range, protected range,
 * overlapping vm_copy, no space for vm_read), plus the runtime's own: the
 * message-level codes and the rules of docs/spec.md section 3.
 *
 * Returns 0 when every check holds, else the number of the first that does not:
 * checks are numbered 1, 2, ... in the order they run (each EXPECT or CHECK).
 * Built with a 32-page address space (build.sh: --max-memory) so that it can
 * run out of room. Self-contained: run it alone with `wasmach run`. */
#include <mach.h>

#define P vm_page_size
#define BAD_PTR   ((void *)0xfffffff0)      /* past the address space: never writable */
#define FAR       ((vm_address_t)0xffff0000) /* the last page of 4 GiB */
#define NO_PORT   ((mach_port_t)0x7777)      /* not a name (no 0x03 tag) */

static int n;
#ifdef ERRORS_REPORT_LINE /* -DERRORS_REPORT_LINE: return the failing check's line instead */
#define CHECK(cond) do { n++; if (!(cond)) return __LINE__; } while (0)
#else
#define CHECK(cond) do { n++; if (!(cond)) return n; } while (0)
#endif
#define EXPECT(call, want) CHECK((kern_return_t)(call) == (kern_return_t)(want))

static unsigned char pat(unsigned int i, unsigned int k)
{
    return (unsigned char)(i * k + k);
}

static void fill(vm_address_t page, unsigned int k)
{
    unsigned char *p = (unsigned char *)page;
    for (unsigned int i = 0; i < P; i++)
        p[i] = pat(i, k);
}

static int holds(vm_address_t page, unsigned int k)
{
    const unsigned char *p = (const unsigned char *)page;
    for (unsigned int i = 0; i < P; i++)
        if (p[i] != pat(i, k))
            return 0;
    return 1;
}

static const char long_name[129] = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
                                   "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

int _start(void)
{
    mach_port_t self = mach_task_self(), port;
    vm_address_t base, e, hole, a, data;
    vm_size_t size;
    mach_msg_type_number_t count;
    vm_prot_t cur, max;

    CHECK(self == 0x103);

    /* --- vm_allocate, vm_deallocate ------------------------------------ */
    /* base: pages A B C D; e: three pages for vm_copy; hole: freed again. */
    EXPECT(vm_allocate(self, &base, 4 * P, TRUE), KERN_SUCCESS);
    CHECK(base != 0 && base % P == 0);
    const vm_address_t A = base, B = base + P, C = base + 2 * P, D = base + 3 * P;
    EXPECT(vm_allocate(self, &e, 3 * P, TRUE), KERN_SUCCESS);
    EXPECT(vm_allocate(self, &hole, P, TRUE), KERN_SUCCESS);
    CHECK(*(volatile unsigned char *)hole == 0);           /* fresh pages are zero */
    EXPECT(vm_deallocate(self, hole, P), KERN_SUCCESS);
    EXPECT(vm_deallocate(self, hole, P), KERN_SUCCESS);    /* nothing there: fine */
    a = base + 1;
    EXPECT(vm_allocate(self, &a, P, FALSE), KERN_NO_SPACE); /* over allocated pages */
    a = 32 * P;
    EXPECT(vm_allocate(self, &a, P, FALSE), KERN_INVALID_ADDRESS); /* past the limit */
    EXPECT(vm_allocate(self, &a, 64 * P, TRUE), KERN_NO_SPACE);
    EXPECT(vm_allocate(self, BAD_PTR, P, TRUE), KERN_INVALID_ARGUMENT);
    EXPECT(vm_allocate(MACH_PORT_NULL, &a, P, TRUE), MACH_SEND_INVALID_DEST);
    EXPECT(vm_allocate(NO_PORT, &a, P, TRUE), MACH_SEND_INVALID_DEST);
    EXPECT(vm_deallocate(self, FAR, 2 * P), KERN_INVALID_ARGUMENT); /* wraps */
    EXPECT(vm_deallocate(NO_PORT, hole, P), MACH_SEND_INVALID_DEST);

    /* --- vm_protect: C none, D read-only with maximum read ------------- */
    EXPECT(vm_protect(self, A, P, FALSE, 8), KERN_INVALID_ARGUMENT);
    EXPECT(vm_protect(self, hole, P, FALSE, VM_PROT_READ), KERN_INVALID_ADDRESS);
    EXPECT(vm_protect(self, FAR, 2 * P, FALSE, VM_PROT_READ), KERN_INVALID_ARGUMENT);
    EXPECT(vm_protect(self, C, P, FALSE, VM_PROT_NONE), KERN_SUCCESS);
    EXPECT(vm_protect(self, D, P, TRUE, VM_PROT_READ), KERN_SUCCESS);
    EXPECT(vm_protect(self, D, P, FALSE, VM_PROT_DEFAULT), KERN_PROTECTION_FAILURE);
    EXPECT(vm_protect(NO_PORT, A, P, FALSE, VM_PROT_READ), MACH_SEND_INVALID_DEST);

    /* --- vm_region ----------------------------------------------------- */
    a = base;
    EXPECT(vm_region(self, &a, &size, &cur, &max), KERN_SUCCESS);
    /* A region is a maximal run: A and B join the initial memory's pages below. */
    CHECK(a <= A && a + size == C && cur == VM_PROT_DEFAULT && max == VM_PROT_ALL);
    a = C + 5;
    EXPECT(vm_region(self, &a, &size, &cur, &max), KERN_SUCCESS);
    CHECK(a == C && size == P && cur == VM_PROT_NONE && max == VM_PROT_ALL);
    a = D;
    EXPECT(vm_region(self, &a, &size, &cur, &max), KERN_SUCCESS);
    CHECK(a == D && size == P && cur == VM_PROT_READ && max == VM_PROT_READ);
    a = FAR;
    EXPECT(vm_region(self, &a, &size, &cur, &max), KERN_NO_SPACE);
    EXPECT(vm_region(self, BAD_PTR, &size, &cur, &max), KERN_INVALID_ARGUMENT);
    a = base;
    EXPECT(vm_region(self, &a, BAD_PTR, &cur, &max), KERN_INVALID_ARGUMENT);
    EXPECT(vm_region(NO_PORT, &a, &size, &cur, &max), MACH_SEND_INVALID_DEST);

    /* --- vm_read ------------------------------------------------------- */
    fill(A, 7);
    EXPECT(vm_read(self, A, P, &data, &count), KERN_SUCCESS);
    CHECK(count == P && data % P == 0 && data != A && holds(data, 7));
    EXPECT(vm_deallocate(self, data, count), KERN_SUCCESS);
    EXPECT(vm_read(self, A + 1, P, &data, &count), KERN_INVALID_ARGUMENT);  /* address */
    EXPECT(vm_read(self, A, P + 1, &data, &count), KERN_INVALID_ARGUMENT);  /* size */
    EXPECT(vm_read(self, hole, P, &data, &count), KERN_INVALID_ADDRESS);
    EXPECT(vm_read(self, FAR, 2 * P, &data, &count), KERN_INVALID_ADDRESS); /* past 4 GiB */
    EXPECT(vm_read(self, C, P, &data, &count), KERN_PROTECTION_FAILURE);
    EXPECT(vm_read(self, B, 2 * P, &data, &count), KERN_PROTECTION_FAILURE); /* reaches C */
    EXPECT(vm_read(self, A, P, BAD_PTR, &count), KERN_INVALID_ARGUMENT);
    EXPECT(vm_read(self, A, P, &data, BAD_PTR), KERN_INVALID_ARGUMENT);
    EXPECT(vm_read(MACH_PORT_NULL, A, P, &data, &count), MACH_SEND_INVALID_DEST);
    EXPECT(vm_read(NO_PORT, A, P, &data, &count), MACH_SEND_INVALID_DEST);
    data = count = 99;
    EXPECT(vm_read(self, hole + 1, 0, &data, &count), KERN_SUCCESS);        /* size 0 */
    CHECK(data == 0 && count == 0);

    /* --- vm_read_overwrite (XNU) --------------------------------------- */
    EXPECT(vm_read_overwrite(self, A, P, B, &size), KERN_SUCCESS);
    CHECK(size == P && holds(B, 7));
    EXPECT(vm_read_overwrite(self, A, P, B + 1, &size), KERN_INVALID_ARGUMENT);
    EXPECT(vm_read_overwrite(self, C, P, B, &size), KERN_PROTECTION_FAILURE);
    EXPECT(vm_read_overwrite(self, A, P, D, &size), KERN_PROTECTION_FAILURE);
    EXPECT(vm_read_overwrite(self, A, P, hole, &size), KERN_INVALID_ADDRESS);
    EXPECT(vm_read_overwrite(self, A, P, B, BAD_PTR), KERN_INVALID_ARGUMENT);
    EXPECT(vm_read_overwrite(NO_PORT, A, P, B, &size), MACH_SEND_INVALID_DEST);

    /* --- vm_write ------------------------------------------------------ */
    fill(A, 11);
    EXPECT(vm_write(self, B, A, P), KERN_SUCCESS);
    CHECK(holds(B, 11));
    EXPECT(vm_write(self, B + 1, A, P), KERN_INVALID_ARGUMENT);   /* address */
    EXPECT(vm_write(self, B, A + 1, P), KERN_INVALID_ARGUMENT);   /* data */
    EXPECT(vm_write(self, B, A, 1), KERN_INVALID_ARGUMENT);       /* count */
    EXPECT(vm_write(self, hole, A, P), KERN_INVALID_ADDRESS);
    EXPECT(vm_write(self, FAR, A, 2 * P), KERN_INVALID_ADDRESS);  /* past 4 GiB */
    EXPECT(vm_write(self, D, A, P), KERN_PROTECTION_FAILURE);     /* read-only */
    EXPECT(vm_write(self, C, A, P), KERN_PROTECTION_FAILURE);     /* none */
    EXPECT(vm_write(self, B, A, 2 * P), KERN_PROTECTION_FAILURE); /* reaches C */
    EXPECT(vm_write(self, B, hole, P), MACH_SEND_INVALID_MEMORY); /* our buffer: unallocated */
    EXPECT(vm_write(self, B, C, P), MACH_SEND_INVALID_MEMORY);    /* our buffer: unreadable */
    EXPECT(vm_write(self, B + 1, hole, P), MACH_SEND_INVALID_MEMORY); /* before the alignment */
    EXPECT(vm_write(MACH_PORT_NULL, B, A, P), MACH_SEND_INVALID_DEST);
    EXPECT(vm_write(NO_PORT, B, hole, P), MACH_SEND_INVALID_DEST);    /* the port first */
    EXPECT(vm_write(self, hole, hole, 0), KERN_SUCCESS);          /* count 0 */
    CHECK(holds(B, 11));                                          /* failures changed nothing */

    /* --- vm_copy ------------------------------------------------------- */
    fill(e, 1), fill(e + P, 2), fill(e + 2 * P, 3);
    EXPECT(vm_copy(self, e, 2 * P, e + P), KERN_SUCCESS);         /* overlap, upwards */
    CHECK(holds(e, 1) && holds(e + P, 1) && holds(e + 2 * P, 2));
    fill(e, 1), fill(e + P, 2), fill(e + 2 * P, 3);
    EXPECT(vm_copy(self, e + P, 2 * P, e), KERN_SUCCESS);         /* overlap, downwards */
    CHECK(holds(e, 2) && holds(e + P, 3) && holds(e + 2 * P, 3));
    EXPECT(vm_copy(self, e, P, e), KERN_SUCCESS);                 /* onto itself */
    CHECK(holds(e, 2));
    EXPECT(vm_copy(self, A, P, B), KERN_SUCCESS);
    CHECK(holds(B, 11));
    EXPECT(vm_copy(self, A + 1, P, B), KERN_INVALID_ARGUMENT);    /* source */
    EXPECT(vm_copy(self, A, P + 1, B), KERN_INVALID_ARGUMENT);    /* count */
    EXPECT(vm_copy(self, A, P, B + 1), KERN_INVALID_ARGUMENT);    /* destination */
    EXPECT(vm_copy(self, hole, P, B), KERN_INVALID_ADDRESS);
    EXPECT(vm_copy(self, A, P, hole), KERN_INVALID_ADDRESS);
    EXPECT(vm_copy(self, FAR, 2 * P, B), KERN_INVALID_ADDRESS);
    EXPECT(vm_copy(self, C, P, B), KERN_PROTECTION_FAILURE);      /* source unreadable */
    EXPECT(vm_copy(self, A, P, D), KERN_PROTECTION_FAILURE);      /* destination read-only */
    EXPECT(vm_copy(self, C, P, hole), KERN_PROTECTION_FAILURE);   /* source walked first */
    EXPECT(vm_copy(NO_PORT, A, P, B), MACH_SEND_INVALID_DEST);
    EXPECT(vm_copy(self, hole, 0, hole), KERN_SUCCESS);           /* count 0 */

    /* --- bootstrap_look_up --------------------------------------------- */
    EXPECT(mach_bootstrap_look_up("no such task", &port), KERN_INVALID_NAME);
    EXPECT(bootstrap_look_up(long_name, 129, &port), KERN_INVALID_ARGUMENT);
    EXPECT(bootstrap_look_up("\xff", 1, &port), KERN_INVALID_ARGUMENT); /* not UTF-8 */
    EXPECT(bootstrap_look_up(BAD_PTR, 4, &port), KERN_INVALID_ARGUMENT);
    EXPECT(bootstrap_look_up("no such task", 12, BAD_PTR), KERN_INVALID_NAME); /* port after */

    /* --- KERN_NO_SPACE for vm_read: fill the 32-page address space ----- */
    vm_address_t fillers[32];
    unsigned int filled = 0;
    kern_return_t kr;
    while ((kr = vm_allocate(self, &fillers[filled], P, TRUE)) == KERN_SUCCESS && filled < 31)
        filled++;
    EXPECT(kr, KERN_NO_SPACE);
    EXPECT(vm_read(self, A, P, &data, &count), KERN_NO_SPACE);
    EXPECT(vm_read(self, C, P, &data, &count), KERN_PROTECTION_FAILURE); /* checked before room */
    for (unsigned int i = 0; i < filled; i++)
        EXPECT(vm_deallocate(self, fillers[i], P), KERN_SUCCESS);
    EXPECT(vm_read(self, A, P, &data, &count), KERN_SUCCESS);
    CHECK(holds(data, 11));

    return 0;
}

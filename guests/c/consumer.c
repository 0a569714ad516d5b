/* The consumer, in C: as guests/programs/consumer. vm_read_overwrites the
 * mailbox's header page into pages of its own and checks it (else BAD_HEADER,
 * -1000), then the record pages, checks each record's index (else
 * BAD_RECORD_INDEX, -1001) and recomputes the FNV-1a-64 of the records against
 * the header's (else BAD_CHECKSUM, -1002).
 *
 * Returns the checksum masked to 63 bits, or -(code) when a call fails (with no
 * producer before it: KERN_INVALID_ADDRESS, -1). */
#include "mailbox.h"

static long long consume(mach_port_t mailbox, unsigned char *header_page)
{
    unsigned char *records = header_page + vm_page_size;
    vm_size_t got;
    kern_return_t kr = vm_read_overwrite(mailbox, HEADER_ADDRESS, vm_page_size,
                                         (vm_address_t)header_page, &got);
    if (kr != KERN_SUCCESS)
        return FAIL(kr);
    const struct header *h = (const struct header *)header_page;
    if (h->magic != MAGIC || h->record_count != RECORD_COUNT ||
        h->record_size != RECORD_SIZE || h->pages != RECORD_PAGES)
        return BAD_HEADER;

    kr = vm_read_overwrite(mailbox, RECORDS_ADDRESS, RECORDS_SIZE,
                           (vm_address_t)records, &got);
    if (kr != KERN_SUCCESS)
        return FAIL(kr);
    for (unsigned int i = 0; i < RECORD_COUNT; i++)
        if (*(const unsigned int *)(records + i * RECORD_SIZE) != i)
            return BAD_RECORD_INDEX;
    unsigned long long checksum = fnv1a64(records, RECORDS_SIZE);
    if (checksum != h->checksum)
        return BAD_CHECKSUM;
    return checksum_value(checksum);
}

long long _start(void)
{
    mach_port_t self = mach_task_self(), mailbox;
    kern_return_t kr = mach_bootstrap_look_up(MAILBOX_NAME, &mailbox);
    if (kr != KERN_SUCCESS)
        return FAIL(kr);

    /* Laid out as the mailbox's pages: the header page, then the records. */
    const vm_size_t size = vm_page_size + RECORDS_SIZE;
    vm_address_t buf;
    kr = vm_allocate(self, &buf, size, TRUE);
    if (kr != KERN_SUCCESS)
        return FAIL(kr);
    long long result = consume(mailbox, (unsigned char *)buf);
    vm_deallocate(self, buf, size);
    return result;
}

/* The producer, in C: as guests/programs/producer. Allocates the header page and
 * RECORD_PAGES record pages in the mailbox (fixed, at HEADER_ADDRESS), builds the
 * records and their header in pages of its own laid out the same way, then
 * vm_writes the records and, last, the header page.
 *
 * Returns the records' FNV-1a-64 masked to 63 bits, or -(code) when a call fails
 * (run twice against one mailbox: KERN_NO_SPACE, -3). */
#include "mailbox.h"

long long _start(void)
{
    mach_port_t self = mach_task_self(), mailbox;
    kern_return_t kr = mach_bootstrap_look_up(MAILBOX_NAME, &mailbox);
    if (kr != KERN_SUCCESS)
        return FAIL(kr);

    /* The pages in the mailbox: ours until filled; given back on an error. */
    const vm_size_t size = vm_page_size + RECORDS_SIZE;
    vm_address_t pages = HEADER_ADDRESS;
    kr = vm_allocate(mailbox, &pages, size, FALSE);
    if (kr != KERN_SUCCESS)
        return FAIL(kr);

    /* The staging copy: fresh pages of our own, zero-filled. */
    vm_address_t stage;
    kr = vm_allocate(self, &stage, size, TRUE);
    if (kr != KERN_SUCCESS) {
        vm_deallocate(mailbox, pages, size);
        return FAIL(kr);
    }
    unsigned char *header = (unsigned char *)stage;
    unsigned char *records = header + vm_page_size;
    for (unsigned int i = 0; i < RECORD_COUNT; i++)
        make_record(i, records + i * RECORD_SIZE);
    unsigned long long checksum = fnv1a64(records, RECORDS_SIZE);
    *(struct header *)header = (struct header){
        MAGIC, RECORD_COUNT, RECORD_SIZE, RECORD_PAGES, checksum,
    };

    /* Records first, the header last: a valid header means complete records. */
    kr = vm_write(mailbox, RECORDS_ADDRESS, (vm_offset_t)records, RECORDS_SIZE);
    if (kr == KERN_SUCCESS)
        kr = vm_write(mailbox, HEADER_ADDRESS, (vm_offset_t)header, vm_page_size);
    vm_deallocate(self, stage, size);
    if (kr != KERN_SUCCESS) {
        vm_deallocate(mailbox, pages, size);
        return FAIL(kr);
    }
    return checksum_value(checksum);
}

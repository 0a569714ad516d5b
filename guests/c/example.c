/* README's example, written against the GNU Mach manual's declarations: reads
 * page 0 of the task registered as "mailbox" into a new region of its own
 * (vm_read), copies it to a page it allocates (vm_copy), frees both, and returns
 * the first word it read (the WAT mailbox keeps its page's address there:
 * 65536), or -code when a call fails. */
#include <mach.h>

long long _start(void)
{
    mach_port_t mailbox, self = mach_task_self();
    vm_offset_t data;
    mach_msg_type_number_t count;
    vm_address_t copy = 0;
    kern_return_t kr;

    if ((kr = mach_bootstrap_look_up("mailbox", &mailbox)) != KERN_SUCCESS)
        return -kr;
    if ((kr = vm_read(mailbox, 0, vm_page_size, &data, &count)) != KERN_SUCCESS)
        return -kr;
    if ((kr = vm_allocate(self, &copy, vm_page_size, TRUE)) != KERN_SUCCESS)
        return -kr;
    if ((kr = vm_copy(self, data, count, copy)) != KERN_SUCCESS)
        return -kr;
    long long word = *(int *)copy;
    vm_deallocate(self, data, count);
    vm_deallocate(self, copy, vm_page_size);
    return word;
}

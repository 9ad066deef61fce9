//! Memory management: the boot memory map, the physical frame allocator and the page-table builder.

pub mod frame;
pub mod memmap;
pub mod paging;

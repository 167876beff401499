#ifndef CFILESYSTEM_H
#define CFILESYSTEM_H

// renameat2(2) with its flags: Swift's Glibc module is built without _GNU_SOURCE, so neither the
// function nor RENAME_NOREPLACE / RENAME_EXCHANGE are visible from Swift.

/// Fails with EEXIST instead of replacing an existing destination.
#define CFS_RENAME_NOREPLACE 1u
/// Swaps source and destination atomically; both must exist.
#define CFS_RENAME_EXCHANGE 2u

/// `renameat2(AT_FDCWD, from, AT_FDCWD, to, flags)`: 0, or -1 with errno set (EINVAL or ENOSYS
/// where the file system or kernel does not support the flag).
int cfs_rename(const char *from, const char *to, unsigned int flags);

#endif

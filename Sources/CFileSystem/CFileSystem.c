#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include "CFileSystem.h"

int cfs_rename(const char *from, const char *to, unsigned int flags) {
  return renameat2(AT_FDCWD, from, AT_FDCWD, to, flags);
}

// Opening a path beneath a directory descriptor with no symlink, magic link, '..'
// escape or mount crossing along the way: openat2(2) with RESOLVE_* flags, or an
// equivalent component-by-component walk where the kernel lacks openat2.
#pragma once

#include <string>
#include <vector>

#include "keel/files/file_access.h"

namespace keel::files::detail {

// Opens `components` (none empty, ".", ".." or containing '/'; none at all means
// `dirFd` itself) beneath `dirFd` with open(2) `flags`, to which O_NOFOLLOW and
// O_CLOEXEC are added. A final symlink is returned as itself only with O_PATH; any
// other symlink gives ELOOP, a mount crossing EXDEV. Returns the new descriptor, or
// -errno. Thread-safe.
int openBeneath(int dirFd, const std::vector<std::string>& components, int flags, PathResolver resolver);

}  // namespace keel::files::detail

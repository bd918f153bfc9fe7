// Small helpers over file descriptors.
#pragma once

#include <cstddef>

namespace keel {

// Reads until `size` bytes have arrived, the other end is closed, or read fails with
// anything but EINTR; returns how many bytes arrived. For fixed-size records on pipes,
// where a short count means the writer died or closed early.
std::size_t readFully(int fd, void* buffer, std::size_t size);

}  // namespace keel

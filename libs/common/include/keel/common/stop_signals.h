// SIGTERM and SIGINT stop a Keel daemon. They are blocked first thing in main, before any
// thread starts (threads inherit the mask), and taken with sigwait by one thread, so no
// code of a daemon ever runs in a signal handler.
#pragma once

#include <signal.h>

namespace keel {

// Blocks SIGTERM and SIGINT in the calling thread and returns the set, for sigwait.
sigset_t blockStopSignals();

// Waits for one of them; returns its number.
int waitForStopSignal(const sigset_t& signals);

}  // namespace keel

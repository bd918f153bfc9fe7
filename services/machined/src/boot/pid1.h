// machined as PID 1 of the OS image. PID 1 itself stays small and unconfined: it mounts
// the filesystems, the state disk and the network, then runs machined proper (confined by
// its seccomp profile, which refuses mount and reboot) as its child, reaps every orphan,
// and carries out the power action machined asks for with its exit status. A crash of
// either is written to the console before the kernel panics or machined is restarted.
#pragma once

#include <string>
#include <vector>

namespace keel::machined {

// machined's exit status that asks PID 1 to reboot (0 asks it to power off).
inline constexpr int kPid1RebootStatus = 10;

// Call first thing in main when getpid() == 1. Prepares the machine, then forks: the
// parent never returns (it is PID 1 until power-off); in the child, argc/argv are
// replaced with the arguments machined runs with on the image, and it returns.
void runAsPid1(int& argc, char**& argv);

// True in a machined that PID 1 started: it exits with kPid1RebootStatus or 0 instead of
// re-executing itself or leaving the host's power alone.
bool underPid1();

}  // namespace keel::machined

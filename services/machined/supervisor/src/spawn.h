// The fork/exec of one service process lives in keel/supervisor/spawn.h, where helper
// processes that spawn on the supervisor's behalf find the result type.
#pragma once

#include "keel/supervisor/spawn.h"

/* The core tests' helpers now live in tests/common (zc_test.h: checks, PRNG and patterns, clocks, RSS,
 * child processes, named cases). This header stays so that test files which include "check.h" keep
 * building; new tests include "zc_test.h". */
#ifndef ZC_TEST_CORE_CHECK_H
#define ZC_TEST_CORE_CHECK_H
#include "zc_test.h"
#endif

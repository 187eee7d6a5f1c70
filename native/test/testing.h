// A minimal test harness for the native/core tests: TEST(name) registers a
// case, CHECK* record failures, main() runs every case and exits non-zero on
// any failure. Kept tiny on purpose so the tests build with no dependency.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "../core/status.h"

namespace tstest {

struct Case {
  const char* name;
  std::function<void()> fn;
};

inline std::vector<Case>& Registry() {
  static std::vector<Case> cases;
  return cases;
}

inline int& Failures() {
  static int failures = 0;
  return failures;
}

struct Registrar {
  Registrar(const char* name, std::function<void()> fn) { Registry().push_back({name, std::move(fn)}); }
};

inline void Fail(const char* file, int line, const std::string& what) {
  std::fprintf(stderr, "%s:%d: FAILED: %s\n", file, line, what.c_str());
  ++Failures();
}

// A fresh empty directory under $TMPDIR for one test.
std::string TempDir(const std::string& name);

}  // namespace tstest

#define TEST(name)                                        \
  static void name();                                     \
  static ::tstest::Registrar name##_registrar(#name, name); \
  static void name()

#define CHECK(cond)                                                   \
  do {                                                                \
    if (!(cond)) ::tstest::Fail(__FILE__, __LINE__, "CHECK(" #cond ")"); \
  } while (0)

// CHECK with what the failure was about (a std::string).
#define CHECK_MSG(cond, context)                                                           \
  do {                                                                                     \
    if (!(cond)) ::tstest::Fail(__FILE__, __LINE__, "CHECK(" #cond "): " + (context)); \
  } while (0)

#define CHECK_EQ(a, b)                                                              \
  do {                                                                              \
    if (!((a) == (b))) ::tstest::Fail(__FILE__, __LINE__, "CHECK_EQ(" #a ", " #b ")"); \
  } while (0)

#define CHECK_OK(expr)                                                         \
  do {                                                                         \
    ::tierstore::Status _s = (expr);                                           \
    if (!_s.ok()) ::tstest::Fail(__FILE__, __LINE__, #expr " -> " + _s.ToString()); \
  } while (0)

// Stops the current case when a status is not OK (later checks would crash).
#define ASSERT_OK(expr)                                                        \
  do {                                                                         \
    ::tierstore::Status _s = (expr);                                           \
    if (!_s.ok()) {                                                            \
      ::tstest::Fail(__FILE__, __LINE__, #expr " -> " + _s.ToString());        \
      return;                                                                  \
    }                                                                          \
  } while (0)

#define ASSERT_TRUE(cond)                                                      \
  do {                                                                         \
    if (!(cond)) {                                                             \
      ::tstest::Fail(__FILE__, __LINE__, "ASSERT_TRUE(" #cond ")");            \
      return;                                                                  \
    }                                                                          \
  } while (0)

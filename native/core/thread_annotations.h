// Clang thread-safety annotations (-Wthread-safety): which lock guards a
// member and which locks a function needs are declared here and checked by
// the compiler in the clang build of `npm test` (scripts/native-test.mjs,
// step thread-safety). Other compilers see empty macros.
//
// Vocabulary:
//   GUARDED_BY(mu)          a member read under mu (shared or exclusive) and
//                           written under mu exclusively
//   PT_GUARDED_BY(mu)       the same for what a pointer member points at
//   REQUIRES(mu)            the caller holds mu exclusively
//   REQUIRES_SHARED(mu)     the caller holds mu, shared at least
//   EXCLUDES(mu)            the caller does not hold mu (the function takes it)
//   ACQUIRED_AFTER(mu)      lock order: taken after mu, never before
//   NO_THREAD_SAFETY_ANALYSIS  the function is not checked; every use says
//                           why the analysis cannot see its locking
#pragma once

#if defined(__clang__)
#define TS_THREAD_ANNOTATION(x) __attribute__((x))
#else
#define TS_THREAD_ANNOTATION(x)
#endif

#define CAPABILITY(x) TS_THREAD_ANNOTATION(capability(x))
#define SCOPED_CAPABILITY TS_THREAD_ANNOTATION(scoped_lockable)
#define GUARDED_BY(x) TS_THREAD_ANNOTATION(guarded_by(x))
#define PT_GUARDED_BY(x) TS_THREAD_ANNOTATION(pt_guarded_by(x))
#define ACQUIRED_AFTER(...) TS_THREAD_ANNOTATION(acquired_after(__VA_ARGS__))
#define ACQUIRED_BEFORE(...) TS_THREAD_ANNOTATION(acquired_before(__VA_ARGS__))
#define REQUIRES(...) TS_THREAD_ANNOTATION(requires_capability(__VA_ARGS__))
#define REQUIRES_SHARED(...) TS_THREAD_ANNOTATION(requires_shared_capability(__VA_ARGS__))
#define ACQUIRE(...) TS_THREAD_ANNOTATION(acquire_capability(__VA_ARGS__))
#define ACQUIRE_SHARED(...) TS_THREAD_ANNOTATION(acquire_shared_capability(__VA_ARGS__))
#define RELEASE(...) TS_THREAD_ANNOTATION(release_capability(__VA_ARGS__))
#define RELEASE_SHARED(...) TS_THREAD_ANNOTATION(release_shared_capability(__VA_ARGS__))
#define RELEASE_GENERIC(...) TS_THREAD_ANNOTATION(release_generic_capability(__VA_ARGS__))
#define EXCLUDES(...) TS_THREAD_ANNOTATION(locks_excluded(__VA_ARGS__))
#define RETURN_CAPABILITY(x) TS_THREAD_ANNOTATION(lock_returned(x))
#define ASSERT_CAPABILITY(x) TS_THREAD_ANNOTATION(assert_capability(x))
#define ASSERT_SHARED_CAPABILITY(x) TS_THREAD_ANNOTATION(assert_shared_capability(x))
#define NO_THREAD_SAFETY_ANALYSIS TS_THREAD_ANNOTATION(no_thread_safety_analysis)

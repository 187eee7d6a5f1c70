#!/usr/bin/env bash
# npm run fuzz:native [-- TOTAL_SECONDS]   (default 60)
#
# Fuzzes the native file parsers with libFuzzer (+ ASan + UBSan): every
# target in native/fuzz/*_fuzz.cc writes its input as a store file (manifest,
# hot log, warm blocks, warm var section, cold segment, a filter file, or a
# whole directory)
# next to a seed store and opens and uses the store through the public core
# API. TOTAL_SECONDS is split evenly between the targets.
#
# Steps: find clang++ with libFuzzer (clang++-16/-15/-14/clang++; installs
# clang-16 + libclang-rt-16-dev with apt-get when none works), configure and
# build build-fuzz/ (-DTIERSTORE_FUZZ=ON), write the seed corpora from a store
# the engine builds (build-fuzz/corpus/<target>, which keeps growing across
# runs), replay the committed regression inputs (native/fuzz/regressions/
# <target>/*), then fuzz each target for its share of the time.
#
# Output: per target the executions and findings; for a crash the sanitizer
# report, the saved input (build-fuzz/artifacts/<target>/...) and the commands
# that reproduce and minimise it. Exit status 1 on any finding. The last line
# is `SUMMARY {"name":"native-fuzz","cases":<executions>,"findings":[...],
# "seconds":<wall time>}` (read by npm run stress).
#
# `fuzz-native.sh --check` only reports whether a usable clang++ is present
# (exit 0) or not (exit 3), installing nothing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# Everything runs inside main, which bash reads whole before running it, so
# editing this file while a long run is going does not derail that run.
main() {
  BUILD_DIR=${TIERSTORE_FUZZ_BUILD_DIR:-build-fuzz}
  CLANG_VERSION_TO_INSTALL=16
  log() { printf '[fuzz:native] %s\n' "$*"; }
  die() {
    printf '[fuzz:native] FAILED: %s\n' "$*" >&2
    exit 2
  }

  CHECK_ONLY=0
  TOTAL_SECONDS=60
  if [ "${1:-}" = "--check" ]; then
    CHECK_ONLY=1
  elif [ -n "${1:-}" ]; then
    [[ "$1" =~ ^[0-9]+$ ]] && [ "$1" -ge 1 ] || die "TOTAL_SECONDS must be a whole number of seconds >= 1, got '$1'"
    TOTAL_SECONDS=$1
  fi

  # --- clang++ with libFuzzer -------------------------------------------------

  # True when $1 can build and link a libFuzzer + ASan + UBSan program.
  links_libfuzzer() {
    local dir rc
    dir=$(mktemp -d)
    printf '#include <cstddef>\n#include <cstdint>\nextern "C" int LLVMFuzzerTestOneInput(const uint8_t*, size_t) { return 0; }\n' >"$dir/t.cc"
    if "$1" -fsanitize=fuzzer,address,undefined "$dir/t.cc" -o "$dir/t" >/dev/null 2>&1; then rc=0; else rc=1; fi
    rm -rf "$dir"
    return $rc
  }

  find_clang() {
    local c
    for c in clang++-16 clang++-15 clang++-14 clang++; do
      if command -v "$c" >/dev/null 2>&1 && links_libfuzzer "$c"; then
        command -v "$c"
        return 0
      fi
    done
    return 1
  }

  # apt-get install, as root or through sudo; `apt-get update` only when the
  # package lists do not know the packages yet.
  apt_install() {
    local sudo=()
    if [ "$(id -u)" != 0 ]; then
      command -v sudo >/dev/null 2>&1 || die "installing $* needs root (or sudo): apt-get install $*"
      sudo=(sudo)
    fi
    export DEBIAN_FRONTEND=noninteractive
    log "installing $* (apt-get)"
    if ! "${sudo[@]}" apt-get install -y -q --no-install-recommends "$@"; then
      "${sudo[@]}" apt-get update -q
      "${sudo[@]}" apt-get install -y -q --no-install-recommends "$@"
    fi
  }

  CXX_BIN=$(find_clang || true)
  if [ "$CHECK_ONLY" = 1 ]; then
    if [ -n "$CXX_BIN" ]; then
      log "usable: $CXX_BIN"
      exit 0
    fi
    log "no clang++ that links libFuzzer (tried clang++-16, clang++-15, clang++-14, clang++)"
    exit 3
  fi
  START_SECONDS=$SECONDS
  if [ -z "$CXX_BIN" ]; then
    command -v apt-get >/dev/null 2>&1 ||
      die "no clang++ with libFuzzer found and no apt-get to install one; install clang (16 recommended) with its compiler-rt"
    apt_install "clang-$CLANG_VERSION_TO_INSTALL" "libclang-rt-$CLANG_VERSION_TO_INSTALL-dev"
    CXX_BIN=$(find_clang) || die "clang++ still cannot link -fsanitize=fuzzer after installing clang-$CLANG_VERSION_TO_INSTALL"
  fi
  log "compiler: $CXX_BIN ($("$CXX_BIN" --version | head -n1))"

  # A symbolizer turns the sanitizers' stack traces into function:file:line:
  # any llvm-symbolizer, else binutils' addr2line (which clang depends on).
  SYMBOLIZER=""
  for s in /usr/lib/llvm-{18,17,16,15,14}/bin/llvm-symbolizer "$(command -v llvm-symbolizer || true)" \
    "$(command -v addr2line || true)"; do
    if [ -n "$s" ] && [ -x "$s" ]; then
      # The runtimes recognise the tool by its file name, so resolve links
      # only when that keeps the name (llvm-symbolizer -> llvm-14/bin/...).
      SYMBOLIZER=$s
      [ "$(basename "$(readlink -f "$s")")" = "$(basename "$s")" ] && SYMBOLIZER=$(readlink -f "$s")
      break
    fi
  done
  [ -n "$SYMBOLIZER" ] || log "warning: no llvm-symbolizer or addr2line; stack traces will show addresses only"

  # --- build ------------------------------------------------------------------

  JOBS=$(nproc 2>/dev/null || echo 2)
  if [ -f "$BUILD_DIR/CMakeCache.txt" ] && ! grep -qx "CMAKE_CXX_COMPILER:[A-Z]*=$CXX_BIN" "$BUILD_DIR/CMakeCache.txt"; then
    log "$BUILD_DIR was configured with another compiler: reconfiguring"
    rm -rf "$BUILD_DIR/CMakeCache.txt" "$BUILD_DIR/CMakeFiles"
  fi
  cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER="$CXX_BIN" -DTIERSTORE_FUZZ=ON >/dev/null ||
    die "cmake configure of $BUILD_DIR"
  cmake --build "$BUILD_DIR" --target tierstore_fuzzers --parallel "$JOBS" >"$BUILD_DIR/build.log" 2>&1 || {
    tail -n 40 "$BUILD_DIR/build.log" >&2
    die "build of the fuzz targets (full log: $BUILD_DIR/build.log)"
  }
  log "built the fuzz targets in $BUILD_DIR"

  CORPUS_DIR="$BUILD_DIR/corpus"
  ARTIFACT_DIR="$BUILD_DIR/artifacts"
  LOG_DIR="$BUILD_DIR/logs"
  mkdir -p "$CORPUS_DIR" "$ARTIFACT_DIR" "$LOG_DIR"
  "$BUILD_DIR/fuzz_seed_corpus" "$CORPUS_DIR" | sed 's/^/[fuzz:native] /' || die "writing the seed corpora"

  TARGETS=()
  for src in native/fuzz/*_fuzz.cc; do
    TARGETS+=("$(basename "$src" .cc)")
  done
  [ ${#TARGETS[@]} -gt 0 ] || die "no native/fuzz/*_fuzz.cc targets"
  PER_TARGET=$((TOTAL_SECONDS / ${#TARGETS[@]}))
  [ "$PER_TARGET" -ge 1 ] || PER_TARGET=1

  # Longest input per target: room to grow past the seeds, small enough to stay fast.
  max_len_for() {
    case "$1" in
      manifest_fuzz) echo 1024 ;;
      hot_log_fuzz) echo 16384 ;;
      warm_blocks_fuzz) echo 40960 ;;
      warm_var_fuzz) echo 20480 ;;
      cold_segment_fuzz) echo 8192 ;;
      index_file_fuzz) echo 8192 ;;
      warm_filter_fuzz) echo 8192 ;;
      cold_filter_fuzz) echo 8192 ;;
      store_open_fuzz) echo 131072 ;;
      *) echo 65536 ;;
    esac
  }

  export ASAN_OPTIONS="abort_on_error=0:detect_leaks=1:strict_string_checks=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
  export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
  [ -n "$SYMBOLIZER" ] && export ASAN_SYMBOLIZER_PATH="$SYMBOLIZER" UBSAN_SYMBOLIZER_PATH="$SYMBOLIZER"

  TOTAL_EXECS=0
  FINDINGS=()

  # Scratch directories of fuzzer processes that died mid-input (a crash, a
  # timeout) are otherwise only removed when the next fuzzer starts.
  remove_stale_scratch() {
    local d pid
    for d in /dev/shm/tierstore-fuzz-* "${TMPDIR:-/tmp}"/tierstore-fuzz-* /tmp/tierstore-fuzz-*; do
      [ -d "$d" ] || continue
      pid=${d##*-}
      [[ "$pid" =~ ^[0-9]+$ ]] && ! kill -0 "$pid" 2>/dev/null && rm -rf "$d"
    done
    return 0
  }
  trap remove_stale_scratch EXIT

  json_escape() { sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' <<<"$1" | tr -d '\n'; }

  # What kind of failure a libFuzzer log shows.
  failure_kind() {
    local f=$1
    if grep -q 'file descriptors leaked' "$f"; then echo "fd leak"
    elif grep -q 'INVARIANT BROKEN' "$f"; then echo "broken invariant ($(grep -m1 -oE 'INVARIANT BROKEN: .*' "$f" | cut -c19-300))"
    elif grep -q 'ERROR: LeakSanitizer' "$f"; then echo "memory leak"
    elif grep -qE 'runtime error:' "$f"; then echo "undefined behaviour ($(grep -m1 -oE 'runtime error: [^:]*' "$f" | cut -c16- | cut -c1-80))"
    elif grep -qE 'ERROR: AddressSanitizer: [a-z-]+' "$f"; then echo "$(grep -m1 -oE 'AddressSanitizer: [a-z-]+' "$f")"
    elif grep -q 'ERROR: libFuzzer: timeout' "$f"; then echo "timeout (> 10 s for one input)"
    elif grep -qE 'ERROR: libFuzzer: (out-of-memory|malloc limit)' "$f"; then echo "out of memory"
    elif grep -q 'ERROR: libFuzzer: deadly signal' "$f"; then echo "deadly signal"
    else echo "failed"
    fi
  }

  # Prints the sanitizer report part of a log (from the first error line on).
  print_report() {
    awk '/INVARIANT BROKEN|ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:/ {on=1} on {print; if (++n >= 70) exit}' "$1" |
      sed 's/^/    /'
  }

  # Runs one target (or replays inputs when given files); records findings.
  run_target() {
    local target=$1 label=$2
    shift 2
    local bin="$BUILD_DIR/$target" log_file="$LOG_DIR/$target.${label// /-}.log" rc=0
    mkdir -p "$ARTIFACT_DIR/$target"
    "$bin" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$ARTIFACT_DIR/$target/" "$@" \
      >"$log_file" 2>&1 || rc=$?
    local execs
    execs=$(grep -oE 'stat::number_of_executed_units: [0-9]+' "$log_file" | tail -n1 | awk '{print $2}' || true)
    [ -n "$execs" ] || execs=$(grep -cE '^Executed ' "$log_file" || true)
    TOTAL_EXECS=$((TOTAL_EXECS + ${execs:-0}))
    if [ "$rc" = 0 ]; then
      log "$target ($label): ${execs:-0} inputs, no findings"
      return 0
    fi
    local kind artifact
    kind=$(failure_kind "$log_file")
    artifact=$(grep -oE 'Test unit written to [^ ]+' "$log_file" | tail -n1 | cut -d' ' -f5 || true)
    if [ -z "$artifact" ]; then
      artifact=$(grep -oE '^Running: [^ ]+' "$log_file" | tail -n1 | cut -d' ' -f2 || true)
    fi
    log "$target ($label): FINDING: $kind after ${execs:-?} inputs (log: $log_file)"
    print_report "$log_file"
    if [ -n "$artifact" ]; then
      log "  input:      $artifact ($(stat -c %s "$artifact" 2>/dev/null || echo '?') bytes)"
      log "  reproduce:  $bin $artifact"
      log "  minimise:   $bin -minimize_crash=1 -max_total_time=60 -exact_artifact_path=$artifact.min $artifact"
    fi
    FINDINGS+=("$target: $kind; input ${artifact:-unknown} [reproduce: $bin ${artifact:-<input>}]")
  }

  # One process per regression input: libFuzzer stops at the first failing one.
  for target in "${TARGETS[@]}"; do
    for input in native/fuzz/regressions/"$target"/*; do
      [ -f "$input" ] || continue
      run_target "$target" "regression $(basename "$input")" "$input"
    done
  done

  log "fuzzing ${#TARGETS[@]} targets for ${PER_TARGET} s each (${TOTAL_SECONDS} s in all)"
  for target in "${TARGETS[@]}"; do
    mkdir -p "$CORPUS_DIR/$target"
    run_target "$target" fuzz -max_total_time="$PER_TARGET" -max_len="$(max_len_for "$target")" "$CORPUS_DIR/$target"
  done

  elapsed=$((SECONDS - START_SECONDS))
  findings_json=""
  for f in "${FINDINGS[@]+"${FINDINGS[@]}"}"; do
    findings_json+="${findings_json:+,}\"$(json_escape "$f")\""
  done
  for f in "${FINDINGS[@]+"${FINDINGS[@]}"}"; do printf 'FINDING %s\n' "$f"; done
  log "${TOTAL_EXECS} inputs in ${elapsed} s, ${#FINDINGS[@]} finding(s)"
  printf 'SUMMARY {"name":"native-fuzz","cases":%d,"findings":[%s],"seconds":%d}\n' "$TOTAL_EXECS" "$findings_json" "$elapsed"
  [ ${#FINDINGS[@]} -eq 0 ]
}

main "$@"
exit $?

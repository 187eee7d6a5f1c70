#include "testing.h"

#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <vector>

namespace tstest {

namespace {
// Every directory handed out, removed when the run ends (set
// TIERSTORE_TEST_KEEP to keep them for a post-mortem).
std::vector<std::filesystem::path>& Made() {
  static std::vector<std::filesystem::path> dirs;
  return dirs;
}
}  // namespace

void RemoveTempDirs() {
  if (std::getenv("TIERSTORE_TEST_KEEP") != nullptr) return;
  std::error_code ec;
  for (const auto& d : Made()) std::filesystem::remove_all(d, ec);
  Made().clear();
}

std::string TempDir(const std::string& name) {
  static std::atomic<int> counter{0};
  const char* base = std::getenv("TMPDIR");
  std::filesystem::path dir = std::filesystem::path(base ? base : "/tmp") /
                              ("tierstore-test-" + std::to_string(::getpid()) + "-" +
                               std::to_string(counter++) + "-" + name);
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  Made().push_back(dir);
  return dir.string();
}

}  // namespace tstest

int main(int argc, char** argv) {
  const char* only = argc > 1 ? argv[1] : nullptr;
  int ran = 0;
  for (auto& c : tstest::Registry()) {
    if (only && std::string(c.name).find(only) == std::string::npos) continue;
    int before = tstest::Failures();
    c.fn();
    ++ran;
    std::fprintf(stderr, "[%s] %s\n", tstest::Failures() == before ? " ok " : "FAIL", c.name);
  }
  std::fprintf(stderr, "%d cases, %d failures\n", ran, tstest::Failures());
  tstest::RemoveTempDirs();
  return tstest::Failures() == 0 ? 0 : 1;
}

// fuzz_seed_corpus OUT_DIR: writes the seed corpus of every fuzz target,
// OUT_DIR/<target>/seed-*, from a store the engine itself builds (see
// tsfuzz::BuildSeedStore): each seed is a flags byte plus a real file (or,
// for store_open_fuzz, a file set). It also builds the seed store a second
// time and fails unless both are byte for byte the same, since a crash input
// only reproduces if the files around it are the same on every run.
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <string>

#include "../core/file_util.h"
#include "../core/warm_filter_array.h"
#include "../core/warm_filter_file.h"
#include "fuzz_support.h"

namespace {

int g_written = 0;

bool WriteSeed(const std::string& out_dir, const std::string& target, const std::string& label, uint8_t flags,
               const std::string& payload) {
  const std::string dir = out_dir + "/" + target;
  ::mkdir(out_dir.c_str(), 0755);
  ::mkdir(dir.c_str(), 0755);
  char prefix[16];
  std::snprintf(prefix, sizeof prefix, "seed-%02x-", flags);
  const std::string path = dir + "/" + prefix + label;
  FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) {
    std::perror(path.c_str());
    return false;
  }
  bool ok = std::fputc(flags, f) != EOF && std::fwrite(payload.data(), 1, payload.size(), f) == payload.size();
  ok = std::fclose(f) == 0 && ok;
  if (!ok) std::fprintf(stderr, "fuzz_seed_corpus: cannot write %s\n", path.c_str());
  ++g_written;
  return ok;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s OUT_DIR\n", argv[0]);
    return 2;
  }
  const std::string out = argv[1];
  tsfuzz::Init();
  const tsfuzz::StoreFiles& clean = tsfuzz::SeedFiles(true);
  const tsfuzz::StoreFiles& dirty = tsfuzz::SeedFiles(false);

  {
    tsfuzz::ScratchStore scratch;
    tsfuzz::StoreFiles again;
    if (!tsfuzz::BuildSeedStore(scratch.dir(), &again)) return 1;
    if (again != clean) {
      std::fprintf(stderr, "fuzz_seed_corpus: the seed store differs between two builds; crash inputs would not reproduce\n");
      for (const auto& [name, bytes] : clean) {
        auto it = again.find(name);
        if (it == again.end() || it->second != bytes) std::fprintf(stderr, "  differs: %s\n", name.c_str());
      }
      return 1;
    }
  }

  using tsfuzz::kFlagCleanManifest;
  using tsfuzz::kFlagReadOnly;
  using tsfuzz::kFlagRepairChecksums;
  const uint8_t R = kFlagRepairChecksums, RO = kFlagReadOnly, C = kFlagCleanManifest;
  bool ok = true;
  const std::string& manifest_clean = clean.at("MANIFEST");
  const std::string& manifest_dirty = dirty.at("MANIFEST");
  ok &= WriteSeed(out, "manifest_fuzz", "clean", R, manifest_clean);
  ok &= WriteSeed(out, "manifest_fuzz", "clean", 0, manifest_clean);
  ok &= WriteSeed(out, "manifest_fuzz", "clean", R | RO, manifest_clean);
  ok &= WriteSeed(out, "manifest_fuzz", "dirty", R, manifest_dirty);

  const std::string var_name = tsfuzz::SeedVarFileName();
  const struct {
    const char* target;
    std::string file;
  } singles[] = {{"hot_log_fuzz", "hot.log"},
                 {"warm_blocks_fuzz", "warm.blocks"},
                 {"warm_var_fuzz", var_name},
                 {"index_file_fuzz", "id.index"}};
  for (const auto& s : singles) {
    for (uint8_t flags : {uint8_t(R), uint8_t(0), uint8_t(R | RO), uint8_t(R | C), uint8_t(R | C | RO)}) {
      ok &= WriteSeed(out, s.target, s.file, flags, clean.at(s.file));
    }
  }

  for (size_t i = 0; i < tsfuzz::SeedColdSegmentCount(); ++i) {
    const std::string name = tsfuzz::SeedColdSegmentName(i);
    const uint8_t which = static_cast<uint8_t>(i << 3);
    for (uint8_t flags : {uint8_t(R), uint8_t(0), uint8_t(R | RO), uint8_t(R | C)}) {
      ok &= WriteSeed(out, "cold_segment_fuzz", name, static_cast<uint8_t>(which | flags), clean.at(name));
    }
  }

  // store_open_fuzz: whole stores, and small sets on top of the seed (8).
  ok &= WriteSeed(out, "store_open_fuzz", "dirty-store", R, tsfuzz::EncodeFileSet(dirty));
  ok &= WriteSeed(out, "store_open_fuzz", "clean-store", R | C, tsfuzz::EncodeFileSet(clean));
  ok &= WriteSeed(out, "store_open_fuzz", "dirty-store-ro", R | RO, tsfuzz::EncodeFileSet(dirty));
  ok &= WriteSeed(out, "store_open_fuzz", "seed-new-dims", 8 | 16, "");
  tsfuzz::StoreFiles leftovers = {{"hot.log.tmp", clean.at("hot.log").substr(0, 100)},
                                  {"cold-00000030.seg.tmp", "partial"},
                                  {"notes.txt", "not a store file"}};
  ok &= WriteSeed(out, "store_open_fuzz", "seed-leftovers", 8 | R, tsfuzz::EncodeFileSet(leftovers));
  tsfuzz::StoreFiles without_manifest = dirty;
  without_manifest.erase("MANIFEST");
  ok &= WriteSeed(out, "store_open_fuzz", "no-manifest", R | 16, tsfuzz::EncodeFileSet(without_manifest));

  // utf16_fuzz: UTF-16LE text (no store files); the flags byte is the
  // source's misalignment. ASCII runs longer than the SIMD step, 2-, 3- and
  // 4-byte characters at run edges, and each lone-surrogate shape.
  {
    const auto utf16le = [](const std::u16string& text) {
      std::string bytes;
      for (char16_t u : text) {
        bytes.push_back(static_cast<char>(u & 0xFF));
        bytes.push_back(static_cast<char>(u >> 8));
      }
      return bytes;
    };
    const std::u16string mixed = u"memory of caf\u00e9 \u65e5\u672c plans \U0001F600 and a longer ASCII tail here.";
    ok &= WriteSeed(out, "utf16_fuzz", "ascii", 0, utf16le(u"an agent remembered the user's preference for tea"));
    ok &= WriteSeed(out, "utf16_fuzz", "mixed", 0, utf16le(mixed));
    ok &= WriteSeed(out, "utf16_fuzz", "mixed", 1, utf16le(mixed));
    ok &= WriteSeed(out, "utf16_fuzz", "mixed", 3, utf16le(mixed));
    ok &= WriteSeed(out, "utf16_fuzz", "lone-high-last", 0, utf16le(u"abcdefgh\xD83D"));
    ok &= WriteSeed(out, "utf16_fuzz", "lone-high-then-ascii", 0, utf16le(u"abcdefgh\xD83D" u"abcdefgh"));
    ok &= WriteSeed(out, "utf16_fuzz", "lone-low", 0, utf16le(u"abcdefgh\xDE00" u"abcdefgh"));
    ok &= WriteSeed(out, "utf16_fuzz", "high-high-low", 0, utf16le(u"\xD83D\xD83D\xDE00"));
  }

  // warm_filter_fuzz: a chunk-count byte, then the first bytes of a
  // warm.filter of one chunk whose first slots are known.
  {
    char tmpl[] = "/tmp/tierstore-seed-warm-filter-XXXXXX";
    std::string file;
    if (mkdtemp(tmpl) != nullptr) {
      tierstore::WarmFilterArray a;
      a.Prepare(64, [](uint32_t slot, tierstore::FilterEntry* e) {
        e->created_at = 1.7e12 + slot;
        e->signature = tierstore::MetadataSignature::Of("{\"n\":" + std::to_string(slot % 5) + "}");
        return slot % 4 != 3;
      });
      if (a.WriteFile(tmpl, 7, 9, false).ok() &&
          tierstore::ReadWholeFile(tierstore::JoinPath(tmpl, tierstore::kWarmFilterFileName), &file).ok()) {
        file.resize(tierstore::kWarmFilterHeaderBytes + 64 * sizeof(tierstore::FilterEntry));
      }
      std::remove(tierstore::JoinPath(tmpl, tierstore::kWarmFilterFileName).c_str());
      ::rmdir(tmpl);
    }
    ok &= !file.empty();
    ok &= WriteSeed(out, "warm_filter_fuzz", "one-chunk", 3, std::string(1, '\1') + file);
    ok &= WriteSeed(out, "warm_filter_fuzz", "one-chunk-unrepaired", 0, std::string(1, '\1') + file);
    ok &= WriteSeed(out, "warm_filter_fuzz", "header-only", 1, std::string(1, '\0') + file.substr(0, 4096));
  }

  // cold_filter_fuzz: the seed segments' filter files (in the order of
  // their segments, which flags >> 3 picks), whole, repaired, read-only,
  // cut short and header only.
  {
    uint8_t segment = 0;
    for (const auto& [name, bytes] : clean) {
      uint32_t id = 0;
      if (tsfuzz::KindOf(name, &id) != tsfuzz::FileKind::kColdFilter) continue;
      const uint8_t at = static_cast<uint8_t>(segment++ << 3);
      const std::string label = "segment-" + std::to_string(id);
      ok &= WriteSeed(out, "cold_filter_fuzz", label, at | 4, bytes);
      ok &= WriteSeed(out, "cold_filter_fuzz", label + "-repaired", at | 5, bytes);
      ok &= WriteSeed(out, "cold_filter_fuzz", label + "-ro", at | 6, bytes);
      ok &= WriteSeed(out, "cold_filter_fuzz", label + "-cut", at | 5, bytes.substr(0, bytes.size() / 2));
      ok &= WriteSeed(out, "cold_filter_fuzz", label + "-header", at | 1, bytes.substr(0, 64));
    }
    ok &= segment > 0;
  }

  if (!ok) return 1;
  std::printf("fuzz_seed_corpus: %d seeds in %s (seed store: %zu files:", g_written, out.c_str(), clean.size());
  for (const auto& [name, bytes] : clean) std::printf(" %s=%zuB", name.c_str(), bytes.size());
  std::printf(")\n");
  return 0;
}

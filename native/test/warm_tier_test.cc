// Tests of WarmTier: bit-exact round trips, reopen, slot reuse, chunked growth
// with stable pointers, compaction, access statistics, read-only mode, the
// high-water mark, side-effect-free Open with deferred FinishOpen, and
// damaged files (CORRUPTION naming the file, never a crash).
#include "../core/warm_tier.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <limits>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "../core/crc32c.h"
#include "../core/file_util.h"
#include "testing.h"

namespace tierstore::warm_testing {
// Test hook defined in warm_tier.cc: chunk sizes for files created/grown
// from now on (0 = the defaults: 4 MiB block chunks, var files doubling from 1 MiB).
void SetChunkBytes(uint64_t block_chunk_bytes, uint64_t var_chunk_bytes);
}  // namespace tierstore::warm_testing

using tierstore::RecordView;
using tierstore::Status;
using tierstore::StatusCode;
using tierstore::WarmTier;

namespace {

// Every directory a case uses; removed at exit (they hold preallocated
// chunks) unless WARM_TEST_KEEP is set.
struct DirCleaner {
  std::vector<std::string> dirs;
  ~DirCleaner() {
    if (std::getenv("WARM_TEST_KEEP") != nullptr) return;
    std::error_code ec;
    for (const auto& d : dirs) std::filesystem::remove_all(d, ec);
  }
};
DirCleaner g_dirs;

std::string NewDir(const std::string& name) {
  std::string d = tstest::TempDir("warm-" + name);
  g_dirs.dirs.push_back(d);
  return d;
}

struct ChunkOverride {
  ChunkOverride(uint64_t b, uint64_t v) { tierstore::warm_testing::SetChunkBytes(b, v); }
  ~ChunkOverride() { tierstore::warm_testing::SetChunkBytes(0, 0); }
};

struct Rec {
  std::string id, content, metadata;
  std::vector<float> emb;
  float norm = 0, confidence = 0, activation = 0;
  double created_at = 0, last_access_at = 0, access_count = 0;
  uint64_t seq = 0;

  RecordView View() const {
    RecordView v;
    v.id = id;
    v.content = content;
    v.metadata = metadata;
    v.embedding = emb.data();
    v.norm = norm;
    v.confidence = confidence;
    v.activation = activation;
    v.created_at = created_at;
    v.last_access_at = last_access_at;
    v.access_count = access_count;
    v.seq = seq;
    return v;
  }
};

uint64_t Mix(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

Rec MakeRec(uint32_t dims, uint64_t i, size_t content_len) {
  Rec r;
  r.id = "mem-" + std::to_string(i);
  r.content.resize(content_len);
  for (size_t k = 0; k < content_len; ++k) r.content[k] = static_cast<char>('a' + (Mix(i * 131 + k / 8) + k) % 26);
  r.metadata = "{\"i\":" + std::to_string(i) + ",\"tag\":\"t\"}";
  r.emb.resize(dims);
  double sq = 0;
  for (uint32_t d = 0; d < dims; ++d) {
    r.emb[d] = static_cast<float>(static_cast<int64_t>(Mix(i * 7919 + d) % 2001) - 1000) / 997.0f;
    sq += double(r.emb[d]) * r.emb[d];
  }
  r.norm = static_cast<float>(std::sqrt(sq));
  r.confidence = static_cast<float>(Mix(i) % 1000) / 999.0f;
  r.activation = std::nextafter(r.confidence, 2.0f);
  r.created_at = 1.7e12 + static_cast<double>(i);
  r.last_access_at = 1.7e12 + static_cast<double>(i) + 0.25;
  r.access_count = static_cast<double>(i % 17);
  r.seq = 1000000 + i * 3;
  return r;
}

bool BitEq(const void* a, const void* b, size_t n) { return std::memcmp(a, b, n) == 0; }

// Every field bit-exact.
bool Same(const RecordView& v, const Rec& r, uint32_t dims, bool check_access = true) {
  if (v.id != r.id || v.content != r.content || v.metadata != r.metadata) return false;
  if (v.embedding == nullptr || !BitEq(v.embedding, r.emb.data(), sizeof(float) * dims)) return false;
  if (!BitEq(&v.norm, &r.norm, 4) || !BitEq(&v.confidence, &r.confidence, 4) ||
      !BitEq(&v.activation, &r.activation, 4) || !BitEq(&v.created_at, &r.created_at, 8))
    return false;
  if (check_access && (!BitEq(&v.last_access_at, &r.last_access_at, 8) || !BitEq(&v.access_count, &r.access_count, 8)))
    return false;
  return v.seq == r.seq;
}

// Opens an existing tier; a writable one is finished (FinishOpen), as the
// Store does once the whole store has opened.
std::unique_ptr<WarmTier> MustOpen(const std::string& dir, uint32_t dims, bool ro = false) {
  std::unique_ptr<WarmTier> t;
  Status s = WarmTier::Open(dir, dims, ro, &t);
  if (s.ok() && !ro) s = t->FinishOpen();
  if (!s.ok()) {
    tstest::Fail(__FILE__, __LINE__, "Open -> " + s.ToString());
    return nullptr;
  }
  return t;
}

// Creates the tier of a new store in dir, then opens it writable.
std::unique_ptr<WarmTier> NewTier(const std::string& dir, uint32_t dims) {
  Status s = WarmTier::Create(dir, dims);
  if (!s.ok()) {
    tstest::Fail(__FILE__, __LINE__, "Create -> " + s.ToString());
    return nullptr;
  }
  return MustOpen(dir, dims);
}

// White-box layout knowledge (see warm_tier.cc), for the running version.
uint64_t HeaderBytes() { return 64; }   // = embedding offset
uint64_t PrefixBytes() { return 20; }   // of each var extent
uint64_t BlockSize(uint32_t dims) { return (HeaderBytes() + 4 * uint64_t{dims} + 63) / 64 * 64; }
// Blocks per chunk for a chunk-size target (as Create computes it).
uint64_t BlocksPerChunk(uint32_t dims, uint64_t target) {
  uint64_t bs = BlockSize(dims), a = bs, b = 4096;
  while (b != 0) {
    uint64_t t = a % b;
    a = b;
    b = t;
  }
  uint64_t unit = 4096 / a;
  return std::max<uint64_t>(unit, target / bs / unit * unit);
}
uint64_t BlockOffset(uint32_t dims, uint32_t slot) { return 4096 + slot * BlockSize(dims); }
constexpr uint32_t kStateWriting = 0x54495257u;
constexpr uint32_t kStateFreed = 0x45455246u;
constexpr uint64_t kMarkOffset = 32;  // u32 mark, u32 crc32c(mark) in the header page

uint64_t FileSize(const std::string& path) { return std::filesystem::file_size(path); }

void FlipByte(const std::string& path, uint64_t off, uint8_t mask = 0x5A) {
  int fd = ::open(path.c_str(), O_RDWR);
  uint8_t b = 0;
  if (fd < 0 || ::pread(fd, &b, 1, static_cast<off_t>(off)) != 1) {
    tstest::Fail(__FILE__, __LINE__, "FlipByte read " + path);
  } else {
    b ^= mask;
    if (::pwrite(fd, &b, 1, static_cast<off_t>(off)) != 1) tstest::Fail(__FILE__, __LINE__, "FlipByte write");
  }
  if (fd >= 0) ::close(fd);
}

void WriteU32(const std::string& path, uint64_t off, uint32_t v) {
  int fd = ::open(path.c_str(), O_RDWR);
  if (fd < 0 || ::pwrite(fd, &v, 4, static_cast<off_t>(off)) != 4) tstest::Fail(__FILE__, __LINE__, "WriteU32");
  if (fd >= 0) ::close(fd);
}

uint32_t ReadU32(const std::string& path, uint64_t off) {
  uint32_t v = 0;
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0 || ::pread(fd, &v, 4, static_cast<off_t>(off)) != 4) tstest::Fail(__FILE__, __LINE__, "ReadU32");
  if (fd >= 0) ::close(fd);
  return v;
}

// Writes the high-water mark with a valid check, as a crash before the mark
// was raised would leave it.
void WriteMark(const std::string& blocks, uint32_t mark) {
  WriteU32(blocks, kMarkOffset, mark);
  WriteU32(blocks, kMarkOffset + 4, tierstore::Crc32c(&mark, 4));
}

uint32_t ReadMark(const std::string& blocks) {
  uint32_t mark = ReadU32(blocks, kMarkOffset);
  CHECK_EQ(ReadU32(blocks, kMarkOffset + 4), tierstore::Crc32c(&mark, 4));
  return mark;
}

void ZeroRange(const std::string& path, uint64_t off, uint64_t n) {
  std::string zeros(n, '\0');
  int fd = ::open(path.c_str(), O_RDWR);
  if (fd < 0 || ::pwrite(fd, zeros.data(), n, static_cast<off_t>(off)) != static_cast<ssize_t>(n)) {
    tstest::Fail(__FILE__, __LINE__, "ZeroRange " + path);
  }
  if (fd >= 0) ::close(fd);
}

// Everything an open could change in a directory: names, inodes, sizes,
// mtimes, contents of every entry, and the directory's own mtime.
struct DirSnapshot {
  std::map<std::string, std::string> entries;  // name -> "ino size mtime" + content
  std::string dir_stat;
  bool operator==(const DirSnapshot& o) const { return entries == o.entries && dir_stat == o.dir_stat; }
};

std::string StatLine(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return "missing";
  return std::to_string(st.st_ino) + " " + std::to_string(st.st_size) + " " + std::to_string(st.st_mtim.tv_sec) +
         "." + std::to_string(st.st_mtim.tv_nsec);
}

DirSnapshot Snapshot(const std::string& dir) {
  DirSnapshot snap;
  snap.dir_stat = StatLine(dir);
  for (auto& e : std::filesystem::directory_iterator(dir)) {
    std::string path = e.path().string(), content;
    CHECK_OK(tierstore::ReadWholeFile(path, &content));
    snap.entries[e.path().filename().string()] = StatLine(path) + "\n" + content;
  }
  return snap;
}

std::string Names(const DirSnapshot& s) {
  std::string out;
  for (const auto& [name, v] : s.entries) out += name + " ";
  return out;
}

void TruncateTo(const std::string& path, uint64_t size) {
  if (::truncate(path.c_str(), static_cast<off_t>(size)) != 0) tstest::Fail(__FILE__, __LINE__, "truncate " + path);
}

bool Contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

std::vector<std::string> VarFiles(const std::string& dir) {
  std::vector<std::string> out;
  for (auto& e : std::filesystem::directory_iterator(dir)) {
    std::string n = e.path().filename().string();
    if (n.rfind("warm-var-", 0) == 0) out.push_back(n);
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string OnlyVarFile(const std::string& dir) {
  auto v = VarFiles(dir);
  if (v.size() != 1) {
    tstest::Fail(__FILE__, __LINE__, "expected exactly one var file, found " + std::to_string(v.size()));
    return dir + "/none";
  }
  return dir + "/" + v[0];
}

// Inserts records and returns slot -> record.
std::map<uint32_t, Rec> InsertMany(WarmTier* t, uint32_t dims, uint64_t first, uint64_t n, size_t content_len) {
  std::map<uint32_t, Rec> out;
  for (uint64_t i = first; i < first + n; ++i) {
    Rec r = MakeRec(dims, i, content_len + (i % 5));
    uint32_t slot = 0;
    Status s = t->Insert(r.View(), &slot);
    if (!s.ok()) {
      tstest::Fail(__FILE__, __LINE__, "Insert -> " + s.ToString());
      break;
    }
    out[slot] = std::move(r);
  }
  return out;
}

// Checks that exactly `expected` is live, via ForEachLive (slot order) and Read.
// ScanRuns (what recall scans) covers slots in order without gaps or
// overlaps, reaches every live slot, and warm_block reads the same state,
// norm, confidence and embedding as the checked accessors.
void CheckScanRuns(WarmTier* t, const std::map<uint32_t, Rec>& expected, uint32_t dims) {
  std::vector<tierstore::WarmRun> runs;
  t->ScanRuns(&runs);
  uint32_t next = 0;
  size_t live = 0;
  for (const tierstore::WarmRun& run : runs) {
    CHECK_EQ(run.first_slot, next);
    CHECK(run.count > 0);
    next = run.first_slot + run.count;
    for (uint32_t i = 0; i < run.count; ++i) {
      const uint32_t slot = run.first_slot + i;
      const uint8_t* block = run.base + uint64_t{i} * run.block_size;
      auto it = expected.find(slot);
      CHECK_EQ(tierstore::warm_block::IsLive(block) && !run.PendingFree(slot), it != expected.end());
      if (it == expected.end()) continue;
      ++live;
      const float norm = tierstore::warm_block::Norm(block), conf = tierstore::warm_block::Confidence(block);
      CHECK(BitEq(&norm, &it->second.norm, 4) && BitEq(&conf, &it->second.confidence, 4));
      CHECK_EQ(run.embedding_offset, HeaderBytes());
      CHECK(BitEq(block + run.embedding_offset, it->second.emb.data(), 4 * dims));
    }
  }
  CHECK_EQ(live, expected.size());
  if (!expected.empty()) CHECK(next > expected.rbegin()->first);
  CHECK(next <= t->SlotLimit());
}

void CheckAll(WarmTier* t, const std::map<uint32_t, Rec>& expected, uint32_t dims) {
  std::vector<uint32_t> seen;
  Status s = t->ForEachLive([&](uint32_t slot, const RecordView& v) -> Status {
    auto it = expected.find(slot);
    if (it == expected.end()) {
      tstest::Fail(__FILE__, __LINE__, "unexpected live slot " + std::to_string(slot));
    } else if (!Same(v, it->second, dims)) {
      tstest::Fail(__FILE__, __LINE__, "ForEachLive mismatch at slot " + std::to_string(slot));
    }
    seen.push_back(slot);
    return Status::OK();
  });
  CHECK_OK(s);
  CHECK_EQ(seen.size(), expected.size());
  CHECK(std::is_sorted(seen.begin(), seen.end()));
  for (const auto& [slot, r] : expected) {
    RecordView v;
    Status rs = t->Read(slot, true, &v);
    if (!rs.ok()) {
      tstest::Fail(__FILE__, __LINE__, "Read -> " + rs.ToString());
      continue;
    }
    if (!Same(v, r, dims)) tstest::Fail(__FILE__, __LINE__, "Read mismatch at slot " + std::to_string(slot));
    CHECK(t->IsLive(slot));
    CHECK(BitEq(t->Embedding(slot), r.emb.data(), 4 * dims));
    tierstore::WarmScalars sc = t->Scalars(slot);
    CHECK(BitEq(&sc.norm, &r.norm, 4) && BitEq(&sc.confidence, &r.confidence, 4) &&
          BitEq(&sc.activation, &r.activation, 4) && BitEq(&sc.created_at, &r.created_at, 8) &&
          BitEq(&sc.last_access_at, &r.last_access_at, 8) && BitEq(&sc.access_count, &r.access_count, 8));
    CHECK_EQ(sc.seq, r.seq);
  }
  CHECK_EQ(t->Stats().live_records, expected.size());
  CheckScanRuns(t, expected, dims);
}

// A new tier in dir, closed: 300 records inserted and every third freed
// (holes for reuse), checked and synced. Returns the live ones by slot.
std::map<uint32_t, Rec> WriteTierWithHoles(const std::string& dir, uint32_t dims) {
  auto t = NewTier(dir, dims);
  if (t == nullptr) return {};
  std::map<uint32_t, Rec> expected = InsertMany(t.get(), dims, 0, 300, 200);
  for (uint32_t s = 0; s < 300; s += 3) {
    CHECK_OK(t->Free(s));
    expected.erase(s);
  }
  CheckAll(t.get(), expected, dims);
  CHECK_OK(t->Sync());
  return expected;
}

uint64_t LiveBytes(const std::map<uint32_t, Rec>& m) {
  uint64_t n = 0;
  for (const auto& [slot, r] : m) n += PrefixBytes() + r.id.size() + r.content.size() + r.metadata.size();
  return n;
}

}  // namespace

TEST(RoundTripEveryFieldBitExact) {
  for (uint32_t dims : {3u, 768u}) {
    std::string dir = NewDir("roundtrip");
    std::map<uint32_t, Rec> expected;
    std::vector<Rec> recs;
    Rec empty = MakeRec(dims, 1, 0);
    empty.metadata = "{}";
    recs.push_back(empty);
    Rec utf8 = MakeRec(dims, 2, 0);
    utf8.id = "id-\xC3\xA9\xE4\xB8\x96\xF0\x9F\x8E\x89";
    utf8.content = "h\xC3\xA9llo \xE4\xB8\x96\xE7\x95\x8C \xF0\x9F\x8E\x89 \xF0\x9F\x98\x80";
    utf8.metadata = "{\"k\":\"\xE2\x82\xAC\"}";
    recs.push_back(utf8);
    Rec nul = MakeRec(dims, 3, 0);
    nul.content = std::string("a\0b\0\0c", 6);
    nul.id = std::string("nul\0id", 6);
    nul.metadata = "";
    recs.push_back(nul);
    recs.push_back(MakeRec(dims, 4, size_t{1} << 20));
    recs.push_back(MakeRec(dims, 5, size_t{16} << 20));
    Rec odd = MakeRec(dims, 6, 100);
    odd.confidence = 0.0f;
    odd.activation = 1.0f;
    odd.norm = std::numeric_limits<float>::denorm_min();
    odd.created_at = -62135596800000.0;
    odd.last_access_at = 8.64e15;
    odd.access_count = 9007199254740991.0;  // 2^53 - 1
    odd.seq = std::numeric_limits<uint64_t>::max();
    odd.emb[0] = -0.0f;
    recs.push_back(odd);
    Rec maxid = MakeRec(dims, 7, 10);
    maxid.id = std::string(1024, 'x');
    recs.push_back(maxid);
    {
      auto t = NewTier(dir, dims);
      ASSERT_TRUE(t != nullptr);
      for (const Rec& r : recs) {
        uint32_t slot = 0;
        ASSERT_OK(t->Insert(r.View(), &slot));
        expected[slot] = r;
        RecordView v;
        ASSERT_OK(t->Read(slot, true, &v));
        CHECK(Same(v, r, dims));
      }
      CheckAll(t.get(), expected, dims);
      CHECK_EQ(t->Stats().var_live_bytes, LiveBytes(expected));
    }
    auto t = MustOpen(dir, dims);
    ASSERT_TRUE(t != nullptr);
    CheckAll(t.get(), expected, dims);
    CHECK_EQ(t->Stats().var_live_bytes, LiveBytes(expected));
  }
}

TEST(InsertRejectsBadRecords) {
  std::string dir = NewDir("badrec");
  auto t = NewTier(dir, 4);
  ASSERT_TRUE(t != nullptr);
  Rec r = MakeRec(4, 1, 10);
  uint32_t slot;
  Rec e = r;
  e.id = "";
  CHECK_EQ(t->Insert(e.View(), &slot).code(), StatusCode::kInvalidArgument);
  e.id = std::string(1025, 'y');
  CHECK_EQ(t->Insert(e.View(), &slot).code(), StatusCode::kInvalidArgument);
  RecordView v = r.View();
  v.embedding = nullptr;
  CHECK_EQ(t->Insert(v, &slot).code(), StatusCode::kInvalidArgument);
  CHECK_EQ(t->Stats().live_records, 0u);
  std::unique_ptr<WarmTier> bad;
  CHECK_EQ(WarmTier::Open(dir, 0, false, &bad).code(), StatusCode::kInvalidArgument);
  CHECK_EQ(WarmTier::Open(dir, 65537, false, &bad).code(), StatusCode::kInvalidArgument);
  std::string other = NewDir("badrec-create");
  CHECK_EQ(WarmTier::Create(other, 0).code(), StatusCode::kInvalidArgument);
  CHECK_EQ(WarmTier::Create(other, 65537).code(), StatusCode::kInvalidArgument);
  CHECK(!tierstore::PathExists(other + "/warm.blocks"));
}

TEST(ReopenRebuildsEverything) {
  const uint32_t dims = 16;
  std::string dir = NewDir("reopen");
  std::map<uint32_t, Rec> expected = WriteTierWithHoles(dir, dims);
  ASSERT_TRUE(!expected.empty());
  auto t = MustOpen(dir, dims);
  ASSERT_TRUE(t != nullptr);
  CheckAll(t.get(), expected, dims);
  auto st = t->Stats();
  CHECK_EQ(st.live_records, 200u);
  CHECK(st.slots >= 300);
  CHECK_EQ(st.var_live_bytes, LiveBytes(expected));
  CHECK_EQ(st.block_file_bytes, FileSize(dir + "/warm.blocks"));
  CHECK_EQ(st.var_file_bytes, FileSize(OnlyVarFile(dir)));
  // Freed slots are reused lowest first after reopen too.
  Rec r = MakeRec(dims, 999, 50);
  uint32_t slot = 77;
  ASSERT_OK(t->Insert(r.View(), &slot));
  CHECK_EQ(slot, 0u);
  ASSERT_OK(t->Insert(r.View(), &slot));
  CHECK_EQ(slot, 3u);
}

// ForEachLiveKey (what the store's index is built from) sees exactly what
// ForEachLive sees: after a clean open from what the open verified, a
// second time, after a write, and after a crash by reading every block.
TEST(ForEachLiveKeyMatchesForEachLive) {
  const uint32_t dims = 16;
  std::string dir = NewDir("livekeys");
  std::map<uint32_t, Rec> expected = WriteTierWithHoles(dir, dims);
  ASSERT_TRUE(!expected.empty());
  using Key = std::tuple<uint32_t, std::string, uint64_t>;
  std::vector<Key> want;
  for (const auto& [slot, r] : expected) want.emplace_back(slot, r.id, r.seq);
  auto keys_of = [&](WarmTier* t) {
    std::vector<Key> got;
    CHECK_OK(t->ForEachLiveKey([&](uint32_t slot, std::string_view id, uint64_t seq) {
      got.emplace_back(slot, std::string(id), seq);
      return Status::OK();
    }));
    return got;
  };
  for (bool after_crash : {false, true}) {
    std::unique_ptr<WarmTier> t;
    ASSERT_OK(WarmTier::Open(dir, dims, /*read_only=*/false, after_crash, &t));
    std::vector<Key> live;
    CHECK_OK(t->ForEachLive([&](uint32_t slot, const RecordView& v) {
      live.emplace_back(slot, std::string(v.id), v.seq);
      return Status::OK();
    }));
    CHECK(live == want);
    CHECK(keys_of(t.get()) == want);
    CHECK(keys_of(t.get()) == want);  // again: read from the blocks this time
    ASSERT_OK(t->FinishOpen());
    Rec r = MakeRec(dims, 5000, 10);
    uint32_t slot = 0;
    ASSERT_OK(t->Insert(r.View(), &slot));
    std::vector<Key> more = want;
    more.emplace_back(slot, r.id, r.seq);
    std::sort(more.begin(), more.end());
    CHECK(keys_of(t.get()) == more);
    ASSERT_OK(t->Free(slot));
    ASSERT_OK(t->Sync());
  }
  // A write between open and the scan (none happens in a store, but the
  // kept keys must not outlive a change): the scan sees the write.
  std::unique_ptr<WarmTier> t;
  ASSERT_OK(WarmTier::Open(dir, dims, /*read_only=*/false, &t));
  ASSERT_OK(t->FinishOpen());
  ASSERT_OK(t->Free(std::get<0>(want.front())));
  std::vector<Key> fewer(want.begin() + 1, want.end());
  CHECK(keys_of(t.get()) == fewer);
}

// The store's dimensions come from its manifest: a warm.blocks of other
// dimensions is another store's file, not the user's DIMENSION_MISMATCH.
TEST(ForeignDimensionsAreCorruption) {
  std::string dir = NewDir("dims");
  {
    auto t = NewTier(dir, 3);
    ASSERT_TRUE(t != nullptr);
    InsertMany(t.get(), 3, 0, 4, 10);
  }
  DirSnapshot before = Snapshot(dir);
  for (bool ro : {false, true}) {
    std::unique_ptr<WarmTier> t;
    Status s = WarmTier::Open(dir, 768, ro, &t);
    CHECK_EQ(s.code(), StatusCode::kCorruption);
    CHECK(Contains(s.message(), dir + "/warm.blocks has 3 dimensions, the store has 768"));
    CHECK(Contains(s.message(), "belongs to another store"));
  }
  CHECK(Snapshot(dir) == before);
}

TEST(FreeAndLowestSlotReuse) {
  const uint32_t dims = 8;
  std::string dir = NewDir("free");
  auto t = NewTier(dir, dims);
  ASSERT_TRUE(t != nullptr);
  auto recs = InsertMany(t.get(), dims, 0, 10, 30);
  for (uint32_t s = 0; s < 10; ++s) CHECK(recs.count(s) == 1);
  uint64_t bytes_before = t->Stats().var_live_bytes;
  ASSERT_OK(t->Free(7));
  ASSERT_OK(t->Free(3));
  CHECK(!t->IsLive(3));
  CHECK(!t->IsLive(7));
  CHECK_EQ(t->Free(3).code(), StatusCode::kInvalidArgument);
  CHECK_EQ(t->Free(123456).code(), StatusCode::kInvalidArgument);
  RecordView v;
  CHECK(!t->Read(3, false, &v).ok());
  CHECK(!t->Read(4000000000u, false, &v).ok());
  CHECK_EQ(t->Stats().live_records, 8u);
  CHECK_EQ(t->Stats().var_live_bytes,
           bytes_before - (PrefixBytes() + recs[3].id.size() + recs[3].content.size() + recs[3].metadata.size()) -
               (PrefixBytes() + recs[7].id.size() + recs[7].content.size() + recs[7].metadata.size()));
  recs.erase(3);
  recs.erase(7);
  uint32_t slot;
  Rec a = MakeRec(dims, 100, 5), b = MakeRec(dims, 101, 5), c = MakeRec(dims, 102, 5);
  ASSERT_OK(t->Insert(a.View(), &slot));
  CHECK_EQ(slot, 3u);
  recs[slot] = a;
  ASSERT_OK(t->Insert(b.View(), &slot));
  CHECK_EQ(slot, 7u);
  recs[slot] = b;
  ASSERT_OK(t->Insert(c.View(), &slot));
  CHECK_EQ(slot, 10u);
  recs[slot] = c;
  CheckAll(t.get(), recs, dims);
  // UpdateAccess of a free slot is ignored.
  ASSERT_OK(t->Free(10));
  recs.erase(10);
  t->UpdateAccess(10, 5.0, 5.0);
  CHECK(!t->IsLive(10));
  CheckAll(t.get(), recs, dims);
}

// FreeLater: free at once in memory (IsLive, Read, scans, counts, reuse),
// "live" on disk until PublishFrees -- which Sync and Compact do first -- so
// a reopen without it finds the stale blocks (the Store's recovery drops
// them: the hot log holds what superseded them), and one after it does not.
TEST(FreeLaterIsFreeNowAndOnDiskOncePublished) {
  const uint32_t dims = 8;
  for (int ending = 0; ending < 3; ++ending) {  // PublishFrees, Sync, Compact
    std::string dir = NewDir("free-later-" + std::to_string(ending));
    std::map<uint32_t, Rec> recs;
    {
      auto t = NewTier(dir, dims);
      ASSERT_TRUE(t != nullptr);
      recs = InsertMany(t.get(), dims, 0, 40, 30);
      ASSERT_OK(t->Sync());
      const uint64_t bytes_before = t->Stats().var_live_bytes;
      uint64_t freed_bytes = 0;
      for (uint32_t s = 5; s < 40; s += 5) {
        ASSERT_OK(t->FreeLater(s));
        freed_bytes += PrefixBytes() + recs[s].id.size() + recs[s].content.size() + recs[s].metadata.size();
        recs.erase(s);
      }
      CHECK_EQ(t->PendingFrees(), 7u);
      CHECK(!t->IsLive(10));
      RecordView v;
      CHECK(!t->Read(10, false, &v).ok());
      CHECK_EQ(t->Free(10).code(), StatusCode::kInvalidArgument);
      CHECK_EQ(t->FreeLater(10).code(), StatusCode::kInvalidArgument);
      CHECK_EQ(t->Stats().var_live_bytes, bytes_before - freed_bytes);
      CheckAll(t.get(), recs, dims);  // ForEachLive, Read, Stats and ScanRuns all skip them
      // The lowest pending slot is reused first, rewritten whole.
      uint32_t slot = 0;
      Rec again = MakeRec(dims, 500, 12);
      ASSERT_OK(t->Insert(again.View(), &slot));
      CHECK_EQ(slot, 5u);
      recs[slot] = again;
      CHECK(t->IsLive(5));
      CheckAll(t.get(), recs, dims);
      if (ending == 0) t->PublishFrees();
      if (ending == 1) ASSERT_OK(t->Sync());
      if (ending == 2) {
        uint64_t reclaimed = 0;
        ASSERT_OK(t->Compact(&reclaimed));
        CHECK(reclaimed > 0);
      }
      CHECK_EQ(t->PendingFrees(), 0u);
      CheckAll(t.get(), recs, dims);
      ASSERT_OK(t->Sync());
    }
    auto t = MustOpen(dir, dims);
    ASSERT_TRUE(t != nullptr);
    CheckAll(t.get(), recs, dims);
  }
}

// A process killed with frees pending: the copy of its files shows the
// blocks still live, as recovery will find them.
TEST(FreeLaterLeavesBlocksLiveOnDiskUntilPublished) {
  const uint32_t dims = 8;
  std::string dir = NewDir("free-later-crash");
  auto t = NewTier(dir, dims);
  ASSERT_TRUE(t != nullptr);
  auto recs = InsertMany(t.get(), dims, 0, 20, 30);
  const auto all = recs;
  for (uint32_t s = 0; s < 20; s += 4) {
    ASSERT_OK(t->FreeLater(s));
    recs.erase(s);
  }
  CheckAll(t.get(), recs, dims);
  // The files as they are now (a MAP_SHARED store is in them at once).
  auto copy_of_files = [&](const std::string& name) {
    std::string copy = NewDir(name);
    std::filesystem::copy(dir, copy, std::filesystem::copy_options::recursive);
    return copy;
  };
  {
    auto c = MustOpen(copy_of_files("free-later-crash-copy"), dims);
    ASSERT_TRUE(c != nullptr);
    CheckAll(c.get(), all, dims);  // every block, the pending ones included
  }
  t->PublishFrees();
  auto p = MustOpen(copy_of_files("free-later-published-copy"), dims);
  ASSERT_TRUE(p != nullptr);
  CheckAll(p.get(), recs, dims);
}

TEST(GrowthAcrossChunksKeepsPointersValid) {
  const uint32_t dims = 768;
  ChunkOverride small(64 * 1024, 64 * 1024);  // 64 blocks of 3136 bytes per chunk; 64 KiB var chunks
  const uint64_t bpc = BlocksPerChunk(dims, 64 * 1024);
  std::string dir = NewDir("growth");
  std::map<uint32_t, Rec> expected;
  {
    auto t = NewTier(dir, dims);
    ASSERT_TRUE(t != nullptr);
    auto first = InsertMany(t.get(), dims, 0, 10, 3000);
    // Hold pointers into the first chunks.
    std::map<uint32_t, RecordView> held;
    for (const auto& [slot, r] : first) {
      RecordView v;
      ASSERT_OK(t->Read(slot, true, &v));
      held[slot] = v;
    }
    const float* emb0 = t->Embedding(0);
    auto more = InsertMany(t.get(), dims, 10, 290, 3000);
    // A record bigger than a var chunk gets its own chunk.
    Rec big = MakeRec(dims, 5000, 300 * 1024);
    uint32_t big_slot;
    ASSERT_OK(t->Insert(big.View(), &big_slot));
    more[big_slot] = big;
    auto after = InsertMany(t.get(), dims, 300, 40, 3000);
    expected = first;
    expected.insert(more.begin(), more.end());
    expected.insert(after.begin(), after.end());
    auto st = t->Stats();
    CHECK(st.slots >= 341);
    CHECK(st.slots / bpc >= 5);  // several block chunks
    CHECK(st.var_file_bytes > 10 * 64 * 1024);
    CHECK_EQ(st.block_file_bytes, 4096 + (st.slots / bpc) * bpc * BlockSize(dims));
    CHECK_EQ(st.block_file_bytes, FileSize(dir + "/warm.blocks"));
    // Earlier pointers still see the same bytes.
    CHECK(t->Embedding(0) == emb0);
    for (const auto& [slot, v] : held) CHECK(Same(v, first[slot], dims));
    CheckAll(t.get(), expected, dims);
  }
  auto t = MustOpen(dir, dims);
  ASSERT_TRUE(t != nullptr);
  CheckAll(t.get(), expected, dims);
  // After reopen (the old var file is one mapping) new chunks are still added.
  auto extra = InsertMany(t.get(), dims, 1000, 100, 3000);
  expected.insert(extra.begin(), extra.end());
  CheckAll(t.get(), expected, dims);
  t.reset();
  t = MustOpen(dir, dims);
  ASSERT_TRUE(t != nullptr);
  CheckAll(t.get(), expected, dims);
}

// A clean close cuts the current var file back to its last record: growth
// preallocates whole chunks (up to 64 MiB) past it. Everything reads back,
// the file grows again after reopen, and a reopened tier (whose tail is the
// end of its last live record) cuts records freed at the end as well.
TEST(TrimAtCloseGivesBackPreallocatedVarBytes) {
  const uint32_t dims = 8;
  ChunkOverride var_chunks(0, 1 << 20);  // default block chunks, 1 MiB var chunks
  std::string dir = NewDir("trim");
  auto rounded = [](uint64_t n) { return (n + 4095) / 4096 * 4096; };
  std::map<uint32_t, Rec> expected;
  {
    auto t = NewTier(dir, dims);
    ASSERT_TRUE(t != nullptr);
    expected = InsertMany(t.get(), dims, 0, 60, 2000);
    ASSERT_OK(t->Sync());
    CHECK_EQ(FileSize(OnlyVarFile(dir)), 4096u + (1u << 20));  // one preallocated chunk
    t->TrimAtClose();
  }
  CHECK_EQ(FileSize(OnlyVarFile(dir)), rounded(4096 + LiveBytes(expected)));
  {
    auto t = MustOpen(dir, dims);
    ASSERT_TRUE(t != nullptr);
    CheckAll(t.get(), expected, dims);
    CHECK_EQ(t->Stats().var_file_bytes, FileSize(OnlyVarFile(dir)));
    // Past the cut: the file grows by a new chunk.
    auto more = InsertMany(t.get(), dims, 100, 60, 2000);
    expected.insert(more.begin(), more.end());
    CheckAll(t.get(), expected, dims);
    // The last records go: a reopened tier's tail ends at the last live one.
    for (uint32_t slot : {more.rbegin()->first, std::prev(more.rbegin().base(), 2)->first}) {
      ASSERT_OK(t->Free(slot));
      expected.erase(slot);
    }
    ASSERT_OK(t->Sync());
  }  // no TrimAtClose: the preallocated chunk stays
  CHECK(FileSize(OnlyVarFile(dir)) > rounded(4096 + LiveBytes(expected)) + (512u << 10));
  {
    auto t = MustOpen(dir, dims);
    ASSERT_TRUE(t != nullptr);
    CheckAll(t.get(), expected, dims);
    ASSERT_OK(t->Sync());
    t->TrimAtClose();
  }
  CHECK_EQ(FileSize(OnlyVarFile(dir)), rounded(4096 + LiveBytes(expected)));
  {
    // A read-only tier cuts nothing.
    const uint64_t before = FileSize(OnlyVarFile(dir));
    auto ro = MustOpen(dir, dims, /*ro=*/true);
    ASSERT_TRUE(ro != nullptr);
    CheckAll(ro.get(), expected, dims);
    ro->TrimAtClose();
    ro.reset();
    CHECK_EQ(FileSize(OnlyVarFile(dir)), before);
  }
  {
    // Everything freed (moved to cold): only the header page is left.
    auto t = MustOpen(dir, dims);
    ASSERT_TRUE(t != nullptr);
    CheckAll(t.get(), expected, dims);
    for (const auto& [slot, r] : expected) ASSERT_OK(t->Free(slot));
    expected.clear();
    ASSERT_OK(t->Sync());
    t->TrimAtClose();
  }
  CHECK_EQ(FileSize(OnlyVarFile(dir)), 4096u);
  {
    auto t = MustOpen(dir, dims);
    ASSERT_TRUE(t != nullptr);
    CheckAll(t.get(), expected, dims);
    expected = InsertMany(t.get(), dims, 500, 30, 2000);
    CheckAll(t.get(), expected, dims);
  }
  auto t = MustOpen(dir, dims);
  ASSERT_TRUE(t != nullptr);
  CheckAll(t.get(), expected, dims);
}

TEST(CompactReclaimsAndPreserves) {
  const uint32_t dims = 32;
  std::string dir = NewDir("compact");
  std::map<uint32_t, Rec> expected;
  {
    auto t = NewTier(dir, dims);
    ASSERT_TRUE(t != nullptr);
    expected = InsertMany(t.get(), dims, 0, 400, 5000);
    for (uint32_t s = 0; s < 400; ++s) {
      if (s % 4 != 0) {
        ASSERT_OK(t->Free(s));
        expected.erase(s);
      }
    }
    for (auto& [slot, r] : expected) {  // access stats survive compaction
      r.last_access_at = 2e12 + slot;
      r.access_count = slot + 1;
      t->UpdateAccess(slot, r.last_access_at, r.access_count);
    }
    uint64_t before = t->Stats().var_file_bytes;
    std::string old_var = OnlyVarFile(dir);
    uint64_t reclaimed = 0;
    ASSERT_OK(t->Compact(&reclaimed));
    auto st = t->Stats();
    CHECK(reclaimed > 0);
    CHECK_EQ(st.var_file_bytes, before - reclaimed);
    CHECK(st.var_file_bytes < 4096 + LiveBytes(expected) + 8192);
    CHECK_EQ(st.var_live_bytes, LiveBytes(expected));
    CHECK(!tierstore::PathExists(old_var));
    CHECK(OnlyVarFile(dir) != old_var);
    CheckAll(t.get(), expected, dims);
    // Inserts after compaction, then compact again.
    auto more = InsertMany(t.get(), dims, 1000, 50, 700);
    expected.insert(more.begin(), more.end());
    ASSERT_OK(t->Free(more.begin()->first));
    expected.erase(more.begin()->first);
    CheckAll(t.get(), expected, dims);
    ASSERT_OK(t->Compact(&reclaimed));
    CHECK(reclaimed > 0);
    CheckAll(t.get(), expected, dims);
  }
  auto t = MustOpen(dir, dims);
  ASSERT_TRUE(t != nullptr);
  CheckAll(t.get(), expected, dims);
  CHECK_EQ(VarFiles(dir).size(), 1u);
  // Compacting an empty tier leaves an empty var file.
  for (const auto& [slot, r] : expected) ASSERT_OK(t->Free(slot));
  uint64_t reclaimed = 0;
  ASSERT_OK(t->Compact(&reclaimed));
  CHECK(reclaimed > 0);
  CHECK_EQ(t->Stats().var_file_bytes, 4096u);
  Rec r = MakeRec(dims, 77, 10);
  uint32_t slot;
  ASSERT_OK(t->Insert(r.View(), &slot));
  CheckAll(t.get(), {{slot, r}}, dims);
  t.reset();
  t = MustOpen(dir, dims);
  ASSERT_TRUE(t != nullptr);
  CheckAll(t.get(), {{slot, r}}, dims);
}

TEST(UpdateAccessPersists) {
  const uint32_t dims = 5;
  std::string dir = NewDir("access");
  std::map<uint32_t, Rec> expected;
  {
    auto t = NewTier(dir, dims);
    ASSERT_TRUE(t != nullptr);
    expected = InsertMany(t.get(), dims, 0, 20, 10);
    for (auto& [slot, r] : expected) {
      r.last_access_at = 1.8e12 + slot * 0.5;
      r.access_count = 42 + slot;
      t->UpdateAccess(slot, r.last_access_at, r.access_count);
    }
    // Header checksum does not cover access stats: reads still verify.
    CheckAll(t.get(), expected, dims);
    ASSERT_OK(t->Sync());
    // Not synced: MAP_SHARED writes still reach the file at close.
    expected[0].access_count = 1000;
    t->UpdateAccess(0, expected[0].last_access_at, 1000);
  }
  auto t = MustOpen(dir, dims);
  ASSERT_TRUE(t != nullptr);
  CheckAll(t.get(), expected, dims);
}

TEST(ReadOnlyMode) {
  const uint32_t dims = 6;
  std::string dir = NewDir("ro");
  {
    // Every store has warm.blocks from its creation: missing is CORRUPTION.
    std::unique_ptr<WarmTier> t;
    Status s = WarmTier::Open(dir, dims, true, &t);
    CHECK_EQ(s.code(), StatusCode::kCorruption);
    CHECK(Contains(s.message(), "warm.blocks"));
    CHECK(!tierstore::PathExists(dir + "/warm.blocks"));
  }
  std::map<uint32_t, Rec> expected;
  {
    auto t = NewTier(dir, dims);
    ASSERT_TRUE(t != nullptr);
    expected = InsertMany(t.get(), dims, 0, 30, 100);
    ASSERT_OK(t->Free(4));
    expected.erase(4);
  }
  std::string blocks_before, var_before;
  CHECK_OK(tierstore::ReadWholeFile(dir + "/warm.blocks", &blocks_before));
  CHECK_OK(tierstore::ReadWholeFile(OnlyVarFile(dir), &var_before));
  {
    auto t = MustOpen(dir, dims, true);
    ASSERT_TRUE(t != nullptr);
    CheckAll(t.get(), expected, dims);
    Rec r = MakeRec(dims, 500, 10);
    uint32_t slot;
    CHECK_EQ(t->Insert(r.View(), &slot).code(), StatusCode::kReadOnly);
    CHECK_EQ(t->Free(0).code(), StatusCode::kReadOnly);
    uint64_t reclaimed;
    CHECK_EQ(t->Compact(&reclaimed).code(), StatusCode::kReadOnly);
    // Kept in this process's private copy of the page, never in the file.
    t->UpdateAccess(0, 123.0, 456.0);
    CHECK_OK(t->Sync());
    std::map<uint32_t, Rec> seen = expected;
    seen[0].last_access_at = 123.0;
    seen[0].access_count = 456.0;
    CheckAll(t.get(), seen, dims);
    // A second reader at the same time has its own copy.
    auto t2 = MustOpen(dir, dims, true);
    ASSERT_TRUE(t2 != nullptr);
    CheckAll(t2.get(), expected, dims);
  }
  std::string blocks_after, var_after;
  CHECK_OK(tierstore::ReadWholeFile(dir + "/warm.blocks", &blocks_after));
  CHECK_OK(tierstore::ReadWholeFile(OnlyVarFile(dir), &var_after));
  CHECK(blocks_before == blocks_after);
  CHECK(var_before == var_after);
}

TEST(TruncatedBlockFileIsCorruption) {
  const uint32_t dims = 768;
  std::string dir = NewDir("truncblocks");
  {
    auto t = NewTier(dir, dims);
    ASSERT_TRUE(t != nullptr);
    InsertMany(t.get(), dims, 0, 5, 10);
  }
  std::string path = dir + "/warm.blocks";
  uint64_t size = FileSize(path);
  for (uint64_t cut : {size - 1, size - BlockSize(dims), uint64_t{4096} + 100, uint64_t{4000}, uint64_t{0}}) {
    TruncateTo(path, cut);
    for (bool ro : {false, true}) {
      std::unique_ptr<WarmTier> t;
      Status s = WarmTier::Open(dir, dims, ro, &t);
      CHECK_EQ(s.code(), StatusCode::kCorruption);
      CHECK(Contains(s.message(), "warm.blocks"));
    }
  }
}

TEST(DamagedHeaderPageIsCorruption) {
  std::string dir = NewDir("hdrpage");
  { auto t = NewTier(dir, 3); }
  std::string path = dir + "/warm.blocks";
  for (uint64_t off : {0u, 9u, 17u, 21u, 29u, 32u, 35u, 36u, 39u}) {
    FlipByte(path, off);
    std::unique_ptr<WarmTier> t;
    Status s = WarmTier::Open(dir, 3, false, &t);
    CHECK_EQ(s.code(), StatusCode::kCorruption);
    CHECK(Contains(s.message(), "warm.blocks"));
    FlipByte(path, off);  // restore
  }
  auto t = MustOpen(dir, 3);
  CHECK(t != nullptr);
  t.reset();
  std::string var = OnlyVarFile(dir);
  // The var header is checked when a live record references the file.
  {
    auto w = MustOpen(dir, 3);
    ASSERT_TRUE(w != nullptr);
    InsertMany(w.get(), 3, 0, 2, 5);
  }
  FlipByte(var, 13);
  std::unique_ptr<WarmTier> w;
  Status s = WarmTier::Open(dir, 3, false, &w);
  CHECK_EQ(s.code(), StatusCode::kCorruption);
  CHECK(Contains(s.message(), "warm-var-"));
}

TEST(FlippedByteInLiveBlockHeaderIsCorruptionAtOpen) {
  const uint32_t dims = 768;
  std::string dir = NewDir("flipheader");
  {
    auto t = NewTier(dir, dims);
    ASSERT_TRUE(t != nullptr);
    InsertMany(t.get(), dims, 0, 5, 10);
  }
  std::string path = dir + "/warm.blocks";
  // seq, created_at, the location word's offset and generation bytes
  // (checked through key_crc), embedding_crc, confidence, activation, norm,
  // and the state word.
  const std::vector<uint64_t> fields = {8, 17, 40, 42, 44, 45, 47, 48, 53, 58, 63, 0, 4};
  for (uint64_t field : fields) {
    uint64_t off = BlockOffset(dims, 2) + field;
    FlipByte(path, off);
    std::unique_ptr<WarmTier> t;
    Status s = WarmTier::Open(dir, dims, false, &t);
    if (s.code() != StatusCode::kCorruption) tstest::Fail(__FILE__, __LINE__, "field " + std::to_string(field) + ": " + s.ToString());
    CHECK(Contains(s.message(), "warm.blocks"));
    FlipByte(path, off);
  }
  auto t = MustOpen(dir, dims);
  CHECK(t != nullptr);
}

TEST(FlippedByteInContentIsCorruptionOnRead) {
  const uint32_t dims = 8;
  std::string dir = NewDir("flipcontent");
  std::map<uint32_t, Rec> recs;
  {
    auto t = NewTier(dir, dims);
    ASSERT_TRUE(t != nullptr);
    recs = InsertMany(t.get(), dims, 0, 3, 1000);
  }
  std::string var = OnlyVarFile(dir);
  // Record 1's extent follows record 0's.
  uint64_t off = 4096 + PrefixBytes() + recs[0].id.size() + recs[0].content.size() + recs[0].metadata.size() +
                 PrefixBytes() + recs[1].id.size() + 500;
  FlipByte(var, off);
  auto t = MustOpen(dir, dims);
  ASSERT_TRUE(t != nullptr);
  RecordView v;
  Status s = t->Read(1, false, &v);
  CHECK_EQ(s.code(), StatusCode::kCorruption);
  CHECK(Contains(s.message(), "warm-var-"));
  CHECK_OK(t->Read(0, true, &v));
  CHECK_OK(t->Read(2, true, &v));
  // Embedding damage: only caught when asked to verify it.
  t.reset();
  FlipByte(dir + "/warm.blocks", BlockOffset(dims, 2) + HeaderBytes() + 5);
  t = MustOpen(dir, dims);
  ASSERT_TRUE(t != nullptr);
  CHECK_OK(t->Read(2, false, &v));
  s = t->Read(2, true, &v);
  CHECK_EQ(s.code(), StatusCode::kCorruption);
  CHECK(Contains(s.message(), "warm.blocks"));
  // A damaged scalar outside header_crc coverage is caught by data_crc?
  // (access stats are not covered by design: they change in place.)
}

TEST(TruncatedOrMissingVarFileIsCorruption) {
  const uint32_t dims = 8;
  std::string dir = NewDir("truncvar");
  {
    auto t = NewTier(dir, dims);
    ASSERT_TRUE(t != nullptr);
    InsertMany(t.get(), dims, 0, 20, 2000);
  }
  std::string var = OnlyVarFile(dir);
  for (uint64_t cut : {uint64_t{4096} + 20 * 2000, uint64_t{4096} + 5, uint64_t{4096}, uint64_t{100}}) {
    TruncateTo(var, cut);
    for (bool ro : {true, false}) {
      std::unique_ptr<WarmTier> t;
      Status s = WarmTier::Open(dir, dims, ro, &t);
      CHECK_EQ(s.code(), StatusCode::kCorruption);
      CHECK(Contains(s.message(), "warm-var-1.dat"));
    }
  }
  CHECK_OK(tierstore::RemoveFile(var));
  std::unique_ptr<WarmTier> t;
  Status s = WarmTier::Open(dir, dims, false, &t);
  CHECK_EQ(s.code(), StatusCode::kCorruption);
  CHECK(Contains(s.message(), "warm-var-1.dat"));
}

TEST(BlockLeftWritingIsIgnored) {
  const uint32_t dims = 768;
  std::string dir = NewDir("writing");
  std::map<uint32_t, Rec> recs;
  {
    auto t = NewTier(dir, dims);
    ASSERT_TRUE(t != nullptr);
    recs = InsertMany(t.get(), dims, 0, 4, 100);
  }
  // Simulate a crash between writing the block and publishing it.
  WriteU32(dir + "/warm.blocks", BlockOffset(dims, 1), kStateWriting);
  recs.erase(1);
  {
    auto t = MustOpen(dir, dims, true);
    ASSERT_TRUE(t != nullptr);
    CHECK(!t->IsLive(1));
    CheckAll(t.get(), recs, dims);
  }
  auto t = MustOpen(dir, dims);
  ASSERT_TRUE(t != nullptr);
  CHECK(!t->IsLive(1));
  CheckAll(t.get(), recs, dims);
  Rec r = MakeRec(dims, 50, 10);
  uint32_t slot;
  ASSERT_OK(t->Insert(r.View(), &slot));
  CHECK_EQ(slot, 1u);
  recs[slot] = r;
  CheckAll(t.get(), recs, dims);
  // A half-written garbage block in state "writing" is ignored as well.
  t.reset();
  FlipByte(dir + "/warm.blocks", BlockOffset(dims, 3) + 44, 0xFF);
  WriteU32(dir + "/warm.blocks", BlockOffset(dims, 3), kStateWriting);
  recs.erase(3);
  t = MustOpen(dir, dims);
  ASSERT_TRUE(t != nullptr);
  CheckAll(t.get(), recs, dims);
}

TEST(UnreferencedVarFilesAreRemoved) {
  const uint32_t dims = 4;
  std::string dir = NewDir("unref");
  std::map<uint32_t, Rec> recs;
  {
    auto t = NewTier(dir, dims);
    ASSERT_TRUE(t != nullptr);
    recs = InsertMany(t.get(), dims, 0, 5, 100);
  }
  // A leftover of a compaction that crashed before repointing any block.
  CHECK_OK(tierstore::AtomicWriteFile(dir + "/warm-var-2.dat", std::string(4096, '\0')));
  CHECK_OK(tierstore::AtomicWriteFile(dir + "/warm-var-9.dat", "junk"));
  {
    auto t = MustOpen(dir, dims, true);  // read-only leaves them alone
    ASSERT_TRUE(t != nullptr);
    CheckAll(t.get(), recs, dims);
  }
  CHECK_EQ(VarFiles(dir).size(), 3u);
  auto t = MustOpen(dir, dims);
  ASSERT_TRUE(t != nullptr);
  CheckAll(t.get(), recs, dims);
  CHECK_EQ(VarFiles(dir), std::vector<std::string>{"warm-var-1.dat"});
}

// A new tier of n records, every stride-th freed, synced and then compacted:
// *recs gets the records left, *blocks_before and *var1 warm.blocks and
// warm-var-1.dat as they were just before the compaction. False on failure
// (already reported).
bool CompactAfterFrees(const std::string& dir, uint32_t dims, uint32_t n, uint32_t stride, size_t content_len,
                       std::map<uint32_t, Rec>* recs, std::string* blocks_before, std::string* var1) {
  auto t = NewTier(dir, dims);
  if (t == nullptr) return false;
  *recs = InsertMany(t.get(), dims, 0, n, content_len);
  for (uint32_t s = 0; s < n; s += stride) {
    Status st = t->Free(s);
    if (!st.ok()) {
      tstest::Fail(__FILE__, __LINE__, "Free -> " + st.ToString());
      return false;
    }
    recs->erase(s);
  }
  uint64_t reclaimed = 0;
  Status st = t->Sync();
  if (st.ok()) st = tierstore::ReadWholeFile(dir + "/warm.blocks", blocks_before);
  if (st.ok()) st = tierstore::ReadWholeFile(dir + "/warm-var-1.dat", var1);
  if (st.ok()) st = t->Compact(&reclaimed);
  if (!st.ok()) tstest::Fail(__FILE__, __LINE__, "sync, read or compact -> " + st.ToString());
  return st.ok();
}

TEST(CrashMidCompactionKeepsEveryRecord) {
  // Simulate a compaction that repointed some blocks and crashed before
  // deleting the old generation: the blocks of a finished compaction are
  // combined with the blocks of the pre-compaction state.
  const uint32_t dims = 8;
  ChunkOverride small(64 * 1024, 64 * 1024);
  std::string dir = NewDir("midcompact");
  std::map<uint32_t, Rec> recs;
  std::string blocks_before, var1;
  if (!CompactAfterFrees(dir, dims, 40, 2, 300, &recs, &blocks_before, &var1)) return;
  std::string blocks_after;
  CHECK_OK(tierstore::ReadWholeFile(dir + "/warm.blocks", &blocks_after));
  ASSERT_TRUE(blocks_after.size() == blocks_before.size());
  // First half of the slots from after compaction, second half from before.
  std::string mixed = blocks_after.substr(0, BlockOffset(dims, 20)) + blocks_before.substr(BlockOffset(dims, 20));
  CHECK_OK(tierstore::AtomicWriteFile(dir + "/warm.blocks", mixed));
  CHECK_OK(tierstore::AtomicWriteFile(dir + "/warm-var-1.dat", var1));
  {
    auto t = MustOpen(dir, dims);
    ASSERT_TRUE(t != nullptr);
    CheckAll(t.get(), recs, dims);
    CHECK_EQ(VarFiles(dir).size(), 2u);  // both generations are referenced
    auto more = InsertMany(t.get(), dims, 100, 10, 50);
    recs.insert(more.begin(), more.end());
    CheckAll(t.get(), recs, dims);
    uint64_t reclaimed;
    ASSERT_OK(t->Compact(&reclaimed));
    CHECK_EQ(VarFiles(dir), std::vector<std::string>{"warm-var-3.dat"});
    CheckAll(t.get(), recs, dims);
  }
  auto t = MustOpen(dir, dims);
  ASSERT_TRUE(t != nullptr);
  CheckAll(t.get(), recs, dims);
}

TEST(FullDiskIsIoErrorAndChangesNothing) {
  const uint32_t dims = 768;
  ChunkOverride chunks(2 << 20, 1 << 20);  // 640 blocks (2048000 bytes) per block chunk
  std::string dir = NewDir("fulldisk");
  auto t = NewTier(dir, dims);
  ASSERT_TRUE(t != nullptr);
  auto recs = InsertMany(t.get(), dims, 0, 5, 100);
  std::string blocks = dir + "/warm.blocks", var = OnlyVarFile(dir);
  uint64_t bsize = FileSize(blocks), vsize = FileSize(var);
  auto st_before = t->Stats();
  // RLIMIT_FSIZE makes growth fail with EFBIG, like a full disk.
  auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
  struct rlimit old_lim;
  ::getrlimit(RLIMIT_FSIZE, &old_lim);
  struct rlimit lim = old_lim;
  CHECK(bsize > vsize);
  lim.rlim_cur = bsize + 1000;  // the var file can grow a little, the block file not at all
  ASSERT_TRUE(::setrlimit(RLIMIT_FSIZE, &lim) == 0);
  Rec big = MakeRec(dims, 900, 2 << 20);  // needs a new var chunk
  uint32_t slot = 12345;
  Status s = t->Insert(big.View(), &slot);
  // Fill the block chunk, then the next block chunk cannot be allocated.
  std::vector<Status> later;
  Status s2;
  for (uint64_t i = 0; i < 1000 && s2.ok(); ++i) {
    Rec r = MakeRec(dims, 1000 + i, 10);
    uint32_t sl;
    s2 = t->Insert(r.View(), &sl);
    if (s2.ok()) recs[sl] = r;
  }
  ::setrlimit(RLIMIT_FSIZE, &old_lim);
  std::signal(SIGXFSZ, old_handler);
  CHECK_EQ(s.code(), StatusCode::kIoError);
  CHECK_EQ(slot, 12345u);
  CHECK_EQ(s2.code(), StatusCode::kIoError);
  CHECK_EQ(FileSize(blocks), bsize);
  CHECK_EQ(t->Stats().live_records, recs.size());
  CHECK_EQ(t->Stats().slots, st_before.slots);
  CHECK_EQ(t->Stats().block_file_bytes, bsize);
  CheckAll(t.get(), recs, dims);
  // Once space is back, inserts work again.
  ASSERT_OK(t->Insert(big.View(), &slot));
  recs[slot] = big;
  CheckAll(t.get(), recs, dims);
  t.reset();
  t = MustOpen(dir, dims);
  ASSERT_TRUE(t != nullptr);
  CheckAll(t.get(), recs, dims);
}

// Flips every byte of a live block's fixed part and of the var header, one at
// a time, and truncates the var file at many sizes: every outcome must be OK
// or CORRUPTION, never a crash (run under ASan/UBSan).
TEST(DamageFuzzNeverCrashes) {
  const uint32_t dims = 3;
  ChunkOverride small(64 * 1024, 64 * 1024);
  std::string dir = NewDir("fuzz");
  std::map<uint32_t, Rec> recs;
  {
    auto t = NewTier(dir, dims);
    ASSERT_TRUE(t != nullptr);
    recs = InsertMany(t.get(), dims, 0, 6, 700);
    ASSERT_OK(t->Free(4));
    recs.erase(4);
  }
  std::string blocks = dir + "/warm.blocks";
  std::string var = OnlyVarFile(dir);
  auto exercise = [&](const char* what) {
    std::unique_ptr<WarmTier> t;
    Status s = WarmTier::Open(dir, dims, true, &t);
    if (!s.ok()) {
      if (s.code() != StatusCode::kCorruption) tstest::Fail(__FILE__, __LINE__, std::string(what) + ": " + s.ToString());
      return;
    }
    Status fs = t->ForEachLive([](uint32_t, const RecordView& v) -> Status {
      volatile char sink = 0;
      char acc = 0;
      for (char c : v.content) acc ^= c;
      sink = acc;
      (void)sink;
      return Status::OK();
    });
    if (!fs.ok() && fs.code() != StatusCode::kCorruption) tstest::Fail(__FILE__, __LINE__, fs.ToString());
    // An open that succeeds lost no record silently.
    for (const auto& [slot, r] : recs) {
      if (!t->IsLive(slot)) tstest::Fail(__FILE__, __LINE__, std::string(what) + ": slot " + std::to_string(slot) + " vanished");
    }
    for (uint32_t slot = 0; slot < t->SlotLimit() && slot < 8; ++slot) {
      RecordView v;
      Status rs = t->Read(slot, true, &v);
      if (rs.ok()) {
        char acc = 0;
        for (char c : v.content) acc ^= c;
        for (char c : v.metadata) acc ^= c;
        volatile char sink = acc;
        (void)sink;
      }
      (void)t->Embedding(slot);
    }
  };
  for (uint32_t slot : {0u, 4u, 5u}) {
    for (uint64_t i = 0; i < HeaderBytes(); ++i) {
      for (uint8_t mask : {uint8_t{0x01}, uint8_t{0x80}, uint8_t{0xFF}}) {
        FlipByte(blocks, BlockOffset(dims, slot) + i, mask);
        exercise("block byte");
        FlipByte(blocks, BlockOffset(dims, slot) + i, mask);
      }
    }
  }
  for (uint64_t i = 0; i < 32; ++i) {
    FlipByte(var, i);
    exercise("var header byte");
    FlipByte(var, i);
  }
  // Save the used prefix of the var file; restore it after each cut.
  uint64_t var_size = FileSize(var);
  std::string prefix(16384, '\0');
  {
    tierstore::File f;
    CHECK_OK(tierstore::File::Open(var, O_RDONLY, &f));
    CHECK_OK(f.ReadAt(0, prefix.data(), prefix.size()));
  }
  for (uint64_t cut = 0; cut < 4096 + 6 * (720 + PrefixBytes()); cut += 97) {
    TruncateTo(var, cut);
    exercise("var truncation");
    TruncateTo(var, var_size);
    tierstore::File f;
    CHECK_OK(tierstore::File::Open(var, O_RDWR, &f));
    CHECK_OK(f.WriteAt(0, prefix.data(), prefix.size()));
  }
  auto t = MustOpen(dir, dims);
  ASSERT_TRUE(t != nullptr);
  CheckAll(t.get(), recs, dims);
}

// The slots ever used form a prefix [0, mark); the mark is in the header and
// survives reopen; freed slots below it are reused first.
TEST(HighWaterMarkTracksSlotsEverUsed) {
  const uint32_t dims = 8;
  std::string dir = NewDir("mark");
  std::string blocks = dir + "/warm.blocks";
  std::map<uint32_t, Rec> recs;
  {
    auto t = NewTier(dir, dims);
    ASSERT_TRUE(t != nullptr);
    CHECK_EQ(t->Stats().high_water_mark, 0u);
    recs = InsertMany(t.get(), dims, 0, 10, 20);
    CHECK_EQ(t->Stats().high_water_mark, 10u);
    CHECK_EQ(ReadMark(blocks), 10u);  // raised in the header page at once (MAP_SHARED), no Sync needed
    ASSERT_OK(t->Free(3));
    ASSERT_OK(t->Free(7));
    recs.erase(3);
    recs.erase(7);
    CHECK_EQ(t->Stats().high_water_mark, 10u);
  }
  CHECK_EQ(ReadMark(blocks), 10u);
  CHECK_EQ(ReadU32(blocks, BlockOffset(dims, 3)), kStateFreed);
  auto t = MustOpen(dir, dims);
  ASSERT_TRUE(t != nullptr);
  CHECK_EQ(t->Stats().high_water_mark, 10u);
  CheckAll(t.get(), recs, dims);
  // Freed slots below the mark are reused (the mark stays), then the mark grows.
  uint32_t slot = 0;
  Rec a = MakeRec(dims, 100, 5), b = MakeRec(dims, 101, 5), c = MakeRec(dims, 102, 5);
  ASSERT_OK(t->Insert(a.View(), &slot));
  CHECK_EQ(slot, 3u);
  recs[slot] = a;
  CHECK_EQ(t->Stats().high_water_mark, 10u);
  ASSERT_OK(t->Insert(b.View(), &slot));
  CHECK_EQ(slot, 7u);
  recs[slot] = b;
  CHECK_EQ(t->Stats().high_water_mark, 10u);
  ASSERT_OK(t->Insert(c.View(), &slot));
  CHECK_EQ(slot, 10u);
  recs[slot] = c;
  CHECK_EQ(t->Stats().high_water_mark, 11u);
  CHECK_EQ(ReadMark(blocks), 11u);
  ASSERT_OK(t->Sync());
  CheckAll(t.get(), recs, dims);
  t.reset();
  t = MustOpen(dir, dims, true);
  ASSERT_TRUE(t != nullptr);
  CHECK_EQ(t->Stats().high_water_mark, 11u);
  CheckAll(t.get(), recs, dims);
}

// The fuzzer's case: after a crash the Store cannot check record counts, so
// a zeroed page of blocks must not read as never-written free slots.
TEST(ZeroedBlocksBelowMarkAreCorruption) {
  const uint32_t dims = 3;  // 128-byte blocks, 32 per 4 KiB page
  ChunkOverride small(64 * 1024, 64 * 1024);
  std::string dir = NewDir("zeroed");
  std::string blocks = dir + "/warm.blocks";
  std::map<uint32_t, Rec> recs;
  {
    auto t = NewTier(dir, dims);
    ASSERT_TRUE(t != nullptr);
    recs = InsertMany(t.get(), dims, 0, 60, 30);
    for (uint32_t s : {5u, 30u, 59u}) {  // freed slots below the mark count too
      ASSERT_OK(t->Free(s));
      recs.erase(s);
    }
    CHECK_EQ(t->Stats().high_water_mark, 60u);
  }
  const uint64_t size = FileSize(blocks);
  // Zero each 4 KiB page in turn (page 0 is the header).
  for (uint64_t page = 0; page * 4096 < size; ++page) {
    std::string saved(4096, '\0');
    {
      tierstore::File f;
      CHECK_OK(tierstore::File::Open(blocks, O_RDONLY, &f));
      CHECK_OK(f.ReadAt(page * 4096, saved.data(), saved.size()));
    }
    ZeroRange(blocks, page * 4096, 4096);
    // Does the page hold the state word of a slot below the mark?
    bool below = page == 0;
    uint32_t first_slot = 0;
    for (uint32_t slot = 0; slot < 60; ++slot) {
      uint64_t off = BlockOffset(dims, slot);
      if (off / 4096 == page) {
        if (!below) first_slot = slot;
        below = true;
      }
    }
    DirSnapshot snap = Snapshot(dir);
    for (bool ro : {true, false}) {
      std::unique_ptr<WarmTier> t;
      Status s = WarmTier::Open(dir, dims, ro, &t);
      if (below) {
        if (s.code() != StatusCode::kCorruption) {
          tstest::Fail(__FILE__, __LINE__, "page " + std::to_string(page) + ": " + s.ToString());
        }
        CHECK(Contains(s.message(), blocks));
        // The first slot whose state word the page holds, or the one before
        // it when that block's fixed part reaches into the page.
        if (page > 0 && !Contains(s.message(), "slot " + std::to_string(first_slot) + ":") &&
            !Contains(s.message(), "slot " + std::to_string(first_slot - 1) + ": block header checksum mismatch")) {
          tstest::Fail(__FILE__, __LINE__, "page " + std::to_string(page) + ": " + s.ToString());
        }
      } else {
        // Only never-written slots were zeroed: nothing is lost.
        if (!s.ok()) {
          tstest::Fail(__FILE__, __LINE__, "page " + std::to_string(page) + ": " + s.ToString());
          continue;
        }
        CheckAll(t.get(), recs, dims);
      }
    }
    CHECK(Snapshot(dir) == snap);  // open, failed or not, changed nothing
    tierstore::File f;
    CHECK_OK(tierstore::File::Open(blocks, O_RDWR, &f));
    CHECK_OK(f.WriteAt(page * 4096, saved.data(), saved.size()));
  }
  // Just the state word of a live or of a freed slot below the mark.
  for (uint32_t slot : {0u, 30u, 58u}) {
    uint32_t state = ReadU32(blocks, BlockOffset(dims, slot));
    WriteU32(blocks, BlockOffset(dims, slot), 0);
    std::unique_ptr<WarmTier> t;
    Status s = WarmTier::Open(dir, dims, false, &t);
    CHECK_EQ(s.code(), StatusCode::kCorruption);
    CHECK(Contains(s.message(), blocks + ": slot " + std::to_string(slot) + ":"));
    WriteU32(blocks, BlockOffset(dims, slot), state);
  }
  // A damaged state word with an intact header_crc stays CORRUPTION.
  {
    FlipByte(blocks, BlockOffset(dims, 10) + 1, 0x01);
    std::unique_ptr<WarmTier> t;
    Status s = WarmTier::Open(dir, dims, true, &t);
    CHECK_EQ(s.code(), StatusCode::kCorruption);
    CHECK(Contains(s.message(), "invalid block state"));
    FlipByte(blocks, BlockOffset(dims, 10) + 1, 0x01);
  }
  auto t = MustOpen(dir, dims);
  ASSERT_TRUE(t != nullptr);
  CheckAll(t.get(), recs, dims);
}

// A SIGKILL between publishing a block and raising the mark leaves a live
// block at the mark; likewise a block left "writing" there. Both are accepted,
// and FinishOpen raises the mark over them.
TEST(BlockAboveMarkFromCrashWindowIsAccepted) {
  const uint32_t dims = 16;
  std::string dir = NewDir("abovemark");
  std::string blocks = dir + "/warm.blocks";
  std::map<uint32_t, Rec> recs;
  {
    auto t = NewTier(dir, dims);
    ASSERT_TRUE(t != nullptr);
    recs = InsertMany(t.get(), dims, 0, 6, 40);
  }
  WriteMark(blocks, 5);  // slot 5 published, mark not yet raised
  {
    auto t = MustOpen(dir, dims, true);
    ASSERT_TRUE(t != nullptr);
    CHECK_EQ(t->Stats().high_water_mark, 5u);
    CheckAll(t.get(), recs, dims);
  }
  {
    std::unique_ptr<WarmTier> t;
    ASSERT_OK(WarmTier::Open(dir, dims, false, &t));
    CHECK_EQ(ReadMark(blocks), 5u);  // Open does not raise it
    CheckAll(t.get(), recs, dims);
    ASSERT_OK(t->FinishOpen());
    CHECK_EQ(t->Stats().high_water_mark, 6u);
    CHECK_EQ(ReadMark(blocks), 6u);
    CheckAll(t.get(), recs, dims);
  }
  // Killed mid-insert at the mark: slot 6 written, state still "writing".
  {
    auto t = MustOpen(dir, dims);
    ASSERT_TRUE(t != nullptr);
    auto more = InsertMany(t.get(), dims, 10, 1, 40);
    CHECK(more.count(6) == 1);
  }
  WriteU32(blocks, BlockOffset(dims, 6), kStateWriting);
  WriteMark(blocks, 6);
  {
    std::unique_ptr<WarmTier> t;
    ASSERT_OK(WarmTier::Open(dir, dims, false, &t));
    CheckAll(t.get(), recs, dims);
    CHECK_EQ(ReadU32(blocks, BlockOffset(dims, 6)), kStateWriting);
    ASSERT_OK(t->FinishOpen());
    CHECK_EQ(ReadU32(blocks, BlockOffset(dims, 6)), kStateFreed);
    CHECK_EQ(ReadMark(blocks), 7u);  // the slot was written once: covered now
    Rec r = MakeRec(dims, 20, 40);
    uint32_t slot = 0;
    ASSERT_OK(t->Insert(r.View(), &slot));
    CHECK_EQ(slot, 6u);
    recs[slot] = r;
    CHECK_EQ(t->Stats().high_water_mark, 7u);
    CheckAll(t.get(), recs, dims);
  }
  // The mark above the file's slots (a file cut by whole chunks) is CORRUPTION.
  WriteMark(blocks, 1u << 30);
  std::unique_ptr<WarmTier> t;
  Status s = WarmTier::Open(dir, dims, true, &t);
  CHECK_EQ(s.code(), StatusCode::kCorruption);
  CHECK(Contains(s.message(), blocks));
  WriteMark(blocks, 7);
  t = MustOpen(dir, dims);
  ASSERT_TRUE(t != nullptr);
  CheckAll(t.get(), recs, dims);
}

// Nothing past the first never-written slot above the mark was ever written
// by this store: open does not read it. A complete live block placed there
// (as a power cut could leave one whose mark did not reach the disk) is not a
// record, and inserts take its slot in order.
TEST(LiveLookingBlockPastTheFirstUnwrittenSlotIsNotRead) {
  const uint32_t dims = 16;
  std::string dir = NewDir("pastunwritten");
  std::string blocks = dir + "/warm.blocks";
  std::map<uint32_t, Rec> recs;
  {
    auto t = NewTier(dir, dims);
    ASSERT_TRUE(t != nullptr);
    recs = InsertMany(t.get(), dims, 0, 6, 40);  // slots 0..5, mark 6
  }
  {
    std::string block(BlockSize(dims), '\0');
    int fd = ::open(blocks.c_str(), O_RDWR);
    CHECK(fd >= 0);
    CHECK(::pread(fd, block.data(), block.size(), static_cast<off_t>(BlockOffset(dims, 2))) ==
          static_cast<ssize_t>(block.size()));
    CHECK(::pwrite(fd, block.data(), block.size(), static_cast<off_t>(BlockOffset(dims, 9))) ==
          static_cast<ssize_t>(block.size()));
    ::close(fd);
  }
  for (bool read_only : {true, false}) {
    auto t = MustOpen(dir, dims, read_only);
    ASSERT_TRUE(t != nullptr);
    CHECK_EQ(t->Stats().live_records, 6u);
    CHECK(!t->IsLive(9));
    RecordView v;
    CHECK(!t->Read(9, true, &v).ok());
    uint32_t yielded = 0;
    ASSERT_OK(t->ForEachLive([&](uint32_t slot, const RecordView&) {
      CHECK(slot < 6u);
      ++yielded;
      return Status::OK();
    }));
    CHECK_EQ(yielded, 6u);
    CheckAll(t.get(), recs, dims);
  }
  {
    std::unique_ptr<WarmTier> t;
    ASSERT_OK(WarmTier::Open(dir, dims, false, &t));
    ASSERT_OK(t->FinishOpen());
    auto more = InsertMany(t.get(), dims, 10, 4, 40);  // slots 6..9: 9 is overwritten
    CHECK(more.count(9) == 1);
    recs.insert(more.begin(), more.end());
    CHECK_EQ(t->Stats().high_water_mark, 10u);
    CheckAll(t.get(), recs, dims);
  }
  auto t = MustOpen(dir, dims);
  ASSERT_TRUE(t != nullptr);
  CHECK_EQ(t->Stats().live_records, 10u);
  CheckAll(t.get(), recs, dims);
}

// Garbage past the first never-written block above the mark (a damaged
// file) is never read by open; the store clears each block's state just
// before the mark reaches it, so the open after the mark has grown onto it
// does not read garbage as a block. Found by warm_blocks_fuzz (regressions/).
TEST(GarbagePastTheFirstUnwrittenBlockIsClearedBeforeTheMarkReachesIt) {
  const uint32_t dims = 16;
  std::string dir = NewDir("garbagepast");
  std::string blocks = dir + "/warm.blocks";
  std::map<uint32_t, Rec> recs;
  {
    auto t = NewTier(dir, dims);
    ASSERT_TRUE(t != nullptr);
    recs = InsertMany(t.get(), dims, 0, 6, 40);  // slots 0..5, mark 6
  }
  WriteU32(blocks, BlockOffset(dims, 8), 0xDEADBEEFu);  // 6 and 7 never written
  {
    auto t = MustOpen(dir, dims);  // stops at slot 6: the garbage is not read
    ASSERT_TRUE(t != nullptr);
    auto more = InsertMany(t.get(), dims, 10, 2, 40);  // slots 6, 7: the mark reaches 8
    recs.insert(more.begin(), more.end());
    CHECK_EQ(t->Stats().high_water_mark, 8u);
  }
  CHECK_EQ(ReadU32(blocks, BlockOffset(dims, 8)), 0u);  // cleared before the mark got there
  auto t = MustOpen(dir, dims);
  ASSERT_TRUE(t != nullptr);
  CheckAll(t.get(), recs, dims);
  auto last = InsertMany(t.get(), dims, 20, 1, 40);
  CHECK(last.count(8) == 1);
}

// Before the mark, a file cut by exactly one chunk lost its records silently.
TEST(BlockFileCutByWholeChunksIsCorruption) {
  const uint32_t dims = 8;  // 128-byte blocks, 512 per 64 KiB-target chunk
  ChunkOverride small(64 * 1024, 64 * 1024);
  const uint64_t bpc = BlocksPerChunk(dims, 64 * 1024);
  const uint64_t n = bpc + 80;  // into the second chunk
  std::string dir = NewDir("cutchunk");
  std::string blocks = dir + "/warm.blocks";
  {
    auto t = NewTier(dir, dims);
    ASSERT_TRUE(t != nullptr);
    InsertMany(t.get(), dims, 0, n, 10);
    CHECK(t->Stats().slots == 2 * bpc);
  }
  TruncateTo(blocks, 4096 + bpc * BlockSize(dims));
  for (bool ro : {true, false}) {
    std::unique_ptr<WarmTier> t;
    Status s = WarmTier::Open(dir, dims, ro, &t);
    CHECK_EQ(s.code(), StatusCode::kCorruption);
    CHECK(Contains(s.message(), blocks));
    CHECK(Contains(s.message(), std::to_string(n)));
  }
}

TEST(OldFormatVersionIsCorruption) {
  std::string dir = NewDir("v1");
  { auto t = NewTier(dir, 4); }
  std::string blocks = dir + "/warm.blocks";
  WriteU32(blocks, 8, 1);
  std::string h(28, '\0');
  {
    tierstore::File f;
    CHECK_OK(tierstore::File::Open(blocks, O_RDONLY, &f));
    CHECK_OK(f.ReadAt(0, h.data(), h.size()));
  }
  WriteU32(blocks, 28, tierstore::Crc32c(h));
  std::unique_ptr<WarmTier> t;
  Status s = WarmTier::Open(dir, 4, false, &t);
  CHECK_EQ(s.code(), StatusCode::kCorruption);
  CHECK(Contains(s.message(), "warm.blocks: unsupported format version 1"));
}

TEST(CreateThenOpenNewTier) {
  const uint32_t dims = 5;
  std::string dir = NewDir("create") + "/sub";  // Create makes the directory
  std::string blocks = dir + "/warm.blocks";
  ASSERT_OK(WarmTier::Create(dir, dims));
  CHECK_EQ(FileSize(blocks), 4096u);
  CHECK_EQ(ReadMark(blocks), 0u);
  DirSnapshot created = Snapshot(dir);
  CHECK_EQ(Names(created), std::string("warm.blocks "));  // no var file, no tmp left
  // Never over an existing tier.
  CHECK_EQ(WarmTier::Create(dir, dims).code(), StatusCode::kInvalidArgument);
  CHECK_EQ(WarmTier::Create(dir, dims + 1).code(), StatusCode::kInvalidArgument);
  CHECK(Snapshot(dir) == created);
  {
    auto t = MustOpen(dir, dims, true);
    ASSERT_TRUE(t != nullptr);
    CHECK_EQ(t->SlotLimit(), 0u);
    CHECK_EQ(t->Stats().live_records, 0u);
    CHECK_OK(t->FinishOpen());  // a no-op for readers
  }
  CHECK(Snapshot(dir) == created);
  std::map<uint32_t, Rec> recs;
  {
    std::unique_ptr<WarmTier> t;
    ASSERT_OK(WarmTier::Open(dir, dims, false, &t));
    CHECK(Snapshot(dir) == created);  // the var file waits for FinishOpen
    ASSERT_OK(t->FinishOpen());
    CHECK_EQ(VarFiles(dir), std::vector<std::string>{"warm-var-1.dat"});
    recs = InsertMany(t.get(), dims, 0, 3, 10);
  }
  auto t = MustOpen(dir, dims);
  ASSERT_TRUE(t != nullptr);
  CheckAll(t.get(), recs, dims);
  // A missing warm.blocks is CORRUPTION, and the open creates nothing.
  std::string empty = NewDir("create-missing");
  for (bool ro : {false, true}) {
    std::unique_ptr<WarmTier> w;
    Status s = WarmTier::Open(empty, dims, ro, &w);
    CHECK_EQ(s.code(), StatusCode::kCorruption);
    CHECK(Contains(s.message(), empty + "/warm.blocks"));
  }
  CHECK(std::filesystem::is_empty(empty));
}

namespace {

// A tier as a crash leaves it: live records, a block left "writing", an
// unreferenced var generation and stale tmp files. Returns the live records.
std::map<uint32_t, Rec> CrashedTier(const std::string& dir, uint32_t dims) {
  std::map<uint32_t, Rec> recs;
  {
    auto t = NewTier(dir, dims);
    if (t == nullptr) return recs;
    recs = InsertMany(t.get(), dims, 0, 10, 50);
    if (!t->Free(2).ok()) tstest::Fail(__FILE__, __LINE__, "Free");
    recs.erase(2);
  }
  WriteU32(dir + "/warm.blocks", BlockOffset(dims, 6), kStateWriting);
  recs.erase(6);
  CHECK_OK(tierstore::AtomicWriteFile(dir + "/warm-var-7.dat", std::string(4096, 'j')));
  CHECK_OK(tierstore::AtomicWriteFile(dir + "/warm-var-9.dat", "junk"));
  CHECK_OK(tierstore::AtomicWriteFile(dir + "/warm.blocks.tmp.keep", "x"));
  CHECK_OK(tierstore::RenameFile(dir + "/warm.blocks.tmp.keep", dir + "/warm.blocks.tmp"));
  CHECK_OK(tierstore::AtomicWriteFile(dir + "/warm-var-3.dat.tmp.keep", "y"));
  CHECK_OK(tierstore::RenameFile(dir + "/warm-var-3.dat.tmp.keep", dir + "/warm-var-3.dat.tmp"));
  CHECK_OK(tierstore::AtomicWriteFile(dir + "/other.tmp.keep", "z"));  // not the warm tier's
  CHECK_OK(tierstore::RenameFile(dir + "/other.tmp.keep", dir + "/other.tmp"));
  return recs;
}

}  // namespace

// Open never changes a file, whether it succeeds or fails; Insert, Free,
// Compact and UpdateAccess wait for FinishOpen.
TEST(OpenHasNoSideEffects) {
  const uint32_t dims = 8;
  ChunkOverride small(64 * 1024, 64 * 1024);
  std::string dir = NewDir("noeffects");
  std::map<uint32_t, Rec> recs = CrashedTier(dir, dims);
  DirSnapshot before = Snapshot(dir);
  CHECK_EQ(Names(before), std::string("other.tmp warm-var-1.dat warm-var-3.dat.tmp warm-var-7.dat warm-var-9.dat "
                                      "warm.blocks warm.blocks.tmp "));
  for (bool ro : {false, true}) {
    std::unique_ptr<WarmTier> t;
    ASSERT_OK(WarmTier::Open(dir, dims, ro, &t));
    CheckAll(t.get(), recs, dims);
    CHECK(!t->IsLive(6));
    Rec r = MakeRec(dims, 500, 10);
    uint32_t slot = 99;
    StatusCode want = ro ? StatusCode::kReadOnly : StatusCode::kInvalidArgument;
    CHECK_EQ(t->Insert(r.View(), &slot).code(), want);
    CHECK_EQ(slot, 99u);
    CHECK_EQ(t->Free(0).code(), want);
    uint64_t reclaimed = 0;
    CHECK_EQ(t->Compact(&reclaimed).code(), want);
    // Writable: keeps nothing before FinishOpen. Read-only: kept in this
    // process's private copy only; either way no file changes.
    t->UpdateAccess(0, 1.0, 2.0);
    CHECK_OK(t->Sync());
    std::map<uint32_t, Rec> seen = recs;
    if (ro) {
      seen.at(0).last_access_at = 1.0;
      seen.at(0).access_count = 2.0;
    }
    CheckAll(t.get(), seen, dims);
    t.reset();
    if (!(Snapshot(dir) == before)) tstest::Fail(__FILE__, __LINE__, ro ? "read-only open changed files" : "open changed files");
  }
  // An open that fails (a live block damaged after the writing one) changes nothing either.
  FlipByte(dir + "/warm.blocks", BlockOffset(dims, 8) + 40);
  before = Snapshot(dir);
  {
    std::unique_ptr<WarmTier> t;
    Status s = WarmTier::Open(dir, dims, false, &t);
    CHECK_EQ(s.code(), StatusCode::kCorruption);
  }
  CHECK(Snapshot(dir) == before);
  FlipByte(dir + "/warm.blocks", BlockOffset(dims, 8) + 40);
  // Nothing live and no usable var file: Open still creates none.
  std::string empty = NewDir("noeffects-empty");
  ASSERT_OK(WarmTier::Create(empty, dims));
  CHECK_OK(tierstore::AtomicWriteFile(empty + "/warm-var-4.dat", "cut"));
  before = Snapshot(empty);
  {
    std::unique_ptr<WarmTier> t;
    ASSERT_OK(WarmTier::Open(empty, dims, false, &t));
    CHECK_EQ(t->Stats().live_records, 0u);
  }
  CHECK(Snapshot(empty) == before);
}

TEST(FinishOpenDoesTheDeferredWork) {
  const uint32_t dims = 8;
  ChunkOverride small(64 * 1024, 64 * 1024);
  std::string dir = NewDir("finish");
  std::string blocks = dir + "/warm.blocks";
  std::map<uint32_t, Rec> recs = CrashedTier(dir, dims);
  std::unique_ptr<WarmTier> t;
  ASSERT_OK(WarmTier::Open(dir, dims, false, &t));
  ASSERT_OK(t->FinishOpen());
  CHECK_EQ(ReadU32(blocks, BlockOffset(dims, 6)), kStateFreed);
  CHECK_EQ(Names(Snapshot(dir)), std::string("other.tmp warm-var-1.dat warm.blocks "));
  DirSnapshot after = Snapshot(dir);
  ASSERT_OK(t->FinishOpen());  // idempotent
  CHECK(Snapshot(dir) == after);
  CheckAll(t.get(), recs, dims);
  // Now writable: the freed slots are reused lowest first.
  uint32_t slot = 0;
  Rec a = MakeRec(dims, 100, 5), b = MakeRec(dims, 101, 5);
  ASSERT_OK(t->Insert(a.View(), &slot));
  CHECK_EQ(slot, 2u);
  recs[slot] = a;
  ASSERT_OK(t->Insert(b.View(), &slot));
  CHECK_EQ(slot, 6u);
  recs[slot] = b;
  recs[0].access_count = 77;
  t->UpdateAccess(0, recs[0].last_access_at, 77);
  CheckAll(t.get(), recs, dims);
  t.reset();
  t = MustOpen(dir, dims);
  ASSERT_TRUE(t != nullptr);
  CheckAll(t.get(), recs, dims);
  // Nothing live and only a damaged var file: FinishOpen replaces it with
  // the next generation.
  std::string empty = NewDir("finish-empty");
  ASSERT_OK(WarmTier::Create(empty, dims));
  CHECK_OK(tierstore::AtomicWriteFile(empty + "/warm-var-4.dat", "cut"));
  {
    std::unique_ptr<WarmTier> w;
    ASSERT_OK(WarmTier::Open(empty, dims, false, &w));
    ASSERT_OK(w->FinishOpen());
    CHECK_EQ(VarFiles(empty), std::vector<std::string>{"warm-var-5.dat"});
    Rec r = MakeRec(dims, 1, 10);
    ASSERT_OK(w->Insert(r.View(), &slot));
    CheckAll(w.get(), {{slot, r}}, dims);
  }
  // Nothing live and an intact var file: it is reused, not replaced.
  std::string reuse = NewDir("finish-reuse");
  {
    auto w = NewTier(reuse, dims);
    ASSERT_TRUE(w != nullptr);
    InsertMany(w.get(), dims, 0, 3, 10);
    for (uint32_t s = 0; s < 3; ++s) ASSERT_OK(w->Free(s));
  }
  {
    auto w = MustOpen(reuse, dims);
    ASSERT_TRUE(w != nullptr);
    CHECK_EQ(VarFiles(reuse), std::vector<std::string>{"warm-var-1.dat"});
  }
}

namespace {

// Offset in the var file of the extent of `slot`, for records inserted in
// slot order into one var chunk (extents are back to back).
uint64_t ExtentOffset(const std::map<uint32_t, Rec>& recs, uint32_t slot) {
  uint64_t off = 4096;
  for (const auto& [s, r] : recs) {
    if (s == slot) break;
    off += PrefixBytes() + r.id.size() + r.content.size() + r.metadata.size();
  }
  return off;
}

void WriteU64(const std::string& path, uint64_t off, uint64_t v) {
  int fd = ::open(path.c_str(), O_RDWR);
  if (fd < 0 || ::pwrite(fd, &v, 8, static_cast<off_t>(off)) != 8) tstest::Fail(__FILE__, __LINE__, "WriteU64");
  if (fd >= 0) ::close(fd);
}

uint64_t ReadU64(const std::string& path, uint64_t off) {
  uint64_t v = 0;
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0 || ::pread(fd, &v, 8, static_cast<off_t>(off)) != 8) tstest::Fail(__FILE__, __LINE__, "ReadU64");
  if (fd >= 0) ::close(fd);
  return v;
}

// Rewrites header fields [8,28) of warm.blocks and fixes its checksum.
void RewriteBlocksHeader(const std::string& blocks, uint32_t version, uint32_t embedding_offset) {
  WriteU32(blocks, 8, version);
  WriteU32(blocks, 24, embedding_offset);
  std::string h(28, '\0');
  tierstore::File f;
  CHECK_OK(tierstore::File::Open(blocks, O_RDONLY, &f));
  CHECK_OK(f.ReadAt(0, h.data(), h.size()));
  WriteU32(blocks, 28, tierstore::Crc32c(h));
}

}  // namespace

// The extent prefix. Damage to a length, key_crc or the id is
// CORRUPTION at open (key_crc); damage to data_crc (or content) at Read.
// After a crash, a damaged extent of a block whose record has another copy
// goes to the TornCopyPolicy instead, and can then be freed.
TEST(FlippedPrefixByteIsCorruption) {
  const uint32_t dims = 8;
  struct Damage {
    const char* what;
    uint64_t at;  // within slot 1's extent
    bool at_open;
  };
  const Damage damages[] = {
      {"id_len", 0, true},       {"id_len high byte", 3, true}, {"content_len", 4, true},
      {"metadata_len", 8, true}, {"key_crc", 12, true},         {"id byte", 21, true},
      {"data_crc", 16, false},   {"content byte", 20 + 10 + 5, false},
  };
  int n = 0;
  for (const Damage& d : damages) {
    const std::string what = std::string(d.what) + ": ";
    std::string dir = NewDir("prefix-" + std::to_string(n++));
    std::map<uint32_t, Rec> recs;
    {
      auto t = NewTier(dir, dims);
      ASSERT_TRUE(t != nullptr);
      recs = InsertMany(t.get(), dims, 0, 4, 100);
    }
    CHECK_EQ(ReadU32(dir + "/warm.blocks", 8), 3u);
    const std::string var = OnlyVarFile(dir);
    FlipByte(var, ExtentOffset(recs, 1) + d.at, 0x01);
    for (bool ro : {true, false}) {
      std::unique_ptr<WarmTier> t;
      Status s = WarmTier::Open(dir, dims, ro, &t);
      if (d.at_open) {
        if (s.code() != StatusCode::kCorruption || !Contains(s.message(), "warm-var-1.dat") ||
            !Contains(s.message(), "slot 1 ")) {
          tstest::Fail(__FILE__, __LINE__, what + s.ToString());
        }
        continue;
      }
      if (!s.ok()) {
        tstest::Fail(__FILE__, __LINE__, what + s.ToString());
        continue;
      }
      RecordView v;
      Status rs = t->Read(1, false, &v);
      if (rs.code() != StatusCode::kCorruption || !Contains(rs.message(), "warm-var-1.dat")) {
        tstest::Fail(__FILE__, __LINE__, what + rs.ToString());
      }
      CHECK_OK(t->Read(0, true, &v));
      CHECK_OK(t->Read(2, true, &v));
    }
    // After a crash: the same unless another copy vouches for the record;
    // then everything is verified, the damaged copy goes to on_torn, and
    // freeing it keeps the byte counts right.
    for (bool vouched : {false, true}) {
      DirSnapshot before = Snapshot(dir);
      std::unique_ptr<WarmTier> t;
      ASSERT_OK(WarmTier::Open(dir, dims, false, /*after_crash=*/true, &t));
      CHECK(Snapshot(dir) == before);
      std::vector<uint32_t> torn_slots, seen;
      WarmTier::TornCopyPolicy policy{[&](uint64_t seq) { return vouched && seq == recs[1].seq; },
                                      [&](uint32_t slot) { torn_slots.push_back(slot); }};
      Status fs = t->ForEachLive(
          [&](uint32_t slot, const RecordView&) -> Status {
            seen.push_back(slot);
            return Status::OK();
          },
          &policy);
      if (!vouched) {
        // As at a clean open: the prefix is checked here, data_crc by Read.
        if (d.at_open ? fs.code() != StatusCode::kCorruption : !fs.ok()) {
          tstest::Fail(__FILE__, __LINE__, what + fs.ToString());
        }
        continue;
      }
      CHECK_OK(fs);
      CHECK(torn_slots == std::vector<uint32_t>{1});
      CHECK((seen == std::vector<uint32_t>{0, 2, 3}));
      ASSERT_OK(t->FinishOpen());
      ASSERT_OK(t->Free(1));
      std::map<uint32_t, Rec> rest = recs;
      rest.erase(1);
      CheckAll(t.get(), rest, dims);
      CHECK_EQ(t->Stats().var_live_bytes, LiveBytes(rest));
      uint64_t reclaimed = 0;
      ASSERT_OK(t->Compact(&reclaimed));
      CheckAll(t.get(), rest, dims);
      t.reset();
      t = MustOpen(dir, dims);
      ASSERT_TRUE(t != nullptr);
      CheckAll(t.get(), rest, dims);
    }
  }
}

// Compaction repoints block by block: a crash may leave any mix
// of blocks on the old and the new generation; every record survives.
TEST(TornCompactionAnyMixReopensIntact) {
  const uint32_t dims = 8;
  std::string dir = NewDir("torn");
  std::map<uint32_t, Rec> recs;
  std::string blocks_before, var1;
  if (!CompactAfterFrees(dir, dims, 30, 3, 200, &recs, &blocks_before, &var1)) return;
  std::string blocks_after;
  CHECK_OK(tierstore::ReadWholeFile(dir + "/warm.blocks", &blocks_after));
  ASSERT_TRUE(blocks_after.size() == blocks_before.size());
  // Only the location words differ, and they point at generation 2 now.
  for (uint32_t slot = 0; slot < 30; ++slot) {
    const uint64_t b = BlockOffset(dims, slot);
    CHECK(blocks_before.compare(b, 40, blocks_after, b, 40) == 0);
    CHECK(blocks_before.compare(b + 48, BlockSize(dims) - 48, blocks_after, b + 48, BlockSize(dims) - 48) == 0);
    if (recs.count(slot)) {
      uint64_t loc;
      std::memcpy(&loc, blocks_after.data() + b + 40, 8);
      CHECK_EQ(loc >> 40, 2u);
    }
  }
  // Odd live slots on the new generation, even ones still on the old.
  std::string mixed = blocks_after;
  for (uint32_t slot = 0; slot < 30; slot += 2) {
    const uint64_t b = BlockOffset(dims, slot);
    mixed.replace(b + 40, 8, blocks_before, b + 40, 8);
  }
  CHECK_OK(tierstore::AtomicWriteFile(dir + "/warm.blocks", mixed));
  CHECK_OK(tierstore::AtomicWriteFile(dir + "/warm-var-1.dat", var1));
  {
    auto t = MustOpen(dir, dims, true);
    ASSERT_TRUE(t != nullptr);
    CheckAll(t.get(), recs, dims);
    CHECK_EQ(t->Stats().var_live_bytes, LiveBytes(recs));
  }
  {
    auto t = MustOpen(dir, dims);
    ASSERT_TRUE(t != nullptr);
    CheckAll(t.get(), recs, dims);
    CHECK_EQ(VarFiles(dir), (std::vector<std::string>{"warm-var-1.dat", "warm-var-2.dat"}));
    auto more = InsertMany(t.get(), dims, 100, 5, 50);  // appended to generation 2
    recs.insert(more.begin(), more.end());
    CheckAll(t.get(), recs, dims);
  }
  {
    auto t = MustOpen(dir, dims);
    ASSERT_TRUE(t != nullptr);
    CheckAll(t.get(), recs, dims);
    uint64_t reclaimed;
    ASSERT_OK(t->Compact(&reclaimed));
    CHECK_EQ(VarFiles(dir), std::vector<std::string>{"warm-var-3.dat"});
    CHECK_EQ(t->Stats().var_live_bytes, LiveBytes(recs));
  }
  auto t = MustOpen(dir, dims);
  ASSERT_TRUE(t != nullptr);
  CheckAll(t.get(), recs, dims);
}

// The header's embedding offset must be the format's (64), even when its
// checksum is intact; version 2 (a pre-release format, embedding offset
// 128) is CORRUPTION "unsupported format version 2".
TEST(VersionAndEmbeddingOffsetMustAgree) {
  const uint32_t dims = 4;
  std::string dir = NewDir("verpair");
  std::map<uint32_t, Rec> recs;
  {
    auto t = NewTier(dir, dims);
    ASSERT_TRUE(t != nullptr);
    recs = InsertMany(t.get(), dims, 0, 3, 10);
  }
  const std::string blocks = dir + "/warm.blocks";
  for (auto [v, off] : {std::pair<uint32_t, uint32_t>{3, 128}, {2, 128}, {2, 64}}) {
    RewriteBlocksHeader(blocks, v, off);
    for (bool ro : {true, false}) {
      std::unique_ptr<WarmTier> t;
      Status s = WarmTier::Open(dir, dims, ro, &t);
      if (s.code() != StatusCode::kCorruption || !Contains(s.message(), "warm.blocks")) {
        tstest::Fail(__FILE__, __LINE__, "version " + std::to_string(v) + " offset " + std::to_string(off) + ": " + s.ToString());
      }
      if (v == 2) CHECK(Contains(s.message(), "unsupported format version 2"));
    }
  }
  RewriteBlocksHeader(blocks, 3, 64);
  auto t = MustOpen(dir, dims);
  ASSERT_TRUE(t != nullptr);
  CheckAll(t.get(), recs, dims);
}

// Generations have 24 bits: past 2^24-1 compaction wraps to the smallest
// generation not in use. The second live state of the pre-release format 2
// ("LLVB") is CORRUPTION.
TEST(GenerationsWrapAndLiveBIsCorruption) {
  const uint32_t dims = 4;
  std::string dir = NewDir("genwrap");
  const std::string blocks = dir + "/warm.blocks";
  std::map<uint32_t, Rec> recs;
  {
    auto t = NewTier(dir, dims);
    ASSERT_TRUE(t != nullptr);
    recs = InsertMany(t.get(), dims, 0, 6, 30);
  }
  // Move everything to the last generation: rename the file, fix its
  // header's generation, repoint every block.
  const uint32_t last = (1u << 24) - 1;
  const std::string var_last = dir + "/warm-var-" + std::to_string(last) + ".dat";
  CHECK_OK(tierstore::RenameFile(dir + "/warm-var-1.dat", var_last));
  WriteU32(var_last, 12, last);
  {
    std::string h(20, '\0');
    tierstore::File f;
    CHECK_OK(tierstore::File::Open(var_last, O_RDONLY, &f));
    CHECK_OK(f.ReadAt(0, h.data(), h.size()));
    WriteU32(var_last, 20, tierstore::Crc32c(h));
  }
  for (const auto& [slot, r] : recs) {
    uint64_t loc = ReadU64(blocks, BlockOffset(dims, slot) + 40);
    WriteU64(blocks, BlockOffset(dims, slot) + 40, (loc & ((uint64_t{1} << 40) - 1)) | (uint64_t{last} << 40));
  }
  {
    auto t = MustOpen(dir, dims);
    ASSERT_TRUE(t != nullptr);
    CheckAll(t.get(), recs, dims);
    ASSERT_OK(t->Free(2));
    recs.erase(2);
    uint64_t reclaimed;
    ASSERT_OK(t->Compact(&reclaimed));
    CHECK_EQ(VarFiles(dir), std::vector<std::string>{"warm-var-1.dat"});
    CheckAll(t.get(), recs, dims);
    ASSERT_OK(t->Compact(&reclaimed));
    CHECK_EQ(VarFiles(dir), std::vector<std::string>{"warm-var-2.dat"});
  }
  {
    auto t = MustOpen(dir, dims);
    ASSERT_TRUE(t != nullptr);
    CheckAll(t.get(), recs, dims);
  }
  // liveB: CORRUPTION at open.
  WriteU32(blocks, BlockOffset(dims, 3), 0x42564C4Cu);
  std::unique_ptr<WarmTier> t;
  Status s = WarmTier::Open(dir, dims, true, &t);
  CHECK_EQ(s.code(), StatusCode::kCorruption);
  CHECK(Contains(s.message(), "slot 3"));
}

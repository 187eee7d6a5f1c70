// Tests of Store: the guarantees that live above the tiers — recovery keeps
// exactly one copy per id, a torn log tail is dropped while a truncated
// cleanly-closed log is CORRUPTION, iterators yield each record exactly once
// while records migrate under them, capacities hold, and recall equals a
// brute-force scan.
#include "../core/store.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "../core/crc32c.h"
#include "../core/file_util.h"
#include "../core/hot_log.h"
#include "../core/manifest.h"
#include "../core/cold_tier.h"
#include "../core/warm_tier.h"
#include "testing.h"

using namespace tierstore;

namespace {

constexpr uint32_t kDims = 8;

struct OwnedRecord {
  std::string id, content, metadata;
  std::vector<float> embedding;
  float confidence = 0.5f, activation = 0.5f;
  double created_at = 1700000000000.0;

  RecordView View() const {
    RecordView v;
    v.id = id;
    v.content = content;
    v.metadata = metadata;
    v.embedding = embedding.data();
    v.confidence = confidence;
    v.activation = activation;
    v.created_at = created_at;
    v.last_access_at = created_at;
    return v;
  }
};

OwnedRecord MakeRecord(int i, std::mt19937* rng) {
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  OwnedRecord r;
  r.id = "id-" + std::to_string(i);
  r.content = "content of " + std::to_string(i) + std::string(static_cast<size_t>(i % 7), '\0') + " \xC3\xA9";
  r.metadata = "{\"i\":" + std::to_string(i) + "}";
  r.embedding.resize(kDims);
  for (float& x : r.embedding) x = u(*rng);
  r.activation = static_cast<float>(i % 100) / 100.0f;
  return r;
}

// Records 0..n-1 in order, drawing from rng as n MakeRecord calls would.
std::vector<OwnedRecord> MakeRecords(int n, std::mt19937* rng) {
  std::vector<OwnedRecord> recs;
  for (int i = 0; i < n; ++i) recs.push_back(MakeRecord(i, rng));
  return recs;
}

// One open, released as the binding releases it (writable or not).
struct StoreHandle {
  std::shared_ptr<Store> store;
  bool writable = false;
  ~StoreHandle() { Close(); }
  void Close() {
    if (store) store->Release(writable);
    store.reset();
  }
  Store* operator->() { return store.get(); }
};

Status OpenStore(const std::string& dir, StoreHandle* h, uint32_t dims = kDims, bool read_only = false) {
  StoreOptions o;
  o.dimensions = dims;
  o.read_only = read_only;
  h->writable = !read_only;
  return Store::Open(dir, o, &h->store);
}

Status PutAll(Store* s, const std::vector<OwnedRecord>& recs, const WriteOptions& w) {
  std::vector<RecordView> views;
  for (const auto& r : recs) views.push_back(r.View());
  return s->Put(views.data(), views.size(), w);
}

// Every record of the store, via an 'all' iterator: id -> tier.
std::map<std::string, Tier> Snapshot(Store* s) {
  std::map<std::string, Tier> out;
  std::unique_ptr<StoreIterator> it;
  if (!s->NewIterator(TierSelector::kAll, &it).ok()) return out;
  RecordBatch b;
  while (it->Next(100, false, &b).ok() && b.size() > 0) {
    for (size_t i = 0; i < b.size(); ++i) out[std::string(b.Id(i))] = b.tiers[i];
  }
  return out;
}

// Puts recs, then migrates to these capacities: the records spread over the tiers.
Status PutAndSpread(Store* s, const std::vector<OwnedRecord>& recs, uint64_t hot_capacity, uint64_t warm_capacity) {
  WriteOptions w;
  w.hot_capacity = hot_capacity;
  w.warm_capacity = warm_capacity;
  TS_RETURN_IF_ERROR(PutAll(s, recs, w));
  MigrationReport rep;
  return s->Migrate(w, &rep);
}

// Opens (creating) the store at dir, puts recs, migrates to w's capacities and closes.
Status PutMigrateClose(const std::string& dir, const std::vector<OwnedRecord>& recs, const WriteOptions& w) {
  StoreHandle h;
  TS_RETURN_IF_ERROR(OpenStore(dir, &h));
  TS_RETURN_IF_ERROR(PutAll(h.store.get(), recs, w));
  MigrationReport rep;
  return h->Migrate(w, &rep);
}

uint64_t Total(Store* s) {
  TierCounts c;
  if (!s->Counts(&c).ok()) return ~0ull;
  return c.total();
}

}  // namespace

TEST(PutGetReopenAcrossTiers) {
  std::string dir = tstest::TempDir("store-basic");
  std::mt19937 rng(1);
  std::vector<OwnedRecord> recs = MakeRecords(300, &rng);
  WriteOptions w;
  w.hot_capacity = 50;
  w.warm_capacity = 100;
  {
    StoreHandle h;
    ASSERT_OK(OpenStore(dir, &h));
    ASSERT_OK(PutAll(h.store.get(), recs, w));
    MigrationReport rep;
    ASSERT_OK(h->Migrate(w, &rep));
    TierCounts c;
    ASSERT_OK(h->Counts(&c));
    CHECK(c.hot <= 50);
    CHECK(c.warm <= 100);
    CHECK_EQ(c.total(), 300u);
  }
  StoreHandle h;
  ASSERT_OK(OpenStore(dir, &h));
  CHECK_EQ(Total(h.store.get()), 300u);
  for (const auto& r : recs) {
    RecordBatch b;
    ASSERT_OK(h->Get(r.id, true, 1.0, &b));
    ASSERT_TRUE(b.size() == 1);
    CHECK(b.Content(0) == r.content);
    CHECK(b.Metadata(0) == r.metadata);
    CHECK(std::memcmp(b.embeddings.data(), r.embedding.data(), kDims * 4) == 0);
    CHECK_EQ(b.activation[0], r.activation);
  }
}

// A manifest claiming a sequence number no store reaches is damage: left in,
// the next writes would wrap around to small numbers, and recovery (highest
// wins) and iterators (which skip versions newer than they are) would go
// wrong. Found by manifest_fuzz and hot_log_fuzz (regressions/).
TEST(ImpossibleSequenceNumberIsCorruption) {
  std::string dir = tstest::TempDir("store-seq");
  std::mt19937 rng(7);
  std::vector<OwnedRecord> recs = MakeRecords(5, &rng);
  WriteOptions w;
  ASSERT_OK(PutMigrateClose(dir, recs, w));
  Manifest m;
  ASSERT_OK(Manifest::Read(dir, &m));
  const uint64_t good = m.sequence_floor;
  for (uint64_t bad : {kMaxSequence + 1, ~uint64_t{0} - 1}) {
    m.sequence_floor = bad;
    ASSERT_OK(m.Write(dir));
    StoreHandle h;
    Status s = OpenStore(dir, &h);
    CHECK_EQ(s.code(), StatusCode::kCorruption);
    CHECK(s.message().find("MANIFEST") != std::string::npos);
  }
  m.sequence_floor = kMaxSequence;  // the limit itself is allowed
  ASSERT_OK(m.Write(dir));
  {
    StoreHandle h;
    ASSERT_OK(OpenStore(dir, &h));
    CHECK_EQ(Total(h.store.get()), 5u);
  }
  m.sequence_floor = good;
  ASSERT_OK(m.Write(dir));
  StoreHandle h;
  ASSERT_OK(OpenStore(dir, &h));
  CHECK_EQ(Total(h.store.get()), 5u);
}

TEST(RecoveryKeepsOneCopyPreferringColderOnTie) {
  // A crash after migration wrote the warm copy but before the source left
  // the log leaves the same record (same seq) in hot and warm.
  std::string dir = tstest::TempDir("store-dup");
  std::mt19937 rng(2);
  OwnedRecord r = MakeRecord(7, &rng);
  {
    StoreHandle h;
    ASSERT_OK(OpenStore(dir, &h));
    ASSERT_OK(PutAll(h.store.get(), {r}, WriteOptions{}));
    // The crash: the files as they are while the store is open.
    std::string crashed = tstest::TempDir("store-dup-crash");
    std::filesystem::copy(dir, crashed, std::filesystem::copy_options::recursive);
    dir = crashed;
  }
  std::filesystem::remove(dir + "/LOCK");
  {
    // Re-create the mid-migration state by hand: the record's warm copy with
    // the seq the log gave it (the first sequence number, 1).
    std::unique_ptr<WarmTier> warm;
    ASSERT_OK(WarmTier::Open(dir, kDims, false, &warm));
    ASSERT_OK(warm->FinishOpen());
    RecordView v = r.View();
    v.seq = 1;
    v.norm = 1.0f;
    uint32_t slot = 0;
    ASSERT_OK(warm->Insert(v, &slot));
  }
  StoreHandle h;
  ASSERT_OK(OpenStore(dir, &h));
  TierCounts c;
  ASSERT_OK(h->Counts(&c));
  CHECK_EQ(c.total(), 1u);
  CHECK_EQ(c.warm, 1u);
  StoreStats st;
  ASSERT_OK(h->Stats(&st));
  CHECK_EQ(st.recovered_duplicates, 1u);
  auto snap = Snapshot(h.store.get());
  CHECK_EQ(snap.size(), 1u);
  CHECK(snap.count(r.id) == 1 && snap[r.id] == Tier::kWarm);
}

namespace {

// A copy of the store directory `dir` as a crash leaves it (taken while the
// store is open; the lock file, which the dead process's flock no longer
// holds, removed). Returns the copy's path.
std::string CrashCopy(const std::string& dir, const std::string& name) {
  std::string crashed = tstest::TempDir(name);
  std::filesystem::copy(dir, crashed, std::filesystem::copy_options::recursive);
  std::filesystem::remove(crashed + "/LOCK");
  return crashed;
}

// A store whose warm tier holds records the hot log still holds too (put,
// then migrated; the log is not checkpointed yet), copied while open: the
// files as a crash -- or a power cut -- leaves them. Returns the copy.
std::string WarmCopiesStillInLog(const std::string& name, const std::vector<OwnedRecord>& recs, bool compact_first) {
  std::string dir = tstest::TempDir(name);
  // Put into room enough (a put over capacity writes the records it
  // demotes straight to warm, never to the log), then demoted.
  WriteOptions w;
  StoreHandle h;
  if (!OpenStore(dir, &h).ok() || !PutAll(h.store.get(), recs, w).ok()) return "";
  w.hot_capacity = 2;
  MigrationReport rep;
  TierCounts c;
  if (!h->Migrate(w, &rep).ok() || !h->Counts(&c).ok() || c.warm < recs.size() - 2) return "";
  CompactionReport cr;
  // compact() checkpoints the log durably: afterwards the warm copies are the only ones.
  if (compact_first && !h->Compact(w, &cr).ok()) return "";
  return CrashCopy(dir, name + "-crash");
}

void FlipByte(const std::string& path, uint64_t offset) {
  File f;
  if (!File::Open(path, O_RDWR, &f).ok()) return;
  uint8_t b = 0;
  if (f.ReadAt(offset, &b, 1).ok()) {
    b ^= 0x5A;
    (void)f.WriteAt(offset, &b, 1);
  }
}

// Every record reads back exactly, embedding included.
// Every file of dir by name, with its bytes: to tell that nothing changed.
std::map<std::string, std::string> DirectoryBytes(const std::string& dir) {
  std::map<std::string, std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    std::ifstream in(e.path(), std::ios::binary);
    out[e.path().filename().string()] = std::string(std::istreambuf_iterator<char>(in), {});
  }
  return out;
}

void ExpectAllExact(Store* s, const std::vector<OwnedRecord>& recs) {
  for (const auto& r : recs) {
    RecordBatch b;
    Status st = s->Get(r.id, true, 0, &b);
    CHECK_OK(st);
    if (!st.ok() || b.size() != 1) {
      CHECK_EQ(b.size(), 1u);
      continue;
    }
    CHECK(b.Content(0) == r.content);
    CHECK(b.Metadata(0) == r.metadata);
    CHECK(std::memcmp(b.embeddings.data(), r.embedding.data(), kDims * 4) == 0);
  }
}

constexpr uint64_t kWarmHeaderPage = 4096;
// Warm block format version 3 (docs/format/warm.md): a 64-byte block header,
// then the embedding; each var extent starts with a 20-byte prefix.
constexpr uint64_t kWarmBlockHeader = 64;
constexpr uint64_t kWarmBlockBytes = 128;  // 64-byte header + 8 floats, rounded up to 64
constexpr uint64_t kWarmVarPrefix = 20;

}  // namespace

TEST(TornWarmCopyAfterCrashIsDroppedWhileTheLogHoldsIt) {
  std::mt19937 rng(21);
  std::vector<OwnedRecord> recs = MakeRecords(20, &rng);
  // Slot 0's embedding, or the first var extent's prefix (its id length,
  // checked at open) or id bytes (slot 0's record): pages a power cut kept
  // at an older state.
  const std::pair<const char*, uint64_t> damages[] = {
      {"warm.blocks", kWarmHeaderPage + 0 * kWarmBlockBytes + kWarmBlockHeader + 5},
      {"warm-var-1.dat", kWarmHeaderPage + 1},
      {"warm-var-1.dat", kWarmHeaderPage + kWarmVarPrefix + 1},
  };
  for (const auto& [file, offset] : damages) {
    std::string dir = WarmCopiesStillInLog(std::string("store-torn-warm-") + file, recs, false);
    ASSERT_TRUE(!dir.empty());
    FlipByte(dir + "/" + file, offset);
    {
      StoreHandle h;
      ASSERT_OK(OpenStore(dir, &h));
      StoreStats st;
      ASSERT_OK(h->Stats(&st));
      CHECK_EQ(st.torn_warm_copies, 1u);
      CHECK_EQ(Total(h.store.get()), recs.size());
      ExpectAllExact(h.store.get(), recs);  // the torn copy's record comes from the log
    }
    // The torn block was freed: a clean reopen finds nothing to drop.
    StoreHandle h;
    ASSERT_OK(OpenStore(dir, &h));
    StoreStats st;
    ASSERT_OK(h->Stats(&st));
    CHECK_EQ(st.torn_warm_copies, 0u);
    ExpectAllExact(h.store.get(), recs);
  }
}

// A cold row whose id bytes were damaged into another record's id: the two
// "copies" of that id meet at open. Dropping the older one (the damaged
// row) would lose its real record silently; both copies are verified
// first, so it is CORRUPTION naming the segment.
TEST(DamagedColdIdNamingAnotherRecordIsCorruptionNotASilentLoss) {
  std::mt19937 rng(94);
  OwnedRecord one = MakeRecord(1, &rng), two = MakeRecord(2, &rng);  // ids "id-1", "id-2"
  std::string dir = tstest::TempDir("store-cold-id-damage");
  {
    StoreHandle h;
    ASSERT_OK(OpenStore(dir, &h));
    ASSERT_OK(PutAll(h.store.get(), {one}, WriteOptions{}));
    bool found = false;
    ASSERT_OK(h->Move(one.id, Tier::kCold, WriteOptions{}, &found));
    CHECK(found);
    ASSERT_OK(PutAll(h.store.get(), {two}, WriteOptions{}));  // in hot, a later sequence number
  }
  std::string seg;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (e.path().filename().string().rfind("cold-", 0) == 0 && e.path().extension() == ".seg") seg = e.path().string();
  }
  ASSERT_TRUE(!seg.empty());
  // The id column (directory entry 10: offset, size) holds "id-1"; make it "id-2".
  File f;
  ASSERT_OK(File::Open(seg, O_RDWR, &f));
  uint64_t col = 0;
  ASSERT_OK(f.ReadAt(64 + 24 * 10, &col, 8));
  char id[4];
  ASSERT_OK(f.ReadAt(col, id, 4));
  CHECK(std::string(id, 4) == "id-1");
  id[3] = '2';
  ASSERT_OK(f.WriteAt(col, id, 4));
  f.Close();
  const std::string seg_name = seg.substr(seg.rfind('/') + 1);
  // With the index the clean close wrote, the open reads no row: the
  // damage shows when the row is read, and in Verify.
  for (bool read_only : {true, false}) {
    StoreHandle h;
    ASSERT_OK(OpenStore(dir, &h, kDims, read_only));
    RecordBatch b;
    Status s = h->Get(one.id, false, 0, &b);
    CHECK(s.code() == StatusCode::kCorruption);
    CHECK(s.message().find(seg_name) != std::string::npos);
    VerifyReport report;
    ASSERT_OK(h->Verify(&report));
    CHECK(!report.damaged.empty() && report.damaged[0].file.find(seg_name) != std::string::npos);
  }
  // Rebuilding the index reads every row, and two copies claim one id.
  std::filesystem::remove(dir + "/id.index");
  for (bool read_only : {true, false}) {
    StoreHandle h;
    Status s = OpenStore(dir, &h, kDims, read_only);
    CHECK(s.code() == StatusCode::kCorruption);
    CHECK(s.message().find(seg_name) != std::string::npos);
  }
}

// A warm or cold copy whose content is damaged while the log still holds the
// same write, in a cleanly closed store: every tier was synced before the
// clean manifest, so it is damage, and is CORRUPTION naming the file, not
// dropped for the log's copy (which would move the record to hot without a
// word; after a crash the torn-copy policy decides).
TEST(DamagedLowerCopyWithTheSameWriteInTheLogIsCorruptionAfterACleanClose) {
  std::mt19937 rng(95);
  std::vector<OwnedRecord> recs = MakeRecords(20, &rng);
  for (Tier tier : {Tier::kWarm, Tier::kCold}) {
    std::string dir = tstest::TempDir(tier == Tier::kWarm ? "store-warm-content-damage" : "store-cold-content-damage");
    WriteOptions w;
    w.skip_warm = tier == Tier::kCold;
    {
      // Put into room enough (so every record is in the log), then demoted.
      StoreHandle h;
      ASSERT_OK(OpenStore(dir, &h));
      ASSERT_OK(PutAll(h.store.get(), recs, w));
      w.hot_capacity = 2;
      MigrationReport rep;
      ASSERT_OK(h->Migrate(w, &rep));  // a small log is not rewritten at close: it keeps the copies
    }
    Manifest m;
    ASSERT_OK(Manifest::Read(dir, &m));
    CHECK(m.clean);
    std::string file = "warm-var-1.dat";
    uint64_t offset = kWarmHeaderPage + kWarmVarPrefix + 4 + 3;  // slot 0's extent: prefix, id, then content
    if (tier == Tier::kCold) {
      for (const auto& e : std::filesystem::directory_iterator(dir)) {
        if (e.path().filename().string().rfind("cold-", 0) == 0 && e.path().extension() == ".seg") {
          file = e.path().filename().string();
        }
      }
      // The content bytes column (directory entry 12: offset, size): its first byte.
      File f;
      ASSERT_OK(File::Open(dir + "/" + file, O_RDONLY, &f));
      ASSERT_OK(f.ReadAt(64 + 24 * 12, &offset, 8));
    }
    FlipByte(dir + "/" + file, offset);
    // With the index the clean close wrote, the open reads no copy: the
    // damaged one is CORRUPTION when it is read, and in Verify.
    {
      StoreHandle h;
      ASSERT_OK(OpenStore(dir, &h, kDims, /*read_only=*/true));
      size_t corrupt = 0;
      for (const auto& r : recs) {
        RecordBatch b;
        Status s = h->Get(r.id, false, 0, &b);
        if (s.ok()) continue;
        CHECK(s.code() == StatusCode::kCorruption);
        CHECK(s.message().find(file) != std::string::npos);
        ++corrupt;
      }
      CHECK(corrupt == 1);
      VerifyReport report;
      ASSERT_OK(h->Verify(&report));
      CHECK(report.damaged.size() == 1 && report.damaged[0].file.find(file) != std::string::npos);
    }
    // Rebuilding the index reads every copy.
    std::filesystem::remove(dir + "/id.index");
    const auto files_before = DirectoryBytes(dir);
    for (bool read_only : {true, false}) {
      StoreHandle h;
      Status s = OpenStore(dir, &h, kDims, read_only);
      CHECK(s.code() == StatusCode::kCorruption);
      CHECK(s.message().find(file) != std::string::npos);
    }
    CHECK(DirectoryBytes(dir) == files_before);  // a failed open changes no file
  }
}

TEST(DamagedWarmCopyWithoutLogCopyIsCorruption) {
  std::mt19937 rng(22);
  std::vector<OwnedRecord> recs = MakeRecords(20, &rng);
  const uint64_t offset = kWarmHeaderPage + kWarmBlockHeader + 5;  // slot 0's embedding
  // After a crash, but the log was checkpointed (compact): the warm copy is
  // the only one, so its damage is reported, never papered over.
  {
    std::string dir = WarmCopiesStillInLog("store-warm-only-copy", recs, true);
    ASSERT_TRUE(!dir.empty());
    FlipByte(dir + "/warm.blocks", offset);
    StoreHandle h;
    ASSERT_OK(OpenStore(dir, &h));
    StoreStats st;
    ASSERT_OK(h->Stats(&st));
    CHECK_EQ(st.torn_warm_copies, 0u);
    size_t corrupt = 0;
    for (const auto& r : recs) {
      RecordBatch b;
      Status s = h->Get(r.id, true, 0, &b);
      if (!s.ok()) {
        ++corrupt;
        CHECK(s.code() == StatusCode::kCorruption);
        CHECK(s.message().find("warm.blocks") != std::string::npos);
      }
    }
    CHECK_EQ(corrupt, 1u);
  }
  // After a clean close every tier was synced: damage is damage, even while
  // the log still holds the record.
  {
    std::string dir = tstest::TempDir("store-warm-clean");
    WriteOptions w;
    w.hot_capacity = 2;
    ASSERT_OK(PutMigrateClose(dir, recs, w));
    FlipByte(dir + "/warm.blocks", offset);
    StoreHandle h;
    ASSERT_OK(OpenStore(dir, &h));
    size_t corrupt = 0;
    for (const auto& r : recs) {
      RecordBatch b;
      if (!h->Get(r.id, true, 0, &b).ok()) ++corrupt;
    }
    CHECK_EQ(corrupt, 1u);
  }
}

namespace {

void ZeroRange(const std::string& path, uint64_t offset, uint64_t n) {
  File f;
  if (!File::Open(path, O_RDWR, &f).ok()) return;
  std::string zeros(n, '\0');
  (void)f.WriteAt(offset, zeros.data(), zeros.size());
}

uint64_t WarmSlots(const std::string& dir) {
  uint64_t size = std::filesystem::file_size(dir + "/warm.blocks");
  return (size - kWarmHeaderPage) / kWarmBlockBytes;
}

}  // namespace

TEST(ZeroedWarmBlockAfterPowerCutComesBackFromTheLog) {
  // A power cut can persist the header page (the raised high-water mark)
  // while a block written since the last sync is still zeros on disk. Its
  // record is still in the log: recovery takes it from there.
  std::mt19937 rng(23);
  std::vector<OwnedRecord> recs = MakeRecords(20, &rng);
  std::string dir = WarmCopiesStillInLog("store-zeroed-warm", recs, false);
  ASSERT_TRUE(!dir.empty());
  ZeroRange(dir + "/warm.blocks", kWarmHeaderPage + 3 * kWarmBlockBytes, kWarmBlockBytes);
  {
    StoreHandle h;
    ASSERT_OK(OpenStore(dir, &h));
    CHECK_EQ(Total(h.store.get()), recs.size());
    ExpectAllExact(h.store.get(), recs);
  }
  // The block now reads as freed, so a clean reopen has nothing to excuse.
  StoreHandle h;
  ASSERT_OK(OpenStore(dir, &h));
  CHECK_EQ(Total(h.store.get()), recs.size());
  ExpectAllExact(h.store.get(), recs);
}

TEST(ZeroedWarmBlockIsCorruptionOnceItIsTheOnlyCopy) {
  std::mt19937 rng(24);
  std::vector<OwnedRecord> recs = MakeRecords(20, &rng);
  auto expect_corrupt_open = [](const std::string& dir, const char* why) {
    StoreHandle h;
    Status s = OpenStore(dir, &h);
    if (s.code() != StatusCode::kCorruption || s.message().find("warm.blocks") == std::string::npos) {
      std::fprintf(stderr, "%s: expected CORRUPTION naming warm.blocks, got %s\n", why, s.ToString().c_str());
      CHECK(false);
    }
  };
  // compact() synced every tier and checkpointed the log: the warm blocks
  // are the only copies, so a zeroed one is a lost record, after a crash too.
  {
    std::string dir = WarmCopiesStillInLog("store-zeroed-only-copy", recs, true);
    ASSERT_TRUE(!dir.empty());
    ZeroRange(dir + "/warm.blocks", kWarmHeaderPage + 3 * kWarmBlockBytes, kWarmBlockBytes);
    expect_corrupt_open(dir, "after a durable checkpoint");
  }
  // A move out of cold drops the cold copy (relaxed: without a sync). Every
  // warm block is zeroed in the crashed copy: none may be excused.
  for (bool sync : {false, true}) {
    std::string dir = tstest::TempDir(sync ? "store-zeroed-moved-sync" : "store-zeroed-moved");
    WriteOptions w;
    w.hot_capacity = 2;
    w.warm_capacity = 2;
    w.sync = sync;
    StoreHandle h;
    ASSERT_OK(OpenStore(dir, &h));
    ASSERT_OK(PutAll(h.store.get(), recs, w));
    MigrationReport rep;
    ASSERT_OK(h->Migrate(w, &rep));
    auto before = Snapshot(h.store.get());
    std::string moved;
    for (const auto& [id, tier] : before) {
      if (tier == Tier::kCold) {
        moved = id;
        break;
      }
    }
    ASSERT_TRUE(!moved.empty());
    bool found = false;
    ASSERT_OK(h->Move(moved, Tier::kWarm, w, &found));
    CHECK(found);
    std::string crashed = CrashCopy(dir, std::string(sync ? "store-zeroed-moved-sync" : "store-zeroed-moved") + "-crash");
    ZeroRange(crashed + "/warm.blocks", kWarmHeaderPage, WarmSlots(crashed) * kWarmBlockBytes);
    expect_corrupt_open(crashed, sync ? "after a sync move out of cold" : "after a relaxed move out of cold");
  }
}

TEST(TornLogTailDroppedAfterCrash) {
  std::string dir = tstest::TempDir("store-torn");
  std::string crashed;
  std::mt19937 rng(3);
  {
    StoreHandle h;
    ASSERT_OK(OpenStore(dir, &h));
    // Durable writes go by pwrite: the file ends at its entries, as in a
    // log whose end mark is off (relaxed writes: see the mapped log tests).
    WriteOptions durable;
    durable.sync = true;
    ASSERT_OK(PutAll(h.store.get(), {MakeRecord(1, &rng), MakeRecord(2, &rng)}, durable));
    // Simulate the crash: copy the files while the store is open (unclean).
    crashed = tstest::TempDir("store-torn-crash");
    std::filesystem::copy(dir, crashed, std::filesystem::copy_options::recursive);
  }
  std::filesystem::remove(crashed + "/LOCK");
  // A torn entry: half a record header at the end of the log.
  {
    File f;
    ASSERT_OK(File::Open(crashed + "/hot.log", O_WRONLY | O_APPEND, &f));
    const char junk[9] = {1, 2, 3, 4, 1, 0, 0, 0, 9};
    ASSERT_OK(f.Write(junk, sizeof junk));
  }
  StoreHandle h;
  ASSERT_OK(OpenStore(crashed, &h));
  CHECK_EQ(Total(h.store.get()), 2u);
  StoreStats st;
  ASSERT_OK(h->Stats(&st));
  CHECK_EQ(st.torn_log_bytes, 9u);
}

namespace {

uint64_t LogBytes(Store* s) {
  StoreStats st;
  return s->Stats(&st).ok() ? st.hot_log_bytes : 0;
}

uint64_t FileSize(const std::string& path) { return std::filesystem::file_size(path); }

// Puts recs one by one with relaxed writes (mapped appends), then copies the
// directory while the store is open: the files a SIGKILL leaves. Returns the
// copy; *logical receives the log's size by the store's count.
std::string MappedLogCrashCopy(const std::string& name, const std::vector<OwnedRecord>& recs, uint64_t* logical,
                               bool last_durable = false) {
  std::string dir = tstest::TempDir(name);
  StoreHandle h;
  if (!OpenStore(dir, &h).ok()) return "";
  for (size_t i = 0; i < recs.size(); ++i) {
    WriteOptions w;
    w.sync = last_durable && i + 1 == recs.size();
    if (!PutAll(h.store.get(), {recs[i]}, w).ok()) return "";
  }
  *logical = LogBytes(h.store.get());
  return CrashCopy(dir, name + "-crash");
}

}  // namespace

// A batch's entries are applied only once its commit follows: replay holds
// them (views into the log) until then. Records of every batch must come back
// byte for byte, and a batch cut off before its commit by a crash is a torn
// tail, its records gone and the ones before it intact.
TEST(BatchesReplayWholeAndABatchWithoutItsCommitIsATornTail) {
  std::mt19937 rng(41);
  std::vector<OwnedRecord> first = MakeRecords(5, &rng);
  first[2].content.clear();  // empty strings: nothing to copy, still a record
  first[2].metadata.clear();
  std::vector<OwnedRecord> single = {MakeRecord(50, &rng)};
  std::vector<OwnedRecord> last;
  for (int i = 60; i < 64; ++i) last.push_back(MakeRecord(i, &rng));
  std::string dir = tstest::TempDir("store-batches");
  std::string crashed;
  uint64_t before_last = 0, after_last = 0;
  {
    StoreHandle h;
    ASSERT_OK(OpenStore(dir, &h));
    WriteOptions durable;  // by pwrite: the file ends at its entries
    durable.sync = true;
    ASSERT_OK(PutAll(h.store.get(), first, durable));
    ASSERT_OK(PutAll(h.store.get(), single, durable));
    before_last = LogBytes(h.store.get());
    ASSERT_OK(PutAll(h.store.get(), last, durable));
    after_last = LogBytes(h.store.get());
    crashed = CrashCopy(dir, "store-batches-crash");
  }
  std::vector<OwnedRecord> all = first;
  all.insert(all.end(), single.begin(), single.end());
  all.insert(all.end(), last.begin(), last.end());
  {
    StoreHandle h;
    ASSERT_OK(OpenStore(dir, &h));
    CHECK_EQ(Total(h.store.get()), all.size());
    ExpectAllExact(h.store.get(), all);
  }
  // The commit entry (16-byte header, 8-byte count) is the last 24 bytes.
  constexpr uint64_t kCommitBytes = 24;
  std::filesystem::resize_file(crashed + "/hot.log", after_last - kCommitBytes);
  StoreHandle h;
  ASSERT_OK(OpenStore(crashed, &h));
  std::vector<OwnedRecord> kept = first;
  kept.insert(kept.end(), single.begin(), single.end());
  CHECK_EQ(Total(h.store.get()), kept.size());
  ExpectAllExact(h.store.get(), kept);
  for (const auto& r : last) {
    RecordBatch b;
    (void)h->Get(r.id, false, 0, &b);
    CHECK_EQ(b.size(), 0u);
  }
  StoreStats st;
  ASSERT_OK(h->Stats(&st));
  CHECK_EQ(st.torn_log_bytes, after_last - kCommitBytes - before_last);
}

TEST(MappedLogAfterCrashReplaysUpToItsEndMark) {
  std::mt19937 rng(31);
  std::vector<OwnedRecord> recs = MakeRecords(12, &rng);
  for (bool last_durable : {false, true}) {
    uint64_t logical = 0;
    std::string dir = MappedLogCrashCopy(last_durable ? "store-mapped-mixed" : "store-mapped", recs, &logical, last_durable);
    ASSERT_TRUE(!dir.empty());
    // The file runs on past the entries (extended and prefaulted ahead).
    CHECK(FileSize(dir + "/hot.log") > logical);
    // An append cut short right after the last acknowledged entry, and junk
    // at the end of the file: both past the end mark, so neither counts.
    {
      File f;
      ASSERT_OK(File::Open(dir + "/hot.log", O_RDWR, &f));
      const char junk[24] = {1, 2, 3, 4, 1, 0, 0, 0, 9, 9, 9, 9, 9, 9, 9, 9, 5, 5, 5, 5, 5, 5, 5, 5};
      ASSERT_OK(f.WriteAt(logical, junk, sizeof junk));
      ASSERT_OK(f.WriteAt(FileSize(dir + "/hot.log"), junk, sizeof junk));
    }
    {
      StoreHandle h;
      ASSERT_OK(OpenStore(dir, &h));
      CHECK_EQ(Total(h.store.get()), recs.size());
      ExpectAllExact(h.store.get(), recs);
      StoreStats st;
      ASSERT_OK(h->Stats(&st));
      CHECK_EQ(st.torn_log_bytes, 0u);
      // The open cut the file back to its entries.
      CHECK_EQ(FileSize(dir + "/hot.log"), logical);
      // Relaxed appends after recovery, then a clean close: the file ends at its entries.
      std::mt19937 rng2(32);
      ASSERT_OK(PutAll(h.store.get(), {MakeRecord(100, &rng2)}, WriteOptions{}));
    }
    StoreHandle h;
    ASSERT_OK(OpenStore(dir, &h));
    CHECK_EQ(Total(h.store.get()), recs.size() + 1);
    CHECK_EQ(FileSize(dir + "/hot.log"), LogBytes(h.store.get()));
  }
}

TEST(MappedLogCutBelowItsEndMarkIsATornTailAfterACrashOnly) {
  std::mt19937 rng(33);
  std::vector<OwnedRecord> recs = MakeRecords(6, &rng);
  uint64_t logical = 0;
  std::string dir = MappedLogCrashCopy("store-mapped-cut", recs, &logical);
  ASSERT_TRUE(!dir.empty());
  std::filesystem::resize_file(dir + "/hot.log", logical - 10);
  StoreHandle h;
  ASSERT_OK(OpenStore(dir, &h));
  CHECK_EQ(Total(h.store.get()), recs.size() - 1);  // the last put was cut
  StoreStats st;
  ASSERT_OK(h->Stats(&st));
  CHECK(st.torn_log_bytes > 0);
}

TEST(MappedLogDamagedEndMarkIsCorruption) {
  std::mt19937 rng(34);
  std::vector<OwnedRecord> recs = MakeRecords(4, &rng);
  uint64_t logical = 0;
  std::string dir = MappedLogCrashCopy("store-mapped-mark", recs, &logical);
  ASSERT_TRUE(!dir.empty());
  FlipByte(dir + "/hot.log", 32 + 2);  // the end mark's value
  StoreHandle h;
  Status s = OpenStore(dir, &h);
  CHECK(s.code() == StatusCode::kCorruption);
  CHECK(s.message().find("hot.log") != std::string::npos);
}

TEST(EndMarkOnAfterACleanCloseIsCorruption) {
  std::string dir = tstest::TempDir("store-mark-clean");
  std::mt19937 rng(37);
  uint64_t size = 0;
  {
    StoreHandle h;
    ASSERT_OK(OpenStore(dir, &h));
    ASSERT_OK(PutAll(h.store.get(), {MakeRecord(1, &rng), MakeRecord(2, &rng)}, WriteOptions{}));
  }
  size = FileSize(dir + "/hot.log");
  // Turn the mark on (valid check) in the cleanly closed log.
  uint8_t b[8];
  std::memcpy(b, &size, 8);
  const uint64_t word = (size & ((uint64_t{1} << 48) - 1)) | (uint64_t{Crc32c(b, 6) & 0xFFFFu} << 48);
  {
    File f;
    ASSERT_OK(File::Open(dir + "/hot.log", O_RDWR, &f));
    ASSERT_OK(f.WriteAt(32, &word, 8));
  }
  StoreHandle h;
  Status s = OpenStore(dir, &h);
  CHECK(s.code() == StatusCode::kCorruption);
  CHECK(s.message().find("hot.log") != std::string::npos);
}

// Log format version 2 was a pre-release format: a store holding one does
// not open, and the failed open leaves the file as it was.
TEST(VersionTwoLogIsUnsupported) {
  std::mt19937 rng(35);
  std::vector<OwnedRecord> recs = MakeRecords(5, &rng);
  std::string dir = tstest::TempDir("store-log-v2");
  {
    StoreHandle h;
    ASSERT_OK(OpenStore(dir, &h));
    WriteOptions durable;  // pwrite: the file ends at its entries
    durable.sync = true;
    ASSERT_OK(PutAll(h.store.get(), recs, durable));
  }
  std::string log;
  ASSERT_OK(ReadWholeFile(dir + "/hot.log", &log));
  std::string v2 = log;  // the header's version says 2; its checksum holds
  const uint32_t version = 2;
  std::memcpy(v2.data() + 8, &version, 4);
  const uint32_t crc = Crc32c(v2.data(), 24);
  std::memcpy(v2.data() + 24, &crc, 4);
  ASSERT_OK(AtomicWriteFile(dir + "/hot.log", v2));
  for (bool read_only : {false, true}) {
    StoreHandle h;
    Status s = OpenStore(dir, &h, 0, read_only);
    CHECK(s.code() == StatusCode::kCorruption);
    CHECK(s.message().find("hot.log") != std::string::npos);
    CHECK(s.message().find("unsupported format version 2") != std::string::npos);
  }
  std::string after;
  ASSERT_OK(ReadWholeFile(dir + "/hot.log", &after));
  CHECK(after == v2);
}

TEST(FileMissingAfterCleanCloseIsCorruption) {
  std::string dir = tstest::TempDir("store-missing");
  std::mt19937 rng(11);
  std::vector<OwnedRecord> recs = MakeRecords(30, &rng);
  WriteOptions w;
  w.hot_capacity = 5;
  w.warm_capacity = 5;
  {
    StoreHandle h;
    ASSERT_OK(OpenStore(dir, &h));
    ASSERT_OK(PutAll(h.store.get(), recs, w));
    MigrationReport rep;
    ASSERT_OK(h->Migrate(w, &rep));
  }
  for (const char* victim : {"warm.blocks", "cold-", "hot.log", "MANIFEST"}) {
    std::string copy = tstest::TempDir(std::string("store-missing-") + victim);
    std::filesystem::copy(dir, copy, std::filesystem::copy_options::recursive);
    std::string removed;
    for (auto& e : std::filesystem::directory_iterator(copy)) {
      std::string name = e.path().filename().string();
      // A cold segment, not its filter file (derived data, which may go missing).
      if (name.rfind(victim, 0) == 0 && e.path().extension() != ".filter" && removed.empty()) {
        removed = name;
        std::filesystem::remove(e.path());
      }
    }
    ASSERT_TRUE(!removed.empty());
    StoreHandle h;
    Status s = OpenStore(copy, &h);
    CHECK(s.code() == StatusCode::kCorruption);
    CHECK(s.message().find(removed) != std::string::npos);
  }
}

TEST(TruncatedLogOfCleanStoreIsCorruption) {
  std::string dir = tstest::TempDir("store-trunc");
  std::mt19937 rng(4);
  {
    StoreHandle h;
    ASSERT_OK(OpenStore(dir, &h));
    ASSERT_OK(PutAll(h.store.get(), {MakeRecord(1, &rng), MakeRecord(2, &rng)}, WriteOptions{}));
  }
  uint64_t size = std::filesystem::file_size(dir + "/hot.log");
  std::filesystem::resize_file(dir + "/hot.log", size - 10);
  StoreHandle h;
  Status s = OpenStore(dir, &h);
  CHECK(s.code() == StatusCode::kCorruption);
  CHECK(s.message().find("hot.log") != std::string::npos);
}

TEST(FlippedLogByteIsCorruption) {
  std::string dir = tstest::TempDir("store-flip");
  std::mt19937 rng(5);
  {
    StoreHandle h;
    ASSERT_OK(OpenStore(dir, &h));
    ASSERT_OK(PutAll(h.store.get(), {MakeRecord(1, &rng), MakeRecord(2, &rng)}, WriteOptions{}));
  }
  {
    File f;
    ASSERT_OK(File::Open(dir + "/hot.log", O_RDWR, &f));
    char c;
    ASSERT_OK(f.ReadAt(60, &c, 1));
    c ^= 0x10;
    ASSERT_OK(f.WriteAt(60, &c, 1));
  }
  StoreHandle h;
  Status s = OpenStore(dir, &h);
  CHECK(s.code() == StatusCode::kCorruption);
  CHECK(s.message().find("hot.log") != std::string::npos);
}

TEST(IteratorExactlyOnceWhileEveryPutDemotes) {
  std::string dir = tstest::TempDir("store-churn");
  std::mt19937 rng(6);
  StoreHandle h;
  ASSERT_OK(OpenStore(dir, &h));
  WriteOptions w;
  w.hot_capacity = 1000000;
  w.warm_capacity = 1000000;
  std::vector<OwnedRecord> originals = MakeRecords(3000, &rng);
  ASSERT_OK(PutAll(h.store.get(), originals, w));
  // Spread the originals over all tiers first.
  w.hot_capacity = 1000;
  w.warm_capacity = 1000;
  MigrationReport rep;
  ASSERT_OK(h->Migrate(w, &rep));
  // Tiny capacities: every put below demotes.
  w.hot_capacity = 5;
  w.warm_capacity = 20;
  std::unique_ptr<StoreIterator> it;
  ASSERT_OK(h->NewIterator(TierSelector::kAll, &it));
  std::map<std::string, int> seen;
  RecordBatch b;
  int next = 100000;
  while (true) {
    ASSERT_OK(it->Next(7, false, &b));
    if (b.size() == 0) break;
    for (size_t i = 0; i < b.size(); ++i) {
      seen[std::string(b.Id(i))]++;
      OwnedRecord extra = MakeRecord(next++, &rng);
      extra.activation = static_cast<float>(rng() % 100) / 100.0f;
      ASSERT_OK(PutAll(h.store.get(), {extra}, w));
    }
    // Also move some records around explicitly.
    if (next % 50 < 7) {
      bool found = false;
      ASSERT_OK(h->Move(originals[static_cast<size_t>(next) % originals.size()].id, Tier::kHot, w, &found));
    }
  }
  int missing = 0, duplicated = 0;
  for (const auto& r : originals) {
    auto f = seen.find(r.id);
    if (f == seen.end()) ++missing;
    else if (f->second != 1) ++duplicated;
  }
  CHECK_EQ(missing, 0);
  CHECK_EQ(duplicated, 0);
  CHECK_EQ(Total(h.store.get()), 3000u + static_cast<uint64_t>(next - 100000));
}

// A single-tier iterator and records moved out of its tier and back (out of
// hot and back in, a record could come twice). Records
// the scan already yielded are never yielded again; a record moved out and
// back before the scan reached it is yielded at most once.
TEST(SingleTierIteratorYieldsARecordMovedOutAndBackOnce) {
  std::mt19937 rng(21);
  for (Tier tier : {Tier::kHot, Tier::kWarm, Tier::kCold}) {
    std::string dir = tstest::TempDir(std::string("store-iter-out-back-") + TierName(tier));
    StoreHandle h;
    ASSERT_OK(OpenStore(dir, &h));
    WriteOptions w;
    w.hot_capacity = 1000000;
    w.warm_capacity = 1000000;
    std::vector<OwnedRecord> recs = MakeRecords(200, &rng);
    ASSERT_OK(PutAll(h.store.get(), recs, w));
    bool found = false;
    for (const auto& r : recs) ASSERT_OK(h->Move(r.id, tier, w, &found));
    const Tier elsewhere = tier == Tier::kHot ? Tier::kCold : Tier::kHot;
    std::unique_ptr<StoreIterator> it;
    ASSERT_OK(h->NewIterator(static_cast<TierSelector>(static_cast<int>(tier)), &it));
    std::map<std::string, int> seen;
    std::set<std::string> moved_before_seen;
    RecordBatch b;
    size_t ahead = 0, yielded = 0;
    // Bounded: re-yielded records would each be moved ahead again, forever.
    while (yielded < 3 * recs.size()) {
      ASSERT_OK(it->Next(1 + rng() % 5, false, &b));
      if (b.size() == 0) break;
      yielded += b.size();
      for (size_t i = 0; i < b.size(); ++i) {
        std::string id(b.Id(i));
        seen[id]++;
        // Out of the tier and straight back, and once more through the third tier.
        ASSERT_OK(h->Move(id, elsewhere, w, &found));
        ASSERT_OK(h->Move(id, tier, w, &found));
        const Tier third = tier == Tier::kWarm ? Tier::kCold : Tier::kWarm;
        ASSERT_OK(h->Move(id, third, w, &found));
        ASSERT_OK(h->Move(id, tier, w, &found));
      }
      // And one record the scan has not reached yet, if any.
      for (; ahead < recs.size(); ++ahead) {
        if (seen.count(recs[ahead].id)) continue;
        moved_before_seen.insert(recs[ahead].id);
        ASSERT_OK(h->Move(recs[ahead].id, elsewhere, w, &found));
        ASSERT_OK(h->Move(recs[ahead].id, tier, w, &found));
        ++ahead;
        break;
      }
    }
    int missing = 0, duplicated = 0;
    for (const auto& r : recs) {
      auto f = seen.find(r.id);
      if (f == seen.end()) {
        if (!moved_before_seen.count(r.id)) ++missing;
      } else if (f->second != 1) {
        ++duplicated;
      }
    }
    CHECK_EQ(missing, 0);
    CHECK_EQ(duplicated, 0);
  }
}

TEST(ListCursorAndOffsetPageEverything) {
  std::string dir = tstest::TempDir("store-list");
  std::mt19937 rng(7);
  StoreHandle h;
  ASSERT_OK(OpenStore(dir, &h));
  std::vector<OwnedRecord> recs = MakeRecords(500, &rng);
  ASSERT_OK(PutAndSpread(h.store.get(), recs, 100, 150));
  for (TierSelector sel : {TierSelector::kHot, TierSelector::kWarm, TierSelector::kCold, TierSelector::kAll}) {
    std::set<std::string> by_cursor, by_offset;
    ListRequest req;
    req.tier = sel;
    req.limit = 33;
    size_t pages = 0;
    while (true) {
      ListResult res;
      ASSERT_OK(h->List(req, &res));
      for (size_t i = 0; i < res.records.size(); ++i) CHECK(by_cursor.insert(std::string(res.records.Id(i))).second);
      if (res.next_cursor.empty()) break;
      req.cursor = res.next_cursor;
      ASSERT_TRUE(++pages < 100);
    }
    ListRequest off;
    off.tier = sel;
    off.limit = 33;
    while (true) {
      ListResult res;
      ASSERT_OK(h->List(off, &res));
      if (res.records.size() == 0) break;
      for (size_t i = 0; i < res.records.size(); ++i) CHECK(by_offset.insert(std::string(res.records.Id(i))).second);
      off.offset += res.records.size();
    }
    TierCounts c;
    ASSERT_OK(h->Counts(&c));
    uint64_t want = sel == TierSelector::kHot ? c.hot : sel == TierSelector::kWarm ? c.warm
                  : sel == TierSelector::kCold ? c.cold : c.total();
    CHECK_EQ(by_cursor.size(), want);
    CHECK(by_cursor == by_offset);
  }
  // A cursor from another tier is refused.
  ListRequest hot;
  hot.tier = TierSelector::kHot;
  hot.limit = 10;
  ListResult first;
  ASSERT_OK(h->List(hot, &first));
  ASSERT_TRUE(!first.next_cursor.empty());
  ListRequest wrong;
  wrong.tier = TierSelector::kCold;
  wrong.cursor = first.next_cursor;
  ListResult res;
  CHECK(h->List(wrong, &res).code() == StatusCode::kInvalidArgument);
}

namespace {

// The cosine of q and x by a plain sequential scan in double, as a user's
// brute force computes it: the reference recall is compared with.
double ReferenceCosine(const std::vector<float>& q, const std::vector<float>& x) {
  double dot = 0, qq = 0, nn = 0;
  for (size_t j = 0; j < q.size(); ++j) {
    dot += double{q[j]} * x[j];
    qq += double{q[j]} * q[j];
    nn += double{x[j]} * x[j];
  }
  return dot / std::sqrt(qq * nn);
}

// Recall over all three tiers equals a brute-force scan.
void CheckRecallMatchesBruteForce() {
  std::string dir = tstest::TempDir("store-recall");
  std::mt19937 rng(8);
  constexpr uint32_t dims = 37;  // not a multiple of 8 or 16: exercises kernel tails
  StoreHandle h;
  ASSERT_OK(OpenStore(dir, &h, dims));
  std::vector<OwnedRecord> recs;
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  for (int i = 0; i < 6000; ++i) {
    OwnedRecord r = MakeRecord(i, &rng);
    r.embedding.resize(dims);
    for (float& x : r.embedding) x = u(rng);
    r.confidence = static_cast<float>(i % 10) / 10.0f;
    recs.push_back(std::move(r));
  }
  ASSERT_OK(PutAndSpread(h.store.get(), recs, 1500, 2000));
  for (int q = 0; q < 10; ++q) {
    std::vector<float> query(dims);
    for (float& x : query) x = u(rng);
    std::vector<std::pair<double, std::string>> ref;
    for (const auto& r : recs) {
      if (q % 2 == 1 && r.confidence < 0.5f) continue;
      ref.push_back({-ReferenceCosine(query, r.embedding), r.id});
    }
    std::sort(ref.begin(), ref.end());
    RecallOptions ro;
    ro.k = 25;
    ro.threads = q % 3 == 0 ? 2 : q % 3 == 1 ? 1 : 3;  // 6000 rows: several slices per thread
    if (q % 2 == 1) {
      ro.has_min_confidence = true;
      ro.min_confidence = 0.5f;
    }
    RecallResult res;
    ASSERT_OK(h->Recall(query.data(), ro, &res));
    ASSERT_TRUE(res.records.size() == 25);
    for (size_t i = 0; i < 25; ++i) {
      CHECK(res.records.Id(i) == ref[i].second);
      CHECK(std::fabs(res.scores[i] + ref[i].first) < 1e-5);
    }
  }
}

uint32_t WarmBlocksVersion(const std::string& dir) {
  std::string bytes;
  if (!ReadWholeFile(dir + "/warm.blocks", &bytes).ok() || bytes.size() < 12) return 0;
  uint32_t v;
  std::memcpy(&v, bytes.data() + 8, 4);
  return v;
}

}  // namespace

TEST(RecallMatchesBruteForce) { CheckRecallMatchesBruteForce(); }

// Rows whose cosines with the query differ by less than float32 can tell
// apart (perturbations of the query; exact copies too) rank as a scan in
// double ranks them, ties by id, with one or several threads, among many
// rows far below them that the scan keeps and prunes; the query's own copy
// scores exactly 1.
TEST(RecallRanksNearTiesByTheirExactScores) {
  std::string dir = tstest::TempDir("store-recall-near");
  std::mt19937 rng(21);
  constexpr uint32_t dims = 37;
  StoreHandle h;
  ASSERT_OK(OpenStore(dir, &h, dims));
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> base(dims);
  for (float& x : base) x = u(rng);
  std::vector<OwnedRecord> recs;
  for (int i = 0; i < 3300; ++i) {
    OwnedRecord r = MakeRecord(i, &rng);
    r.embedding.resize(dims);
    if (i < 300) {
      r.embedding = base;
      // Every tenth an exact copy (ties broken by id); the rest moved by
      // 1e-4 .. 1e-2 along one axis (cosines 1e-10 .. 1e-5 below 1).
      if (i % 10 != 0) r.embedding[static_cast<size_t>(i) % dims] += std::pow(10.0f, -4.0f + 2.0f * static_cast<float>(i) / 300.0f);
    } else {
      for (float& x : r.embedding) x = u(rng);
    }
    recs.push_back(std::move(r));
  }
  std::shuffle(recs.begin(), recs.end(), rng);  // the near rows land in every tier
  ASSERT_OK(PutAndSpread(h.store.get(), recs, 1000, 1000));
  std::vector<std::pair<double, std::string>> ref;
  for (const auto& r : recs) ref.push_back({-ReferenceCosine(base, r.embedding), r.id});
  std::sort(ref.begin(), ref.end());
  for (unsigned threads : {1u, 2u, 3u}) {
    RecallOptions ro;
    ro.k = 200;
    ro.threads = threads;
    RecallResult res;
    ASSERT_OK(h->Recall(base.data(), ro, &res));
    ASSERT_TRUE(res.records.size() == 200);
    CHECK(res.scores[0] == 1.0);
    for (size_t i = 0; i < 200; ++i) {
      CHECK(res.records.Id(i) == ref[i].second);
      CHECK(std::fabs(res.scores[i] + ref[i].first) < 1e-12);
    }
  }
}

// Warm block format version 2 was a pre-release format: a store holding
// one does not open.
TEST(WarmFormatTwoStoreIsUnsupported) {
  std::string dir = tstest::TempDir("store-warm-v2");
  std::mt19937 rng(31);
  std::vector<OwnedRecord> recs = MakeRecords(20, &rng);
  WriteOptions w;
  w.hot_capacity = 5;
  w.warm_capacity = 100;
  ASSERT_OK(PutMigrateClose(dir, recs, w));
  CHECK_EQ(WarmBlocksVersion(dir), 3u);
  std::string blocks;
  ASSERT_OK(ReadWholeFile(dir + "/warm.blocks", &blocks));
  const uint32_t version = 2;
  std::memcpy(blocks.data() + 8, &version, 4);
  const uint32_t crc = Crc32c(blocks.data(), 28);
  std::memcpy(blocks.data() + 28, &crc, 4);
  ASSERT_OK(AtomicWriteFile(dir + "/warm.blocks", blocks));
  StoreHandle h;
  Status s = OpenStore(dir, &h);
  CHECK(s.code() == StatusCode::kCorruption);
  CHECK(s.message().find("warm.blocks: unsupported format version 2") != std::string::npos);
}

TEST(ReadOnlyRefusesWritesAndOtherDimensions) {
  std::string dir = tstest::TempDir("store-ro");
  std::mt19937 rng(9);
  {
    StoreHandle h;
    ASSERT_OK(OpenStore(dir, &h));
    ASSERT_OK(PutAll(h.store.get(), {MakeRecord(1, &rng)}, WriteOptions{}));
  }
  StoreHandle ro;
  ASSERT_OK(OpenStore(dir, &ro, 0, true));
  CHECK(PutAll(ro.store.get(), {MakeRecord(2, &rng)}, WriteOptions{}).code() == StatusCode::kReadOnly);
  CHECK_EQ(Total(ro.store.get()), 1u);
  // Wrong dimensions on reopen.
  StoreHandle wrong;
  CHECK(OpenStore(dir, &wrong, kDims + 1, true).code() == StatusCode::kDimensionMismatch);
}

namespace {

// Whether some open file description holds the store's lock file locked
// (flock locks belong to the open file, so this process's own count).
bool LockHeld(const std::string& dir, bool exclusive_probe) {
  int fd = ::open((dir + "/LOCK").c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) return false;
  const bool held = ::flock(fd, (exclusive_probe ? LOCK_EX : LOCK_SH) | LOCK_NB) != 0;
  ::close(fd);
  return held;
}

}  // namespace

TEST(WritableOpenAfterReadOnlyInTheSameProcessSharesTheStore) {
  std::mt19937 rng(91);
  std::vector<OwnedRecord> recs = MakeRecords(30, &rng);
  WriteOptions w;
  w.hot_capacity = 10;
  w.warm_capacity = 10;
  // Left as after a crash (no clean close), with copies in every tier: the
  // read-only open recovers in memory, the writable one on disk.
  std::string dir = tstest::TempDir("store-upgrade");
  ASSERT_OK(PutMigrateClose(dir, recs, w));
  std::string crashed = WarmCopiesStillInLog("store-upgrade-crash", recs, false);
  ASSERT_TRUE(!crashed.empty());
  for (const std::string& d : {dir, crashed}) {
    StoreHandle ro;
    ASSERT_OK(OpenStore(d, &ro, 0, true));
    CHECK(ro->read_only());
    const auto before = Snapshot(ro.store.get());
    CHECK_EQ(before.size(), recs.size());

    // Refused, changing nothing, while a read-only iteration is under way.
    {
      std::unique_ptr<StoreIterator> it;
      ASSERT_OK(ro->NewIterator(TierSelector::kAll, &it));
      RecordBatch b;
      ASSERT_OK(it->Next(5, false, &b));
      StoreHandle rw;
      Status s = OpenStore(d, &rw);
      CHECK(s.code() == StatusCode::kStoreLocked);
      CHECK(s.message().find("iterat") != std::string::npos);
      CHECK(ro->read_only());
      size_t seen = b.size();
      while (it->Next(7, false, &b).ok() && b.size() > 0) seen += b.size();
      CHECK_EQ(seen, recs.size());  // the iteration went on undisturbed
    }
    // Refused while another open file (as another process would) holds a
    // shared lock; the read-only store keeps its own shared lock.
    {
      int other = ::open((d + "/LOCK").c_str(), O_RDWR | O_CLOEXEC);
      CHECK(other >= 0);
      CHECK(::flock(other, LOCK_SH | LOCK_NB) == 0);
      StoreHandle rw;
      CHECK(OpenStore(d, &rw).code() == StatusCode::kStoreLocked);
      ::close(other);
      CHECK(ro->read_only());
      CHECK(LockHeld(d, /*exclusive_probe=*/true));    // ours, shared
      CHECK(!LockHeld(d, /*exclusive_probe=*/false));  // not exclusive
      CHECK_EQ(Total(ro.store.get()), recs.size());
    }
    // Shared: the writable open upgrades the read-only store in place.
    StoreHandle rw;
    ASSERT_OK(OpenStore(d, &rw));
    CHECK(rw.store.get() == ro.store.get());
    CHECK(!ro->read_only());
    CHECK(LockHeld(d, /*exclusive_probe=*/false));  // now exclusive
    CHECK(Snapshot(ro.store.get()) == before);
    ExpectAllExact(ro.store.get(), recs);
    OwnedRecord added = MakeRecord(100, &rng);
    ASSERT_OK(PutAll(rw.store.get(), {added}, w));
    RecordBatch got;
    ASSERT_OK(ro->Get(added.id, false, 0, &got));
    CHECK_EQ(got.size(), 1u);
    // A dimension mismatch is still refused.
    StoreHandle wrong;
    CHECK(OpenStore(d, &wrong, kDims + 1).code() == StatusCode::kDimensionMismatch);
  }
  // Closed cleanly by the last handle: everything, the added record too.
  for (const std::string& d : {dir, crashed}) {
    StoreHandle h;
    ASSERT_OK(OpenStore(d, &h));
    StoreStats st;
    ASSERT_OK(h->Stats(&st));
    CHECK_EQ(st.torn_warm_copies, 0u);
    CHECK_EQ(Total(h.store.get()), recs.size() + 1);
    ExpectAllExact(h.store.get(), recs);
  }
}

TEST(LastWritableReleaseTurnsTheLockSharedAndTheStoreReadOnly) {
  std::mt19937 rng(93);
  std::vector<OwnedRecord> recs = MakeRecords(30, &rng);
  WriteOptions w;
  w.hot_capacity = 10;
  w.warm_capacity = 10;
  std::string dir = tstest::TempDir("store-downgrade");
  StoreHandle rw, ro;
  ASSERT_OK(OpenStore(dir, &rw));
  ASSERT_OK(PutAll(rw.store.get(), recs, w));
  MigrationReport rep;
  ASSERT_OK(rw->Migrate(w, &rep));
  ASSERT_OK(OpenStore(dir, &ro, 0, true));
  CHECK(rw.store.get() == ro.store.get());
  const auto before = Snapshot(ro.store.get());
  CHECK(LockHeld(dir, /*exclusive_probe=*/false));  // exclusive

  // While a read-only iteration is under way the store stays writable.
  {
    StoreHandle rw2;
    ASSERT_OK(OpenStore(dir, &rw2));
    std::unique_ptr<StoreIterator> it;
    ASSERT_OK(ro->NewIterator(TierSelector::kAll, &it));
    RecordBatch b;
    ASSERT_OK(it->Next(4, false, &b));
    rw2.Close();
    rw.Close();
    CHECK(!ro->read_only());
    CHECK(LockHeld(dir, /*exclusive_probe=*/false));
    size_t seen = b.size();
    while (it->Next(7, false, &b).ok() && b.size() > 0) seen += b.size();
    CHECK_EQ(seen, recs.size());
  }
  // A writable open and its release, nothing iterating: read-only again,
  // the lock shared, so another process's reader gets in.
  StoreHandle again;
  ASSERT_OK(OpenStore(dir, &again));
  OwnedRecord added = MakeRecord(50, &rng);
  ASSERT_OK(PutAll(again.store.get(), {added}, w));
  again.Close();
  CHECK(ro->read_only());
  CHECK(!LockHeld(dir, /*exclusive_probe=*/false));  // not exclusive
  CHECK(LockHeld(dir, /*exclusive_probe=*/true));    // ours, shared
  int other = ::open((dir + "/LOCK").c_str(), O_RDWR | O_CLOEXEC);
  CHECK(other >= 0);
  CHECK(::flock(other, LOCK_SH | LOCK_NB) == 0);
  ::close(other);
  CHECK(PutAll(ro.store.get(), {MakeRecord(51, &rng)}, w).code() == StatusCode::kReadOnly);
  auto after = Snapshot(ro.store.get());
  CHECK_EQ(after.size(), before.size() + 1);
  ExpectAllExact(ro.store.get(), recs);
  ExpectAllExact(ro.store.get(), {added});
  // The writable state was closed cleanly: the manifest says so.
  Manifest m;
  ASSERT_OK(Manifest::Read(dir, &m));
  CHECK(m.clean);
  // And writable again on demand.
  StoreHandle third;
  ASSERT_OK(OpenStore(dir, &third));
  CHECK(!ro->read_only());
  ASSERT_OK(PutAll(third.store.get(), {MakeRecord(52, &rng)}, w));
  third.Close();
  ro.Close();
  StoreHandle last;
  ASSERT_OK(OpenStore(dir, &last));
  CHECK_EQ(Total(last.store.get()), recs.size() + 2);
}

// The upgrade swaps the store's state under reader threads (run under TSan
// by the tsan suite): readers get, recall and iterate throughout; an
// iteration in progress makes the upgrade STORE_LOCKED, so the writer
// retries; every read sees a whole record, before and after.
// Threads opening and closing one path at once: an open that came while the
// last handle was closing found the file lock still held by this process and
// was STORE_LOCKED ("open in another process"). It waits for that close now.
TEST(ThreadsOpeningAndClosingOnePathNeverFindItLocked) {
  std::mt19937 rng(96);
  std::vector<OwnedRecord> recs = MakeRecords(10, &rng);
  std::string dir = tstest::TempDir("store-open-close-race");
  ASSERT_OK(PutMigrateClose(dir, recs, WriteOptions{}));
  for (bool mixed : {false, true}) {
    std::atomic<int> failures{0};
    std::string first;
    std::mutex first_mu;
    std::vector<std::thread> threads;
    for (int t = 0; t < 3; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < 150; ++i) {
          StoreHandle h;
          Status s = OpenStore(dir, &h, 0, mixed && t == 0);
          RecordBatch got;
          if (s.ok()) s = h->Get(recs[static_cast<size_t>(i) % recs.size()].id, false, 0, &got);
          if (s.ok() && got.size() != 1) s = Status::Corruption("a record went missing");
          if (!s.ok()) {
            ++failures;
            std::lock_guard<std::mutex> g(first_mu);
            if (first.empty()) first = s.ToString();
          }
        }
      });
    }
    for (auto& th : threads) th.join();
    if (failures != 0) std::fprintf(stderr, "first failure: %s\n", first.c_str());
    CHECK_EQ(failures.load(), 0);
  }
  StoreHandle h;
  ASSERT_OK(OpenStore(dir, &h));
  ExpectAllExact(h.store.get(), recs);
}

TEST(UpgradeToWritableWhileReaderThreadsRun) {
  std::mt19937 rng(92);
  std::vector<OwnedRecord> recs = MakeRecords(60, &rng);
  WriteOptions w;
  w.hot_capacity = 20;
  w.warm_capacity = 20;
  std::string dir = tstest::TempDir("store-upgrade-threads");
  ASSERT_OK(PutMigrateClose(dir, recs, w));
  StoreHandle ro;
  ASSERT_OK(OpenStore(dir, &ro, 0, true));
  std::atomic<bool> stop{false};
  std::atomic<int> bad{0}, reads{0}, iterations{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 2; ++t) {
    readers.emplace_back([&, t] {
      std::mt19937 r(static_cast<unsigned>(t));
      while (!stop.load()) {
        const OwnedRecord& rec = recs[r() % recs.size()];
        RecordBatch b;
        if (!ro->Get(rec.id, true, 0, &b).ok() || b.size() != 1 || b.Content(0) != rec.content ||
            std::memcmp(b.embeddings.data(), rec.embedding.data(), kDims * 4) != 0) {
          bad.fetch_add(1);
        }
        RecallOptions o;
        o.k = 3;
        RecallResult res;
        if (!ro->Recall(rec.embedding.data(), o, &res).ok() || res.records.size() != 3 || res.records.Id(0) != rec.id) {
          bad.fetch_add(1);
        }
        if (t == 0 && r() % 8 == 0) {
          std::unique_ptr<StoreIterator> it;
          size_t n = 0;
          RecordBatch ib;
          if (ro->NewIterator(TierSelector::kAll, &it).ok()) {
            while (it->Next(16, false, &ib).ok() && ib.size() > 0) n += ib.size();
          }
          if (n < recs.size()) bad.fetch_add(1);
          iterations.fetch_add(1);
        }
        reads.fetch_add(1);
      }
    });
  }
  while (reads.load() < 50 || iterations.load() < 1) std::this_thread::yield();
  // A writable open, retried while a reader's iteration makes it STORE_LOCKED.
  auto open_writable = [&](StoreHandle* h) {
    Status st;
    for (int attempt = 0; attempt < 20000; ++attempt) {
      st = OpenStore(dir, h);
      if (st.code() != StatusCode::kStoreLocked) break;
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    return st;
  };
  StoreHandle rw;
  ASSERT_OK(open_writable(&rw));
  CHECK(!ro->read_only());
  std::vector<OwnedRecord> more;
  for (int i = 100; i < 120; ++i) more.push_back(MakeRecord(i, &rng));
  ASSERT_OK(PutAll(rw.store.get(), more, w));
  const int after = reads.load(), iterated = iterations.load();
  while (reads.load() < after + 50 || iterations.load() < iterated + 1) std::this_thread::yield();
  // Releases and reopens for writing under the readers: each release turns
  // the store read-only unless an iteration is under way at that moment.
  rw.Close();
  for (int round = 0; round < 10; ++round) {
    const int seen = reads.load();
    while (reads.load() < seen + 10) std::this_thread::yield();
    StoreHandle again;
    ASSERT_OK(open_writable(&again));
    again.Close();
  }
  stop.store(true);
  for (auto& th : readers) th.join();
  CHECK_EQ(bad.load(), 0);
  CHECK(iterations.load() > 0);
  CHECK_EQ(Total(ro.store.get()), recs.size() + more.size());
  {
    // With no reader iterating, the last writable release always goes through.
    StoreHandle last;
    ASSERT_OK(OpenStore(dir, &last));
    last.Close();
    CHECK(ro->read_only());
  }
  ExpectAllExact(ro.store.get(), more);
}

TEST(DeleteAndRePutInEveryTierSurviveReopen) {
  std::string dir = tstest::TempDir("store-del");
  std::mt19937 rng(10);
  std::vector<OwnedRecord> recs = MakeRecords(60, &rng);
  WriteOptions w;
  w.hot_capacity = 20;
  w.warm_capacity = 20;
  {
    StoreHandle h;
    ASSERT_OK(OpenStore(dir, &h));
    ASSERT_OK(PutAll(h.store.get(), recs, w));
    MigrationReport rep;
    ASSERT_OK(h->Migrate(w, &rep));
    auto snap = Snapshot(h.store.get());
    int deleted = 0;
    for (auto& [id, tier] : snap) {
      int i = std::stoi(id.substr(3));
      bool existed = false;
      if (i % 3 == 0) {
        ASSERT_OK(h->Delete(id, w, &existed));
        CHECK(existed);
        ++deleted;
      } else if (i % 3 == 1) {
        OwnedRecord again = recs[static_cast<size_t>(i)];
        again.content = "new " + again.content;
        ASSERT_OK(PutAll(h.store.get(), {again}, WriteOptions{1000, 1000, false, false}));
      }
    }
    CHECK_EQ(Total(h.store.get()), 60u - static_cast<uint64_t>(deleted));
  }
  StoreHandle h;
  ASSERT_OK(OpenStore(dir, &h));
  CHECK_EQ(Total(h.store.get()), 40u);
  for (int i = 0; i < 60; ++i) {
    RecordBatch b;
    ASSERT_OK(h->Get(recs[static_cast<size_t>(i)].id, false, 1.0, &b));
    if (i % 3 == 0) {
      CHECK_EQ(b.size(), 0u);
    } else {
      ASSERT_TRUE(b.size() == 1);
      CHECK((b.Content(0).substr(0, 4) == "new ") == (i % 3 == 1));
    }
  }
}

// Upserts and deletes of warm records free their blocks lazily
// (WarmTier::FreeLater): the stale blocks still read live on disk until a
// migration batch, a checkpoint, a sync or a compaction stores them free.
// Scans, iteration, recall and counts never see them; a crash finds them and
// recovery drops them (the log's newer version or tombstone outranks them);
// and a relaxed log checkpoint, which drops the tombstones, stores them free
// first, so no deleted record comes back after a later crash.
TEST(WarmUpsertsAndDeletesSurviveCrashesBeforeAndAfterALogCheckpoint) {
  std::string dir = tstest::TempDir("store-free-later");
  std::mt19937 rng(21);
  std::vector<OwnedRecord> recs = MakeRecords(60, &rng);
  WriteOptions w;
  w.hot_capacity = 20;
  WriteOptions roomy{1000, 1000, false, false};  // no migration: the frees stay pending
  StoreHandle h;
  ASSERT_OK(OpenStore(dir, &h));
  ASSERT_OK(PutAll(h.store.get(), recs, w));
  MigrationReport rep;
  ASSERT_OK(h->Migrate(w, &rep));
  std::map<std::string, std::string> expected;  // live id -> content
  for (const auto& r : recs) expected[r.id] = r.content;
  int changed = 0;
  for (const auto& [id, tier] : Snapshot(h.store.get())) {
    if (tier != Tier::kWarm) continue;
    const int i = std::stoi(id.substr(3));
    if (i % 3 == 0) {
      bool existed = false;
      ASSERT_OK(h->Delete(id, roomy, &existed));
      CHECK(existed);
      expected.erase(id);
      ++changed;
    } else if (i % 3 == 1) {
      OwnedRecord again = recs[static_cast<size_t>(i)];
      again.content = "new " + again.content;
      ASSERT_OK(PutAll(h.store.get(), {again}, roomy));
      expected[id] = again.content;
      ++changed;
    }
  }
  CHECK(changed >= 20);

  auto check = [&](Store* s, const std::string& when) {
    CHECK_EQ(Total(s), expected.size());
    auto seen = Snapshot(s);  // an iteration: every id once
    CHECK_EQ(seen.size(), expected.size());
    for (const auto& r : recs) {
      RecordBatch b;
      CHECK_OK(s->Get(r.id, false, 1.0, &b));
      auto e = expected.find(r.id);
      if (e == expected.end()) {
        if (b.size() != 0) tstest::Fail(__FILE__, __LINE__, when + ": deleted " + r.id + " is back");
      } else if (b.size() != 1 || b.Content(0) != e->second) {
        tstest::Fail(__FILE__, __LINE__, when + ": " + r.id + " is not its latest version");
      }
    }
    RecallOptions ro;
    ro.k = 1000;
    RecallResult res;
    CHECK_OK(s->Recall(recs[1].embedding.data(), ro, &res));
    CHECK_EQ(res.records.size(), expected.size());
    std::set<std::string> ids;
    for (size_t i = 0; i < res.records.size(); ++i) {
      ids.insert(std::string(res.records.Id(i)));
      auto e = expected.find(std::string(res.records.Id(i)));
      if (e == expected.end() || e->second != res.records.Content(i)) {
        tstest::Fail(__FILE__, __LINE__, when + ": recall returned a stale or deleted " + std::string(res.records.Id(i)));
      }
    }
    CHECK_EQ(ids.size(), expected.size());
  };
  check(h.store.get(), "open");
  {
    StoreHandle c;
    ASSERT_OK(OpenStore(CrashCopy(dir, "store-free-later-crash"), &c));
    check(c.store.get(), "after a crash");
    StoreStats st;
    ASSERT_OK(c->Stats(&st));
    CHECK(st.recovered_duplicates > 0);  // the stale blocks were there, and went
  }
  // Grow the log with a large hot record until a relaxed checkpoint rewrites it.
  OwnedRecord filler = recs[0];
  filler.id = "filler";
  filler.content.assign(8u << 20, 'f');
  bool checkpointed = false;
  uint64_t last = 0;
  for (int k = 0; k < 16 && !checkpointed; ++k) {
    ASSERT_OK(PutAll(h.store.get(), {filler}, roomy));
    StoreStats st;
    ASSERT_OK(h->Stats(&st));
    checkpointed = st.hot_log_bytes < last;
    last = st.hot_log_bytes;
  }
  CHECK(checkpointed);
  expected["filler"] = filler.content;
  recs.push_back(filler);
  check(h.store.get(), "after the checkpoint");
  StoreHandle c;
  ASSERT_OK(OpenStore(CrashCopy(dir, "store-free-later-checkpoint-crash"), &c));
  check(c.store.get(), "after the checkpoint and a crash");
}

// --- The persisted id index (id.index)

namespace {

// Every record of recs reads back exactly (content and metadata), and the
// store holds nothing else.
void CheckHoldsExactly(Store* s, const std::vector<OwnedRecord>& recs, const std::string& context) {
  CHECK_MSG(Total(s) == recs.size(), context);
  for (const auto& r : recs) {
    RecordBatch b;
    Status st = s->Get(r.id, true, 0, &b);
    CHECK_MSG(st.ok() && b.size() == 1, context + ": " + r.id + " " + st.ToString());
    if (!st.ok() || b.size() != 1) return;
    CHECK_MSG(b.Content(0) == r.content && b.Metadata(0) == r.metadata, context + ": " + r.id);
  }
  CHECK_MSG(Snapshot(s).size() == recs.size(), context + ": iteration");
}

StoreStats StatsOf(Store* s) {
  StoreStats st;
  CHECK(s->Stats(&st).ok());
  return st;
}

std::string ReadFileBytes(const std::string& path) {
  std::string bytes;
  CHECK(ReadWholeFile(path, &bytes).ok());
  return bytes;
}

void WriteFileBytes(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// A closed store with records in every tier, deletes and an upsert behind it.
std::string StoreWithIndex(const std::string& name, std::vector<OwnedRecord>* recs) {
  std::string dir = tstest::TempDir(name);
  std::mt19937 rng(7);
  *recs = MakeRecords(300, &rng);
  StoreHandle h;
  if (!OpenStore(dir, &h).ok() || !PutAndSpread(h.store.get(), *recs, 40, 100).ok()) return "";
  bool existed = false;
  for (int i : {3, 50, 299}) {
    if (!h->Delete((*recs)[static_cast<size_t>(i)].id, WriteOptions{}, &existed).ok()) return "";
  }
  for (int i : {299, 50, 3}) recs->erase(recs->begin() + i);
  (*recs)[10].content = "changed";
  if (!PutAll(h.store.get(), {(*recs)[10]}, WriteOptions{}).ok()) return "";
  return dir;
}

}  // namespace

TEST(ACleanCloseWritesTheIndexAndTheNextOpenUsesIt) {
  std::vector<OwnedRecord> recs;
  const std::string dir = StoreWithIndex("index-clean", &recs);
  ASSERT_TRUE(!dir.empty());
  for (bool read_only : {false, true, false}) {
    StoreHandle h;
    ASSERT_OK(OpenStore(dir, &h, kDims, read_only));
    const StoreStats st = StatsOf(h.store.get());
    CHECK(!st.index_rebuilt && st.index_rebuild_reason.empty());
    CHECK(st.index_file_bytes == std::filesystem::file_size(dir + "/id.index"));
    CHECK(st.index_mapped_bytes > 0);
    CHECK(st.counts.warm > 0 && st.counts.cold > 0 && st.counts.hot > 0);
    CheckHoldsExactly(h.store.get(), recs, read_only ? "read-only" : "writable");
  }
}

TEST(AnIndexThatCannotBeTrustedIsRebuiltFromTheData) {
  std::vector<OwnedRecord> recs;
  const std::string dir = StoreWithIndex("index-damage", &recs);
  ASSERT_TRUE(!dir.empty());
  const std::string index = ReadFileBytes(dir + "/id.index");
  ASSERT_TRUE(index.size() > 200);
  struct Case {
    std::string name, bytes, reason;
  };
  std::vector<Case> cases;
  for (size_t n : {size_t{0}, size_t{64}, size_t{127}, size_t{128}, index.size() / 2, index.size() - 1}) {
    cases.push_back({"cut to " + std::to_string(n), index.substr(0, n), "damaged"});
  }
  cases.push_back({"zeroed", std::string(index.size(), '\0'), "damaged"});
  cases.push_back({"extended", index + "x", "damaged"});
  for (size_t at = 0; at < index.size(); at += 1 + index.size() / 40) {
    std::string flipped = index;
    flipped[at] = static_cast<char>(flipped[at] ^ 0x10);
    cases.push_back({"bit flipped at " + std::to_string(at), flipped, "damaged"});
  }
  for (const Case& c : cases) {
    WriteFileBytes(dir + "/id.index", c.bytes);
    {
      StoreHandle ro;
      ASSERT_OK(OpenStore(dir, &ro, kDims, /*read_only=*/true));
      const StoreStats st = StatsOf(ro.store.get());
      CHECK_MSG(st.index_rebuilt && st.index_rebuild_reason == c.reason, c.name + ": " + st.index_rebuild_reason);
      CheckHoldsExactly(ro.store.get(), recs, c.name + ", read-only");
    }
    CHECK_MSG(ReadFileBytes(dir + "/id.index") == c.bytes, c.name + ": a read-only open wrote the index");
    {
      StoreHandle h;
      ASSERT_OK(OpenStore(dir, &h));
      CHECK_MSG(StatsOf(h.store.get()).index_rebuilt, c.name);
      CheckHoldsExactly(h.store.get(), recs, c.name + ", writable");
    }
    StoreHandle again;
    ASSERT_OK(OpenStore(dir, &again, kDims, /*read_only=*/true));
    CHECK_MSG(!StatsOf(again.store.get()).index_rebuilt, c.name + ": the writable open's close wrote it");
  }
  std::filesystem::remove(dir + "/id.index");
  StoreHandle h;
  ASSERT_OK(OpenStore(dir, &h));
  CHECK(StatsOf(h.store.get()).index_rebuild_reason == "missing");
  CheckHoldsExactly(h.store.get(), recs, "missing");
}

TEST(AnIndexFromAnotherCloseOrAfterACrashIsNotTrusted) {
  std::vector<OwnedRecord> recs;
  const std::string dir = StoreWithIndex("index-stale", &recs);
  ASSERT_TRUE(!dir.empty());
  const std::string old_index = ReadFileBytes(dir + "/id.index");
  {
    // Records move, go and come: the old index's locations are all wrong.
    StoreHandle h;
    ASSERT_OK(OpenStore(dir, &h));
    WriteOptions w;
    w.hot_capacity = 5;
    w.warm_capacity = 10;
    MigrationReport rep;
    ASSERT_OK(h->Migrate(w, &rep));
    CompactionReport cr;
    ASSERT_OK(h->Compact(WriteOptions{}, &cr));
    bool existed = false;
    ASSERT_OK(h->Delete(recs[0].id, WriteOptions{}, &existed));
    recs.erase(recs.begin());
  }
  WriteFileBytes(dir + "/id.index", old_index);
  {
    StoreHandle h;
    ASSERT_OK(OpenStore(dir, &h));
    CHECK(StatsOf(h.store.get()).index_rebuild_reason == "stale");
    CheckHoldsExactly(h.store.get(), recs, "an older close's index");
    // Copied while open: the manifest is not clean, as after a crash.
    ASSERT_OK(h->Flush());
    const std::string crashed = CrashCopy(dir, "index-crash-copy");
    StoreHandle c;
    ASSERT_OK(OpenStore(crashed, &c));
    CHECK(StatsOf(c.store.get()).index_rebuild_reason == "unclean");
    CheckHoldsExactly(c.store.get(), recs, "after a crash");
  }
  // Another store's index, with the same dimensions.
  std::vector<OwnedRecord> other_recs;
  const std::string other = StoreWithIndex("index-other-store", &other_recs);
  std::filesystem::copy_file(other + "/id.index", dir + "/id.index", std::filesystem::copy_options::overwrite_existing);
  StoreHandle h;
  ASSERT_OK(OpenStore(dir, &h));
  CHECK(StatsOf(h.store.get()).index_rebuild_reason == "stale");
  CheckHoldsExactly(h.store.get(), recs, "another store's index");
}

// Mutations that get past the checksums (repaired after each) must be
// caught by the structure checks, never adopted into a crash or a wrong
// answer: the store either adopts an index that answers exactly, or
// rebuilds.
TEST(MutatedIndexWithRepairedChecksumsIsRejectedOrExact) {
  std::vector<OwnedRecord> recs;
  const std::string dir = StoreWithIndex("index-mutated", &recs);
  ASSERT_TRUE(!dir.empty());
  const std::string index = ReadFileBytes(dir + "/id.index");
  std::mt19937 rng(31);
  auto repair = [](std::string* f) {
    auto put32 = [&](size_t at, uint32_t v) { std::memcpy(f->data() + at, &v, 4); };
    put32(120, Crc32c(f->data() + 128, f->size() - 128));
    put32(124, Crc32c(f->data(), 124));
  };
  for (int round = 0; round < 200; ++round) {
    std::string m = index;
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int i = 0; i < flips; ++i) {
      const size_t at = rng() % m.size();
      if (at >= 120 && at < 128) continue;  // the checksums themselves
      m[at] = static_cast<char>(rng());
    }
    repair(&m);
    WriteFileBytes(dir + "/id.index", m);
    StoreHandle h;
    Status st = OpenStore(dir, &h, kDims, /*read_only=*/true);
    CHECK_MSG(st.ok(), "round " + std::to_string(round) + ": " + st.ToString());
    if (!st.ok()) continue;
    // Adopted or rebuilt: either way every record is where it answers from.
    for (const auto& r : recs) {
      RecordBatch b;
      Status g = h->Get(r.id, false, 0, &b);
      // A mutated location may point at another live record or a free slot:
      // that must read as CORRUPTION, never as another record's content.
      if (g.ok()) {
        CHECK_MSG(b.size() == 1 && b.Id(0) == r.id && b.Content(0) == r.content, "round " + std::to_string(round));
      } else {
        CHECK_MSG(g.code() == StatusCode::kCorruption, "round " + std::to_string(round) + ": " + g.ToString());
      }
    }
  }
}

TEST(AStoreWhoseWarmOrColdTierIsEmptyOpensFromItsIndex) {
  std::mt19937 rng(11);
  const std::vector<OwnedRecord> recs = MakeRecords(60, &rng);
  // All hot; all cold (warm emptied: its var file is cut at close); all warm.
  for (int shape = 0; shape < 3; ++shape) {
    const std::string dir = tstest::TempDir("index-shape-" + std::to_string(shape));
    {
      StoreHandle h;
      ASSERT_OK(OpenStore(dir, &h));
      WriteOptions w;
      w.hot_capacity = shape == 0 ? 1000 : 0;
      w.warm_capacity = 1000;
      ASSERT_OK(PutAll(h.store.get(), recs, WriteOptions{}));
      MigrationReport rep;
      ASSERT_OK(h->Migrate(w, &rep));
      if (shape == 1) {
        w.warm_capacity = 0;  // through warm, then all of it to cold
        ASSERT_OK(h->Migrate(w, &rep));
      }
    }
    for (int round = 0; round < 2; ++round) {
      StoreHandle h;
      ASSERT_OK(OpenStore(dir, &h));
      const StoreStats st = StatsOf(h.store.get());
      CHECK_MSG(!st.index_rebuilt, "shape " + std::to_string(shape) + ": " + st.index_rebuild_reason);
      CheckHoldsExactly(h.store.get(), recs, "shape " + std::to_string(shape));
    }
  }
}

// What an open from the index does not read, verify() does: a freed warm
// block zeroed below the high-water mark (which an open that rebuilds the
// index refuses) is listed, though every record reads back.
TEST(VerifyListsAWarmBlockARebuildWouldRefuse) {
  const std::string dir = tstest::TempDir("verify-zeroed-free-block");
  std::mt19937 rng(5);
  std::vector<OwnedRecord> recs = MakeRecords(6, &rng);
  {
    StoreHandle h;
    ASSERT_OK(OpenStore(dir, &h));
    ASSERT_OK(PutAndSpread(h.store.get(), recs, 0, 100));  // all warm, slots 0..5
    bool existed = false;
    for (int i = 0; i < 3; ++i) ASSERT_OK(h->Delete(recs[static_cast<size_t>(i)].id, WriteOptions{}, &existed));
  }
  recs.erase(recs.begin(), recs.begin() + 3);
  File f;
  ASSERT_OK(File::Open(dir + "/warm.blocks", O_RDWR, &f));
  uint32_t block_size = 0;
  ASSERT_OK(f.ReadAt(16, &block_size, 4));
  bool zeroed = false;
  for (uint32_t slot = 0; slot < 6 && !zeroed; ++slot) {
    uint32_t state = 0;
    ASSERT_OK(f.ReadAt(4096 + uint64_t{slot} * block_size, &state, 4));
    if (state == warm_block::kStateLive) continue;
    const std::string zeros(block_size, '\0');
    ASSERT_OK(f.WriteAt(4096 + uint64_t{slot} * block_size, zeros.data(), zeros.size()));
    zeroed = true;
  }
  f.Close();
  ASSERT_TRUE(zeroed);
  StoreHandle h;
  ASSERT_OK(OpenStore(dir, &h, kDims, /*read_only=*/true));
  CheckHoldsExactly(h.store.get(), recs, "a freed block zeroed");
  VerifyReport report;
  ASSERT_OK(h->Verify(&report));
  CHECK(report.records == recs.size());
  CHECK(report.damaged.size() == 1 && report.damaged[0].tier == Tier::kWarm &&
        report.damaged[0].file.find("warm.blocks") != std::string::npos);
}

namespace {

uint32_t LogVersion(const std::string& dir) {
  File f;
  uint32_t version = 0;
  if (!File::Open(dir + "/hot.log", O_RDONLY, &f).ok() || !f.ReadAt(8, &version, 4).ok()) return 0;
  return version;
}

// Rewrites the log header's format version (and its checksum).
void SetLogVersion(const std::string& dir, uint32_t version) {
  std::string log = ReadFileBytes(dir + "/hot.log");
  std::memcpy(log.data() + 8, &version, 4);
  const uint32_t crc = Crc32c(log.data(), 24);
  std::memcpy(log.data() + 24, &crc, 4);
  WriteFileBytes(dir + "/hot.log", log);
}

}  // namespace

TEST(APutOverCapacityWritesWhatItDemotesOnceStraightToWarm) {
  std::mt19937 rng(41);
  const std::vector<OwnedRecord> recs = MakeRecords(300, &rng);
  // The same records put within capacity: every one goes to the log.
  const std::string all_logged = tstest::TempDir("direct-reference");
  {
    StoreHandle h;
    ASSERT_OK(OpenStore(all_logged, &h));
    ASSERT_OK(PutAll(h.store.get(), recs, WriteOptions{}));
  }
  const std::string dir = tstest::TempDir("direct-put");
  StoreHandle h;
  ASSERT_OK(OpenStore(dir, &h));
  WriteOptions w;
  w.hot_capacity = 40;
  ASSERT_OK(PutAll(h.store.get(), recs, w));
  const StoreStats st = StatsOf(h.store.get());
  // Demoted to an eighth below the capacity, as a migration inside a write does.
  CHECK_EQ(st.counts.hot, 35u);
  CHECK_EQ(st.counts.warm, 265u);
  // What stayed hot has the highest activation.
  float min_hot = 1.0f, max_warm = 0.0f;
  for (const auto& r : recs) {
    RecordBatch b;
    ASSERT_OK(h->Get(r.id, false, 0, &b));
    ASSERT_TRUE(b.size() == 1);
    if (b.tiers[0] == Tier::kHot) min_hot = std::min(min_hot, r.activation);
    if (b.tiers[0] == Tier::kWarm) max_warm = std::max(max_warm, r.activation);
  }
  CHECK(min_hot >= max_warm);
  CheckHoldsExactly(h.store.get(), recs, "after the put");
  // Killed now: the batch committed, and all of it is there.
  const std::string crashed = CrashCopy(dir, "direct-put-crash");
  h.Close();
  {
    StoreHandle c;
    ASSERT_OK(OpenStore(crashed, &c));
    CHECK(StatsOf(c.store.get()).index_rebuilt);
    CheckHoldsExactly(c.store.get(), recs, "after a kill");
  }
  // The log (cut to its entries by the close) holds the 35 that stayed
  // hot, not the 265 written to warm.
  const uint64_t log_bytes = std::filesystem::file_size(dir + "/hot.log");
  const uint64_t all_bytes = std::filesystem::file_size(all_logged + "/hot.log");
  CHECK_MSG(log_bytes * 4 < all_bytes, std::to_string(log_bytes) + " of " + std::to_string(all_bytes));
  StoreHandle again;
  ASSERT_OK(OpenStore(dir, &again));
  CheckHoldsExactly(again.store.get(), recs, "after a clean close");
}

TEST(WarmBlocksOfAPutKilledBeforeItsCommitAreDropped) {
  std::mt19937 rng(42);
  const std::vector<OwnedRecord> recs = MakeRecords(60, &rng);
  const std::string dir = tstest::TempDir("direct-uncommitted");
  std::string crashed;
  {
    StoreHandle h;
    ASSERT_OK(OpenStore(dir, &h));
    WriteOptions w;
    w.hot_capacity = 10;
    ASSERT_OK(PutAll(h.store.get(), recs, w));
    crashed = CrashCopy(dir, "direct-uncommitted-crash");
  }
  // What a put killed between its warm writes and its commit leaves: live
  // warm blocks with sequence numbers the log never committed (one an
  // upsert of a committed id, two new ids).
  std::vector<OwnedRecord> extra = MakeRecords(3, &rng);
  extra[0].id = recs[5].id;
  extra[0].content = "never committed";
  extra[1].id = "uncommitted-1";
  extra[2].id = "uncommitted-2";
  {
    std::unique_ptr<WarmTier> warm;
    ASSERT_OK(WarmTier::Open(crashed, kDims, false, /*after_crash=*/true, &warm));
    ASSERT_OK(warm->FinishOpen());
    uint64_t seq = 1000000;
    for (const auto& r : extra) {
      RecordView v = r.View();
      v.seq = ++seq;
      uint32_t slot = 0;
      ASSERT_OK(warm->Insert(v, &slot));
    }
    ASSERT_OK(warm->Sync());
  }
  for (bool read_only : {true, false, false}) {
    StoreHandle h;
    ASSERT_OK(OpenStore(crashed, &h, kDims, read_only));
    CheckHoldsExactly(h.store.get(), recs, read_only ? "read-only" : "writable");
    RecordBatch b;
    ASSERT_OK(h->Get("uncommitted-1", false, 0, &b));
    CHECK_EQ(b.size(), 0u);
    // Writes after the dropped ones read back (their sequence numbers go
    // on from the committed ones).
    if (!read_only) {
      OwnedRecord more = MakeRecord(1000, &rng);
      ASSERT_OK(PutAll(h.store.get(), {more}, WriteOptions{}));
      bool existed = false;
      ASSERT_OK(h->Delete(more.id, WriteOptions{}, &existed));
      CHECK(existed);
    }
  }
}

TEST(AVersion3LogIsReadAndRewrittenInTheCurrentVersion) {
  std::mt19937 rng(43);
  std::vector<OwnedRecord> recs = MakeRecords(30, &rng);
  const std::string dir = tstest::TempDir("log-v3");
  {
    StoreHandle h;
    ASSERT_OK(OpenStore(dir, &h));
    ASSERT_OK(PutAll(h.store.get(), recs, WriteOptions{}));  // within capacity: puts and a commit, no mark
  }
  CHECK_EQ(LogVersion(dir), HotLog::kCurrentVersion);
  SetLogVersion(dir, 3);
  {
    StoreHandle h;
    ASSERT_OK(OpenStore(dir, &h, kDims, /*read_only=*/true));
    CheckHoldsExactly(h.store.get(), recs, "read-only, version 3");
  }
  CHECK_EQ(LogVersion(dir), 3u);  // a read-only open writes nothing
  {
    StoreHandle h;
    ASSERT_OK(OpenStore(dir, &h));
    CheckHoldsExactly(h.store.get(), recs, "writable, version 3");
    CHECK_EQ(LogVersion(dir), HotLog::kCurrentVersion);
    std::vector<OwnedRecord> more = MakeRecords(80, &rng);
    for (size_t i = 0; i < more.size(); ++i) more[i].id = "more-" + std::to_string(i);
    WriteOptions w;
    w.hot_capacity = 20;
    ASSERT_OK(PutAll(h.store.get(), more, w));
    recs.insert(recs.end(), more.begin(), more.end());
    CheckHoldsExactly(h.store.get(), recs, "after a put over capacity");
  }
  StoreHandle h;
  ASSERT_OK(OpenStore(dir, &h));
  CheckHoldsExactly(h.store.get(), recs, "reopened");
  h.Close();
  // A version 3 log holds no sequence marks: one there is damage.
  SetLogVersion(dir, 3);
  StoreHandle bad;
  Status s = OpenStore(dir, &bad, kDims, /*read_only=*/true);
  CHECK(s.code() == StatusCode::kCorruption && s.message().find("hot.log") != std::string::npos);
}

// A version 3 log commits no sequence numbers by marks: after a checkpoint
// it holds only the hot records, and the warm ones (with higher sequence
// numbers) must all stay when an open rebuilds the index.
TEST(AVersion3LogAfterACheckpointKeepsEveryWarmRecord) {
  std::mt19937 rng(44);
  std::vector<OwnedRecord> recs = MakeRecords(40, &rng);
  // The first records put stay hot: the warm ones' sequence numbers are above
  // every one the checkpointed log holds.
  for (size_t i = 0; i < recs.size(); ++i) recs[i].activation = 1.0f - static_cast<float>(i) / 100.0f;
  const std::string dir = tstest::TempDir("log-v3-checkpointed");
  std::string crashed;
  {
    StoreHandle h;
    ASSERT_OK(OpenStore(dir, &h));
    WriteOptions w;
    ASSERT_OK(PutAll(h.store.get(), recs, w));
    w.hot_capacity = 5;
    MigrationReport rep;
    ASSERT_OK(h->Migrate(w, &rep));
    CompactionReport cr;
    ASSERT_OK(h->Compact(w, &cr));  // the log: a mark, then the five hot records
    crashed = CrashCopy(dir, "log-v3-checkpointed-crash");
  }
  // The log as a version 3 checkpoint leaves it: the same without its mark.
  std::string log = ReadFileBytes(crashed + "/hot.log");
  ASSERT_TRUE(log.size() > 64 && static_cast<uint8_t>(log[40 + 4]) == 6);
  log.erase(40, 24);
  WriteFileBytes(crashed + "/hot.log", log);
  SetLogVersion(crashed, 3);
  for (bool read_only : {true, false, false}) {
    StoreHandle h;
    ASSERT_OK(OpenStore(crashed, &h, kDims, read_only));
    CheckHoldsExactly(h.store.get(), recs, read_only ? "read-only" : "writable");
    CHECK_EQ(StatsOf(h.store.get()).counts.hot, 5u);
  }
  CHECK_EQ(LogVersion(crashed), HotLog::kCurrentVersion);
}

// ---------------------------------------------------------------------------
// Single moves to cold: staged in memory and in the log, sealed in batches.

namespace {

// Every record of recs is there, byte-exact (embedding included), in the
// tier `tiers` names for it (cold for every id it does not name).
void CheckExactInTiers(Store* s, const std::vector<OwnedRecord>& recs, const std::map<std::string, Tier>& tiers,
                       const std::string& context) {
  CHECK_MSG(Total(s) == recs.size(), context + ": total");
  std::map<std::string, Tier> seen = Snapshot(s);
  CHECK_MSG(seen.size() == recs.size(), context + ": iteration");
  for (const auto& r : recs) {
    RecordBatch b;
    Status st = s->Get(r.id, true, 0, &b);
    CHECK_MSG(st.ok() && b.size() == 1, context + ": " + r.id + " " + st.ToString());
    if (!st.ok() || b.size() != 1) return;
    auto want = tiers.find(r.id);
    const Tier tier = want == tiers.end() ? Tier::kCold : want->second;
    CHECK_MSG(b.tiers[0] == tier && seen[r.id] == tier, context + ": tier of " + r.id);
    CHECK_MSG(b.Content(0) == r.content && b.Metadata(0) == r.metadata, context + ": " + r.id);
    CHECK_MSG(b.embeddings.size() == kDims &&
                  std::memcmp(b.embeddings.data(), r.embedding.data(), kDims * sizeof(float)) == 0,
              context + ": embedding of " + r.id);
  }
}

}  // namespace

TEST(SingleMovesToColdAreStagedAndColdForEveryReader) {
  std::mt19937 rng(61);
  std::vector<OwnedRecord> recs = MakeRecords(60, &rng);
  const std::string dir = tstest::TempDir("staged-moves");
  std::map<std::string, Tier> tiers;
  StoreHandle h;
  ASSERT_OK(OpenStore(dir, &h));
  WriteOptions w;
  ASSERT_OK(PutAndSpread(h.store.get(), recs, 40, 1000));  // 40 hot, 20 warm
  for (const auto& [id, tier] : Snapshot(h.store.get())) tiers[id] = tier;
  const TierCounts before = StatsOf(h.store.get()).counts;
  CHECK(before.hot >= 10 && before.warm >= 10);
  // 10 from hot and 10 from warm, one call each.
  int from_hot = 0, from_warm = 0;
  std::vector<std::string> moved;
  for (const auto& r : recs) {
    Tier& t = tiers[r.id];
    if ((t == Tier::kHot && from_hot < 10) || (t == Tier::kWarm && from_warm < 10)) {
      (t == Tier::kHot ? from_hot : from_warm)++;
      bool found = false;
      ASSERT_OK(h->Move(r.id, Tier::kCold, w, &found));
      CHECK(found);
      t = Tier::kCold;
      moved.push_back(r.id);
    }
  }
  StoreStats st = StatsOf(h.store.get());
  CHECK_EQ(st.cold_staged_records, 20u);
  CHECK_EQ(st.cold_segments, 0u);  // no segment per move
  CHECK_EQ(st.counts.cold, 20u);
  CHECK_EQ(st.counts.hot, before.hot - 10);
  CHECK_EQ(st.counts.warm, before.warm - 10);
  CheckExactInTiers(h.store.get(), recs, tiers, "staged");
  // A cold-only iterator yields exactly the staged records, in move order.
  {
    std::unique_ptr<StoreIterator> it;
    ASSERT_OK(h->NewIterator(TierSelector::kCold, &it));
    std::vector<std::string> ids;
    RecordBatch b;
    while (it->Next(7, false, &b).ok() && b.size() > 0)
      for (size_t i = 0; i < b.size(); ++i) ids.emplace_back(b.Id(i));
    CHECK(ids == moved);
  }
  // Recall over cold finds each staged record by its own embedding.
  for (const auto& r : recs) {
    if (tiers[r.id] != Tier::kCold) continue;
    RecallOptions ro;
    ro.k = 1;
    ro.tier = TierSelector::kCold;
    RecallResult res;
    ASSERT_OK(h->Recall(r.embedding.data(), ro, &res));
    CHECK_MSG(res.records.size() == 1 && res.records.Id(0) == r.id && res.records.tiers[0] == Tier::kCold, r.id);
  }
  // Delete one staged record, put a new version of another (it goes hot).
  bool existed = false;
  ASSERT_OK(h->Delete(moved[0], w, &existed));
  CHECK(existed);
  recs.erase(std::find_if(recs.begin(), recs.end(), [&](const OwnedRecord& r) { return r.id == moved[0]; }));
  tiers.erase(moved[0]);
  auto upsert = std::find_if(recs.begin(), recs.end(), [&](const OwnedRecord& r) { return r.id == moved[1]; });
  upsert->content = "a new version";
  ASSERT_OK(PutAll(h.store.get(), {*upsert}, w));
  tiers[moved[1]] = Tier::kHot;
  CHECK_EQ(StatsOf(h.store.get()).cold_staged_records, 18u);
  CheckExactInTiers(h.store.get(), recs, tiers, "after a delete and an upsert");
  // A clean close seals the staging into one segment.
  h.Close();
  ASSERT_OK(OpenStore(dir, &h));
  st = StatsOf(h.store.get());
  CHECK(!st.index_rebuilt);
  CHECK_EQ(st.cold_staged_records, 0u);
  CHECK_EQ(st.cold_segments, 1u);
  CheckExactInTiers(h.store.get(), recs, tiers, "reopened");
}

TEST(StagedMovesSurviveACrashAndOpenStaged) {
  std::mt19937 rng(62);
  std::vector<OwnedRecord> recs = MakeRecords(30, &rng);
  const std::string dir = tstest::TempDir("staged-crash");
  std::map<std::string, Tier> tiers;
  StoreHandle h;
  ASSERT_OK(OpenStore(dir, &h));
  WriteOptions w;
  ASSERT_OK(PutAll(h.store.get(), recs, w));
  for (const auto& r : recs) tiers[r.id] = Tier::kHot;
  bool found = false;
  for (int i = 0; i < 12; ++i) {
    ASSERT_OK(h->Move(recs[static_cast<size_t>(i)].id, Tier::kCold, w, &found));
    tiers[recs[static_cast<size_t>(i)].id] = Tier::kCold;
  }
  bool existed = false;
  ASSERT_OK(h->Delete(recs[3].id, w, &existed));  // a staged record deleted: its tombstone decides
  tiers.erase(recs[3].id);
  std::vector<OwnedRecord> expect = recs;
  expect.erase(expect.begin() + 3);
  const std::string crashed = CrashCopy(dir, "staged-crash-copy");
  for (bool read_only : {true, false}) {
    StoreHandle c;
    ASSERT_OK(OpenStore(crashed, &c, kDims, read_only));
    StoreStats st = StatsOf(c.store.get());
    CHECK(st.index_rebuilt);
    // Back in the staging, from the log; the deleted one too when read-only
    // (hidden from every read, but nothing changes).
    CHECK_EQ(st.cold_staged_records, read_only ? 12u : 11u);
    CheckExactInTiers(c.store.get(), expect, tiers, read_only ? "read-only after a crash" : "writable after a crash");
  }
  // Staged moves out of cold go through a segment first; a crash after them
  // keeps every record where the last move put it.
  ASSERT_OK(h->Move(recs[4].id, Tier::kHot, w, &found));
  tiers[recs[4].id] = Tier::kHot;
  ASSERT_OK(h->Move(recs[5].id, Tier::kWarm, w, &found));
  tiers[recs[5].id] = Tier::kWarm;
  CHECK_EQ(StatsOf(h.store.get()).cold_staged_records, 0u);
  ASSERT_OK(h->Move(recs[20].id, Tier::kCold, w, &found));  // staged again, after the seal
  tiers[recs[20].id] = Tier::kCold;
  const std::string crashed2 = CrashCopy(dir, "staged-crash-copy-2");
  StoreHandle c;
  ASSERT_OK(OpenStore(crashed2, &c, kDims, /*read_only=*/true));
  CHECK_EQ(StatsOf(c.store.get()).cold_staged_records, 1u);  // the log's earlier stage entries were sealed
  CheckExactInTiers(c.store.get(), expect, tiers, "after moves out of the staging");
}

TEST(StagingIsSealedWhenFullAndBeforeAnySegmentIsAppended) {
  std::mt19937 rng(63);
  const int n = static_cast<int>(kColdStagingMaxRows) + 40;
  std::vector<OwnedRecord> recs = MakeRecords(n, &rng);
  const std::string dir = tstest::TempDir("staging-full");
  StoreHandle h;
  ASSERT_OK(OpenStore(dir, &h));
  WriteOptions w;
  w.hot_capacity = 100000;
  ASSERT_OK(PutAll(h.store.get(), recs, w));
  bool found = false;
  for (uint64_t i = 0; i < kColdStagingMaxRows; ++i) ASSERT_OK(h->Move(recs[i].id, Tier::kCold, w, &found));
  StoreStats st = StatsOf(h.store.get());
  CHECK_EQ(st.cold_staged_records, 0u);
  CHECK_EQ(st.cold_segments, 1u);
  for (uint64_t i = kColdStagingMaxRows; i < kColdStagingMaxRows + 3; ++i)
    ASSERT_OK(h->Move(recs[i].id, Tier::kCold, w, &found));
  CHECK_EQ(StatsOf(h.store.get()).cold_staged_records, 3u);
  // A migration straight to cold seals the staged rows first: their keys
  // stay below the migration's, and a cold iteration sees every record once.
  w.hot_capacity = 10;
  w.skip_warm = true;
  MigrationReport rep;
  ASSERT_OK(h->Migrate(w, &rep));
  st = StatsOf(h.store.get());
  CHECK_EQ(st.cold_staged_records, 0u);
  CHECK_EQ(st.counts.cold, static_cast<uint64_t>(n) - 10);
  std::unique_ptr<StoreIterator> it;
  ASSERT_OK(h->NewIterator(TierSelector::kCold, &it));
  std::vector<std::string> ids;
  RecordBatch b;
  while (it->Next(500, false, &b).ok() && b.size() > 0)
    for (size_t i = 0; i < b.size(); ++i) ids.emplace_back(b.Id(i));
  CHECK_EQ(ids.size(), static_cast<size_t>(n) - 10);
  for (uint64_t i = 0; i < kColdStagingMaxRows + 3; ++i) CHECK_MSG(ids[i] == recs[i].id, recs[i].id);  // move order first
  CHECK_EQ(std::set<std::string>(ids.begin(), ids.end()).size(), ids.size());
}

// The last staged rows deleted before the close are in no segment; their
// stage entries must not bring them back, from the index or after a crash.
TEST(StagedRowsDeletedBeforeTheirSealStayDeleted) {
  std::mt19937 rng(64);
  std::vector<OwnedRecord> recs = MakeRecords(6, &rng);
  const std::string dir = tstest::TempDir("staged-deleted");
  std::string crashed;
  {
    StoreHandle h;
    ASSERT_OK(OpenStore(dir, &h));
    WriteOptions w;
    ASSERT_OK(PutAll(h.store.get(), recs, w));
    bool found = false, existed = false;
    ASSERT_OK(h->Move(recs[0].id, Tier::kCold, w, &found));
    ASSERT_OK(h->Move(recs[1].id, Tier::kCold, w, &found));
    ASSERT_OK(h->Delete(recs[1].id, w, &existed));
    crashed = CrashCopy(dir, "staged-deleted-crash");
  }
  recs.erase(recs.begin() + 1);
  std::map<std::string, Tier> tiers;
  for (const auto& r : recs) tiers[r.id] = Tier::kHot;
  tiers[recs[0].id] = Tier::kCold;
  for (const std::string& d : {dir, crashed}) {
    for (bool read_only : {true, false}) {
      StoreHandle h;
      ASSERT_OK(OpenStore(d, &h, kDims, read_only));
      // The crashed copy's writable open rebuilds its index; the read-only
      // open before it rebuilds in memory.
      CHECK_EQ(StatsOf(h.store.get()).index_rebuilt, d == crashed);
      CheckExactInTiers(h.store.get(), recs, tiers, d == dir ? "after a clean close" : "after a crash");
    }
  }
}

// A version 4 log (no stage entries) is read, and rewritten in the current
// version by a writable open; a stage entry in a version 4 log is damage.
TEST(AVersion4LogIsReadAndRewrittenAndHoldsNoStageEntries) {
  std::mt19937 rng(65);
  std::vector<OwnedRecord> recs = MakeRecords(20, &rng);
  const std::string dir = tstest::TempDir("log-v4");
  {
    StoreHandle h;
    ASSERT_OK(OpenStore(dir, &h));
    ASSERT_OK(PutAll(h.store.get(), recs, WriteOptions{}));
  }
  SetLogVersion(dir, 4);
  {
    StoreHandle h;
    ASSERT_OK(OpenStore(dir, &h, kDims, /*read_only=*/true));
    CheckHoldsExactly(h.store.get(), recs, "read-only, version 4");
  }
  CHECK_EQ(LogVersion(dir), 4u);
  StoreHandle h;
  ASSERT_OK(OpenStore(dir, &h));
  CHECK_EQ(LogVersion(dir), HotLog::kCurrentVersion);
  bool found = false;
  ASSERT_OK(h->Move(recs[0].id, Tier::kCold, WriteOptions{}, &found));
  CHECK_EQ(StatsOf(h.store.get()).cold_staged_records, 1u);
  const std::string crashed = CrashCopy(dir, "log-v4-staged");
  SetLogVersion(crashed, 4);
  StoreHandle bad;
  Status s = OpenStore(crashed, &bad, kDims, /*read_only=*/true);
  CHECK(s.code() == StatusCode::kCorruption && s.message().find("hot.log") != std::string::npos);
}

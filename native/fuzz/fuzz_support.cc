// Implementation of fuzz_support.h: the seed store, scratch directories with
// a file-descriptor leak check, the store exerciser and the checksum
// repairers (which know the on-disk formats documented in native/core).
#include "fuzz_support.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <algorithm>
#include <filesystem>
#include <memory>
#include <string_view>
#include <vector>

#include "cold_filter_file.h"
#include "cold_format.h"
#include "cold_tier.h"
#include "crc32c.h"
#include "index_file.h"
#include "manifest.h"
#include "store.h"

// The warm tier's test hook (defined in warm_tier.cc, declared by its users):
// the smallest chunk sizes keep every store file a few KiB, so each fuzz
// iteration writes and maps little.
namespace tierstore::warm_testing {
void SetChunkBytes(uint64_t block_chunk_bytes, uint64_t var_chunk_bytes);
}

namespace tsfuzz {
namespace {

using tierstore::RecordBatch;
using tierstore::RecordView;
using tierstore::Status;
using tierstore::Store;
using tierstore::Tier;
using tierstore::TierCounts;
using tierstore::TierSelector;

constexpr const char* kScratchPrefix = "tierstore-fuzz-";
// Bounds the work per input (a fuzzed file may describe many records).
constexpr uint64_t kMaxRecordsVisited = 20000;
constexpr size_t kMaxIdsKept = 24;
constexpr double kNowMs = 1700000100000.0;
constexpr uint64_t kSeedStoreId = 0x5EED5EED5EED5EEDull;
constexpr uint64_t kSeedIndexToken = 0x1DE81DE81DE81DE8ull;

[[noreturn]] void Broken(const std::string& what) {
  std::fprintf(stderr, "\ntierstore fuzz: INVARIANT BROKEN: %s\n", what.c_str());
  std::fflush(stderr);
  std::abort();
}

// ---------------------------------------------------------------------------
// Little-endian loads and stores inside a std::string, bounds checked by the
// callers through InRange.

bool InRange(const std::string& s, uint64_t off, uint64_t len) { return off <= s.size() && len <= s.size() - off; }

template <typename T>
T Ld(const std::string& s, uint64_t off) {
  T v;
  std::memcpy(&v, s.data() + off, sizeof v);
  return v;
}

template <typename T>
void St(std::string* s, uint64_t off, T v) {
  std::memcpy(s->data() + off, &v, sizeof v);
}

uint32_t CrcOf(const std::string& s, uint64_t off, uint64_t len) {
  return tierstore::Crc32c(s.data() + off, static_cast<size_t>(len));
}

// ---------------------------------------------------------------------------
// Process state.

std::string g_scratch_base;
std::atomic<uint64_t> g_counter{0};
StoreFiles* g_seed_clean = nullptr;
StoreFiles* g_seed_dirty = nullptr;

std::string ScratchRoot() {
  struct stat st;
  if (::stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) && ::access("/dev/shm", W_OK) == 0) return "/dev/shm";
  const char* tmp = std::getenv("TMPDIR");
  if (tmp != nullptr && *tmp != '\0') return tmp;
  return "/tmp";
}

void RemoveTree(const std::string& path) {
  std::error_code ec;
  std::filesystem::remove_all(path, ec);
}

// Scratch bases of fuzzer processes that no longer exist (a crash or a
// timeout ends a process before it can clean up).
void RemoveStaleScratch(const std::string& root) {
  DIR* d = ::opendir(root.c_str());
  if (d == nullptr) return;
  std::vector<std::string> stale;
  while (struct dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name.rfind(kScratchPrefix, 0) != 0) continue;
    std::string digits = name.substr(std::strlen(kScratchPrefix));
    if (digits.empty() || digits.find_first_not_of("0123456789") != std::string::npos || digits.size() > 9) continue;
    pid_t pid = static_cast<pid_t>(std::stol(digits));
    if (pid != ::getpid() && ::kill(pid, 0) != 0 && errno == ESRCH) stale.push_back(root + "/" + name);
  }
  ::closedir(d);
  for (const std::string& p : stale) RemoveTree(p);
}

void RemoveOwnScratch() {
  if (!g_scratch_base.empty()) RemoveTree(g_scratch_base);
}

int CountOpenFds() {
  DIR* d = ::opendir("/proc/self/fd");
  if (d == nullptr) return -1;
  int n = 0;
  while (struct dirent* e = ::readdir(d)) {
    if (e->d_name[0] != '.') ++n;
  }
  ::closedir(d);
  return n;
}

std::string DescribeOpenFds() {
  std::string out;
  DIR* d = ::opendir("/proc/self/fd");
  if (d == nullptr) return out;
  while (struct dirent* e = ::readdir(d)) {
    if (e->d_name[0] == '.') continue;
    char target[4096];
    std::string link = std::string("/proc/self/fd/") + e->d_name;
    ssize_t n = ::readlink(link.c_str(), target, sizeof target - 1);
    if (n < 0) continue;
    target[n] = '\0';
    out += std::string("  fd ") + e->d_name + " -> " + target + "\n";
  }
  ::closedir(d);
  return out;
}

bool ReadDirFiles(const std::string& dir, StoreFiles* out) {
  out->clear();
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    if (!entry.is_regular_file()) continue;
    std::string name = entry.path().filename().string();
    if (name == "LOCK") continue;  // empty; every open creates it
    FILE* f = std::fopen(entry.path().c_str(), "rb");
    if (f == nullptr) return false;
    std::string bytes;
    char buf[65536];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) bytes.append(buf, n);
    std::fclose(f);
    (*out)[name] = std::move(bytes);
  }
  return !ec;
}

// ---------------------------------------------------------------------------
// The seed store's records: deterministic, varied (empty content or
// metadata, multi-byte UTF-8, NUL bytes, every tier).

struct SeedRecord {
  std::string id, content, metadata;
  std::vector<float> embedding;
  float confidence = 0, activation = 0;
  double created_at = 0, last_access_at = 0, access_count = 0;

  RecordView View() const {
    RecordView v;
    v.id = id;
    v.content = content;
    v.metadata = metadata;
    v.embedding = embedding.data();
    v.confidence = confidence;
    v.activation = activation;
    v.created_at = created_at;
    v.last_access_at = last_access_at;
    v.access_count = access_count;
    return v;
  }
};

SeedRecord MakeSeedRecord(int i) {
  SeedRecord r;
  r.id = "seed-" + std::to_string(i);
  if (i % 5 != 0) r.content = "memory " + std::to_string(i) + " caf\xC3\xA9" + std::string(static_cast<size_t>(i % 4), '\0');
  if (i % 3 != 0) r.metadata = "{\"i\":" + std::to_string(i) + "}";
  r.embedding.resize(kSeedDimensions);
  for (uint32_t d = 0; d < kSeedDimensions; ++d) {
    r.embedding[d] = static_cast<float>((i * 31 + static_cast<int>(d) * 17) % 23) / 11.0f - 1.0f + 0.01f;
  }
  r.confidence = static_cast<float>(i % 11) / 10.0f;
  r.activation = static_cast<float>(i % 7) / 6.0f;
  r.created_at = 1700000000000.0 + i * 1000.0;
  r.last_access_at = r.created_at + 5;
  r.access_count = i % 4;
  return r;
}

bool Check(const Status& s, const char* what) {
  if (s.ok()) return true;
  std::fprintf(stderr, "tierstore fuzz: building the seed store failed at %s: %s\n", what, s.ToString().c_str());
  return false;
}

Status PutRange(Store* s, int first, int count, const tierstore::WriteOptions& w) {
  std::vector<SeedRecord> recs;
  for (int i = first; i < first + count; ++i) recs.push_back(MakeSeedRecord(i));
  std::vector<RecordView> views;
  for (const auto& r : recs) views.push_back(r.View());
  return s->Put(views.data(), views.size(), w);
}

// ---------------------------------------------------------------------------
// Exercising a store.

struct Handle {
  std::shared_ptr<Store> store;
  ~Handle() {
    if (store) store->Release();
  }
};

uint64_t TierCount(const TierCounts& c, TierSelector sel) {
  switch (sel) {
    case TierSelector::kHot: return c.hot;
    case TierSelector::kWarm: return c.warm;
    case TierSelector::kCold: return c.cold;
    case TierSelector::kAll: return c.total();
  }
  return 0;
}

const char* SelName(TierSelector sel) {
  switch (sel) {
    case TierSelector::kHot: return "hot";
    case TierSelector::kWarm: return "warm";
    case TierSelector::kCold: return "cold";
    case TierSelector::kAll: return "all";
  }
  return "?";
}

void KeepId(std::string_view id, std::vector<std::string>* ids) {
  if (ids->size() < kMaxIdsKept) ids->emplace_back(id);
}

void ReadEverything(Store* s, std::vector<std::string>* ids) {
  TierCounts counts;
  const bool have_counts = s->Counts(&counts).ok();
  tierstore::StoreStats stats;
  (void)s->Stats(&stats);

  // Full iterations: exactly once per record, so an iteration that ends
  // without error has seen counts().total() records. Batches of 1 resume
  // from the cursor after every record; batches of 7 mostly continue inside
  // one scan.
  for (size_t batch_size : {size_t{1}, size_t{7}}) {
    std::unique_ptr<tierstore::StoreIterator> it;
    if (!s->NewIterator(TierSelector::kAll, &it).ok()) break;
    RecordBatch batch;
    uint64_t seen = 0;
    bool clean_end = false;
    while (seen < kMaxRecordsVisited) {
      if (!it->Next(batch_size, /*include_embeddings=*/batch_size > 1, &batch).ok()) break;
      if (batch.size() == 0) {
        clean_end = true;
        break;
      }
      for (size_t i = 0; i < batch.size(); ++i) KeepId(batch.Id(i), ids);
      seen += batch.size();
    }
    it->Close();
    if (clean_end && have_counts && seen != counts.total()) {
      Broken("an iteration in batches of " + std::to_string(batch_size) + " ended without error after " +
             std::to_string(seen) + " records, but counts() says " + std::to_string(counts.total()));
    }
  }

  // Cursor paging per tier: same exactly-once rule.
  for (TierSelector sel : {TierSelector::kHot, TierSelector::kWarm, TierSelector::kCold, TierSelector::kAll}) {
    tierstore::ListRequest req;
    req.tier = sel;
    req.limit = sel == TierSelector::kAll ? 5 : 1;
    req.include_embeddings = sel == TierSelector::kCold;
    uint64_t seen = 0;
    bool clean_end = false;
    TierCounts page_counts;
    while (seen < kMaxRecordsVisited) {
      tierstore::ListResult res;
      if (!s->List(req, &res).ok()) break;
      seen += res.records.size();
      page_counts = res.counts;
      for (size_t i = 0; i < res.records.size(); ++i) KeepId(res.records.Id(i), ids);
      if (res.next_cursor.empty()) {
        clean_end = true;
        break;
      }
      req.cursor = res.next_cursor;
    }
    if (clean_end && seen != TierCount(page_counts, sel)) {
      Broken(std::string("list() paging of tier ") + SelName(sel) + " ended without error after " +
             std::to_string(seen) + " records, but its counts say " + std::to_string(TierCount(page_counts, sel)));
    }
    tierstore::ListRequest by_offset;
    by_offset.tier = sel;
    by_offset.offset = 3;
    by_offset.limit = 4;
    tierstore::ListResult res;
    (void)s->List(by_offset, &res);
  }

  RecordBatch got;
  for (const std::string& id : *ids) {
    got.Clear();
    (void)s->Get(id, /*include_embedding=*/true, kNowMs, &got);
    bool found = false;
    (void)s->Has(id, &found);
  }
  got.Clear();
  (void)s->Get(std::string(tierstore::kMaxIdBytes, 'x'), false, kNowMs, &got);

  const uint32_t dims = s->dimensions();
  if (dims == 0 || dims > tierstore::kMaxDimensions) return;
  std::vector<float> query(dims);
  for (uint32_t d = 0; d < dims; ++d) query[d] = static_cast<float>(d % 5) - 1.5f;
  for (TierSelector sel : {TierSelector::kAll, TierSelector::kHot, TierSelector::kWarm, TierSelector::kCold}) {
    tierstore::RecallOptions ro;
    ro.k = 5;
    ro.tier = sel;
    ro.include_embeddings = sel == TierSelector::kAll;
    tierstore::RecallResult rr;
    (void)s->Recall(query.data(), ro, &rr);
  }
  tierstore::RecallOptions ro;
  ro.k = 1000;
  ro.has_min_confidence = true;
  ro.min_confidence = 0.5f;
  ro.threads = 2;
  tierstore::RecallResult rr;
  (void)s->Recall(query.data(), ro, &rr);
  // A metadata filter: the tiers' filter arrays (warm.filter, the cold
  // segments' filter files) decide first.
  auto filter = std::make_shared<tierstore::RecordFilter>();
  tierstore::RecordFilter::Spec spec;
  spec.metadata_json = "{\"i\":[1,4,5,11,16]}";
  if (tierstore::RecordFilter::Parse(spec, filter.get()).ok()) {
    tierstore::RecallOptions fo;
    fo.k = 20;
    fo.filter = filter;
    tierstore::RecallResult fr;
    (void)s->Recall(query.data(), fo, &fr);
  }
}

void WriteSome(Store* s, const std::vector<std::string>& ids) {
  tierstore::WriteOptions w;
  w.hot_capacity = 2;
  w.warm_capacity = 2;
  const uint32_t dims = s->dimensions();
  if (dims == 0 || dims > tierstore::kMaxDimensions) return;

  SeedRecord fresh = MakeSeedRecord(1000);
  fresh.id = "fuzz-new";
  fresh.embedding.assign(dims, 0.25f);
  RecordView v = fresh.View();
  (void)s->Put(&v, 1, w);

  // A batch that upserts a record the files held (wherever it lives).
  SeedRecord again = fresh;
  again.id = ids.empty() ? "fuzz-other" : ids[0];
  again.content = "replaced";
  RecordView batch[2] = {fresh.View(), again.View()};
  (void)s->Put(batch, 2, w);

  bool flag = false;
  if (ids.size() > 1) (void)s->Delete(ids[1], w, &flag);
  if (ids.size() > 2) (void)s->Move(ids[2], Tier::kCold, w, &flag);
  if (ids.size() > 3) (void)s->Move(ids[3], Tier::kWarm, w, &flag);
  if (ids.size() > 4) (void)s->Move(ids[4], Tier::kHot, w, &flag);
  tierstore::MigrationReport mr;
  (void)s->Migrate(w, &mr);
  RecordBatch got;
  for (const std::string& id : ids) {
    got.Clear();
    (void)s->Get(id, false, kNowMs + 1, &got);
  }
  (void)s->Flush();
  tierstore::CompactionReport cr;
  (void)s->Compact(w, &cr);
  tierstore::WriteOptions sync = w;
  sync.sync = true;
  (void)s->Delete("fuzz-new", sync, &flag);
}

// ---------------------------------------------------------------------------
// Warm block layout (docs/format/warm.md).
constexpr uint64_t kWarmHeaderPage = 4096;
constexpr uint32_t kWarmLive = 0x41564C4Cu;
constexpr uint64_t kWarmBlockHeader = 64;
constexpr uint64_t kWarmPrefix = 20;  // var extent prefix: 3 lengths, key_crc, data_crc

// Block bytes [8,24) + [48,64), extending c (header_crc with c = 0, and the
// tail of data_crc).
uint32_t WarmFixed(uint32_t c, const std::string& s, uint64_t b) {
  c = tierstore::Crc32cExtend(c, s.data() + b + 8, 16);
  return tierstore::Crc32cExtend(c, s.data() + b + 48, 16);
}

// Cold segment layout (docs/format/cold.md).
constexpr uint64_t kColdHeader = 512;
constexpr int kColdColumns = 18;
enum ColdCol { kKey = 0, kSeq, kConf, kAct, kCreated, kNorm, kDataCrc, kEmbCrc, kEmb, kIdOff, kIdBytes, kContentOff,
               kContentBytes, kMetaOff, kMetaBytes, kLastAccess, kAccessCount, kDeleted };
bool ColdColHasCrc(int c) { return c <= kEmbCrc || c == kIdOff || c == kContentOff || c == kMetaOff; }

}  // namespace

// ---------------------------------------------------------------------------

void Init() {
  if (!g_scratch_base.empty()) return;
  tierstore::warm_testing::SetChunkBytes(1, 1);
  const std::string root = ScratchRoot();
  RemoveStaleScratch(root);
  g_scratch_base = root + "/" + kScratchPrefix + std::to_string(::getpid());
  RemoveTree(g_scratch_base);
  if (::mkdir(g_scratch_base.c_str(), 0700) != 0) {
    std::fprintf(stderr, "tierstore fuzz: cannot create %s: %s\n", g_scratch_base.c_str(), std::strerror(errno));
    std::exit(2);
  }
  std::atexit(RemoveOwnScratch);

  const std::string seed_dir = g_scratch_base + "/seed";
  auto clean = std::make_unique<StoreFiles>();
  if (!BuildSeedStore(seed_dir, clean.get())) std::exit(2);
  RemoveTree(seed_dir);
  // The same store as if the process had crashed: manifest not clean.
  auto dirty = std::make_unique<StoreFiles>(*clean);
  std::string& manifest = (*dirty)[tierstore::Manifest::kFileName];
  St<uint32_t>(&manifest, 16, 0);
  RepairManifest(&manifest);
  g_seed_clean = clean.release();
  g_seed_dirty = dirty.release();
}

const StoreFiles& SeedFiles(bool clean) {
  Init();
  return clean ? *g_seed_clean : *g_seed_dirty;
}

bool BuildSeedStore(const std::string& dir, StoreFiles* out) {
  tierstore::warm_testing::SetChunkBytes(1, 1);
  RemoveTree(dir);
  {
    Handle h;
    tierstore::StoreOptions o;
    o.dimensions = kSeedDimensions;
    if (!Check(Store::Open(dir, o, &h.store), "Store::Open")) return false;
    Store* s = h.store.get();
    tierstore::WriteOptions w;
    w.hot_capacity = 4;
    w.warm_capacity = 6;
    bool flag = false;
    RecordBatch got;
    tierstore::CompactionReport cr;
    // A batch (batch entries + commit in the log), then single puts; the
    // capacities push records down into warm and cold as they go.
    if (!Check(PutRange(s, 0, 6, w), "Put batch")) return false;
    for (int i = 6; i < 14; ++i) {
      if (!Check(PutRange(s, i, 1, w), "Put")) return false;
    }
    if (!Check(s->Delete("seed-1", w, &flag), "Delete") || !Check(s->Delete("seed-7", w, &flag), "Delete")) return false;
    for (const char* id : {"seed-2", "seed-9", "seed-12"}) {
      got.Clear();
      if (!Check(s->Get(id, false, kNowMs, &got), "Get")) return false;
    }
    // Compaction: a second warm var generation, one merged cold segment.
    if (!Check(s->Compact(w, &cr), "Compact")) return false;
    for (int i = 14; i < 22; ++i) {
      if (!Check(PutRange(s, i, 1, w), "Put")) return false;
    }
    // Lower capacities: one migration seals a multi-row segment.
    tierstore::WriteOptions tight = w;
    tight.hot_capacity = 2;
    tight.warm_capacity = 1;
    tierstore::MigrationReport mr;
    if (!Check(s->Migrate(tight, &mr), "Migrate")) return false;
    if (!Check(s->Move("seed-15", Tier::kCold, w, &flag), "Move") ||
        !Check(s->Move("seed-4", Tier::kHot, w, &flag), "Move") ||
        !Check(s->Move("seed-16", Tier::kWarm, w, &flag), "Move")) {
      return false;
    }
    if (!Check(PutRange(s, 22, 3, w), "Put batch")) return false;
    for (int i = 25; i < 30; ++i) {
      if (!Check(PutRange(s, i, 1, w), "Put")) return false;
    }
    // Deletes leave bits in cold deletion bitmaps, freed warm slots and log
    // tombstones.
    for (const char* id : {"seed-23", "seed-10", "seed-18", "seed-20", "seed-26"}) {
      if (!Check(s->Delete(id, w, &flag), "Delete")) return false;
    }
    for (const char* id : {"seed-22", "seed-8", "seed-17"}) {
      got.Clear();
      if (!Check(s->Get(id, false, kNowMs, &got), "Get")) return false;
    }
  }  // Release: a clean close
  if (!ReadDirFiles(dir, out)) {
    std::fprintf(stderr, "tierstore fuzz: cannot read the seed store back from %s\n", dir.c_str());
    return false;
  }
  // The store id is random at creation; a fixed one makes the seed store the
  // same on every run, so that a saved input means the same store later.
  auto manifest = out->find(tierstore::Manifest::kFileName);
  auto log = out->find("hot.log");
  if (manifest == out->end() || log == out->end() || manifest->second.size() < 64 || log->second.size() < 24) {
    std::fprintf(stderr, "tierstore fuzz: the seed store lacks its manifest or log\n");
    return false;
  }
  St<uint64_t>(&manifest->second, 56, kSeedStoreId);
  St<uint64_t>(&log->second, 16, kSeedStoreId);
  // Likewise the token that ties the clean manifest to the id index.
  auto index = out->find(tierstore::kIndexFileName);
  if (index == out->end() || index->second.size() < 128) {
    std::fprintf(stderr, "tierstore fuzz: the seed store lacks its id index\n");
    return false;
  }
  St<uint64_t>(&manifest->second, 64, kSeedIndexToken);
  St<uint64_t>(&index->second, 24, kSeedStoreId);
  St<uint64_t>(&index->second, 32, kSeedIndexToken);
  RepairManifest(&manifest->second);
  RepairHotLog(&log->second);
  RepairIndexFile(&index->second);
  return true;
}

std::string SeedVarFileName() {
  for (const auto& [name, bytes] : SeedFiles(true)) {
    uint32_t n;
    if (KindOf(name, &n) == FileKind::kWarmVar) return name;
  }
  return "warm-var-1.dat";
}

size_t SeedColdSegmentCount() {
  size_t n = 0;
  for (const auto& [name, bytes] : SeedFiles(true)) {
    uint32_t id;
    if (KindOf(name, &id) == FileKind::kColdSegment) ++n;
  }
  return n;
}

std::string SeedColdSegmentName(size_t i) {
  std::vector<std::string> names;
  for (const auto& [name, bytes] : SeedFiles(true)) {
    uint32_t id;
    if (KindOf(name, &id) == FileKind::kColdSegment) names.push_back(name);
  }
  if (names.empty()) return "cold-00000001.seg";
  return names[i % names.size()];
}

// ---------------------------------------------------------------------------

ScratchStore::ScratchStore() {
  Init();
  fds_before_ = CountOpenFds();
  dir_ = g_scratch_base + "/" + std::to_string(g_counter.fetch_add(1));
  RemoveTree(dir_);
  if (::mkdir(dir_.c_str(), 0700) != 0) {
    std::fprintf(stderr, "tierstore fuzz: cannot create %s: %s\n", dir_.c_str(), std::strerror(errno));
    std::abort();
  }
}

ScratchStore::~ScratchStore() {
  RemoveTree(dir_);
  const int after = CountOpenFds();
  if (fds_before_ >= 0 && after > fds_before_) {
    Broken("file descriptors leaked: " + std::to_string(after - fds_before_) +
           " more open after the store was released and its directory removed:\n" + DescribeOpenFds());
  }
}

void ScratchStore::WriteFiles(const StoreFiles& files) const {
  for (const auto& [name, bytes] : files) {
    const std::string path = dir_ + "/" + name;
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
      std::fprintf(stderr, "tierstore fuzz: cannot write %s: %s\n", path.c_str(), std::strerror(errno));
      std::abort();
    }
    size_t done = 0;
    while (done < bytes.size()) {
      ssize_t w = ::write(fd, bytes.data() + done, bytes.size() - done);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) {
        std::fprintf(stderr, "tierstore fuzz: short write to %s\n", path.c_str());
        std::abort();
      }
      done += static_cast<size_t>(w);
    }
    ::close(fd);
  }
}

void ExerciseStore(const std::string& dir, bool read_only, uint32_t dimensions) {
  tierstore::StoreOptions o;
  o.read_only = read_only;
  o.dimensions = dimensions;
  {
    Handle h;
    if (!Store::Open(dir, o, &h.store).ok()) return;
    std::vector<std::string> ids;
    ReadEverything(h.store.get(), &ids);
    if (read_only) return;
    WriteSome(h.store.get(), ids);
    std::vector<std::string> ids_after;
    ReadEverything(h.store.get(), &ids_after);
  }  // clean close
  Handle again;
  Status st = Store::Open(dir, o, &again.store);
  if (!st.ok()) Broken("the store opened, then closed cleanly, but does not open again: " + st.ToString());
  std::vector<std::string> ids;
  ReadEverything(again.store.get(), &ids);
}

// ---------------------------------------------------------------------------
// Checksum repair.

void RepairManifest(std::string* m) {
  // magic 8, version, dims, clean, segment count @20, log size, seq, warm
  // and cold records, store id @56, index token @64, segment ids @72, crc
  // of the rest last.
  if (m->size() < 76) return;
  if ((m->size() - 76) % 4 == 0) St<uint32_t>(m, 20, static_cast<uint32_t>((m->size() - 76) / 4));
  St<uint32_t>(m, m->size() - 4, CrcOf(*m, 0, m->size() - 4));
}

void RepairIndexFile(std::string* f) {
  // Header (128 bytes; docs/format/index.md): the file size @48, the body's
  // crc @120, the header's (of [0,124)) @124.
  if (f->size() < 128) return;
  St<uint64_t>(f, 48, f->size());
  St<uint32_t>(f, 120, CrcOf(*f, 128, f->size() - 128));
  St<uint32_t>(f, 124, CrcOf(*f, 0, 124));
}

void RepairHotLog(std::string* log) {
  // Header (40 bytes; docs/format/hot-log.md): magic 8, version, dims @12,
  // store id @16, crc of [0,24) @24, pad, then the end mark @32: the end in
  // the low 48 bits, 16 bits of the crc of those 6 bytes above.
  if (log->size() < 40) return;
  St<uint32_t>(log, 24, CrcOf(*log, 0, 24));
  const uint64_t end = Ld<uint64_t>(*log, 32) & ((uint64_t{1} << 48) - 1);
  St<uint64_t>(log, 32, end | (uint64_t{CrcOf(*log, 32, 6) & 0xFFFFu} << 48));
  uint64_t pos = 40;
  // Entries: crc @0 of [4, 16+len), type @4, header check @5 (24 bits of the
  // crc of type and length), length u64 @8.
  while (InRange(*log, pos, 16)) {
    const uint64_t len = Ld<uint64_t>(*log, pos + 8);
    char type_and_len[9];
    std::memcpy(type_and_len, log->data() + pos + 4, 1);
    std::memcpy(type_and_len + 1, log->data() + pos + 8, 8);
    const uint32_t check = tierstore::Crc32c(type_and_len, 9) & 0xFFFFFFu;
    std::memcpy(log->data() + pos + 5, &check, 3);
    if (!InRange(*log, pos + 16, len)) break;
    St<uint32_t>(log, pos, CrcOf(*log, pos + 4, 12 + len));
    pos += 16 + len;
  }
}

void RepairWarmBlocks(std::string* blocks, std::map<uint32_t, std::string>* var_files) {
  // Header page: magic 8, version, dims @12, block size @16, blocks per
  // chunk @20, embedding offset @24, crc of [0,28) @28, high-water mark @32,
  // crc of [32,36) @36.
  if (blocks->size() < kWarmHeaderPage) return;
  St<uint32_t>(blocks, 28, CrcOf(*blocks, 0, 28));
  St<uint32_t>(blocks, 36, CrcOf(*blocks, 32, 4));
  // The covered mark @40 and its crc @44; all zeros means absent (strict).
  if (Ld<uint64_t>(*blocks, 40) != 0) St<uint32_t>(blocks, 44, CrcOf(*blocks, 40, 4));
  const uint64_t header_bytes = kWarmBlockHeader;
  const uint64_t dims = Ld<uint32_t>(*blocks, 12);
  const uint64_t block_size = Ld<uint32_t>(*blocks, 16);
  if (block_size < header_bytes || block_size > blocks->size()) return;
  const uint64_t emb_bytes = dims * 4;
  for (uint64_t b = kWarmHeaderPage; InRange(*blocks, b, block_size); b += block_size) {
    if (Ld<uint32_t>(*blocks, b) != kWarmLive) continue;
    // Block: embedding_crc @48, header_crc @4. Extent prefix at the
    // location word @40 (offset: low 40 bits, generation: high 24):
    // key_crc @12 over prefix [0,12) + id + seq, data_crc @16 over the
    // bytes + block [8,24) + [48,64).
    if (header_bytes + emb_bytes <= block_size) St<uint32_t>(blocks, b + 48, CrcOf(*blocks, b + header_bytes, emb_bytes));
    St<uint32_t>(blocks, b + 4, WarmFixed(0, *blocks, b));
    const uint64_t loc = Ld<uint64_t>(*blocks, b + 40);
    const uint64_t var_off = loc & ((uint64_t{1} << 40) - 1);
    auto var = var_files->find(static_cast<uint32_t>(loc >> 40));
    if (var == var_files->end() || !InRange(var->second, var_off, kWarmPrefix)) continue;
    std::string& v = var->second;
    const uint64_t id_len = Ld<uint32_t>(v, var_off);
    const uint64_t var_len = id_len + Ld<uint32_t>(v, var_off + 4) + Ld<uint32_t>(v, var_off + 8);
    if (!InRange(v, var_off + kWarmPrefix, var_len)) continue;
    uint32_t k = CrcOf(v, var_off, 12);
    k = tierstore::Crc32cExtend(k, v.data() + var_off + kWarmPrefix, id_len);
    St<uint32_t>(&v, var_off + 12, tierstore::Crc32cExtend(k, blocks->data() + b + 8, 8));
    St<uint32_t>(&v, var_off + 16, WarmFixed(CrcOf(v, var_off + kWarmPrefix, var_len), *blocks, b));
  }
}

void RepairWarmVar(std::string* var, uint32_t generation) {
  // Header page: magic 8, version, generation @12, reserved, crc of [0,20) @20.
  if (var->size() < 24) return;
  St<uint32_t>(var, 12, generation);
  St<uint32_t>(var, 20, CrcOf(*var, 0, 20));
}

void RepairColdSegment(std::string* seg, uint32_t segment_id) {
  if (seg->size() < kColdHeader) return;
  St<uint64_t>(seg, 24, seg->size());
  St<uint32_t>(seg, 32, segment_id);
  const uint64_t n = Ld<uint64_t>(*seg, 16);
  const uint64_t dims = Ld<uint32_t>(*seg, 12);
  uint64_t off[kColdColumns], size[kColdColumns];
  bool ok[kColdColumns];
  for (int c = 0; c < kColdColumns; ++c) {
    off[c] = Ld<uint64_t>(*seg, 64 + c * 24);
    size[c] = Ld<uint64_t>(*seg, 64 + c * 24 + 8);
    ok[c] = InRange(*seg, off[c], size[c]);
  }
  auto fits = [&](int c, uint64_t need) { return ok[c] && size[c] >= need; };
  if (n > 0 && n <= seg->size()) {
    // Per-row checksums: data_crc over seq, scalars, lengths and bytes;
    // embedding_crc over the row's embedding.
    const bool rows_ok = fits(kSeq, n * 8) && fits(kConf, n * 4) && fits(kAct, n * 4) && fits(kCreated, n * 8) &&
                         fits(kNorm, n * 4) && fits(kDataCrc, n * 4) && fits(kIdOff, (n + 1) * 8) &&
                         fits(kContentOff, (n + 1) * 8) && fits(kMetaOff, (n + 1) * 8) && ok[kIdBytes] &&
                         ok[kContentBytes] && ok[kMetaBytes];
    for (uint64_t r = 0; rows_ok && r < n; ++r) {
      std::string_view parts[3];
      bool parts_ok = true;
      const int offcols[3] = {kIdOff, kContentOff, kMetaOff};
      const int bytecols[3] = {kIdBytes, kContentBytes, kMetaBytes};
      for (int k = 0; k < 3; ++k) {
        uint64_t a = Ld<uint64_t>(*seg, off[offcols[k]] + r * 8), b = Ld<uint64_t>(*seg, off[offcols[k]] + r * 8 + 8);
        if (a > b || b > size[bytecols[k]]) {
          parts_ok = false;
          break;
        }
        parts[k] = std::string_view(seg->data() + off[bytecols[k]] + a, b - a);
      }
      if (!parts_ok) continue;
      uint8_t buf[52];
      std::memcpy(buf + 0, seg->data() + off[kSeq] + r * 8, 8);
      std::memcpy(buf + 8, seg->data() + off[kConf] + r * 4, 4);
      std::memcpy(buf + 12, seg->data() + off[kAct] + r * 4, 4);
      std::memcpy(buf + 16, seg->data() + off[kCreated] + r * 8, 8);
      std::memcpy(buf + 24, seg->data() + off[kNorm] + r * 4, 4);
      for (int k = 0; k < 3; ++k) {
        uint64_t len = parts[k].size();
        std::memcpy(buf + 28 + 8 * k, &len, 8);
      }
      uint32_t c = tierstore::Crc32cExtend(0, buf, sizeof buf);
      for (int k = 0; k < 3; ++k) c = tierstore::Crc32cExtend(c, parts[k].data(), parts[k].size());
      St<uint32_t>(seg, off[kDataCrc] + r * 4, c);
    }
    if (dims > 0 && dims <= tierstore::kMaxDimensions && fits(kEmbCrc, n * 4) && fits(kEmb, n * dims * 4)) {
      for (uint64_t r = 0; r < n; ++r) St<uint32_t>(seg, off[kEmbCrc] + r * 4, CrcOf(*seg, off[kEmb] + r * dims * 4, dims * 4));
    }
    if (fits(kKey, n * 8)) {
      St<uint64_t>(seg, 40, Ld<uint64_t>(*seg, off[kKey]));
      St<uint64_t>(seg, 48, Ld<uint64_t>(*seg, off[kKey] + (n - 1) * 8));
    }
  }
  // The deletion bitmap's two copies: {u64 generation, u32 crc of the
  // generation then the words, pad to 64, words}.
  if (n > 0 && n <= seg->size() && ok[kDeleted]) {
    const uint64_t words = (n + 63) / 64;
    const uint64_t copy_size = (64 + words * 8 + 63) / 64 * 64;
    for (uint64_t i = 0; i < 2; ++i) {
      const uint64_t copy = off[kDeleted] + i * copy_size;
      if ((i + 1) * copy_size > size[kDeleted]) break;
      uint32_t c = tierstore::Crc32cExtend(0, seg->data() + copy, 8);
      St<uint32_t>(seg, copy + 8, tierstore::Crc32cExtend(c, seg->data() + copy + 64, words * 8));
    }
  }
  for (int c = 0; c < kColdColumns; ++c) {
    if (ColdColHasCrc(c) && ok[c]) St<uint32_t>(seg, 64 + c * 24 + 16, CrcOf(*seg, off[c], size[c]));
  }
  St<uint32_t>(seg, 496, CrcOf(*seg, 0, 496));
}

void RepairColdFilter(std::string* filter, const std::string* segment) {
  namespace cold = tierstore::cold;
  if (filter->size() < cold::kFilterHeaderBytes) return;
  if (segment != nullptr && segment->size() >= cold::kHeaderSize) {
    const cold::FilterIdentity id = cold::FilterIdentityOf(reinterpret_cast<const uint8_t*>(segment->data()));
    St<uint32_t>(filter, 12, id.segment);
    St<uint64_t>(filter, 16, id.rows);
    St<uint64_t>(filter, 24, id.segment_size);
    St<uint64_t>(filter, 32, id.min_key);
    St<uint64_t>(filter, 40, id.max_key);
    St<uint32_t>(filter, 48, id.header_crc);
  }
  const uint64_t rows = Ld<uint64_t>(*filter, 16);
  if (rows <= (uint64_t{1} << 32) && filter->size() == cold::FilterFileSize(rows)) {
    const uint64_t sig = sizeof(tierstore::MetadataSignature);
    const uint64_t table = cold::kFilterHeaderBytes + rows * sig;
    for (uint64_t c = 0; c < cold::FilterChunks(rows); ++c) {
      const uint64_t begin = cold::kFilterHeaderBytes + c * cold::kFilterRowsPerChunk * sig;
      const uint64_t len = std::min(cold::kFilterRowsPerChunk, rows - c * cold::kFilterRowsPerChunk) * sig;
      St<uint32_t>(filter, table + c * 4, CrcOf(*filter, begin, len));
    }
  }
  St<uint32_t>(filter, 60, CrcOf(*filter, 0, 60));
}

FileKind KindOf(const std::string& name, uint32_t* number) {
  *number = 0;
  if (name == tierstore::Manifest::kFileName) return FileKind::kManifest;
  if (name == "hot.log") return FileKind::kHotLog;
  if (name == "warm.blocks") return FileKind::kWarmBlocks;
  if (name == tierstore::kIndexFileName) return FileKind::kIndex;
  const std::string var_prefix = "warm-var-", var_suffix = ".dat";
  if (name.size() > var_prefix.size() + var_suffix.size() && name.rfind(var_prefix, 0) == 0 &&
      name.compare(name.size() - var_suffix.size(), var_suffix.size(), var_suffix) == 0) {
    std::string digits = name.substr(var_prefix.size(), name.size() - var_prefix.size() - var_suffix.size());
    if (!digits.empty() && digits.size() <= 9 && digits.find_first_not_of("0123456789") == std::string::npos) {
      *number = static_cast<uint32_t>(std::stoul(digits));
      return FileKind::kWarmVar;
    }
  }
  if (tierstore::cold::ParseFilterName(name, number)) return FileKind::kColdFilter;
  if (name.size() == 17 && name.rfind("cold-", 0) == 0 && name.compare(13, 4, ".seg") == 0) {
    std::string hex = name.substr(5, 8);
    if (hex.find_first_not_of("0123456789abcdef") == std::string::npos) {
      *number = static_cast<uint32_t>(std::stoul(hex, nullptr, 16));
      return FileKind::kColdSegment;
    }
  }
  return FileKind::kOther;
}

void RepairAll(StoreFiles* files) {
  std::map<uint32_t, std::string> vars;
  std::map<uint32_t, std::string> var_names;
  for (auto& [name, bytes] : *files) {
    uint32_t number;
    switch (KindOf(name, &number)) {
      case FileKind::kManifest: RepairManifest(&bytes); break;
      case FileKind::kHotLog: RepairHotLog(&bytes); break;
      case FileKind::kWarmVar:
        RepairWarmVar(&bytes, number);
        vars[number] = bytes;
        var_names[number] = name;
        break;
      case FileKind::kColdSegment: RepairColdSegment(&bytes, number); break;
      case FileKind::kIndex: RepairIndexFile(&bytes); break;
      default: break;
    }
  }
  // After the segments: a filter file takes its segment's identity.
  for (auto& [name, bytes] : *files) {
    uint32_t number;
    if (KindOf(name, &number) != FileKind::kColdFilter) continue;
    auto seg = files->find(tierstore::cold::SegmentName(number));
    RepairColdFilter(&bytes, seg == files->end() ? nullptr : &seg->second);
  }
  auto blocks = files->find("warm.blocks");
  if (blocks == files->end()) return;
  RepairWarmBlocks(&blocks->second, &vars);
  // Version 3 keeps checksums in the var extents' prefixes: write them back.
  for (const auto& [number, bytes] : vars) (*files)[var_names[number]] = bytes;
}

const std::vector<std::string>& FileSetNames() {
  static const std::vector<std::string>* names = [] {
    auto* v = new std::vector<std::string>{
        "MANIFEST", "hot.log", "warm.blocks", "warm-var-1.dat", "warm-var-2.dat", "warm-var-3.dat", "id.index",
        // Leftovers of interrupted writes, names the engine must ignore or
        // reject, and the lock file.
        "MANIFEST.tmp", "id.index.tmp", "hot.log.tmp", "warm.blocks.tmp", "warm-var-2.dat.tmp", "cold-00000030.seg.tmp",
        "cold-0000000G.seg", "cold-0000000A.seg", "warm-var-02.dat", "warm-var-0.dat", "LOCK", "notes.txt"};
    for (uint32_t id = 1; id <= 24; ++id) v->push_back(tierstore::ColdSegmentFileName(id));
    // Each segment's filter file, one left by an interrupted write, and one
    // whose segment is not there.
    for (uint32_t id = 1; id <= 24; ++id) v->push_back(tierstore::cold::FilterName(id));
    v->push_back(tierstore::cold::FilterName(3) + ".tmp");
    v->push_back(tierstore::cold::FilterName(0x30));
    return v;
  }();
  return *names;
}

StoreFiles DecodeFileSet(const std::string& payload) {
  const auto& names = FileSetNames();
  StoreFiles files;
  size_t pos = 0;
  while (pos + 4 <= payload.size()) {
    const std::string& name = names[static_cast<uint8_t>(payload[pos]) % names.size()];
    size_t len = static_cast<uint8_t>(payload[pos + 1]) | (size_t{static_cast<uint8_t>(payload[pos + 2])} << 8) |
                 (size_t{static_cast<uint8_t>(payload[pos + 3])} << 16);
    pos += 4;
    len = std::min(len, payload.size() - pos);
    files[name] = payload.substr(pos, len);
    pos += len;
  }
  return files;
}

std::string EncodeFileSet(const StoreFiles& files) {
  const auto& names = FileSetNames();
  std::string out;
  for (const auto& [name, bytes] : files) {
    size_t index = 0;
    while (index < names.size() && names[index] != name) ++index;
    if (index == names.size() || bytes.size() >= (size_t{1} << 24)) {
      std::fprintf(stderr, "tierstore fuzz: %s cannot be encoded in a file set (unknown name or too large)\n",
                   name.c_str());
      continue;
    }
    out.push_back(static_cast<char>(index));
    for (int k = 0; k < 3; ++k) out.push_back(static_cast<char>((bytes.size() >> (8 * k)) & 0xff));
    out += bytes;
  }
  return out;
}

bool Input::Parse(const uint8_t* data, size_t size, Input* out) {
  if (size == 0) return false;
  out->flags = data[0];
  out->payload.assign(reinterpret_cast<const char*>(data + 1), size - 1);
  return true;
}

void RunSingleFileInput(const uint8_t* data, size_t size, const std::string& name) {
  Input in;
  if (!Input::Parse(data, size, &in)) return;
  StoreFiles files = SeedFiles(in.clean());
  files[name] = std::move(in.payload);
  uint32_t number = 0;
  const FileKind kind = KindOf(name, &number);
  if (in.clean() && kind == FileKind::kHotLog) {
    // "Closed cleanly with exactly this log": the manifest records its size,
    // so open compares it and replays the log as complete.
    std::string& m = files[tierstore::Manifest::kFileName];
    if (m.size() >= 32) {
      St<uint64_t>(&m, 24, files[name].size());
      RepairManifest(&m);
    }
  }
  if (in.repair()) {
    std::string& bytes = files[name];
    switch (kind) {
      case FileKind::kManifest: RepairManifest(&bytes); break;
      case FileKind::kHotLog: RepairHotLog(&bytes); break;
      case FileKind::kColdSegment: RepairColdSegment(&bytes, number); break;
      case FileKind::kIndex: RepairIndexFile(&bytes); break;
      case FileKind::kWarmBlocks:
      case FileKind::kWarmVar: RepairAll(&files); break;  // blocks checksums depend on var bytes
      case FileKind::kColdFilter: {
        auto seg = files.find(tierstore::cold::SegmentName(number));
        RepairColdFilter(&bytes, seg == files.end() ? nullptr : &seg->second);
        break;
      }
      case FileKind::kOther: break;
    }
  }
  ScratchStore scratch;
  scratch.WriteFiles(files);
  ExerciseStore(scratch.dir(), in.read_only());
}

}  // namespace tsfuzz

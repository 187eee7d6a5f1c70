// Tests of tierstore::ColdTier (native/core/cold_tier.h).
#include "../core/cold_tier.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "../core/crc32c.h"
#include "../core/file_util.h"
#include "testing.h"

using namespace tierstore;
namespace fs = std::filesystem;

namespace {

// An owned record from which RecordViews are made.
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

uint64_t g_rng = 0x9E3779B97F4A7C15ull;
uint64_t Rand() {
  g_rng ^= g_rng << 13;
  g_rng ^= g_rng >> 7;
  g_rng ^= g_rng << 17;
  return g_rng;
}

Rec MakeRec(uint64_t i, uint32_t dims, std::string content = "") {
  Rec r;
  r.id = "mem-" + std::to_string(i);
  r.content = content.empty() ? "content of record " + std::to_string(i) : content;
  r.metadata = "{\"i\":" + std::to_string(i) + "}";
  r.emb.resize(dims);
  double sq = 0;
  for (uint32_t d = 0; d < dims; ++d) {
    r.emb[d] = static_cast<float>(static_cast<int64_t>(Rand() % 2001) - 1000) / 997.0f;
    sq += double(r.emb[d]) * r.emb[d];
  }
  r.norm = static_cast<float>(std::sqrt(sq));
  r.confidence = static_cast<float>(i % 100) / 100.0f + 0.001f;
  r.activation = 0.3f + static_cast<float>(i % 7) / 11.0f;
  r.created_at = 1.7e12 + static_cast<double>(i);
  r.last_access_at = 1.8e12 + static_cast<double>(i) * 3;
  r.access_count = static_cast<double>(i % 13);
  r.seq = 1000 + i;
  return r;
}

bool SameBits(float a, float b) { return std::memcmp(&a, &b, sizeof a) == 0; }
bool SameBits(double a, double b) { return std::memcmp(&a, &b, sizeof a) == 0; }

// Every field bit-exact (embedding too).
bool SameRecord(const Rec& r, const RecordView& v, uint32_t dims) {
  return v.id == r.id && v.content == r.content && v.metadata == r.metadata && v.embedding != nullptr &&
         std::memcmp(v.embedding, r.emb.data(), dims * 4) == 0 && SameBits(v.norm, r.norm) &&
         SameBits(v.confidence, r.confidence) && SameBits(v.activation, r.activation) &&
         SameBits(v.created_at, r.created_at) && SameBits(v.last_access_at, r.last_access_at) &&
         SameBits(v.access_count, r.access_count) && v.seq == r.seq;
}

std::vector<RecordView> Views(const std::vector<Rec>& recs) {
  std::vector<RecordView> out;
  for (const auto& r : recs) out.push_back(r.View());
  return out;
}

Status AppendRecs(ColdTier* t, const std::vector<Rec>& recs, std::vector<ColdLoc>* locs, bool durable = false) {
  auto views = Views(recs);
  return t->Append(views.data(), views.size(), durable, locs);
}

std::vector<std::string> SegmentFiles(const std::string& dir) {
  std::vector<std::string> out;
  for (auto& e : fs::directory_iterator(dir)) {
    std::string n = e.path().filename().string();
    if (n.size() > 4 && n.substr(n.size() - 4) == ".seg") out.push_back(e.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<uint64_t> AllLiveKeys(ColdTier* t) {
  std::vector<uint64_t> keys;
  Status s = t->ForEachLive([&](ColdLoc, uint64_t key, const RecordView&) {
    keys.push_back(key);
    return Status::OK();
  });
  if (!s.ok()) tstest::Fail(__FILE__, __LINE__, s.ToString());
  return keys;
}

// Scans everything in pages of `page` rows through ScanFrom.
std::vector<uint64_t> ScanAll(ColdTier* t, size_t page, std::vector<std::string>* ids = nullptr) {
  std::vector<uint64_t> keys;
  uint64_t after = 0;
  for (;;) {
    size_t visited = 0;
    Status s = t->ScanFrom(after, page, false, [&](ColdLoc, uint64_t key, const RecordView& v) {
      keys.push_back(key);
      if (ids) ids->emplace_back(v.id);
      after = key;
      return Status::OK();
    }, &visited);
    if (!s.ok()) {
      tstest::Fail(__FILE__, __LINE__, s.ToString());
      break;
    }
    if (visited < page) break;
  }
  return keys;
}

void FlipByte(const std::string& path, uint64_t offset) {
  int fd = ::open(path.c_str(), O_RDWR);
  uint8_t b = 0;
  if (::pread(fd, &b, 1, static_cast<off_t>(offset)) != 1) tstest::Fail(__FILE__, __LINE__, "pread");
  b ^= 0x5A;
  if (::pwrite(fd, &b, 1, static_cast<off_t>(offset)) != 1) tstest::Fail(__FILE__, __LINE__, "pwrite");
  ::close(fd);
}

uint64_t ReadU64(const std::string& path, uint64_t offset) {
  int fd = ::open(path.c_str(), O_RDONLY);
  uint64_t v = 0;
  if (::pread(fd, &v, 8, static_cast<off_t>(offset)) != 8) tstest::Fail(__FILE__, __LINE__, "pread");
  ::close(fd);
  return v;
}

// Column directory entries sit at 64 + 24*c: {offset, size, crc}.
uint64_t ColumnOffset(const std::string& path, int col) { return ReadU64(path, 64 + 24 * col); }
constexpr int kColSeq = 1, kColEmbeddings = 8, kColContentBytes = 12;

bool MentionsFile(const Status& s, const std::string& path) {
  return s.message().find(fs::path(path).filename().string()) != std::string::npos;
}

}  // namespace

TEST(RoundTripEveryFieldBitExact) {
  std::string dir = tstest::TempDir("roundtrip");
  const uint32_t dims = 3;
  std::vector<Rec> recs;
  recs.push_back(MakeRec(0, dims));
  recs.back().content.clear();  // empty content
  recs.back().metadata = "{}";
  recs.push_back(MakeRec(1, dims, "héllo wörld — 日本語テキスト 🚀🧠 ∑"));
  recs.back().id = "ид-💾-" + std::string(1000, 'x');  // near the 1024-byte id limit
  recs.push_back(MakeRec(2, dims, std::string("nul\0in\0the\0middle\0", 18)));
  recs.back().metadata = std::string("{\"k\":\"a\0b\"}", 11);
  {
    std::string big(1 << 20, '\0');
    for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(Rand());
    recs.push_back(MakeRec(3, dims, big));
  }
  {
    std::string huge(16 << 20, 'z');
    for (size_t i = 0; i < huge.size(); i += 4093) huge[i] = static_cast<char>(Rand());
    recs.push_back(MakeRec(4, dims, huge));
  }
  recs.push_back(MakeRec(5, dims));
  recs.back().emb = {-0.0f, 1e-38f, 3.4e38f};  // signed zero, denormal-ish, extreme
  recs.back().confidence = 0.1f;
  recs.back().activation = 1.0f;
  recs.back().created_at = 8.64e15;
  recs.back().access_count = 9007199254740991.0;
  recs.back().seq = ~uint64_t{0} - 1;
  recs.back().metadata = "";

  std::vector<ColdLoc> locs;
  {
    std::unique_ptr<ColdTier> t;
    ASSERT_OK(ColdTier::Open(dir, dims, false, &t));
    ASSERT_OK(AppendRecs(t.get(), recs, &locs, true));
    ASSERT_TRUE(locs.size() == recs.size());
    for (size_t i = 0; i < recs.size(); ++i) {
      RecordView v;
      ASSERT_OK(t->Read(locs[i], true, &v));
      CHECK(SameRecord(recs[i], v, dims));
    }
  }
  // After reopen, through Read, ForEachLive and ScanFrom.
  std::unique_ptr<ColdTier> t;
  ASSERT_OK(ColdTier::Open(dir, dims, false, &t));
  for (size_t i = 0; i < recs.size(); ++i) {
    RecordView v;
    ASSERT_OK(t->Read(locs[i], true, &v));
    CHECK(SameRecord(recs[i], v, dims));
  }
  size_t i = 0;
  CHECK_OK(t->ForEachLive([&](ColdLoc loc, uint64_t, const RecordView& v) {
    CHECK(loc == locs[i]);
    CHECK(i < recs.size() && SameRecord(recs[i], v, dims));
    ++i;
    return Status::OK();
  }));
  CHECK_EQ(i, recs.size());
  i = 0;
  size_t visited = 0;
  CHECK_OK(t->ScanFrom(0, 100, false, [&](ColdLoc, uint64_t, const RecordView& v) {
    CHECK(i < recs.size() && SameRecord(recs[i], v, dims));
    ++i;
    return Status::OK();
  }, &visited));
  CHECK_EQ(visited, recs.size());
  ColdStats st = t->Stats();
  CHECK_EQ(st.live_records, recs.size());
  CHECK_EQ(st.segments, 1u);
  CHECK(st.file_bytes > (17u << 20));
  t.reset();
  fs::remove_all(dir);  // 17 MiB
}

TEST(Dims768EmbeddingRowsAligned) {
  for (uint32_t dims : {768u, 16u, 3u, 5u}) {
    std::string dir = tstest::TempDir("dims" + std::to_string(dims));
    std::vector<Rec> recs;
    for (int i = 0; i < 37; ++i) recs.push_back(MakeRec(i, dims));
    std::vector<ColdLoc> locs;
    std::unique_ptr<ColdTier> t;
    ASSERT_OK(ColdTier::Open(dir, dims, false, &t));
    ASSERT_OK(AppendRecs(t.get(), recs, &locs));
    t.reset();
    ASSERT_OK(ColdTier::Open(dir, dims, false, &t));
    for (size_t i = 0; i < recs.size(); ++i) {
      RecordView v;
      ASSERT_OK(t->Read(locs[i], true, &v));
      CHECK(SameRecord(recs[i], v, dims));
      auto addr = reinterpret_cast<uintptr_t>(v.embedding);
      if (dims * 4 % 64 == 0) CHECK_EQ(addr % 64, 0u);
      if (i == 0) CHECK_EQ(addr % 64, 0u);  // the matrix itself is always aligned
      // Contiguous row-major matrix.
      if (i > 0) {
        RecordView prev;
        ASSERT_OK(t->Read(locs[i - 1], false, &prev));
        CHECK(v.embedding == prev.embedding + dims);
      }
    }
  }
}

TEST(WrongDimensionsIsCorruptionNamingFile) {
  std::string dir = tstest::TempDir("wrongdims");
  std::vector<ColdLoc> locs;
  {
    std::unique_ptr<ColdTier> t;
    ASSERT_OK(ColdTier::Open(dir, 4, false, &t));
    ASSERT_OK(AppendRecs(t.get(), {MakeRec(1, 4)}, &locs));
  }
  std::unique_ptr<ColdTier> t;
  Status s = ColdTier::Open(dir, 8, false, &t);
  CHECK(s.code() == StatusCode::kCorruption);
  CHECK(MentionsFile(s, SegmentFiles(dir)[0]));
  CHECK(ColdTier::Open(dir, 0, false, &t).code() == StatusCode::kInvalidArgument);
}

TEST(KeysAscendingAcrossAppendsAndReopen) {
  std::string dir = tstest::TempDir("keys");
  const uint32_t dims = 4;
  std::vector<uint64_t> keys;
  {
    std::unique_ptr<ColdTier> t;
    ASSERT_OK(ColdTier::Open(dir, dims, false, &t));
    std::vector<ColdLoc> none;
    ASSERT_OK(t->Append(nullptr, 0, false, &none));  // empty append: no segment
    CHECK(none.empty());
    CHECK_EQ(t->Stats().segments, 0u);
    CHECK(SegmentFiles(dir).empty());
    for (int batch = 0; batch < 4; ++batch) {
      std::vector<Rec> recs;
      for (int i = 0; i < 5 + batch; ++i) recs.push_back(MakeRec(batch * 100 + i, dims));
      std::vector<ColdLoc> locs;
      ASSERT_OK(AppendRecs(t.get(), recs, &locs));
      for (size_t i = 0; i < locs.size(); ++i) {
        CHECK_EQ(locs[i].row, i);
        keys.push_back(t->KeyOf(locs[i]));
      }
    }
    CHECK_EQ(t->Stats().segments, 4u);
    CHECK_EQ(SegmentFiles(dir).size(), 4u);
  }
  for (size_t i = 1; i < keys.size(); ++i) CHECK(keys[i] > keys[i - 1]);
  CHECK(keys[0] >= 1);
  std::unique_ptr<ColdTier> t;
  ASSERT_OK(ColdTier::Open(dir, dims, false, &t));
  CHECK(AllLiveKeys(t.get()) == keys);
  std::vector<ColdLoc> locs;
  ASSERT_OK(AppendRecs(t.get(), {MakeRec(9999, dims)}, &locs));
  CHECK(t->KeyOf(locs[0]) > keys.back());
  // File names: cold-<8 hex>.seg, ids 1 + max.
  auto files = SegmentFiles(dir);
  CHECK_EQ(files.size(), 5u);
  CHECK_EQ(fs::path(files.back()).filename().string(), std::string("cold-00000005.seg"));
  CHECK(locs[0].segment == 5u);
  CHECK_EQ(t->KeyOf(ColdLoc{77, 0}), 0u);
}

TEST(DeleteIsLiveAndReopenKeepsDeletions) {
  std::string dir = tstest::TempDir("delete");
  const uint32_t dims = 4;
  std::vector<Rec> recs;
  for (int i = 0; i < 150; ++i) recs.push_back(MakeRec(i, dims));
  std::vector<ColdLoc> locs;
  std::set<size_t> deleted = {0, 1, 63, 64, 65, 127, 128, 149};
  {
    std::unique_ptr<ColdTier> t;
    ASSERT_OK(ColdTier::Open(dir, dims, false, &t));
    ASSERT_OK(AppendRecs(t.get(), recs, &locs));
    for (size_t d : deleted) ASSERT_OK(t->Delete(locs[d]));
    CHECK_OK(t->Delete(locs[0]));  // idempotent
    CHECK(t->Delete(ColdLoc{locs[0].segment, 150}).code() == StatusCode::kInvalidArgument);
    CHECK(t->Delete(ColdLoc{42, 0}).code() == StatusCode::kInvalidArgument);
    for (size_t i = 0; i < recs.size(); ++i) CHECK_EQ(t->IsLive(locs[i]), deleted.count(i) == 0);
    CHECK_EQ(t->Stats().live_records, 150u - deleted.size());
    CHECK_EQ(t->Stats().deleted_rows, deleted.size());
    CHECK(!t->IsLive(ColdLoc{locs[0].segment, 1000}));
  }
  std::unique_ptr<ColdTier> t;
  ASSERT_OK(ColdTier::Open(dir, dims, false, &t));
  for (size_t i = 0; i < recs.size(); ++i) CHECK_EQ(t->IsLive(locs[i]), deleted.count(i) == 0);
  CHECK_EQ(t->Stats().live_records, 150u - deleted.size());
  size_t n = 0;
  CHECK_OK(t->ForEachLive([&](ColdLoc loc, uint64_t, const RecordView& v) {
    CHECK(deleted.count(loc.row) == 0);
    CHECK(v.id == recs[loc.row].id);
    ++n;
    return Status::OK();
  }));
  CHECK_EQ(n, 150u - deleted.size());
  // A deleted row can still be read by location (the bytes are there).
  RecordView v;
  CHECK_OK(t->Read(locs[64], true, &v));
  CHECK(v.id == recs[64].id);
}

TEST(UpdateAccessPersistsAcrossReopen) {
  std::string dir = tstest::TempDir("access");
  const uint32_t dims = 4;
  std::vector<Rec> recs;
  for (int i = 0; i < 10; ++i) recs.push_back(MakeRec(i, dims));
  std::vector<ColdLoc> locs;
  {
    std::unique_ptr<ColdTier> t;
    ASSERT_OK(ColdTier::Open(dir, dims, false, &t));
    ASSERT_OK(AppendRecs(t.get(), recs, &locs));
    t->UpdateAccess(locs[3], 1.9e12 + 0.5, 42);
    t->UpdateAccess(ColdLoc{99, 0}, 1, 1);  // ignored
    RecordView v;
    ASSERT_OK(t->Read(locs[3], true, &v));  // not covered by data_crc
    CHECK(SameBits(v.last_access_at, 1.9e12 + 0.5));
    CHECK(SameBits(v.access_count, 42.0));
    ASSERT_OK(t->Sync());
  }
  {
    std::unique_ptr<ColdTier> t;
    ASSERT_OK(ColdTier::Open(dir, dims, false, &t));
    RecordView v;
    ASSERT_OK(t->Read(locs[3], true, &v));
    CHECK(SameBits(v.last_access_at, 1.9e12 + 0.5));
    CHECK(SameBits(v.access_count, 42.0));
    ASSERT_OK(t->Read(locs[4], true, &v));
    CHECK(SameRecord(recs[4], v, dims));
    // Without Sync: the mapping is MAP_SHARED, so the page cache has it.
    t->UpdateAccess(locs[5], 7, 8);
  }
  std::unique_ptr<ColdTier> t;
  ASSERT_OK(ColdTier::Open(dir, dims, false, &t));
  RecordView v;
  ASSERT_OK(t->Read(locs[5], true, &v));
  CHECK(SameBits(v.last_access_at, 7.0));
  CHECK(SameBits(v.access_count, 8.0));
  // Access statistics survive a merge too.
  std::map<uint64_t, ColdLoc> moved;
  ASSERT_OK(AppendRecs(t.get(), {MakeRec(50, dims)}, nullptr));
  ASSERT_OK(t->MergeIfNeeded(1, false, [&](ColdLoc from, ColdLoc to) {
    if (from == locs[5]) moved[5] = to;
  }));
  ASSERT_TRUE(moved.count(5) == 1);
  ASSERT_OK(t->Read(moved[5], true, &v));
  CHECK(SameBits(v.last_access_at, 7.0));
  CHECK(SameBits(v.access_count, 8.0));
}

TEST(ScanFromResumesAcrossMerges) {
  std::string dir = tstest::TempDir("scan");
  const uint32_t dims = 8;
  std::unique_ptr<ColdTier> t;
  ASSERT_OK(ColdTier::Open(dir, dims, false, &t));
  std::vector<ColdLoc> all_locs;
  std::vector<std::string> all_ids;
  for (int b = 0; b < 6; ++b) {
    std::vector<Rec> recs;
    for (int i = 0; i < 10 + b * 3; ++i) recs.push_back(MakeRec(b * 1000 + i, dims));
    std::vector<ColdLoc> locs;
    ASSERT_OK(AppendRecs(t.get(), recs, &locs));
    for (size_t i = 0; i < recs.size(); ++i) {
      all_locs.push_back(locs[i]);
      all_ids.push_back(recs[i].id);
    }
  }
  // Delete every 4th row; those must never be yielded.
  std::set<std::string> expected;
  for (size_t i = 0; i < all_locs.size(); ++i) {
    if (i % 4 == 0) ASSERT_OK(t->Delete(all_locs[i]));
    else expected.insert(all_ids[i]);
  }
  std::vector<uint64_t> keys;
  std::vector<std::string> ids;
  uint64_t after = 0;
  int round = 0;
  for (;;) {
    size_t visited = 0;
    ASSERT_OK(t->ScanFrom(after, 7, false, [&](ColdLoc loc, uint64_t key, const RecordView& v) {
      CHECK(t.get() != nullptr);
      keys.push_back(key);
      ids.emplace_back(v.id);
      after = key;
      return Status::OK();
    }, &visited));
    if (visited < 7) break;
    // Merge between pages: keys are preserved, so the cursor stays valid.
    if (round == 1) ASSERT_OK(t->MergeIfNeeded(3, false, nullptr));
    if (round == 3) {
      uint64_t reclaimed = 0;
      ASSERT_OK(t->Compact(false, nullptr, &reclaimed));
      CHECK_EQ(t->Stats().segments, 1u);
    }
    ++round;
  }
  CHECK(round > 4);
  for (size_t i = 1; i < keys.size(); ++i) CHECK(keys[i] > keys[i - 1]);
  CHECK_EQ(ids.size(), expected.size());
  CHECK(std::set<std::string>(ids.begin(), ids.end()) == expected);
  // ScanFrom with max 0, or past the end.
  size_t visited = 99;
  ASSERT_OK(t->ScanFrom(0, 0, false, [](ColdLoc, uint64_t, const RecordView&) { return Status::OK(); }, &visited));
  CHECK_EQ(visited, 0u);
  ASSERT_OK(t->ScanFrom(keys.back(), 10, false, [](ColdLoc, uint64_t, const RecordView&) { return Status::OK(); }, &visited));
  CHECK_EQ(visited, 0u);
  // A callback error stops the scan and is returned.
  visited = 0;
  Status s = t->ScanFrom(0, 100, false, [](ColdLoc, uint64_t key, const RecordView&) {
    return key > 20 ? Status::IoError("stop") : Status::OK();
  }, &visited);
  CHECK(s.code() == StatusCode::kIoError);
  // Starting from a key in the middle (deleted or not) resumes right after it.
  for (uint64_t from : {uint64_t{1}, uint64_t{5}, uint64_t{30}, keys[keys.size() / 2]}) {
    std::vector<uint64_t> tail;
    ASSERT_OK(t->ScanFrom(from, 1000, false, [&](ColdLoc, uint64_t key, const RecordView&) {
      tail.push_back(key);
      return Status::OK();
    }, &visited));
    std::vector<uint64_t> want;
    for (uint64_t k : keys)
      if (k > from) want.push_back(k);
    CHECK(tail == want);
  }
}

TEST(MergeIfNeededRelocatesEverySurvivor) {
  std::string dir = tstest::TempDir("merge");
  const uint32_t dims = 16;
  std::unique_ptr<ColdTier> t;
  ASSERT_OK(ColdTier::Open(dir, dims, false, &t));
  std::map<std::string, Rec> by_id;
  std::map<std::string, ColdLoc> index;  // the caller's index, fixed by relocate
  std::map<std::string, uint64_t> key_of;
  const int sizes[] = {50, 3, 4, 80, 2, 2, 30, 5, 1, 60};
  int next = 0;
  for (int sz : sizes) {
    std::vector<Rec> recs;
    for (int i = 0; i < sz; ++i) recs.push_back(MakeRec(next++, dims));
    std::vector<ColdLoc> locs;
    ASSERT_OK(AppendRecs(t.get(), recs, &locs));
    for (size_t i = 0; i < recs.size(); ++i) {
      by_id[recs[i].id] = recs[i];
      index[recs[i].id] = locs[i];
      key_of[recs[i].id] = t->KeyOf(locs[i]);
    }
  }
  // Delete some rows, including every row of one segment.
  std::vector<std::string> gone;
  for (auto& [id, loc] : index)
    if (loc.segment == 5 || (std::hash<std::string>()(id) % 5 == 0)) gone.push_back(id);
  for (auto& id : gone) {
    ASSERT_OK(t->Delete(index[id]));
    index.erase(id);
  }
  std::map<std::pair<uint32_t, uint32_t>, std::string> loc_to_id;
  for (auto& [id, loc] : index) loc_to_id[{loc.segment, loc.row}] = id;

  size_t relocations = 0;
  std::set<std::pair<uint32_t, uint32_t>> targets;
  auto relocate = [&](ColdLoc from, ColdLoc to) {
    ++relocations;
    auto it = loc_to_id.find({from.segment, from.row});
    if (it == loc_to_id.end()) {
      tstest::Fail(__FILE__, __LINE__, "relocation of an unknown or deleted row");
      return;
    }
    CHECK(targets.insert({to.segment, to.row}).second);  // targets distinct
    index[it->second] = to;
  };
  ASSERT_OK(t->MergeIfNeeded(20, false, relocate));  // nothing to do
  CHECK_EQ(relocations, 0u);
  CHECK_EQ(t->Stats().segments, 10u);
  ASSERT_OK(t->MergeIfNeeded(4, true, relocate));
  CHECK(t->Stats().segments <= 4u);
  CHECK_EQ(SegmentFiles(dir).size(), t->Stats().segments);
  CHECK_EQ(t->Stats().deleted_rows + t->Stats().live_records >= index.size(), true);
  // Every surviving row of the merged segments was relocated; every index
  // entry now reads back the right record with its key preserved.
  for (auto& [id, loc] : index) {
    RecordView v;
    ASSERT_OK(t->Read(loc, true, &v));
    CHECK(SameRecord(by_id[id], v, dims));
    CHECK(t->IsLive(loc));
    CHECK_EQ(t->KeyOf(loc), key_of[id]);
  }
  CHECK_EQ(t->Stats().live_records, index.size());
  // The largest segment (80 rows, id 4) is the last to be merged.
  CHECK(relocations < index.size());
  // Reopen sees the same.
  t.reset();
  ASSERT_OK(ColdTier::Open(dir, dims, false, &t));
  CHECK_EQ(t->Stats().live_records, index.size());
  for (auto& [id, loc] : index) {
    RecordView v;
    ASSERT_OK(t->Read(loc, true, &v));
    CHECK(v.id == id);
  }
  // Merge down to one: every live row relocated exactly once.
  loc_to_id.clear();
  for (auto& [id, loc] : index) loc_to_id[{loc.segment, loc.row}] = id;
  relocations = 0;
  targets.clear();
  ASSERT_OK(t->MergeIfNeeded(1, false, relocate));
  CHECK_EQ(t->Stats().segments, 1u);
  CHECK_EQ(relocations, index.size());
  CHECK_EQ(t->Stats().deleted_rows, 0u);
  std::vector<uint64_t> keys = AllLiveKeys(t.get());
  std::vector<uint64_t> want;
  for (auto& [id, k] : key_of)
    if (index.count(id)) want.push_back(k);
  std::sort(want.begin(), want.end());
  CHECK(keys == want);
  for (auto& [id, loc] : index) {
    RecordView v;
    ASSERT_OK(t->Read(loc, true, &v));
    CHECK(SameRecord(by_id[id], v, dims));
  }
}

TEST(CompactReclaimsAndRelocates) {
  std::string dir = tstest::TempDir("compact");
  const uint32_t dims = 4;
  std::unique_ptr<ColdTier> t;
  ASSERT_OK(ColdTier::Open(dir, dims, false, &t));
  uint64_t reclaimed = 123;
  ASSERT_OK(t->Compact(false, nullptr, &reclaimed));  // empty tier
  CHECK_EQ(reclaimed, 0u);
  std::vector<ColdLoc> locs;
  std::vector<Rec> recs;
  for (int b = 0; b < 3; ++b) {
    std::vector<Rec> batch;
    for (int i = 0; i < 40; ++i) batch.push_back(MakeRec(b * 40 + i, dims, std::string(500, char('a' + b))));
    std::vector<ColdLoc> l;
    ASSERT_OK(AppendRecs(t.get(), batch, &l));
    recs.insert(recs.end(), batch.begin(), batch.end());
    locs.insert(locs.end(), l.begin(), l.end());
  }
  uint64_t max_key = t->KeyOf(locs.back());
  for (size_t i = 0; i < locs.size(); i += 2) ASSERT_OK(t->Delete(locs[i]));
  uint64_t bytes_before = t->Stats().file_bytes;
  std::map<std::pair<uint32_t, uint32_t>, ColdLoc> moves;
  ASSERT_OK(t->Compact(true, [&](ColdLoc from, ColdLoc to) { moves[{from.segment, from.row}] = to; }, &reclaimed));
  CHECK_EQ(t->Stats().segments, 1u);
  CHECK_EQ(SegmentFiles(dir).size(), 1u);
  CHECK(reclaimed > 0);
  CHECK_EQ(reclaimed, bytes_before - t->Stats().file_bytes);
  CHECK_EQ(moves.size(), 60u);
  for (size_t i = 1; i < locs.size(); i += 2) {
    auto it = moves.find({locs[i].segment, locs[i].row});
    ASSERT_TRUE(it != moves.end());
    RecordView v;
    ASSERT_OK(t->Read(it->second, true, &v));
    CHECK(SameRecord(recs[i], v, dims));
    locs[i] = it->second;
  }
  // Compacting a clean single segment does nothing.
  moves.clear();
  ASSERT_OK(t->Compact(false, [&](ColdLoc from, ColdLoc to) { moves[{from.segment, from.row}] = to; }, &reclaimed));
  CHECK_EQ(reclaimed, 0u);
  CHECK(moves.empty());
  // Deleting everything and compacting leaves no segment at all.
  for (size_t i = 1; i < locs.size(); i += 2) ASSERT_OK(t->Delete(locs[i]));
  ASSERT_OK(t->Compact(false, nullptr, &reclaimed));
  CHECK_EQ(t->Stats().segments, 0u);
  CHECK(SegmentFiles(dir).empty());
  CHECK(reclaimed > 0);
  uint64_t n = 0;
  CHECK(!t->NthLiveKey(0, &n));
  // Keys keep growing within the process even with no segment left.
  std::vector<ColdLoc> l;
  ASSERT_OK(AppendRecs(t.get(), {MakeRec(500, dims)}, &l));
  CHECK(t->KeyOf(l[0]) > max_key);
}

TEST(NthLiveKeyMatchesScan) {
  std::string dir = tstest::TempDir("nth");
  const uint32_t dims = 4;
  std::unique_ptr<ColdTier> t;
  ASSERT_OK(ColdTier::Open(dir, dims, false, &t));
  std::vector<ColdLoc> all;
  for (int b = 0; b < 4; ++b) {
    std::vector<Rec> recs;
    for (int i = 0; i < 70 + b * 33; ++i) recs.push_back(MakeRec(b * 1000 + i, dims));
    std::vector<ColdLoc> locs;
    ASSERT_OK(AppendRecs(t.get(), recs, &locs));
    all.insert(all.end(), locs.begin(), locs.end());
  }
  for (size_t i = 0; i < all.size(); ++i)
    if (Rand() % 3 == 0 || (i >= 70 && i < 173)) ASSERT_OK(t->Delete(all[i]));  // one segment entirely
  auto check = [&]() {
    std::vector<uint64_t> keys = AllLiveKeys(t.get());
    CHECK_EQ(keys.size(), t->Stats().live_records);
    for (size_t n = 0; n < keys.size(); ++n) {
      uint64_t k = 0;
      CHECK(t->NthLiveKey(n, &k));
      CHECK_EQ(k, keys[n]);
    }
    uint64_t k = 0;
    CHECK(!t->NthLiveKey(keys.size(), &k));
    CHECK(!t->NthLiveKey(~uint64_t{0}, &k));
  };
  check();
  ASSERT_OK(t->MergeIfNeeded(2, false, nullptr));
  check();
  t.reset();
  ASSERT_OK(ColdTier::Open(dir, dims, true, &t));
  check();
}

TEST(ReadOnlyMode) {
  std::string dir = tstest::TempDir("readonly");
  const uint32_t dims = 4;
  std::vector<Rec> recs;
  for (int i = 0; i < 5; ++i) recs.push_back(MakeRec(i, dims));
  std::vector<ColdLoc> locs;
  {
    std::unique_ptr<ColdTier> t;
    ASSERT_OK(ColdTier::Open(dir, dims, false, &t));
    ASSERT_OK(AppendRecs(t.get(), recs, &locs));
    ASSERT_OK(AppendRecs(t.get(), recs, nullptr));
  }
  std::map<std::string, std::string> segments_before;
  for (const std::string& f : SegmentFiles(dir)) CHECK_OK(ReadWholeFile(f, &segments_before[f]));
  std::string tmp = JoinPath(dir, "cold-00000009.seg.tmp");
  ASSERT_OK(AtomicWriteFile(JoinPath(dir, "cold-00000009.seg"), "x"));  // junk, then renamed below
  fs::rename(JoinPath(dir, "cold-00000009.seg"), tmp);
  std::unique_ptr<ColdTier> t;
  ASSERT_OK(ColdTier::Open(dir, dims, true, &t));
  CHECK(PathExists(tmp));  // read-only never deletes
  CHECK_OK(t->FinishOpen());
  CHECK(PathExists(tmp));
  CHECK(t->Append(Views(recs).data(), recs.size(), false, nullptr).code() == StatusCode::kReadOnly);
  CHECK(t->Delete(locs[0]).code() == StatusCode::kReadOnly);
  CHECK(t->MergeIfNeeded(1, false, nullptr).code() == StatusCode::kReadOnly);
  uint64_t r = 0;
  CHECK(t->Compact(false, nullptr, &r).code() == StatusCode::kReadOnly);
  t->UpdateAccess(locs[1], 5, 6);  // kept in this process's private copy, never in the file
  RecordView v;
  ASSERT_OK(t->Read(locs[1], true, &v));
  CHECK_EQ(v.last_access_at, 5.0);
  CHECK_EQ(v.access_count, 6.0);
  v.last_access_at = recs[1].last_access_at;
  v.access_count = recs[1].access_count;
  CHECK(SameRecord(recs[1], v, dims));
  CHECK(t->IsLive(locs[0]));
  CHECK_OK(t->Sync());
  CHECK_EQ(AllLiveKeys(t.get()).size(), 10u);
  CHECK_EQ(ScanAll(t.get(), 3).size(), 10u);
  // Two read-only opens at once are fine.
  std::unique_ptr<ColdTier> t2;
  ASSERT_OK(ColdTier::Open(dir, dims, true, &t2));
  CHECK_EQ(t2->Stats().live_records, 10u);
  ASSERT_OK(t2->Read(locs[1], true, &v));
  CHECK(SameRecord(recs[1], v, dims));  // its own copy: the first reader's statistics are not here
  t.reset();
  t2.reset();
  for (const auto& [f, bytes] : segments_before) {
    std::string after;
    CHECK_OK(ReadWholeFile(f, &after));
    CHECK(after == bytes);  // nothing reached the files
  }
}

TEST(LeftoverTmpIsRemoved) {
  std::string dir = tstest::TempDir("tmp");
  const uint32_t dims = 4;
  {
    std::unique_ptr<ColdTier> t;
    ASSERT_OK(ColdTier::Open(dir, dims, false, &t));
    ASSERT_OK(AppendRecs(t.get(), {MakeRec(1, dims)}, nullptr));
  }
  // An interrupted seal: half a segment in a .tmp.
  std::string seg = SegmentFiles(dir)[0];
  std::string tmp = JoinPath(dir, "cold-00000002.seg.tmp");
  fs::copy_file(seg, tmp);
  fs::resize_file(tmp, 700);
  std::string other = JoinPath(dir, "MANIFEST.tmp");  // not ours: left alone
  { std::FILE* f = std::fopen(other.c_str(), "w"); std::fclose(f); }
  std::unique_ptr<ColdTier> t;
  ASSERT_OK(ColdTier::Open(dir, dims, false, &t));
  CHECK(PathExists(tmp));  // opening changes nothing ...
  ASSERT_OK(t->FinishOpen());
  CHECK(!PathExists(tmp));  // ... FinishOpen does
  CHECK(PathExists(other));
  CHECK_EQ(t->Stats().live_records, 1u);
  CHECK_OK(t->FinishOpen());  // twice is harmless
  // A missing directory is an empty tier; Append creates it.
  std::string missing = JoinPath(dir, "sub/cold");
  std::unique_ptr<ColdTier> t2;
  ASSERT_OK(ColdTier::Open(missing, dims, false, &t2));
  CHECK(!PathExists(missing));
  ASSERT_OK(t2->FinishOpen());
  CHECK(!PathExists(missing));
  CHECK_EQ(t2->Stats().segments, 0u);
  ASSERT_OK(AppendRecs(t2.get(), {MakeRec(1, dims)}, nullptr));
  CHECK_EQ(SegmentFiles(missing).size(), 1u);
}

namespace {
// Builds a store with one small segment; returns its path.
std::string MakeOneSegment(const std::string& dir, uint32_t dims, std::vector<ColdLoc>* locs, int n = 20) {
  std::unique_ptr<ColdTier> t;
  Status s = ColdTier::Open(dir, dims, false, &t);
  if (!s.ok()) tstest::Fail(__FILE__, __LINE__, s.ToString());
  std::vector<Rec> recs;
  for (int i = 0; i < n; ++i) recs.push_back(MakeRec(i, dims, "body " + std::to_string(i) + " ünïcødé"));
  s = AppendRecs(t.get(), recs, locs);
  if (!s.ok()) tstest::Fail(__FILE__, __LINE__, s.ToString());
  return SegmentFiles(dir).at(0);
}

void ExpectCorruptAtOpen(const std::string& dir, uint32_t dims, const std::string& seg, int line) {
  std::unique_ptr<ColdTier> t;
  Status s = ColdTier::Open(dir, dims, false, &t);
  if (s.code() != StatusCode::kCorruption || !MentionsFile(s, seg))
    tstest::Fail(__FILE__, line, "expected CORRUPTION naming " + seg + ", got " + s.ToString());
}
}  // namespace

TEST(DamageTruncatedSegment) {
  for (uint64_t keep : {0ull, 100ull, 511ull, 512ull, 1000ull}) {
    std::string dir = tstest::TempDir("trunc");
    std::vector<ColdLoc> locs;
    std::string seg = MakeOneSegment(dir, 4, &locs);
    fs::resize_file(seg, keep);
    ExpectCorruptAtOpen(dir, 4, seg, __LINE__);
  }
  std::string dir = tstest::TempDir("trunc1");
  std::vector<ColdLoc> locs;
  std::string seg = MakeOneSegment(dir, 4, &locs);
  fs::resize_file(seg, fs::file_size(seg) - 1);
  ExpectCorruptAtOpen(dir, 4, seg, __LINE__);
}

TEST(DamageGarbageAppended) {
  std::string dir = tstest::TempDir("garbage");
  std::vector<ColdLoc> locs;
  std::string seg = MakeOneSegment(dir, 4, &locs);
  std::FILE* f = std::fopen(seg.c_str(), "ab");
  std::fputs("garbage!", f);
  std::fclose(f);
  ExpectCorruptAtOpen(dir, 4, seg, __LINE__);
}

TEST(DamageFlippedHeaderByte) {
  for (uint64_t off : {0ull, 9ull, 12ull, 17ull, 25ull, 40ull, 64ull, 64ull + 24 * 3 + 2, 300ull, 497ull}) {
    std::string dir = tstest::TempDir("hdr");
    std::vector<ColdLoc> locs;
    std::string seg = MakeOneSegment(dir, 4, &locs);
    FlipByte(seg, off);
    ExpectCorruptAtOpen(dir, 4, seg, __LINE__);
  }
}

TEST(DamageFlippedSeqColumnByte) {
  std::string dir = tstest::TempDir("seqcol");
  std::vector<ColdLoc> locs;
  std::string seg = MakeOneSegment(dir, 4, &locs);
  FlipByte(seg, ColumnOffset(seg, kColSeq) + 8 * 5 + 1);
  ExpectCorruptAtOpen(dir, 4, seg, __LINE__);
}

TEST(DamageFlippedContentByteFailsRead) {
  std::string dir = tstest::TempDir("content");
  std::vector<ColdLoc> locs;
  std::string seg = MakeOneSegment(dir, 4, &locs);
  // Row 0's content starts at the start of the content bytes column.
  FlipByte(seg, ColumnOffset(seg, kColContentBytes) + 2);
  std::unique_ptr<ColdTier> t;
  ASSERT_OK(ColdTier::Open(dir, 4, false, &t));  // bytes are verified per row
  RecordView v;
  Status s = t->Read(locs[0], false, &v);
  CHECK(s.code() == StatusCode::kCorruption);
  CHECK(MentionsFile(s, seg));
  CHECK_OK(t->Read(locs[1], true, &v));
  // Iteration reports it too, rather than handing out altered content.
  size_t visited = 0;
  s = t->ScanFrom(0, 100, false, [](ColdLoc, uint64_t, const RecordView&) { return Status::OK(); }, &visited);
  CHECK(s.code() == StatusCode::kCorruption);
  // A merge keeps the row's checksum: the damage stays detectable.
  ASSERT_OK(AppendRecs(t.get(), {MakeRec(77, 4)}, nullptr));
  ColdLoc moved{};
  ASSERT_OK(t->MergeIfNeeded(1, false, [&](ColdLoc from, ColdLoc to) {
    if (from == locs[0]) moved = to;
  }));
  CHECK(t->Read(moved, false, &v).code() == StatusCode::kCorruption);
}

TEST(DamageFlippedEmbeddingByte) {
  std::string dir = tstest::TempDir("emb");
  std::vector<ColdLoc> locs;
  std::string seg = MakeOneSegment(dir, 4, &locs);
  FlipByte(seg, ColumnOffset(seg, kColEmbeddings) + 16 * 3 + 1);  // row 3
  std::unique_ptr<ColdTier> t;
  ASSERT_OK(ColdTier::Open(dir, 4, false, &t));
  RecordView v;
  CHECK(t->Read(locs[3], true, &v).code() == StatusCode::kCorruption);
  CHECK_OK(t->Read(locs[3], false, &v));
  // Scans check embeddings only when asked to (they are handed out then).
  size_t visited = 0;
  auto ok = [](ColdLoc, uint64_t, const RecordView&) { return Status::OK(); };
  CHECK_OK(t->ScanFrom(0, 100, false, ok, &visited));
  CHECK_EQ(visited, locs.size());
  Status s = t->ScanFrom(0, 100, true, ok, &visited);
  CHECK(s.code() == StatusCode::kCorruption);
  CHECK(MentionsFile(s, seg));
  CHECK_EQ(visited, 3u);  // rows 0..2 were fine
}

TEST(ScanSegmentsExposesAlignedColumns) {
  std::string dir = tstest::TempDir("segview");
  const uint32_t dims = 32;
  std::unique_ptr<ColdTier> t;
  ASSERT_OK(ColdTier::Open(dir, dims, false, &t));
  std::map<std::pair<uint32_t, uint32_t>, Rec> at;
  std::vector<ColdLoc> all;
  for (int b = 0; b < 3; ++b) {
    std::vector<Rec> recs;
    for (int i = 0; i < 70 + b; ++i) recs.push_back(MakeRec(b * 100 + i, dims));
    std::vector<ColdLoc> locs;
    ASSERT_OK(AppendRecs(t.get(), recs, &locs));
    for (size_t i = 0; i < locs.size(); ++i) at[{locs[i].segment, locs[i].row}] = recs[i];
    all.insert(all.end(), locs.begin(), locs.end());
  }
  for (size_t i = 0; i < all.size(); i += 5) ASSERT_OK(t->Delete(all[i]));
  uint64_t live = 0, segments = 0;
  ASSERT_OK(t->ScanSegments([&](const ColdSegmentView& seg) {
    ++segments;
    CHECK_EQ(reinterpret_cast<uintptr_t>(seg.embeddings) % 64, 0u);
    CHECK_EQ(reinterpret_cast<uintptr_t>(seg.norms) % 64, 0u);
    CHECK_EQ(reinterpret_cast<uintptr_t>(seg.confidence) % 64, 0u);
    CHECK_EQ(reinterpret_cast<uintptr_t>(seg.deleted) % 64, 0u);
    for (uint64_t r = 0; r < seg.rows; ++r) {
      ColdLoc loc{seg.segment, static_cast<uint32_t>(r)};
      bool is_live = ((seg.deleted[r / 64] >> (r % 64)) & 1) == 0;
      auto pos = std::find(all.begin(), all.end(), loc);
      CHECK(pos != all.end());
      if (pos == all.end()) continue;
      CHECK_EQ(is_live, (pos - all.begin()) % 5 != 0);  // every 5th was deleted
      const Rec& rec = at[{loc.segment, loc.row}];
      CHECK(std::memcmp(seg.embeddings + r * dims, rec.emb.data(), dims * 4) == 0);
      CHECK(SameBits(seg.norms[r], rec.norm));
      CHECK(SameBits(seg.confidence[r], rec.confidence));
      live += is_live;
    }
    return Status::OK();
  }));
  CHECK_EQ(segments, 3u);
  CHECK_EQ(live, t->Stats().live_records);
  // A callback error stops it.
  segments = 0;
  Status s = t->ScanSegments([&](const ColdSegmentView&) {
    ++segments;
    return Status::IoError("stop");
  });
  CHECK(s.code() == StatusCode::kIoError);
  CHECK_EQ(segments, 1u);
}

// Every single-byte flip and every truncation of a small segment: open either
// fails with CORRUPTION or succeeds, and then reading every row never crashes.
TEST(DamageExhaustiveNeverCrashes) {
  std::string dir = tstest::TempDir("fuzz");
  std::vector<ColdLoc> locs;
  std::string seg = MakeOneSegment(dir, 3, &locs, 5);
  std::string pristine;
  ASSERT_OK(ReadWholeFile(seg, &pristine));
  auto exercise = [&](const std::string& bytes) {
    {
      File f;
      Status s = File::Open(seg, O_WRONLY | O_TRUNC, &f);
      if (s.ok()) s = f.Write(bytes.data(), bytes.size());
      if (!s.ok()) tstest::Fail(__FILE__, __LINE__, s.ToString());
    }
    std::unique_ptr<ColdTier> t;
    Status s = ColdTier::Open(dir, 3, false, &t);
    if (!s.ok()) {
      if (s.code() != StatusCode::kCorruption) tstest::Fail(__FILE__, __LINE__, s.ToString());
      return false;
    }
    RecordView v;
    for (auto& loc : locs) (void)t->Read(loc, true, &v);
    size_t visited = 0;
    (void)t->ScanFrom(0, 100, false, [](ColdLoc, uint64_t, const RecordView&) { return Status::OK(); }, &visited);
    (void)t->ForEachLive([](ColdLoc, uint64_t, const RecordView&) { return Status::OK(); });
    uint64_t k;
    for (uint64_t n = 0; n < 7; ++n) (void)t->NthLiveKey(n, &k);
    return true;
  };
  size_t opened = 0;
  for (size_t i = 0; i < pristine.size(); ++i) {
    std::string b = pristine;
    b[i] = static_cast<char>(b[i] ^ 0x41);
    opened += exercise(b);
  }
  for (size_t len = 0; len < pristine.size(); len += 7) CHECK(!exercise(pristine.substr(0, len)));
  // Flips that open fine can only be in unchecked bytes (padding, embedding,
  // byte columns, mutable part): a small fraction of the file.
  CHECK(opened < pristine.size());
  CHECK(exercise(pristine));
}

// A crash after sealing a merged segment but before unlinking its sources
// leaves both: every copy is reported, scans stay in key order.
TEST(CrashMidMergeLeavesDuplicates) {
  std::string dir = tstest::TempDir("crashmerge");
  const uint32_t dims = 4;
  std::string saved = tstest::TempDir("crashmerge-saved");
  std::vector<ColdLoc> locs_a, locs_b, locs_c;
  {
    std::unique_ptr<ColdTier> t;
    ASSERT_OK(ColdTier::Open(dir, dims, false, &t));
    std::vector<Rec> a, b, c;
    for (int i = 0; i < 10; ++i) a.push_back(MakeRec(i, dims));
    for (int i = 10; i < 20; ++i) b.push_back(MakeRec(i, dims));
    for (int i = 20; i < 30; ++i) c.push_back(MakeRec(i, dims));
    ASSERT_OK(AppendRecs(t.get(), a, &locs_a));
    ASSERT_OK(AppendRecs(t.get(), b, &locs_b));
    ASSERT_OK(AppendRecs(t.get(), c, &locs_c));
    ASSERT_OK(t->Delete(locs_a[0]));
    for (auto& f : SegmentFiles(dir)) fs::copy_file(f, JoinPath(saved, fs::path(f).filename().string()));
    ASSERT_OK(t->MergeIfNeeded(2, false, nullptr));  // merges segments 1 and 2 (smallest pair first)
    CHECK_EQ(t->Stats().segments, 2u);
  }
  // "Crash": the sources come back.
  for (auto& e : fs::directory_iterator(saved)) {
    std::string to = JoinPath(dir, e.path().filename().string());
    if (!PathExists(to)) fs::copy_file(e.path(), to);
  }
  std::unique_ptr<ColdTier> t;
  ASSERT_OK(ColdTier::Open(dir, dims, false, &t));
  CHECK_EQ(t->Stats().segments, 4u);
  std::map<uint64_t, std::vector<ColdLoc>> copies;
  std::vector<uint64_t> order;
  ASSERT_OK(t->ForEachLive([&](ColdLoc loc, uint64_t key, const RecordView& v) {
    copies[key].push_back(loc);
    order.push_back(key);
    return Status::OK();
  }));
  CHECK(std::is_sorted(order.begin(), order.end()));
  CHECK_EQ(order.size(), 19u * 2 + 10);  // 19 live rows of a and b twice, c once
  for (auto& [key, l] : copies) CHECK_EQ(l.size(), key <= 20 ? 2u : 1u);
  // Recovery drops one copy of each (here: the old ones).
  for (auto& [key, l] : copies)
    if (l.size() == 2) ASSERT_OK(t->Delete(l[0].segment < l[1].segment ? l[0] : l[1]));
  std::vector<uint64_t> keys = ScanAll(t.get(), 4);
  CHECK_EQ(keys.size(), 29u);
  for (size_t i = 1; i < keys.size(); ++i) CHECK(keys[i] > keys[i - 1]);
  for (size_t n = 0; n < keys.size(); ++n) {
    uint64_t k = 0;
    CHECK(t->NthLiveKey(n, &k));
    CHECK_EQ(k, keys[n]);
  }
  // Merging the overlapping segments cleans up.
  ASSERT_OK(t->MergeIfNeeded(1, false, nullptr));
  CHECK_EQ(t->Stats().segments, 1u);
  CHECK(ScanAll(t.get(), 100) == keys);
}

TEST(ConcurrentScansDuringAppendsAndDeletes) {
  std::string dir = tstest::TempDir("concurrent");
  const uint32_t dims = 8;
  std::unique_ptr<ColdTier> t;
  ASSERT_OK(ColdTier::Open(dir, dims, false, &t));
  std::vector<ColdLoc> first;
  {
    std::vector<Rec> recs;
    for (int i = 0; i < 200; ++i) recs.push_back(MakeRec(i, dims));
    ASSERT_OK(AppendRecs(t.get(), recs, &first));
  }
  std::atomic<bool> stop{false};
  std::atomic<int> failures{0};
  std::vector<std::thread> readers;
  for (int r = 0; r < 3; ++r) {
    readers.emplace_back([&] {
      while (!stop.load()) {
        uint64_t after = 0, last = 0;
        for (;;) {
          size_t visited = 0;
          Status s = t->ScanFrom(after, 16, false, [&](ColdLoc loc, uint64_t key, const RecordView& v) {
            if (key <= last || v.id.empty()) failures++;
            last = after = key;
            return Status::OK();
          }, &visited);
          if (!s.ok()) failures++;
          if (visited < 16) break;
        }
        RecordView v;
        if (!t->Read(first[5], true, &v).ok()) failures++;
        t->UpdateAccess(first[6], 1.0, 2.0);
        (void)t->Stats();
      }
    });
  }
  for (int b = 0; b < 20; ++b) {
    std::vector<Rec> recs;
    for (int i = 0; i < 10; ++i) recs.push_back(MakeRec(1000 + b * 10 + i, dims));
    ASSERT_OK(AppendRecs(t.get(), recs, nullptr));
    ASSERT_OK(t->Delete(first[10 + b]));
  }
  stop = true;
  for (auto& th : readers) th.join();
  CHECK_EQ(failures.load(), 0);
  CHECK_EQ(t->Stats().live_records, 200u + 200 - 20);
  CHECK_OK(t->Sync());
}

TEST(AppendRejectsBadRecords) {
  std::string dir = tstest::TempDir("badappend");
  std::unique_ptr<ColdTier> t;
  ASSERT_OK(ColdTier::Open(dir, 4, false, &t));
  Rec r = MakeRec(1, 4);
  RecordView v = r.View();
  v.embedding = nullptr;
  CHECK(t->Append(&v, 1, false, nullptr).code() == StatusCode::kInvalidArgument);
  std::string long_id(kMaxIdBytes + 1, 'i');
  v = r.View();
  v.id = long_id;
  CHECK(t->Append(&v, 1, false, nullptr).code() == StatusCode::kInvalidArgument);
  CHECK_EQ(t->Stats().segments, 0u);
  CHECK(SegmentFiles(dir).empty());
}

// A moderately large segment of 768 dims, to keep the streaming path honest.
TEST(LargeSegment768) {
  std::string dir = tstest::TempDir("large");
  const uint32_t dims = 768;
  const size_t n = 20000;
  std::vector<float> emb(n * dims);
  for (size_t i = 0; i < emb.size(); ++i) emb[i] = static_cast<float>(i % 1013) * 0.001f;
  std::vector<std::string> ids(n), contents(n);
  std::vector<RecordView> views(n);
  for (size_t i = 0; i < n; ++i) {
    ids[i] = "id" + std::to_string(i);
    contents[i] = std::string(50 + i % 200, static_cast<char>('a' + i % 26));
    views[i].id = ids[i];
    views[i].content = contents[i];
    views[i].metadata = "{}";
    views[i].embedding = emb.data() + i * dims;
    views[i].seq = i + 1;
  }
  std::vector<ColdLoc> locs;
  std::unique_ptr<ColdTier> t;
  ASSERT_OK(ColdTier::Open(dir, dims, false, &t));
  ASSERT_OK(t->Append(views.data(), n, false, &locs));
  t.reset();
  ASSERT_OK(ColdTier::Open(dir, dims, false, &t));
  for (size_t i = 0; i < n; i += 997) {
    RecordView v;
    ASSERT_OK(t->Read(locs[i], true, &v));
    CHECK(v.id == ids[i] && v.content == contents[i]);
    CHECK(std::memcmp(v.embedding, emb.data() + i * dims, dims * 4) == 0);
    CHECK_EQ(reinterpret_cast<uintptr_t>(v.embedding) % 64, 0u);
  }
  uint64_t k = 0;
  CHECK(t->NthLiveKey(n - 1, &k));
  CHECK_EQ(k, t->KeyOf(locs[n - 1]));
  t.reset();
  fs::remove_all(dir);  // 60 MiB
}

// The Store's recovery reads a duplicate's seq from inside ForEachLive: the
// readers must be callable from scan callbacks (no recursive locking), even
// with a writer queued meanwhile; a mutator there fails instead of deadlocking.
TEST(ReadersAreReentrantFromScanCallbacks) {
  std::string dir = tstest::TempDir("reentrant");
  const uint32_t dims = 4;
  std::unique_ptr<ColdTier> t;
  ASSERT_OK(ColdTier::Open(dir, dims, false, &t));
  std::vector<Rec> recs;
  for (int i = 0; i < 10; ++i) recs.push_back(MakeRec(i, dims));
  std::vector<ColdLoc> locs;
  ASSERT_OK(AppendRecs(t.get(), recs, &locs));
  std::thread writer;
  std::atomic<bool> deleted{false};
  size_t calls = 0;
  ASSERT_OK(t->ForEachLive([&](ColdLoc loc, uint64_t key, const RecordView&) {
    if (calls++ == 0) {
      // A writer queues up behind our shared lock.
      writer = std::thread([&] {
        Status s = t->Delete(locs[9]);
        if (!s.ok()) tstest::Fail(__FILE__, __LINE__, s.ToString());
        deleted = true;
      });
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    RecordView v;
    TS_RETURN_IF_ERROR(t->Read(loc, true, &v));
    CHECK(v.id == recs[loc.row].id);
    CHECK(t->IsLive(loc));
    CHECK_EQ(t->KeyOf(loc), key);
    uint64_t k = 0;
    CHECK(t->NthLiveKey(0, &k));
    (void)t->Stats();
    t->UpdateAccess(loc, 1.0, 1.0);
    size_t visited = 0;
    CHECK_OK(t->ScanFrom(key, 1, false, [&](ColdLoc, uint64_t k2, const RecordView&) {
      CHECK(k2 > key);
      return Status::OK();
    }, &visited));
    CHECK_OK(t->ScanSegments([](const ColdSegmentView&) { return Status::OK(); }));
    CHECK(t->Delete(loc).code() == StatusCode::kInvalidArgument);
    CHECK(t->Append(nullptr, 0, false, nullptr).code() == StatusCode::kInvalidArgument);
    CHECK(t->MergeIfNeeded(1, false, nullptr).code() == StatusCode::kInvalidArgument);
    CHECK(!deleted.load());  // still waiting for our shared lock
    return Status::OK();
  }));
  writer.join();
  CHECK(deleted.load());
  CHECK_EQ(calls, 10u);
  CHECK(!t->IsLive(locs[9]));
  CHECK_OK(t->Delete(locs[8]));  // outside any scan: fine again
}

// ---------------------------------------------------------------------------
// Deletion bitmap copies, side-effect-free open, before_unlink.
namespace {
constexpr int kColDeleted = 17;

uint64_t RowsOf(const std::string& seg) { return ReadU64(seg, 16); }
uint64_t WordsOf(const std::string& seg) { return (RowsOf(seg) + 63) / 64; }
// Bitmap copy `copy` of a segment file: {u64 generation, u32 crc, zeros to
// 64, words}; copies are 64-byte aligned and adjacent.
uint64_t BitmapCopyOffset(const std::string& seg, int copy) {
  uint64_t size = (64 + WordsOf(seg) * 8 + 63) / 64 * 64;
  return ColumnOffset(seg, kColDeleted) + static_cast<uint64_t>(copy) * size;
}
uint64_t GenerationOf(const std::string& seg, int copy) { return ReadU64(seg, BitmapCopyOffset(seg, copy)); }
int ActiveCopy(const std::string& seg) { return GenerationOf(seg, 1) > GenerationOf(seg, 0) ? 1 : 0; }

std::string ReadBytes(const std::string& path, uint64_t offset, size_t n) {
  std::string out(n, '\0');
  int fd = ::open(path.c_str(), O_RDONLY);
  if (::pread(fd, out.data(), n, static_cast<off_t>(offset)) != static_cast<ssize_t>(n)) tstest::Fail(__FILE__, __LINE__, "pread");
  ::close(fd);
  return out;
}
void WriteBytes(const std::string& path, uint64_t offset, const void* p, size_t n) {
  int fd = ::open(path.c_str(), O_RDWR);
  if (::pwrite(fd, p, n, static_cast<off_t>(offset)) != static_cast<ssize_t>(n)) tstest::Fail(__FILE__, __LINE__, "pwrite");
  ::close(fd);
}
void WriteU64(const std::string& path, uint64_t offset, uint64_t v) { WriteBytes(path, offset, &v, 8); }
void WriteU32(const std::string& path, uint64_t offset, uint32_t v) { WriteBytes(path, offset, &v, 4); }

std::string CopyWords(const std::string& seg, int copy) {
  return ReadBytes(seg, BitmapCopyOffset(seg, copy) + 64, WordsOf(seg) * 8);
}
uint32_t BitmapCrcOf(uint64_t generation, const std::string& words) {
  return Crc32cExtend(Crc32c(&generation, 8), words.data(), words.size());
}
bool CopyValid(const std::string& seg, int copy) {
  uint64_t off = BitmapCopyOffset(seg, copy);
  uint32_t crc = 0;
  std::string c = ReadBytes(seg, off + 8, 4);
  std::memcpy(&crc, c.data(), 4);
  return BitmapCrcOf(ReadU64(seg, off), CopyWords(seg, copy)) == crc;
}
void SetBit(std::string* words, uint64_t row) { (*words)[row / 8] = static_cast<char>((*words)[row / 8] | (1 << (row % 8))); }

// Writes a whole bitmap copy as Delete would: words, crc, then (commit) the
// generation; stop_before_generation simulates a process killed just before
// the commit point, words_only one killed before the crc.
void WriteCopy(const std::string& seg, int copy, uint64_t generation, const std::string& words, bool stop_before_generation,
               bool words_only = false) {
  uint64_t off = BitmapCopyOffset(seg, copy);
  WriteBytes(seg, off + 64, words.data(), words.size());
  if (words_only) return;
  WriteU32(seg, off + 8, BitmapCrcOf(generation, words));
  if (!stop_before_generation) WriteU64(seg, off, generation);
}

std::set<uint32_t> LiveRows(ColdTier* t) {
  std::set<uint32_t> rows;
  Status s = t->ForEachLive([&](ColdLoc loc, uint64_t, const RecordView&) {
    rows.insert(loc.row);
    return Status::OK();
  });
  if (!s.ok()) tstest::Fail(__FILE__, __LINE__, s.ToString());
  return rows;
}
std::set<uint32_t> AllBut(uint32_t n, std::set<uint32_t> dead) {
  std::set<uint32_t> out;
  for (uint32_t r = 0; r < n; ++r)
    if (!dead.count(r)) out.insert(r);
  return out;
}

bool Mentions(const Status& s, const std::string& text) { return s.message().find(text) != std::string::npos; }

// Every entry of a directory: size, mtime (ns) and bytes.
struct FileState {
  uint64_t size = 0;
  int64_t mtime_ns = 0;
  std::string bytes;
  bool operator==(const FileState& o) const { return size == o.size && mtime_ns == o.mtime_ns && bytes == o.bytes; }
};
std::map<std::string, FileState> Snapshot(const std::string& dir) {
  std::map<std::string, FileState> out;
  for (auto& e : fs::directory_iterator(dir)) {
    struct stat st {};
    if (::stat(e.path().c_str(), &st) != 0) tstest::Fail(__FILE__, __LINE__, "stat");
    FileState f;
    f.size = static_cast<uint64_t>(st.st_size);
    f.mtime_ns = int64_t{st.st_mtim.tv_sec} * 1000000000 + st.st_mtim.tv_nsec;
    if (S_ISREG(st.st_mode)) (void)ReadWholeFile(e.path().string(), &f.bytes);
    out[e.path().filename().string()] = f;
  }
  return out;
}

std::vector<uint32_t> SegmentIdsOnDisk(const std::string& dir) {
  std::vector<uint32_t> ids;
  for (auto& f : SegmentFiles(dir)) ids.push_back(static_cast<uint32_t>(std::stoul(fs::path(f).filename().string().substr(5, 8), nullptr, 16)));
  return ids;
}

// Appends segments of the given sizes; returns every location, by segment.
std::vector<std::vector<ColdLoc>> AppendSegments(ColdTier* t, std::vector<int> sizes, uint32_t dims, int* next) {
  std::vector<std::vector<ColdLoc>> out;
  for (int n : sizes) {
    std::vector<Rec> recs;
    for (int i = 0; i < n; ++i) recs.push_back(MakeRec((*next)++, dims));
    std::vector<ColdLoc> locs;
    Status s = AppendRecs(t, recs, &locs);
    if (!s.ok()) tstest::Fail(__FILE__, __LINE__, s.ToString());
    out.push_back(locs);
  }
  return out;
}
}  // namespace

TEST(NewSegmentHasTwoValidBitmapCopies) {
  std::string dir = tstest::TempDir("bm-new");
  for (int n : {1, 63, 64, 65, 150, 5000}) {
    fs::remove_all(dir);
    std::vector<ColdLoc> locs;
    std::string seg = MakeOneSegment(dir, 3, &locs, n);
    CHECK_EQ(GenerationOf(seg, 0), 1u);
    CHECK_EQ(GenerationOf(seg, 1), 0u);
    CHECK(CopyValid(seg, 0));
    CHECK(CopyValid(seg, 1));
    CHECK(CopyWords(seg, 0) == std::string(WordsOf(seg) * 8, '\0'));
    CHECK_EQ(BitmapCopyOffset(seg, 0) % 64, 0u);
    CHECK_EQ(BitmapCopyOffset(seg, 1) % 64, 0u);
    // The bitmap copies end the file.
    CHECK_EQ(BitmapCopyOffset(seg, 2), fs::file_size(seg));
  }
}

TEST(BitmapDamageInActiveCopyIsCorruption) {
  for (int variant = 0; variant < 5; ++variant) {
    std::string dir = tstest::TempDir("bm-active");
    std::vector<ColdLoc> locs;
    std::string seg = MakeOneSegment(dir, 4, &locs, 150);
    {
      std::unique_ptr<ColdTier> t;
      ASSERT_OK(ColdTier::Open(dir, 4, false, &t));
      ASSERT_OK(t->Delete(locs[3]));
      ASSERT_OK(t->Delete(locs[70]));
    }
    ASSERT_TRUE(ActiveCopy(seg) == 0);  // generations 1, 2, 3: copy 0 again
    CHECK_EQ(GenerationOf(seg, 0), 3u);
    CHECK_EQ(GenerationOf(seg, 1), 2u);
    const uint64_t off = BitmapCopyOffset(seg, 0);
    std::string words = CopyWords(seg, 0);
    switch (variant) {
      case 0: FlipByte(seg, off + 64 + 8 + 1); break;  // a bit of word 1: would delete/revive rows
      case 1: FlipByte(seg, off + 8); break;           // the crc
      case 2: words[0] = 0; WriteBytes(seg, off + 64, words.data(), words.size()); break;  // row 3 revived
      case 3: WriteU64(seg, off, 9); break;            // a higher generation without a matching crc
      case 4:  // a valid crc over bits past the last row (rows 150..191)
        words[2 * 8 + 7] = 0x40;
        WriteCopy(seg, 0, 3, words, false);
        break;
    }
    std::unique_ptr<ColdTier> t;
    Status s = ColdTier::Open(dir, 4, false, &t);
    CHECK(s.code() == StatusCode::kCorruption);
    CHECK(MentionsFile(s, seg));
    CHECK(Mentions(s, variant == 4 ? "past the last" : "deletion bitmap checksum mismatch"));
    s = ColdTier::Open(dir, 4, true, &t);  // read-only too
    CHECK(s.code() == StatusCode::kCorruption);
    CHECK(MentionsFile(s, seg));
  }
}

TEST(BitmapDamageInInactiveCopyIsIgnored) {
  std::string dir = tstest::TempDir("bm-inactive");
  std::vector<ColdLoc> locs;
  std::string seg = MakeOneSegment(dir, 4, &locs, 150);
  {
    std::unique_ptr<ColdTier> t;
    ASSERT_OK(ColdTier::Open(dir, 4, false, &t));
    ASSERT_OK(t->Delete(locs[10]));
  }
  ASSERT_TRUE(ActiveCopy(seg) == 1);
  // Garbage over the whole inactive copy 0 except its (lower) generation.
  const uint64_t off = BitmapCopyOffset(seg, 0);
  std::string junk(WordsOf(seg) * 8, '\xff');
  WriteBytes(seg, off + 64, junk.data(), junk.size());
  WriteU32(seg, off + 8, 0xdeadbeef);
  {
    std::unique_ptr<ColdTier> t;
    ASSERT_OK(ColdTier::Open(dir, 4, false, &t));
    CHECK(LiveRows(t.get()) == AllBut(150, {10}));
    CHECK_EQ(t->Stats().live_records, 149u);
    // The next delete rewrites copy 0 whole.
    ASSERT_OK(t->Delete(locs[11]));
  }
  CHECK_EQ(ActiveCopy(seg), 0);
  CHECK(CopyValid(seg, 0));
  std::unique_ptr<ColdTier> t;
  ASSERT_OK(ColdTier::Open(dir, 4, false, &t));
  CHECK(LiveRows(t.get()) == AllBut(150, {10, 11}));
  t.reset();

  // The damage fuzzer's case: the last 8 bytes of the file set to ones never
  // silently deletes rows (here they are padding of copy 1, the active one
  // holds the words before it; either way: same rows, or CORRUPTION).
  const uint64_t size = fs::file_size(seg);
  WriteU64(seg, size - 8, ~uint64_t{0});
  Status s = ColdTier::Open(dir, 4, false, &t);
  if (s.ok()) CHECK(LiveRows(t.get()) == AllBut(150, {10, 11}));
  else CHECK(s.code() == StatusCode::kCorruption && MentionsFile(s, seg));
}

TEST(TornBitmapUpdateKeepsOldState) {
  for (int variant = 0; variant < 3; ++variant) {
    std::string dir = tstest::TempDir("bm-torn");
    std::vector<ColdLoc> locs;
    std::string seg = MakeOneSegment(dir, 4, &locs, 150);
    {
      std::unique_ptr<ColdTier> t;
      ASSERT_OK(ColdTier::Open(dir, 4, false, &t));
      ASSERT_OK(t->Delete(locs[5]));
    }
    ASSERT_TRUE(ActiveCopy(seg) == 1 && GenerationOf(seg, 1) == 2);
    // Delete(row 6) as a process killed before its commit point would leave it.
    std::string words = CopyWords(seg, 1);
    SetBit(&words, 6);
    WriteCopy(seg, 0, 3, words, /*stop_before_generation=*/variant != 2, /*words_only=*/variant == 1);
    std::unique_ptr<ColdTier> t;
    ASSERT_OK(ColdTier::Open(dir, 4, false, &t));
    if (variant == 2) {  // the same bytes with the generation: the delete happened
      CHECK(LiveRows(t.get()) == AllBut(150, {5, 6}));
      continue;
    }
    CHECK(LiveRows(t.get()) == AllBut(150, {5}));  // the old state, no error
    CHECK(t->IsLive(locs[6]));
    CHECK_EQ(t->Stats().live_records, 149u);
    // Deleting goes on from the old state and overwrites the torn copy.
    ASSERT_OK(t->Delete(locs[7]));
    CHECK(LiveRows(t.get()) == AllBut(150, {5, 7}));
    t.reset();
    CHECK_EQ(GenerationOf(seg, 0), 3u);
    ASSERT_OK(ColdTier::Open(dir, 4, false, &t));
    CHECK(LiveRows(t.get()) == AllBut(150, {5, 7}));
  }
}

TEST(ManyDeletesAlternateCopies) {
  std::string dir = tstest::TempDir("bm-many");
  const uint32_t n = 300;
  std::vector<ColdLoc> locs;
  std::string seg = MakeOneSegment(dir, 4, &locs, n);
  std::unique_ptr<ColdTier> t;
  ASSERT_OK(ColdTier::Open(dir, 4, false, &t));
  std::set<uint32_t> dead;
  for (uint32_t k = 0; k < 140; ++k) {
    const uint32_t row = (k * 37) % n;  // distinct rows, scattered over the words
    ASSERT_OK(t->Delete(locs[row], /*durable=*/k % 3 == 0));
    dead.insert(row);
    // k+1 deletes: generation k+2 in copy (k+1) % 2, the other one below it.
    const int active = static_cast<int>((k + 1) % 2);
    CHECK_EQ(ActiveCopy(seg), active);
    CHECK_EQ(GenerationOf(seg, active), uint64_t{k} + 2);
    CHECK_EQ(GenerationOf(seg, 1 - active), uint64_t{k} + 1);
    CHECK(CopyValid(seg, active));
    CHECK(CopyValid(seg, 1 - active));  // the previous state, complete
    CHECK_EQ(t->Stats().live_records, uint64_t{n} - dead.size());
    if (k % 25 == 24) {  // reopen: exactly the same rows
      t.reset();
      ASSERT_OK(ColdTier::Open(dir, 4, false, &t));
      CHECK(LiveRows(t.get()) == AllBut(n, dead));
      CHECK_EQ(t->Stats().segment_live_records, std::vector<uint64_t>{uint64_t{n} - dead.size()});
    }
  }
  // Deleting a deleted row writes nothing.
  const uint64_t gen = GenerationOf(seg, ActiveCopy(seg));
  ASSERT_OK(t->Delete(locs[0]));
  ASSERT_OK(t->Delete(locs[0], true));
  CHECK_EQ(GenerationOf(seg, ActiveCopy(seg)), gen);
  ASSERT_OK(t->Sync());
  // ScanSegments hands out the active copy.
  ASSERT_OK(t->ScanSegments([&](const ColdSegmentView& v) {
    for (uint32_t r = 0; r < n; ++r) CHECK_EQ(((v.deleted[r / 64] >> (r % 64)) & 1) != 0, dead.count(r) == 1);
    return Status::OK();
  }));
  t.reset();
  ASSERT_OK(ColdTier::Open(dir, 4, true, &t));
  CHECK(LiveRows(t.get()) == AllBut(n, dead));
}

TEST(EqualBitmapGenerations) {
  for (int variant = 0; variant < 3; ++variant) {
    std::string dir = tstest::TempDir("bm-equal");
    std::vector<ColdLoc> locs;
    std::string seg = MakeOneSegment(dir, 4, &locs, 150);
    {
      std::unique_ptr<ColdTier> t;
      ASSERT_OK(ColdTier::Open(dir, 4, false, &t));
      ASSERT_OK(t->Delete(locs[3]));
    }
    ASSERT_TRUE(ActiveCopy(seg) == 1 && GenerationOf(seg, 1) == 2);
    const std::string empty = CopyWords(seg, 0), one = CopyWords(seg, 1);
    if (variant == 0) WriteCopy(seg, 0, 2, one, false);  // identical valid copies
    if (variant == 1) WriteCopy(seg, 0, 2, empty, false);  // valid, but they differ
    if (variant == 2) WriteU64(seg, BitmapCopyOffset(seg, 0), 2);  // copy 0's crc is for generation 1
    std::unique_ptr<ColdTier> t;
    Status s = ColdTier::Open(dir, 4, false, &t);
    if (variant == 0) {
      ASSERT_OK(s);
      CHECK(LiveRows(t.get()) == AllBut(150, {3}));
      ASSERT_OK(t->Delete(locs[4]));  // goes above both
      t.reset();
      CHECK_EQ(GenerationOf(seg, ActiveCopy(seg)), 3u);
      ASSERT_OK(ColdTier::Open(dir, 4, false, &t));
      CHECK(LiveRows(t.get()) == AllBut(150, {3, 4}));
      continue;
    }
    CHECK(s.code() == StatusCode::kCorruption);
    CHECK(MentionsFile(s, seg));
    CHECK(Mentions(s, variant == 1 ? "differ" : "deletion bitmap checksum mismatch"));
  }
}

TEST(OldFormatVersionIsRejected) {
  std::string dir = tstest::TempDir("oldversion");
  std::vector<ColdLoc> locs;
  std::string seg = MakeOneSegment(dir, 4, &locs);
  WriteU32(seg, 8, 1);
  std::string header = ReadBytes(seg, 0, 496);
  WriteU32(seg, 496, Crc32c(header.data(), header.size()));  // a well-formed version 1 header
  std::unique_ptr<ColdTier> t;
  Status s = ColdTier::Open(dir, 4, false, &t);
  CHECK(s.code() == StatusCode::kCorruption);
  CHECK(MentionsFile(s, seg));
  CHECK(Mentions(s, "unsupported format version 1"));
}

TEST(DeleteManyChecksFirstOneGenerationPerSegment) {
  std::string dir = tstest::TempDir("deletemany");
  std::unique_ptr<ColdTier> t;
  ASSERT_OK(ColdTier::Open(dir, 4, false, &t));
  int next = 0;
  auto segs = AppendSegments(t.get(), {100, 100}, 4, &next);
  auto files = SegmentFiles(dir);
  std::vector<ColdLoc> bad = {segs[0][1], segs[1][2], ColdLoc{segs[1][0].segment, 100}};
  CHECK(t->DeleteMany(bad.data(), bad.size(), false).code() == StatusCode::kInvalidArgument);
  CHECK_EQ(t->Stats().live_records, 200u);  // nothing changed
  CHECK_EQ(GenerationOf(files[0], 0), 1u);
  CHECK_OK(t->DeleteMany(nullptr, 0, true));
  ASSERT_OK(t->Delete(segs[0][7]));
  std::vector<ColdLoc> many = {segs[0][1], segs[1][2], segs[0][1], segs[0][7], segs[0][99], segs[1][64]};
  ASSERT_OK(t->DeleteMany(many.data(), many.size(), true));
  CHECK_EQ(GenerationOf(files[0], ActiveCopy(files[0])), 3u);  // one delete, then one DeleteMany
  CHECK_EQ(GenerationOf(files[1], ActiveCopy(files[1])), 2u);
  ColdStats st = t->Stats();
  CHECK_EQ(st.live_records, 200u - 5);
  CHECK(st.segment_live_records == (std::vector<uint64_t>{97, 98}));
  t.reset();
  ASSERT_OK(ColdTier::Open(dir, 4, false, &t));
  CHECK(!t->IsLive(segs[0][99]) && !t->IsLive(segs[1][64]) && t->IsLive(segs[1][63]));
  CHECK_EQ(t->Stats().live_records, 195u);
  ASSERT_OK(t->Sync());
}

// Opening changes no file, whether it fails late or succeeds; FinishOpen
// then only removes the stale .tmp.
TEST(OpenChangesNoFile) {
  std::string dir = tstest::TempDir("sideeffects");
  const uint32_t dims = 4;
  std::vector<std::vector<ColdLoc>> segs;
  {
    std::unique_ptr<ColdTier> t;
    ASSERT_OK(ColdTier::Open(dir, dims, false, &t));
    int next = 0;
    segs = AppendSegments(t.get(), {70, 30}, dims, &next);
    ASSERT_OK(t->Delete(segs[0][1]));
    ASSERT_OK(t->Delete(segs[0][2]));
    ASSERT_OK(t->Delete(segs[1][0]));
    ASSERT_OK(t->Sync());
  }
  auto files = SegmentFiles(dir);
  // A torn update left in segment 1 (must not be "repaired" by opening), a
  // stale tmp sorting before segment 2, and segment 2's active bitmap damaged.
  std::string words = CopyWords(files[0], 0);
  SetBit(&words, 40);
  WriteCopy(files[0], 1, 4, words, /*stop_before_generation=*/true);
  std::string tmp = JoinPath(dir, "cold-00000001.seg.tmp");
  { std::FILE* f = std::fopen(tmp.c_str(), "w"); std::fputs("half a segment", f); std::fclose(f); }
  const uint64_t off = BitmapCopyOffset(files[1], ActiveCopy(files[1]));
  FlipByte(files[1], off + 64);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));  // mtimes would differ

  auto before = Snapshot(dir);
  std::unique_ptr<ColdTier> t;
  for (bool ro : {false, true}) {
    Status s = ColdTier::Open(dir, dims, ro, &t);
    CHECK(s.code() == StatusCode::kCorruption);
    CHECK(MentionsFile(s, files[1]));
    CHECK(Snapshot(dir) == before);
  }
  // Without the damaged segment the open succeeds and still changes nothing,
  // through every reader, until FinishOpen.
  FlipByte(files[1], off + 64);
  before = Snapshot(dir);
  ASSERT_OK(ColdTier::Open(dir, dims, false, &t));
  CHECK_EQ(t->Stats().live_records, 97u);
  CHECK(LiveRows(t.get()).count(40) == 1);
  RecordView v;
  CHECK_OK(t->Read(segs[0][40], true, &v));
  CHECK_EQ(ScanAll(t.get(), 10).size(), 97u);
  CHECK_OK(t->ScanSegments([](const ColdSegmentView&) { return Status::OK(); }));
  uint64_t k = 0;
  CHECK(t->NthLiveKey(50, &k));
  CHECK(Snapshot(dir) == before);
  ASSERT_OK(t->FinishOpen());
  auto after = Snapshot(dir);
  CHECK(after.count("cold-00000001.seg.tmp") == 0);
  before.erase("cold-00000001.seg.tmp");
  CHECK(after == before);
}

TEST(BeforeUnlinkSeesTheIdsAfter) {
  std::string dir = tstest::TempDir("beforeunlink");
  const uint32_t dims = 4;
  std::unique_ptr<ColdTier> t;
  ASSERT_OK(ColdTier::Open(dir, dims, false, &t));
  int next = 0;
  auto segs = AppendSegments(t.get(), {10, 3, 4, 2, 20, 5}, dims, &next);
  ASSERT_OK(t->Delete(segs[1][0]));
  std::map<std::pair<uint32_t, uint32_t>, ColdLoc> moved;
  auto relocate = [&](ColdLoc from, ColdLoc to) { moved[{from.segment, from.row}] = to; };
  int calls = 0;
  std::vector<uint32_t> seen, ids_before;
  auto before_unlink = [&](const std::vector<uint32_t>& after) -> Status {
    ++calls;
    seen = after;
    CHECK(std::is_sorted(after.begin(), after.end()));
    // Sealed, nothing unlinked yet: every old file and every new one is there.
    std::vector<uint32_t> disk = SegmentIdsOnDisk(dir);
    for (uint32_t id : t->Stats().segment_ids) CHECK(std::binary_search(disk.begin(), disk.end(), id));
    for (uint32_t id : after) CHECK(std::binary_search(disk.begin(), disk.end(), id));
    CHECK(t->Delete(segs[0][0]).code() == StatusCode::kInvalidArgument);  // no mutation from here
    CHECK(t->Stats().segment_ids == ids_before);  // readers see the state before the merge
    return Status::OK();
  };
  ASSERT_OK(t->MergeIfNeeded(6, false, relocate, before_unlink));  // nothing to do
  CHECK_EQ(calls, 0);
  ids_before = t->Stats().segment_ids;
  ASSERT_OK(t->MergeIfNeeded(3, true, relocate, before_unlink));
  CHECK_EQ(calls, 1);
  CHECK(seen == t->Stats().segment_ids);
  CHECK(SegmentIdsOnDisk(dir) == seen);
  CHECK_EQ(seen.size(), 3u);
  CHECK_EQ(t->Stats().live_records, 43u);
  CHECK(t->Stats().orphan_segment_ids.empty());
  for (auto& [from, to] : moved) CHECK(std::binary_search(seen.begin(), seen.end(), to.segment));

  // Compact: one segment after; then nothing to do (not called).
  ColdLoc first{};
  CHECK_OK(t->ScanFrom(0, 1, false, [&](ColdLoc loc, uint64_t, const RecordView&) {
    first = loc;
    return Status::OK();
  }, nullptr));
  ASSERT_OK(t->Delete(first));
  uint64_t reclaimed = 0;
  ids_before = t->Stats().segment_ids;
  ASSERT_OK(t->Compact(false, relocate, &reclaimed, before_unlink));
  CHECK_EQ(calls, 2);
  CHECK_EQ(seen.size(), 1u);
  CHECK(seen == t->Stats().segment_ids);
  CHECK(SegmentIdsOnDisk(dir) == seen);
  ASSERT_OK(t->Compact(false, relocate, &reclaimed, before_unlink));
  CHECK_EQ(calls, 2);
  // Everything deleted: the segment goes, the list after is empty.
  std::vector<ColdLoc> all;
  CHECK_OK(t->ForEachLive([&](ColdLoc loc, uint64_t, const RecordView&) {
    all.push_back(loc);
    return Status::OK();
  }));
  ASSERT_OK(t->DeleteMany(all.data(), all.size(), false));
  ids_before = t->Stats().segment_ids;
  ASSERT_OK(t->Compact(false, relocate, &reclaimed, before_unlink));
  CHECK_EQ(calls, 3);
  CHECK(seen.empty());
  CHECK(t->Stats().segment_ids.empty());
  CHECK(SegmentFiles(dir).empty());
}

TEST(BeforeUnlinkFailureLeavesTheSources) {
  std::string dir = tstest::TempDir("unlinkfail");
  const uint32_t dims = 4;
  std::unique_ptr<ColdTier> t;
  ASSERT_OK(ColdTier::Open(dir, dims, false, &t));
  int next = 0;
  auto segs = AppendSegments(t.get(), {10, 10, 30}, dims, &next);  // ids 1, 2, 3
  ASSERT_OK(t->Delete(segs[0][0]));
  std::map<uint64_t, ColdLoc> index;  // key -> location, the caller's index
  for (auto& s : segs)
    for (auto& l : s)
      if (t->IsLive(l)) index[t->KeyOf(l)] = l;
  auto relocate = [&](ColdLoc from, ColdLoc to) {
    for (auto& [key, loc] : index)
      if (loc == from) loc = to;
  };
  std::vector<uint32_t> seen;
  auto fail = [&](const std::vector<uint32_t>& after) {
    seen = after;
    return Status::IoError("manifest not written");
  };
  Status s = t->MergeIfNeeded(2, false, relocate, fail);
  CHECK(s.code() == StatusCode::kIoError && Mentions(s, "manifest not written"));
  // Applied in memory (index relocated), the sources left on disk as orphans.
  CHECK(seen == (std::vector<uint32_t>{3, 4}));
  ColdStats st = t->Stats();
  CHECK(st.segment_ids == seen);
  CHECK(st.orphan_segment_ids == (std::vector<uint32_t>{1, 2}));
  CHECK_EQ(st.live_records, 49u);
  CHECK(SegmentIdsOnDisk(dir) == (std::vector<uint32_t>{1, 2, 3, 4}));
  for (auto& [key, loc] : index) {
    CHECK(loc.segment == 3 || loc.segment == 4);
    CHECK(t->IsLive(loc));
    CHECK_EQ(t->KeyOf(loc), key);
  }
  // A process that died now: its files reopen with the duplicates, which the
  // Store's recovery resolves by sequence number.
  {
    std::string copy = tstest::TempDir("unlinkfail-crash");
    for (auto& f : SegmentFiles(dir)) fs::copy_file(f, JoinPath(copy, fs::path(f).filename().string()));
    std::unique_ptr<ColdTier> c;
    ASSERT_OK(ColdTier::Open(copy, dims, false, &c));
    CHECK_EQ(c->Stats().segments, 4u);
    CHECK_EQ(AllLiveKeys(c.get()).size(), 19u * 2 + 30);
  }
  // Nothing to merge, but orphans wait: before_unlink is called with the
  // current ids; once it succeeds they are unlinked.
  int calls = 0;
  auto ok = [&](const std::vector<uint32_t>& after) {
    ++calls;
    seen = after;
    return Status::OK();
  };
  ASSERT_OK(t->MergeIfNeeded(2, false, relocate, ok));
  CHECK_EQ(calls, 1);
  CHECK(seen == (std::vector<uint32_t>{3, 4}));
  CHECK(t->Stats().orphan_segment_ids.empty());
  CHECK(SegmentIdsOnDisk(dir) == seen);
  ASSERT_OK(t->MergeIfNeeded(2, false, relocate, ok));
  CHECK_EQ(calls, 1);  // nothing left to do
  // Compact fails the same way; the overload without before_unlink then
  // unlinks the orphans directly.
  uint64_t reclaimed = 0;
  s = t->Compact(true, relocate, &reclaimed, fail);
  CHECK(s.code() == StatusCode::kIoError);
  CHECK(seen == (std::vector<uint32_t>{5}));
  CHECK(t->Stats().segment_ids == seen);
  CHECK(t->Stats().orphan_segment_ids == (std::vector<uint32_t>{3, 4}));
  CHECK(SegmentIdsOnDisk(dir) == (std::vector<uint32_t>{3, 4, 5}));
  ASSERT_OK(t->MergeIfNeeded(5, false, relocate));
  CHECK(t->Stats().orphan_segment_ids.empty());
  CHECK(SegmentIdsOnDisk(dir) == (std::vector<uint32_t>{5}));
  for (auto& [key, loc] : index) {
    RecordView v;
    CHECK(loc.segment == 5);
    CHECK_OK(t->Read(loc, true, &v));
    CHECK_EQ(t->KeyOf(loc), key);
  }
  t.reset();
  ASSERT_OK(ColdTier::Open(dir, dims, false, &t));
  CHECK_EQ(t->Stats().live_records, 49u);
}

// A merge whose second seal fails undoes the first: memory and disk as before.
TEST(MergeSealFailureChangesNothing) {
  std::string dir = tstest::TempDir("sealfail");
  const uint32_t dims = 4;
  std::unique_ptr<ColdTier> t;
  ASSERT_OK(ColdTier::Open(dir, dims, false, &t));
  int next = 0;
  AppendSegments(t.get(), {5, 5, 100, 5, 5}, dims, &next);  // ids 1..5; merges {1,2} -> 6, {4,5} -> 7
  std::vector<uint64_t> keys = AllLiveKeys(t.get());
  fs::create_directory(JoinPath(dir, "cold-00000007.seg.tmp"));  // the second seal cannot write its file
  auto before = Snapshot(dir);
  int relocations = 0, calls = 0;
  Status s = t->MergeIfNeeded(3, true, [&](ColdLoc, ColdLoc) { ++relocations; },
                              [&](const std::vector<uint32_t>&) { ++calls; return Status::OK(); });
  CHECK(!s.ok());
  CHECK_EQ(relocations, 0);
  CHECK_EQ(calls, 0);
  CHECK(t->Stats().segment_ids == (std::vector<uint32_t>{1, 2, 3, 4, 5}));
  CHECK(SegmentIdsOnDisk(dir) == t->Stats().segment_ids);
  CHECK(Snapshot(dir) == before);
  CHECK(AllLiveKeys(t.get()) == keys);
  fs::remove(JoinPath(dir, "cold-00000007.seg.tmp"));
  ASSERT_OK(t->MergeIfNeeded(3, true, [&](ColdLoc, ColdLoc) { ++relocations; }, nullptr));
  CHECK_EQ(relocations, 20);
  CHECK(SegmentIdsOnDisk(dir) == t->Stats().segment_ids);
  CHECK_EQ(t->Stats().segments, 3u);
  CHECK(AllLiveKeys(t.get()) == keys);
}

// Bitmap copies of several pages each (70000 rows: 8.75 KB per copy, not
// page aligned): durable and relaxed deletes mixed, every state reopens.
TEST(DurableDeletesOnMultiPageBitmap) {
  std::string dir = tstest::TempDir("bm-large");
  const uint32_t n = 70000;
  std::vector<ColdLoc> locs;
  std::string seg = MakeOneSegment(dir, 3, &locs, static_cast<int>(n));
  CHECK(BitmapCopyOffset(seg, 1) - BitmapCopyOffset(seg, 0) > 2 * 4096);
  std::set<uint32_t> dead;
  std::unique_ptr<ColdTier> t;
  ASSERT_OK(ColdTier::Open(dir, 3, false, &t));
  const uint32_t rows[] = {0, 65535, 69999, 4096 * 8, 12345, 1, 64};
  for (size_t i = 0; i < std::size(rows); ++i) {
    ASSERT_OK(t->Delete(locs[rows[i]], /*durable=*/i != 3));
    dead.insert(rows[i]);
    CHECK(CopyValid(seg, ActiveCopy(seg)));
    CHECK(CopyValid(seg, 1 - ActiveCopy(seg)));
  }
  std::vector<ColdLoc> more = {locs[2], locs[40000], locs[69998]};
  ASSERT_OK(t->DeleteMany(more.data(), more.size(), true));
  dead.insert({2, 40000, 69998});
  CHECK_EQ(GenerationOf(seg, ActiveCopy(seg)), 1u + std::size(rows) + 1);
  CHECK_EQ(t->Stats().live_records, n - dead.size());
  t.reset();
  ASSERT_OK(ColdTier::Open(dir, 3, false, &t));
  CHECK(LiveRows(t.get()) == AllBut(n, dead));
  t.reset();
  fs::remove_all(dir);
}

// Staging: rows moved in alone, cold for every call, sealed into one
// segment with their keys; Restage's rules at open.
TEST(StagedRowsReadScanAndSealWithTheirKeys) {
  std::string dir = tstest::TempDir("staging");
  const uint32_t dims = 16;
  std::vector<Rec> recs;
  for (int i = 0; i < 9; ++i) recs.push_back(MakeRec(static_cast<uint64_t>(i), dims));
  std::vector<uint64_t> keys;
  {
    std::unique_ptr<ColdTier> t;
    ASSERT_OK(ColdTier::Open(dir, dims, false, &t));
    std::vector<ColdLoc> sealed;
    ASSERT_OK(AppendRecs(t.get(), {recs[0], recs[1]}, &sealed));
    std::vector<ColdLoc> staged;
    std::vector<RecordView> views = Views(recs);
    for (int i = 2; i < 9; ++i) {
      ColdLoc loc;
      uint64_t key = 0;
      ASSERT_OK(t->Stage(views[static_cast<size_t>(i)], &loc, &key));
      CHECK(ColdTier::IsStaged(loc));
      CHECK_EQ(t->KeyOf(loc), key);
      staged.push_back(loc);
    }
    CHECK(t->HasStaged() && !t->StagingFull());
    ColdStats st = t->Stats();
    CHECK_EQ(st.staged_records, 7u);
    CHECK_EQ(st.live_records, 9u);
    CHECK_EQ(st.segments, 1u);
    for (size_t i = 0; i < staged.size(); ++i) {
      RecordView v;
      ASSERT_OK(t->Read(staged[i], true, &v));
      CHECK(SameRecord(recs[i + 2], v, dims));
    }
    // A sealed segment may not be appended while rows are staged.
    std::vector<ColdLoc> none;
    CHECK(AppendRecs(t.get(), {recs[0]}, &none).code() == StatusCode::kInvalidArgument);
    // Scans: the staged rows after the sealed ones, in key order; paging
    // resumes across the boundary; the similarity view holds them aligned.
    std::vector<std::string> ids;
    keys = ScanAll(t.get(), 3, &ids);
    CHECK_EQ(keys.size(), 9u);
    for (size_t i = 0; i < ids.size(); ++i) CHECK(ids[i] == recs[i].id);
    CHECK(AllLiveKeys(t.get()) == keys);
    size_t views_seen = 0;
    ASSERT_OK(t->ScanSegments([&](const ColdSegmentView& v) {
      ++views_seen;
      CHECK_EQ(reinterpret_cast<uintptr_t>(v.embeddings) % 64, 0u);
      return Status::OK();
    }, true));
    CHECK_EQ(views_seen, 2u);
    // Delete one staged row; undo the last Stage; seal the rest.
    ASSERT_OK(t->Delete(staged[1]));
    CHECK(!t->IsLive(staged[1]));
    ColdLoc extra;
    uint64_t extra_key = 0;
    ASSERT_OK(t->Stage(views[0], &extra, &extra_key));
    t->Unstage(extra);
    CHECK_EQ(t->Stats().staged_records, 6u);
    std::vector<std::pair<ColdLoc, ColdLoc>> moved;
    ASSERT_OK(t->SealStaging(false, [&](ColdLoc a, ColdLoc b) { moved.push_back({a, b}); }));
    CHECK(!t->HasStaged());
    CHECK_EQ(moved.size(), 6u);
    for (const auto& [from, to] : moved) CHECK(ColdTier::IsStaged(from) && !ColdTier::IsStaged(to));
    st = t->Stats();
    CHECK_EQ(st.segments, 2u);
    CHECK_EQ(st.staged_records, 0u);
    CHECK_EQ(st.live_records, 8u);
    keys.erase(keys.begin() + 3);  // the deleted staged row
    CHECK(AllLiveKeys(t.get()) == keys);
    CHECK_EQ(SegmentFiles(dir).size(), 2u);
  }
  // Restage at open: a key at or below the sealed ones is skipped; a key
  // below the last restaged one is CORRUPTION; others come back staged.
  std::unique_ptr<ColdTier> t;
  ASSERT_OK(ColdTier::Open(dir, dims, false, &t));
  CHECK(AllLiveKeys(t.get()) == keys);
  std::vector<RecordView> views = Views(recs);
  bool staged = true;
  ASSERT_OK(t->Restage(views[2], keys.back(), &staged));
  CHECK(!staged);
  ASSERT_OK(t->Restage(views[3], keys.back() + 5, &staged));
  CHECK(staged);
  CHECK(t->Restage(views[4], keys.back() + 2, &staged).code() == StatusCode::kCorruption);
  CHECK_EQ(t->Stats().staged_records, 1u);
  ColdLoc loc;
  uint64_t key = 0;
  ASSERT_OK(t->Stage(views[5], &loc, &key));
  CHECK(key > keys.back() + 5);
}

TEST(ASegmentFileWithTheStagingIdIsCorruption) {
  std::string dir = tstest::TempDir("staging-id");
  const uint32_t dims = 4;
  {
    std::unique_ptr<ColdTier> t;
    ASSERT_OK(ColdTier::Open(dir, dims, false, &t));
    std::vector<ColdLoc> locs;
    ASSERT_OK(AppendRecs(t.get(), {MakeRec(1, dims)}, &locs));
  }
  fs::rename(dir + "/cold-00000001.seg", dir + "/cold-00000000.seg");
  std::unique_ptr<ColdTier> t;
  Status s = ColdTier::Open(dir, dims, false, &t);
  CHECK(s.code() == StatusCode::kCorruption && s.message().find("cold-00000000.seg") != std::string::npos);
}

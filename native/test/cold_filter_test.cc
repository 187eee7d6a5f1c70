// Tests of the cold segments' filter files (native/core/cold_filter_file.h):
// every seal writes one beside its segment and every removal of a segment
// takes it along; the first filtered scan after an open takes the
// signatures from it (shown by changing the segment's metadata bytes after
// the file was made from them); a file that is missing, stale, truncated,
// zeroed or bit-flipped gives the signatures made from the segment, exactly,
// and a writable tier writes it again; opening reads and changes none.
#include "../core/cold_filter_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "../core/cold_format.h"
#include "../core/cold_segment.h"
#include "../core/cold_tier.h"
#include "../core/crc32c.h"
#include "../core/file_util.h"
#include "../core/record_filter.h"
#include "testing.h"

using namespace tierstore;
namespace fs = std::filesystem;

namespace {

constexpr uint32_t kDims = 4;
// Three chunks of the filter file: 4096, 4096 and 1808 rows.
constexpr uint64_t kRows = 2 * cold::kFilterRowsPerChunk + 1808;

// Row k's metadata, {"k":"<kind>","n":<k % 5>}: the same length for every kind.
char KindOf(uint64_t k) { return static_cast<char>('a' + k % 3); }
std::string MetaOf(uint64_t k, char kind) {
  return std::string("{\"k\":\"") + kind + "\",\"n\":" + std::to_string(k % 5) + "}";
}

// Owned rows [first, first + n) and the views Append takes. kind 0: each
// row's own KindOf.
struct Batch {
  std::vector<std::string> ids, contents, metas;
  std::vector<float> emb;
  std::vector<RecordView> views;

  Batch(uint64_t first, uint64_t n, char kind = 0) : emb(n * kDims) {
    for (uint64_t i = 0; i < n; ++i) {
      const uint64_t k = first + i;
      ids.push_back("m" + std::to_string(k));
      contents.push_back("memory " + std::to_string(k));
      metas.push_back(MetaOf(k, kind != 0 ? kind : KindOf(k)));
      for (uint32_t d = 0; d < kDims; ++d) emb[i * kDims + d] = static_cast<float>((k * 7 + d * 3) % 11) + 1;
    }
    for (uint64_t i = 0; i < n; ++i) {
      RecordView v;
      v.id = ids[i];
      v.content = contents[i];
      v.metadata = metas[i];
      v.embedding = emb.data() + i * kDims;
      v.norm = 1;
      v.confidence = 0.5f;
      v.activation = 0.5f;
      v.created_at = 1.7e12 + static_cast<double>(first + i);
      v.seq = first + i + 1;
      views.push_back(v);
    }
  }
};

Status AppendRows(ColdTier* t, uint64_t first, uint64_t n, char kind = 0, bool durable = false) {
  Batch b(first, n, kind);
  return t->Append(b.views.data(), b.views.size(), durable, nullptr);
}

std::set<std::string> Names(const std::string& dir) {
  std::set<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.insert(e.path().filename().string());
  return out;
}

std::string SegPath(const std::string& dir, uint32_t id) { return JoinPath(dir, cold::SegmentName(id)); }
std::string FilterPath(const std::string& dir, uint32_t id) { return JoinPath(dir, cold::FilterName(id)); }

std::string Bytes(const std::string& path) {
  std::string b;
  if (!ReadWholeFile(path, &b).ok()) return "<none>";
  return b;
}
void Put(const std::string& path, const std::string& bytes) {
  File f;
  CHECK_OK(File::Open(path, O_WRONLY | O_CREAT | O_TRUNC, &f));
  if (!bytes.empty()) CHECK_OK(f.Write(bytes.data(), bytes.size()));
}

cold::FilterIdentity IdentityOfSegment(const std::string& seg) {
  std::string b = Bytes(seg);
  if (b.size() < cold::kHeaderSize) {
    tstest::Fail(__FILE__, __LINE__, "no segment header in " + seg);
    return {};
  }
  return cold::FilterIdentityOf(reinterpret_cast<const uint8_t*>(b.data()));
}

// Whether path holds a filter file of segment `seg` whose every chunk checks
// out and whose signatures are those of `metas`.
bool FileHolds(const std::string& path, const std::string& seg, const std::vector<std::string>& metas) {
  const std::string b = Bytes(path);
  const cold::FilterIdentity id = IdentityOfSegment(seg);
  if (id.rows != metas.size()) return false;
  std::vector<MetadataSignature> sigs(id.rows);
  std::vector<bool> valid;
  if (!cold::ParseFilterFile(path, reinterpret_cast<const uint8_t*>(b.data()), b.size(), id, sigs.data(), &valid).ok()) {
    return false;
  }
  if (std::count(valid.begin(), valid.end(), false) != 0) return false;
  for (uint64_t r = 0; r < id.rows; ++r)
    if (!(sigs[r] == MetadataSignature::Of(metas[r]))) return false;
  return true;
}

// Per segment id: each row's signature as a filtered scan sees it, and the
// one made from the metadata the segment holds now (the brute force).
struct Seen {
  std::vector<MetadataSignature> scanned, made;
  std::vector<std::string> metas;
};
std::map<uint32_t, Seen> ScanSignatures(const ColdTier& t) {
  std::map<uint32_t, Seen> out;
  Status st = t.ScanSegments([&](const ColdSegmentView& v) {
    Seen& s = out[v.segment];
    for (uint64_t r = 0; r < v.rows; ++r) {
      std::string_view m;
      const bool ok = v.Metadata(r, &m);
      s.scanned.push_back(v.signatures[r]);
      s.made.push_back(ok ? MetadataSignature::Of(m) : MetadataSignature::All());
      s.metas.emplace_back(m);
    }
    return Status::OK();
  }, /*with_signatures=*/true);
  CHECK_OK(st);
  return out;
}

// Every scanned signature is the one made from the segment.
bool AllMadeFromTheSegment(const std::map<uint32_t, Seen>& seen) {
  for (const auto& [id, s] : seen)
    for (size_t r = 0; r < s.scanned.size(); ++r)
      if (!(s.scanned[r] == s.made[r])) return false;
  return true;
}

RecordFilter MetadataFilter(const std::string& json) {
  RecordFilter f;
  RecordFilter::Spec spec;
  spec.metadata_json = json;
  CHECK_OK(RecordFilter::Parse(spec, &f));
  return f;
}

// The metadata bytes column of a segment file: {offset, size}.
std::pair<uint64_t, uint64_t> MetaBytesColumn(const std::string& seg) {
  const std::string b = Bytes(seg);
  const uint8_t* e = reinterpret_cast<const uint8_t*>(b.data()) + cold::kDirOffset + cold::kMetaBytes * cold::kDirEntrySize;
  return {cold::Load<uint64_t>(e), cold::Load<uint64_t>(e + 8)};
}

}  // namespace

TEST(NamesAndPaths) {
  CHECK(cold::FilterName(0x1a2b) == "cold-00001a2b.filter");
  uint32_t id = 0;
  CHECK(cold::ParseFilterName("cold-00001a2b.filter", &id) && id == 0x1a2b);
  for (const char* bad : {"cold-00001A2B.filter", "cold-0001a2b.filter", "cold-00001a2b.seg", "cold-00001a2b.filter.tmp",
                          "cold-00001a2b.filterx", "warm-00001a2b.filter"}) {
    CHECK_MSG(!cold::ParseFilterName(bad, &id), std::string(bad));
  }
  CHECK(cold::FilterPathOf("/s/cold-00000003.seg") == "/s/cold-00000003.filter");
  std::unordered_set<std::string> listed{"cold-00000001.seg", "cold-00000001.filter", "cold-00000002.filter"};
  CHECK(!cold::IsOrphanFilter("cold-00000001.filter", listed));
  CHECK(cold::IsOrphanFilter("cold-00000002.filter", listed));
  CHECK(!cold::IsOrphanFilter("cold-00000001.seg", listed));
}

TEST(SealWritesTheFileWithEveryRowsSignature) {
  for (bool durable : {false, true}) {
    const std::string dir = tstest::TempDir(durable ? "cf-seal-durable" : "cf-seal");
    std::unique_ptr<ColdTier> t;
    ASSERT_OK(ColdTier::Open(dir, kDims, false, &t));
    ASSERT_OK(AppendRows(t.get(), 0, kRows, 0, durable));
    CHECK(Names(dir) == (std::set<std::string>{"cold-00000001.seg", "cold-00000001.filter"}));
    CHECK_EQ(fs::file_size(FilterPath(dir, 1)), cold::FilterFileSize(kRows));
    CHECK(FileHolds(FilterPath(dir, 1), SegPath(dir, 1), Batch(0, kRows).metas));
  }
}

TEST(ParseTrustsOnlyTheSegmentItWasMadeFor) {
  cold::FilterIdentity id;
  id.segment = 7;
  id.rows = cold::kFilterRowsPerChunk + 3;
  id.segment_size = 123456;
  id.min_key = 10;
  id.max_key = 10 + id.rows - 1;
  id.header_crc = 0xabcdef01;
  std::vector<MetadataSignature> sigs(id.rows);
  for (uint64_t r = 0; r < id.rows; ++r) sigs[r] = MetadataSignature::Of(MetaOf(r, KindOf(r)));
  const std::string bytes = cold::EncodeFilterFile(id, sigs.data());
  CHECK_EQ(bytes.size(), cold::FilterFileSize(id.rows));
  auto parse = [&](const std::string& b, const cold::FilterIdentity& expect, std::vector<bool>* valid) {
    std::vector<MetadataSignature> out(expect.rows);
    Status st = cold::ParseFilterFile("/s/x.filter", reinterpret_cast<const uint8_t*>(b.data()), b.size(), expect,
                                      out.data(), valid);
    if (st.ok()) {
      for (uint64_t r = 0; r < expect.rows; ++r)
        if ((*valid)[r / cold::kFilterRowsPerChunk] && !(out[r] == sigs[r])) return Status::IoError("wrong signature");
    }
    return st;
  };
  std::vector<bool> valid;
  CHECK_OK(parse(bytes, id, &valid));
  CHECK(valid == (std::vector<bool>{true, true}));
  // Any field of the identity that differs: not trusted, named.
  for (int field = 0; field < 6; ++field) {
    cold::FilterIdentity other = id;
    if (field == 0) other.segment = 8;
    if (field == 1) other.rows = id.rows - 1;
    if (field == 2) other.segment_size += 64;
    if (field == 3) other.min_key += 1;
    if (field == 4) other.max_key += 1;
    if (field == 5) other.header_crc ^= 1;
    Status st = parse(bytes, other, &valid);
    CHECK_MSG(st.code() == StatusCode::kCorruption && st.message().find("/s/x.filter") != std::string::npos,
              "field " + std::to_string(field) + ": " + st.ToString());
  }
  // Sizes other than its own, and an empty file.
  for (size_t size : {size_t{0}, size_t{63}, size_t{64}, bytes.size() - 1}) {
    CHECK(parse(bytes.substr(0, size), id, &valid).code() == StatusCode::kCorruption);
  }
  CHECK(parse(bytes + "x", id, &valid).code() == StatusCode::kCorruption);
  // A flipped signature byte or chunk checksum: that chunk only.
  std::string flipped = bytes;
  flipped[cold::kFilterHeaderBytes + 5] ^= 1;
  CHECK_OK(parse(flipped, id, &valid));
  CHECK(valid == (std::vector<bool>{false, true}));
  flipped = bytes;
  flipped[flipped.size() - 1] ^= 1;
  CHECK_OK(parse(flipped, id, &valid));
  CHECK(valid == (std::vector<bool>{true, false}));
}

TEST(MergeAndCompactWriteTheMergedFileAndRemoveTheSources) {
  const std::string dir = tstest::TempDir("cf-merge");
  std::unique_ptr<ColdTier> t;
  ASSERT_OK(ColdTier::Open(dir, kDims, false, &t));
  ASSERT_OK(AppendRows(t.get(), 0, 300));
  ASSERT_OK(AppendRows(t.get(), 300, 300));
  ASSERT_OK(AppendRows(t.get(), 600, 300));
  ASSERT_OK(t->Delete(ColdLoc{2, 5}));
  // A before_unlink that fails keeps the sources, and their files, as orphans.
  Status st = t->MergeIfNeeded(1, false, nullptr, [](const std::vector<uint32_t>&) { return Status::IoError("no"); });
  CHECK(!st.ok());
  CHECK_EQ(Names(dir).size(), 8u);  // three sources and the merged segment, each with its filter file
  ASSERT_OK(t->MergeIfNeeded(1, true, nullptr, [](const std::vector<uint32_t>&) { return Status::OK(); }));
  CHECK(Names(dir) == (std::set<std::string>{"cold-00000004.seg", "cold-00000004.filter"}));
  std::vector<std::string> metas = ScanSignatures(*t)[4].metas;
  CHECK_EQ(metas.size(), 899u);
  CHECK(FileHolds(FilterPath(dir, 4), SegPath(dir, 4), metas));

  ASSERT_OK(AppendRows(t.get(), 900, 50));
  ASSERT_OK(t->Delete(ColdLoc{4, 0}));
  uint64_t reclaimed = 0;
  ASSERT_OK(t->Compact(false, nullptr, &reclaimed));
  CHECK(Names(dir) == (std::set<std::string>{"cold-00000006.seg", "cold-00000006.filter"}));
  metas = ScanSignatures(*t)[6].metas;
  CHECK_EQ(metas.size(), 948u);
  CHECK(FileHolds(FilterPath(dir, 6), SegPath(dir, 6), metas));

  // Every row deleted: the compaction leaves no segment and no filter file.
  std::vector<ColdLoc> all;
  for (uint32_t r = 0; r < 948; ++r) all.push_back(ColdLoc{6, r});
  ASSERT_OK(t->DeleteMany(all.data(), all.size(), false));
  ASSERT_OK(t->Compact(false, nullptr, &reclaimed));
  CHECK(Names(dir).empty());
}

// The proof that a filtered scan after an open takes the file's signatures:
// the segment's metadata bytes are changed ("a" to "b", same length, the
// offsets intact) after the file was made from them. The scan still sees
// the rows' old signatures, so a filter on k = "b" excludes them; once the
// file is gone, the signatures are made from the changed bytes and the same
// filter lets every row through.
TEST(FilteredScanAfterReopenTakesTheFilesSignatures) {
  const std::string dir = tstest::TempDir("cf-proof");
  const uint64_t n = 100;
  {
    std::unique_ptr<ColdTier> t;
    ASSERT_OK(ColdTier::Open(dir, kDims, false, &t));
    ASSERT_OK(AppendRows(t.get(), 0, n, 'a'));
  }
  const std::string seg = SegPath(dir, 1);
  const auto [off, size] = MetaBytesColumn(seg);
  std::string column(size, '\0');
  {
    File f;
    ASSERT_OK(File::Open(seg, O_RDWR, &f));
    ASSERT_OK(f.ReadAt(off, column.data(), size));
    size_t changed = 0;
    for (size_t at = column.find("\"a\""); at != std::string::npos; at = column.find("\"a\"", at + 1), ++changed) {
      column[at + 1] = 'b';
    }
    CHECK_EQ(changed, n);
    ASSERT_OK(f.WriteAt(off, column.data(), size));
  }
  const RecordFilter wants_b = MetadataFilter("{\"k\":[\"b\"]}");
  const RecordFilter wants_a = MetadataFilter("{\"k\":[\"a\"]}");
  {
    std::unique_ptr<ColdTier> t;
    ASSERT_OK(ColdTier::Open(dir, kDims, false, /*verify_columns=*/true, &t));  // byte columns carry no column crc
    ASSERT_OK(t->FinishOpen());
    const Seen s = ScanSignatures(*t)[1];
    ASSERT_TRUE(s.scanned.size() == n);
    size_t passed_b = 0, passed_a = 0;
    for (uint64_t r = 0; r < n; ++r) {
      CHECK(s.metas[r] == MetaOf(r, 'b'));                            // what the segment holds now
      CHECK(s.scanned[r] == MetadataSignature::Of(MetaOf(r, 'a')));  // what the file says
      passed_b += wants_b.MayMatchSignature(s.scanned[r]);
      passed_a += wants_a.MayMatchSignature(s.scanned[r]);
    }
    CHECK_EQ(passed_b, 0u);  // excluded from the file's signatures, never read
    CHECK_EQ(passed_a, n);
  }
  // Without the file: made from the bytes as they are, and written again.
  CHECK_OK(RemoveFile(FilterPath(dir, 1)));
  {
    std::unique_ptr<ColdTier> t;
    ASSERT_OK(ColdTier::Open(dir, kDims, false, true, &t));
    ASSERT_OK(t->FinishOpen());
    const Seen s = ScanSignatures(*t)[1];
    size_t passed_b = 0;
    for (uint64_t r = 0; r < n; ++r) passed_b += wants_b.MayMatchSignature(s.scanned[r]);
    CHECK_EQ(passed_b, n);
    CHECK(AllMadeFromTheSegment({{1, s}}));
    CHECK(FileHolds(FilterPath(dir, 1), seg, s.metas));
  }
}

// Every kind of damage to the file, in a writable and in a read-only tier:
// the open neither reads nor changes it; the scan's signatures are exactly
// those made from the segment; a writable tier writes the file again as
// the seal did, a read-only one leaves it as it is.
TEST(EveryDamageFallsBackToTheSegment) {
  const std::string pristine = tstest::TempDir("cf-damage-pristine");
  {
    std::unique_ptr<ColdTier> t;
    ASSERT_OK(ColdTier::Open(pristine, kDims, false, &t));
    ASSERT_OK(AppendRows(t.get(), 0, kRows));
  }
  const std::string good = Bytes(FilterPath(pristine, 1));
  // The file of another segment under the same id (same rows, size and keys;
  // other metadata of the same length): only the header checksum differs.
  const std::string other_dir = tstest::TempDir("cf-damage-other");
  {
    std::unique_ptr<ColdTier> t;
    ASSERT_OK(ColdTier::Open(other_dir, kDims, false, &t));
    ASSERT_OK(AppendRows(t.get(), 0, kRows, 'c'));
  }
  const std::string stale = Bytes(FilterPath(other_dir, 1));
  CHECK(stale.size() == good.size() && stale != good);

  auto with_header_crc = [](std::string b) {
    const uint32_t crc = Crc32c(b.data(), 60);
    std::memcpy(b.data() + 60, &crc, 4);
    return b;
  };
  auto set_u32 = [&](std::string b, size_t at, uint32_t v) {
    std::memcpy(b.data() + at, &v, 4);
    return with_header_crc(b);
  };
  auto flip = [](std::string b, size_t at) {
    b[at] = static_cast<char>(b[at] ^ 0x10);
    return b;
  };
  const size_t chunk = cold::kFilterRowsPerChunk * sizeof(MetadataSignature);
  const size_t crcs = cold::kFilterHeaderBytes + kRows * sizeof(MetadataSignature);
  struct Damage {
    const char* what;
    bool missing;
    std::string bytes;
    uint64_t rows_from_file;  // what LoadSignatures takes from it
  };
  const uint64_t last = kRows - 2 * cold::kFilterRowsPerChunk;
  const std::vector<Damage> damages = {
      {"missing", true, "", 0},
      {"empty", false, "", 0},
      {"header only", false, good.substr(0, cold::kFilterHeaderBytes), 0},
      {"truncated mid-chunk", false, good.substr(0, cold::kFilterHeaderBytes + chunk + 100), 0},
      {"one byte short", false, good.substr(0, good.size() - 1), 0},
      {"one byte more", false, good + '\0', 0},
      {"zeroed", false, std::string(good.size(), '\0'), 0},
      {"magic flipped", false, flip(good, 2), 0},
      {"header field flipped", false, flip(good, 20), 0},
      {"other version", false, set_u32(good, 8, 2), 0},
      {"other chunk size", false, set_u32(good, 52, 1024), 0},
      {"other segment header crc", false, set_u32(good, 48, 12345), 0},
      {"stale: another segment under the same id", false, stale, 0},
      {"chunk 0 flipped", false, flip(good, cold::kFilterHeaderBytes + 17), kRows - cold::kFilterRowsPerChunk},
      {"chunk 1 flipped", false, flip(good, cold::kFilterHeaderBytes + chunk + 9), kRows - cold::kFilterRowsPerChunk},
      {"last chunk's last byte flipped", false, flip(good, crcs - 1), kRows - last},
      {"a chunk checksum flipped", false, flip(good, crcs + 4), kRows - cold::kFilterRowsPerChunk},
      {"chunk 0 zeroed", false,
       std::string(good).replace(cold::kFilterHeaderBytes, chunk, std::string(chunk, '\0')), kRows - cold::kFilterRowsPerChunk},
  };
  int n = 0;
  for (const Damage& d : damages) {
    for (bool ro : {false, true}) {
      const std::string what = std::string(d.what) + (ro ? " (read-only)" : "");
      const std::string dir = tstest::TempDir("cf-damage-" + std::to_string(n++));
      fs::copy(pristine, dir, fs::copy_options::recursive | fs::copy_options::overwrite_existing);
      const std::string path = FilterPath(dir, 1);
      if (d.missing) CHECK_OK(RemoveFile(path));
      else Put(path, d.bytes);
      const std::string damaged = Bytes(path);
      // What LoadSignatures takes from the file.
      {
        std::unique_ptr<cold::Segment> seg;
        ASSERT_OK(cold::OpenSegment(SegPath(dir, 1), 1, kDims, true, true, &seg));
        cold::FilterLoad report;
        auto sigs = cold::LoadSignatures(*seg, /*rewrite=*/false, &report);
        CHECK_MSG(report.rows_from_file == d.rows_from_file && !report.rewrote,
                  what + ": " + std::to_string(report.rows_from_file) + " rows from the file");
      }
      std::unique_ptr<ColdTier> t;
      ASSERT_OK(ColdTier::Open(dir, kDims, ro, false, &t));
      ASSERT_OK(t->FinishOpen());
      CHECK_MSG(Bytes(path) == damaged, what + ": the open changed the file");
      const auto seen = ScanSignatures(*t);
      CHECK_MSG(seen.size() == 1 && seen.at(1).scanned.size() == kRows, what);
      CHECK_MSG(AllMadeFromTheSegment(seen), what + ": a signature differs from the one made from the segment");
      if (ro) {
        CHECK_MSG(Bytes(path) == damaged, what + ": a read-only tier changed the file");
      } else {
        CHECK_MSG(Bytes(path) == good, what + ": not written again as the seal wrote it");
      }
      CHECK_MSG(Names(dir).count("cold-00000001.filter.tmp") == 0, what);
    }
  }
  // The intact file: every row from it, nothing written.
  std::unique_ptr<cold::Segment> seg;
  ASSERT_OK(cold::OpenSegment(SegPath(pristine, 1), 1, kDims, true, true, &seg));
  cold::FilterLoad report;
  (void)cold::LoadSignatures(*seg, true, &report);
  CHECK(report.rows_from_file == kRows && !report.rewrote);
}

// A store made before filter files existed: it works as it did and gains
// them at the first filtered scan of each segment by a writable tier.
TEST(SegmentsWithoutFilesGainThemAtTheFirstFilteredScan) {
  const std::string dir = tstest::TempDir("cf-older");
  {
    std::unique_ptr<ColdTier> t;
    ASSERT_OK(ColdTier::Open(dir, kDims, false, &t));
    ASSERT_OK(AppendRows(t.get(), 0, 500));
    ASSERT_OK(AppendRows(t.get(), 500, 700));
  }
  CHECK_OK(RemoveFile(FilterPath(dir, 1)));
  CHECK_OK(RemoveFile(FilterPath(dir, 2)));
  const std::set<std::string> segments_only{"cold-00000001.seg", "cold-00000002.seg"};
  {
    std::unique_ptr<ColdTier> t;
    ASSERT_OK(ColdTier::Open(dir, kDims, /*read_only=*/true, &t));
    ASSERT_OK(t->FinishOpen());
    CHECK(AllMadeFromTheSegment(ScanSignatures(*t)));
    CHECK(Names(dir) == segments_only);  // a read-only tier writes none
  }
  std::unique_ptr<ColdTier> t;
  ASSERT_OK(ColdTier::Open(dir, kDims, false, &t));
  ASSERT_OK(t->FinishOpen());
  CHECK_OK(t->ScanSegments([](const ColdSegmentView&) { return Status::OK(); }));  // unfiltered: no signatures
  CHECK(Names(dir) == segments_only);
  const auto seen = ScanSignatures(*t);
  CHECK(AllMadeFromTheSegment(seen));
  CHECK_EQ(Names(dir).size(), 4u);
  CHECK(FileHolds(FilterPath(dir, 1), SegPath(dir, 1), seen.at(1).metas));
  CHECK(FileHolds(FilterPath(dir, 2), SegPath(dir, 2), seen.at(2).metas));
}

TEST(FinishOpenRemovesOrphansAndLeftoversOpenRemovesNothing) {
  const std::string dir = tstest::TempDir("cf-orphans");
  {
    std::unique_ptr<ColdTier> t;
    ASSERT_OK(ColdTier::Open(dir, kDims, false, &t));
    ASSERT_OK(AppendRows(t.get(), 0, 50));
  }
  const std::string filter = Bytes(FilterPath(dir, 1));
  Put(FilterPath(dir, 9), filter);                                       // its segment is gone
  Put(FilterPath(dir, 1) + ".tmp", filter.substr(0, 70));                // an interrupted write
  Put(JoinPath(dir, "cold-00000003.filter.old"), filter);                // not a name of ours
  const std::set<std::string> before = Names(dir);
  for (bool ro : {true, false}) {
    std::unique_ptr<ColdTier> t;
    ASSERT_OK(ColdTier::Open(dir, kDims, ro, &t));
    CHECK(Names(dir) == before);
    ASSERT_OK(t->FinishOpen());
    if (ro) CHECK(Names(dir) == before);
  }
  CHECK(Names(dir) ==
        (std::set<std::string>{"cold-00000001.seg", "cold-00000001.filter", "cold-00000003.filter.old"}));
  CHECK(Bytes(FilterPath(dir, 1)) == filter);
}

// A filter file that cannot be written costs speed only: the seal and the
// scans succeed with the signatures made from the segment.
TEST(AFilterFileThatCannotBeWrittenIsNoError) {
  const std::string dir = tstest::TempDir("cf-unwritable");
  fs::create_directories(FilterPath(dir, 1) + ".tmp");  // the seal's tmp name is taken
  {
    std::unique_ptr<ColdTier> t;
    ASSERT_OK(ColdTier::Open(dir, kDims, false, &t));
    ASSERT_OK(AppendRows(t.get(), 0, 200, 0, /*durable=*/true));
    CHECK(Names(dir) == (std::set<std::string>{"cold-00000001.seg", "cold-00000001.filter.tmp"}));
    CHECK(AllMadeFromTheSegment(ScanSignatures(*t)));  // its rewrite fails the same way
    CHECK(!PathExists(FilterPath(dir, 1)));
  }
  fs::remove(FilterPath(dir, 1) + ".tmp");
  std::unique_ptr<ColdTier> t;
  ASSERT_OK(ColdTier::Open(dir, kDims, false, &t));
  ASSERT_OK(t->FinishOpen());
  const auto seen = ScanSignatures(*t);
  CHECK(FileHolds(FilterPath(dir, 1), SegPath(dir, 1), seen.at(1).metas));
}

// Threads that run the first filtered scans at once: each segment's
// signatures are loaded once, the same for all, and its file written once.
TEST(ConcurrentFirstFilteredScans) {
  const std::string dir = tstest::TempDir("cf-threads");
  {
    std::unique_ptr<ColdTier> t;
    ASSERT_OK(ColdTier::Open(dir, kDims, false, &t));
    for (uint64_t s = 0; s < 3; ++s) ASSERT_OK(AppendRows(t.get(), s * 3000, 3000));
  }
  CHECK_OK(RemoveFile(FilterPath(dir, 2)));  // one segment has no file, one a damaged one
  Put(FilterPath(dir, 3), "damaged");
  std::unique_ptr<ColdTier> t;
  ASSERT_OK(ColdTier::Open(dir, kDims, false, false, &t));
  ASSERT_OK(t->FinishOpen());
  std::vector<std::map<uint32_t, Seen>> seen(4);
  std::vector<std::map<uint32_t, const MetadataSignature*>> pointers(4);
  std::vector<std::thread> threads;
  for (size_t i = 0; i < seen.size(); ++i) {
    threads.emplace_back([&, i] {
      seen[i] = ScanSignatures(*t);
      CHECK_OK(t->ScanSegments([&](const ColdSegmentView& v) {
        pointers[i][v.segment] = v.signatures;
        return Status::OK();
      }, true));
    });
  }
  for (auto& th : threads) th.join();
  for (size_t i = 0; i < seen.size(); ++i) {
    CHECK(AllMadeFromTheSegment(seen[i]));
    CHECK(pointers[i] == pointers[0]);  // one load per segment, kept with it
  }
  for (uint32_t id : {1u, 2u, 3u}) CHECK(FileHolds(FilterPath(dir, id), SegPath(dir, id), seen[0].at(id).metas));
}

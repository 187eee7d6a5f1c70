// Tests of the warm filter entries: WarmFilterArray (made from the blocks,
// kept by Set, adopted from warm.filter) and the file's checks: a file of
// another close, another store, a damaged header or chunk is never trusted
// (a damaged chunk is made again from the blocks); a slot reused after a
// free carries its new record's entry; entries never exclude a slot they
// do not know.
#include "../core/warm_filter_array.h"

#include <fcntl.h>

#include <atomic>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "../core/file_util.h"
#include "../core/record_filter.h"
#include "../core/warm_filter_file.h"
#include "../core/warm_tier.h"
#include "testing.h"

using namespace tierstore;

namespace {

FilterEntry EntryOf(uint32_t slot) {
  FilterEntry e;
  e.created_at = 1000 + slot;
  e.confidence = static_cast<float>(slot % 10) / 10;
  e.activation = 0.5f;
  e.signature = MetadataSignature::Of("{\"n\":" + std::to_string(slot % 7) + "}");
  return e;
}

bool SameEntry(const FilterEntry* a, const FilterEntry& b) {
  return a != nullptr && std::memcmp(a, &b, sizeof b) == 0;
}

// Slots [0, n) known, n over two chunks.
constexpr uint32_t kSlots = WarmFilterArray::kSlotsPerChunk + 100;

void Flip(const std::string& path, uint64_t offset) {
  File f;
  CHECK_OK(File::Open(path, O_RDWR, &f));
  uint8_t b = 0;
  CHECK_OK(f.ReadAt(offset, &b, 1));
  b ^= 0x5A;
  CHECK_OK(f.WriteAt(offset, &b, 1));
}

}  // namespace

TEST(PreparedFromTheBlocksOnceAndKeptBySet) {
  WarmFilterArray a;
  CHECK(a.Snapshot().empty());
  a.Set(3, EntryOf(99));  // not made yet: ignored (Prepare reads the block)
  size_t calls = 0;
  auto fn = [&](uint32_t slot, FilterEntry* e) {
    ++calls;
    if (slot % 5 == 4) return false;  // a block that does not read back: unknown
    *e = EntryOf(slot);
    return true;
  };
  a.Prepare(kSlots, fn);
  CHECK_EQ(calls, size_t{kSlots});
  a.Prepare(kSlots, fn);
  CHECK_EQ(calls, size_t{kSlots});  // once
  WarmFilterArray::View v = a.Snapshot();
  CHECK(SameEntry(v.Find(3), EntryOf(3)));
  CHECK(v.Find(4) == nullptr);
  CHECK(v.Find(kSlots + WarmFilterArray::kSlotsPerChunk * 3) == nullptr);
  a.Set(4, EntryOf(4));
  a.Set(kSlots + 5, EntryOf(kSlots + 5));  // a new chunk
  v = a.Snapshot();
  CHECK(SameEntry(v.Find(4), EntryOf(4)));
  CHECK(SameEntry(v.Find(kSlots + 5), EntryOf(kSlots + 5)));
}

TEST(FileRoundTripAndEveryMismatchRefused) {
  const std::string dir = tstest::TempDir("warm-filter-roundtrip");
  {
    WarmFilterArray a;
    // Not made: writing removes a stale file instead.
    CHECK_OK(AtomicWriteFile(JoinPath(dir, kWarmFilterFileName), "stale", false));
    CHECK_OK(a.WriteFile(dir, 7, 11, false));
    CHECK(!PathExists(JoinPath(dir, kWarmFilterFileName)));
    a.Prepare(kSlots, [](uint32_t slot, FilterEntry* e) {
      *e = EntryOf(slot);
      return slot != 10;
    });
    CHECK_OK(a.WriteFile(dir, 7, 11, false));
  }
  {
    WarmFilterArray a;
    CHECK_OK(a.Adopt(dir, 7, 11));
    CHECK(a.Snapshot().empty());  // chunks are checked first
    size_t calls = 0;
    a.Prepare(kSlots, [&](uint32_t, FilterEntry*) {
      ++calls;
      return false;
    });
    CHECK_EQ(calls, size_t{0});  // every chunk checked out
    WarmFilterArray::View v = a.Snapshot();
    CHECK(SameEntry(v.Find(0), EntryOf(0)));
    CHECK(SameEntry(v.Find(kSlots - 1), EntryOf(kSlots - 1)));
    CHECK(v.Find(10) == nullptr);
    CHECK_EQ(a.damaged_chunks(), uint64_t{0});
  }
  WarmFilterArray other_close, other_store;
  Status s = other_close.Adopt(dir, 7, 12);
  CHECK(s.code() == StatusCode::kCorruption && s.message().find(kWarmFilterFileName) != std::string::npos);
  CHECK(other_store.Adopt(dir, 8, 11).code() == StatusCode::kCorruption);
  // A damaged header: refused whole.
  Flip(JoinPath(dir, kWarmFilterFileName), 20);
  WarmFilterArray damaged;
  CHECK(damaged.Adopt(dir, 7, 11).code() == StatusCode::kCorruption);
  // Missing: refused.
  CHECK_OK(RemoveFile(JoinPath(dir, kWarmFilterFileName)));
  WarmFilterArray missing;
  CHECK(!missing.Adopt(dir, 7, 11).ok());
}

TEST(DamagedChunkIsMadeAgainFromTheBlocks) {
  const std::string dir = tstest::TempDir("warm-filter-damaged-chunk");
  auto all = [](uint32_t slot, FilterEntry* e) {
    *e = EntryOf(slot);
    return true;
  };
  {
    WarmFilterArray a;
    a.Prepare(kSlots, all);
    CHECK_OK(a.WriteFile(dir, 1, 2, false));
  }
  // An entry of the second chunk: its scalars now say something else.
  const std::string path = JoinPath(dir, kWarmFilterFileName);
  Flip(path, kWarmFilterHeaderBytes + kWarmFilterChunkBytes + 3 * sizeof(FilterEntry) + 2);
  {
    WarmFilterArray a;
    CHECK_OK(a.Adopt(dir, 1, 2));
    size_t calls = 0;
    a.Prepare(kSlots, [&](uint32_t slot, FilterEntry* e) {
      ++calls;
      CHECK(slot >= WarmFilterArray::kSlotsPerChunk);  // only the damaged chunk
      return all(slot, e);
    });
    CHECK_EQ(calls, size_t{kSlots - WarmFilterArray::kSlotsPerChunk});
    CHECK_EQ(a.damaged_chunks(), uint64_t{1});
    WarmFilterArray::View v = a.Snapshot();
    CHECK(SameEntry(v.Find(WarmFilterArray::kSlotsPerChunk + 3), EntryOf(WarmFilterArray::kSlotsPerChunk + 3)));
    CHECK(SameEntry(v.Find(5), EntryOf(5)));
  }
  // A Set into a damaged chunk before any Prepare: the chunk is dropped, the
  // Set kept, and the rest refilled.
  Flip(path, kWarmFilterHeaderBytes + 7);
  {
    WarmFilterArray a;
    CHECK_OK(a.Adopt(dir, 1, 2));
    a.Set(1, EntryOf(2));  // slot 1 now holds another record
    size_t calls = 0;
    a.Prepare(kSlots, [&](uint32_t slot, FilterEntry* e) {
      ++calls;
      return all(slot, e);
    });
    // Chunk 0 refilled but for slot 1; chunk 1 is still damaged.
    CHECK_EQ(calls, size_t{kSlots - 1});
    WarmFilterArray::View v = a.Snapshot();
    CHECK(SameEntry(v.Find(1), EntryOf(2)));
    CHECK(SameEntry(v.Find(0), EntryOf(0)));
    // Written again: never the damaged bytes under a fresh checksum.
    CHECK_OK(a.WriteFile(dir, 1, 3, false));
  }
  WarmFilterArray again;
  CHECK_OK(again.Adopt(dir, 1, 3));
  size_t calls = 0;
  again.Prepare(kSlots, [&](uint32_t, FilterEntry*) {
    ++calls;
    return false;
  });
  CHECK_EQ(calls, size_t{0});
  CHECK(SameEntry(again.Snapshot().Find(0), EntryOf(0)));
}

namespace {

std::vector<float> Embedding(uint32_t dims, uint32_t i) {
  std::vector<float> e(dims);
  for (uint32_t d = 0; d < dims; ++d) e[d] = static_cast<float>((i * 31 + d * 7) % 13) - 6.0f;
  return e;
}

}  // namespace

TEST(WarmTierEntriesFollowInsertsAndSlotReuse) {
  const std::string dir = tstest::TempDir("warm-filter-tier");
  constexpr uint32_t kDims = 8;
  CHECK_OK(WarmTier::Create(dir, kDims));
  std::unique_ptr<WarmTier> t;
  ASSERT_OK(WarmTier::Open(dir, kDims, false, &t));
  ASSERT_OK(t->FinishOpen());
  std::vector<std::string> ids, metas;
  std::vector<std::vector<float>> embs;
  auto put = [&](uint32_t i, const std::string& meta, uint32_t* slot) {
    ids.push_back("id-" + std::to_string(i));
    metas.push_back(meta);
    embs.push_back(Embedding(kDims, i));
    RecordView v;
    v.id = ids.back();
    v.metadata = metas.back();
    v.embedding = embs.back().data();
    v.norm = 1;
    v.confidence = 0.5f;
    v.activation = 0.25f;
    v.created_at = 100.0 + i;
    v.seq = i + 1;
    return t->Insert(v, slot);
  };
  ids.reserve(16), metas.reserve(16), embs.reserve(16);
  uint32_t slot = 0;
  for (uint32_t i = 0; i < 4; ++i) ASSERT_OK(put(i, "{\"k\":\"a\"}", &slot));
  RecordFilter::Spec spec;
  spec.metadata_json = "{\"k\":[\"b\"]}";
  RecordFilter want_b;
  ASSERT_OK(RecordFilter::Parse(spec, &want_b));
  WarmFilterArray::View v = t->FilterEntries();  // made from the blocks
  for (uint32_t s = 0; s < 4; ++s) {
    CHECK(v.Find(s) != nullptr && !want_b.MayMatch(*v.Find(s)));
    CHECK_EQ(v.Find(s)->created_at, 100.0 + s);
  }
  // Slot 1 freed and reused by a record that matches: its entry follows.
  ASSERT_OK(t->Free(1));
  ASSERT_OK(put(9, "{\"k\":[\"x\",\"b\"]}", &slot));
  CHECK_EQ(slot, uint32_t{1});
  v = t->FilterEntries();
  CHECK(v.Find(1) != nullptr && want_b.MayMatch(*v.Find(1)));
  CHECK_EQ(v.Find(1)->created_at, 109.0);
  // Written at a clean close, adopted by an open of the same token.
  ASSERT_OK(t->Sync());
  ASSERT_OK(t->WriteFilterFile(5, 6, false));
  t.reset();
  ASSERT_OK(WarmTier::Open(dir, kDims, true, &t));
  ASSERT_OK(t->AdoptFilterFile(5, 6));
  v = t->FilterEntries();
  CHECK(v.Find(1) != nullptr && want_b.MayMatch(*v.Find(1)));
  CHECK(v.Find(2) != nullptr && !want_b.MayMatch(*v.Find(2)));
  // Read-only: never written.
  CHECK(t->WriteFilterFile(5, 7, false).code() == StatusCode::kReadOnly);
  t.reset();
  // Another close's file is not adopted: the entries come from the blocks.
  ASSERT_OK(WarmTier::Open(dir, kDims, true, &t));
  CHECK(!t->AdoptFilterFile(5, 7).ok());
  v = t->FilterEntries();
  CHECK(v.Find(1) != nullptr && want_b.MayMatch(*v.Find(1)));
}

TEST(ConcurrentFirstScansPrepareOnce) {
  // Filtered scans under the Store's shared lock may race to make the
  // entries: one makes them, the others wait and see them whole.
  const std::string dir = tstest::TempDir("warm-filter-race");
  {
    WarmFilterArray a;
    a.Prepare(kSlots, [](uint32_t slot, FilterEntry* e) {
      *e = EntryOf(slot);
      return true;
    });
    CHECK_OK(a.WriteFile(dir, 3, 4, false));
  }
  for (bool adopted : {false, true}) {
    WarmFilterArray a;
    if (adopted) CHECK_OK(a.Adopt(dir, 3, 4));
    std::atomic<size_t> calls{0};
    std::atomic<size_t> bad{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&] {
        a.Prepare(kSlots, [&](uint32_t slot, FilterEntry* e) {
          calls.fetch_add(1, std::memory_order_relaxed);
          *e = EntryOf(slot);
          return true;
        });
        WarmFilterArray::View v = a.Snapshot();
        for (uint32_t s = 0; s < kSlots; s += 97) {
          if (!SameEntry(v.Find(s), EntryOf(s))) bad.fetch_add(1, std::memory_order_relaxed);
        }
      });
    }
    for (std::thread& t : threads) t.join();
    CHECK_EQ(bad.load(), size_t{0});
    CHECK_EQ(calls.load(), adopted ? size_t{0} : size_t{kSlots});
  }
}

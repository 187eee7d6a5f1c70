// Tests of IdIndex against std::unordered_map as the model: random inserts,
// lookups and erases (so backward-shift deletion, growth and id repacking
// all run many times), ids of every length class, and the memory it holds.
#include "../core/id_index.h"

#include <random>
#include <string>
#include <unordered_map>

#include "testing.h"

using namespace tierstore;

namespace {

struct Pos {
  uint32_t a;
  uint64_t b;
};

std::string RandomId(std::mt19937_64& rng, size_t universe) {
  // Few distinct ids, so inserts hit existing ones and erases find theirs.
  return "id-" + std::to_string(rng() % universe);
}

void CheckSame(IdIndex<Pos>& index, const std::unordered_map<std::string, Pos>& model) {
  CHECK_EQ(index.size(), model.size());
  for (const auto& [id, pos] : model) {
    const Pos* p = index.Find(id);
    CHECK(p != nullptr);
    if (p != nullptr) {
      CHECK_EQ(p->a, pos.a);
      CHECK_EQ(p->b, pos.b);
    }
  }
  size_t seen = 0;
  index.ForEach([&](std::string_view id, Pos& pos) {
    ++seen;
    auto it = model.find(std::string(id));
    CHECK(it != model.end());
    if (it != model.end()) CHECK_EQ(pos.b, it->second.b);
  });
  CHECK_EQ(seen, model.size());
}

}  // namespace

TEST(EmptyIndexFindsNothing) {
  IdIndex<Pos> index;
  CHECK(index.Find("x") == nullptr);
  CHECK(!index.Erase("x"));
  CHECK_EQ(index.size(), 0u);
  CHECK_EQ(index.MemoryBytes(), 0u);
}

TEST(TryEmplaceKeepsTheFirstValue) {
  IdIndex<Pos> index;
  auto [v, inserted] = index.TryEmplace("a", Pos{1, 10});
  CHECK(inserted);
  CHECK_EQ(v->b, 10u);
  auto [w, again] = index.TryEmplace("a", Pos{2, 20});
  CHECK(!again);
  CHECK_EQ(w->b, 10u);
  w->b = 30;  // the returned pointer writes through
  CHECK_EQ(index.Find("a")->b, 30u);
  CHECK(index.Find("b") == nullptr);
  CHECK(index.Erase("a"));
  CHECK(index.Find("a") == nullptr);
  CHECK_EQ(index.size(), 0u);
}

TEST(RandomOperationsMatchAMap) {
  std::mt19937_64 rng(7);
  for (size_t universe : {40u, 3000u, 60000u}) {
    IdIndex<Pos> index;
    std::unordered_map<std::string, Pos> model;
    for (int op = 0; op < 200000; ++op) {
      const std::string id = RandomId(rng, universe);
      const unsigned kind = rng() % 10;
      if (kind < 5) {
        Pos pos{static_cast<uint32_t>(op), rng()};
        auto [v, inserted] = index.TryEmplace(id, pos);
        auto [it, model_inserted] = model.try_emplace(id, pos);
        CHECK_EQ(inserted, model_inserted);
        CHECK_EQ(v->b, it->second.b);
      } else if (kind < 8) {
        CHECK_EQ(index.Erase(id), model.erase(id) == 1);
      } else {
        const Pos* p = index.Find(id);
        auto it = model.find(id);
        CHECK_EQ(p != nullptr, it != model.end());
        if (p != nullptr && it != model.end()) CHECK_EQ(p->b, it->second.b);
      }
      if (op % 50000 == 0) CheckSame(index, model);
    }
    CheckSame(index, model);
  }
}

TEST(IdsOfEveryLengthClass) {
  // Empty, short, just under and over the 4095-byte inline limit, and over a
  // whole 1 MiB chunk: each round-trips byte for byte, NUL bytes included.
  IdIndex<Pos> index;
  std::unordered_map<std::string, Pos> model;
  std::mt19937_64 rng(11);
  for (size_t len : {0u, 1u, 17u, 4094u, 4095u, 4096u, 70000u, (1u << 20) + 3u}) {
    std::string id(len, '\0');
    for (char& c : id) c = static_cast<char>(rng());
    Pos pos{static_cast<uint32_t>(len), rng()};
    CHECK(index.TryEmplace(id, pos).second);
    model.emplace(id, pos);
  }
  CheckSame(index, model);
  index.ForEach([&](std::string_view id, Pos& pos) { CHECK_EQ(id.size(), pos.a); });
  for (auto& [id, pos] : model) CHECK(index.Erase(id));
  CHECK_EQ(index.size(), 0u);
}

TEST(ChurnRepacksIdsAndKeepsMemoryBounded) {
  // A million inserts and erases over a working set of 20,000: the id bytes
  // of erased entries must be reclaimed, not accumulate.
  IdIndex<Pos> index;
  std::unordered_map<std::string, Pos> model;
  const size_t kLive = 20000;
  for (size_t i = 0; i < 1000000; ++i) {
    const std::string id = "memory-" + std::to_string(i) + "-with-a-longer-suffix";
    index.TryEmplace(id, Pos{0, i});
    model.emplace(id, Pos{0, i});
    if (i >= kLive) {
      const std::string old = "memory-" + std::to_string(i - kLive) + "-with-a-longer-suffix";
      CHECK(index.Erase(old));
      model.erase(old);
    }
  }
  CheckSame(index, model);
  // 20,000 entries: at most 37,500 slots of 24 bytes, ids ~40 bytes in a few chunks
  // (at most 1 MiB live + 1 MiB garbage + the chunk being filled).
  CHECK(index.MemoryBytes() < 37500 * 24 + 3 * (1u << 20) + (1u << 20));
}

TEST(TableStaysBetween53And80PercentFull) {
  // Growth by half keeps RAM per entry within 24/0.8..24/0.53 bytes of slots.
  IdIndex<Pos> index;
  for (uint64_t i = 0; i < 300000; ++i) {
    index.TryEmplace(std::to_string(i), Pos{0, i});
    const size_t size = index.size(), cap = index.capacity();
    CHECK(size * 5 <= cap * 4);
    if (cap > 16) CHECK(size * 1000 >= cap * 533);
  }
}

TEST(ReserveMakesRoomWithoutGrowingLater) {
  IdIndex<Pos> index;
  index.TryEmplace("before", Pos{1, 1});
  index.Reserve(10'000);
  const size_t capacity = index.capacity();
  CHECK(capacity * 4 >= 10'000u * 5);  // 10,000 entries stay within 80% full
  for (uint32_t i = 0; i < 9'999; ++i) index.TryEmplace(std::to_string(i), Pos{i, i});
  CHECK_EQ(index.capacity(), capacity);  // no growth: the reservation held
  CHECK_EQ(index.size(), 10'000u);
  for (uint32_t i = 0; i < 9'999; ++i) {
    const Pos* p = index.Find(std::to_string(i));
    CHECK(p != nullptr && p->a == i);
  }
  CHECK(index.Find("before") != nullptr);
  index.Reserve(5);  // below the size: nothing changes
  CHECK_EQ(index.capacity(), capacity);
}

TEST(ClearEmptiesAndStaysUsable) {
  IdIndex<Pos> index;
  for (int i = 0; i < 1000; ++i) index.TryEmplace(std::to_string(i), Pos{0, uint64_t(i)});
  index.Clear();
  CHECK_EQ(index.size(), 0u);
  CHECK(index.Find("1") == nullptr);
  CHECK(index.TryEmplace("1", Pos{0, 5}).second);
  CHECK_EQ(index.Find("1")->b, 5u);
}
